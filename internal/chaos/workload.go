package chaos

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Workload is K writer goroutines looping over CreateKey, DisableKey,
// EnableKey, strong DescribeKey, Encrypt and Decrypt through random nodes,
// recording every call in the cluster's history.
type Workload struct {
	C         *Cluster
	Writers   int           // default 4
	OpTimeout time.Duration // per call; default 5s
	Seed      uint64
	// FreshKeys shares a new key with the other writers as soon as its
	// CreateKey is acknowledged, and at once sends one more call on it
	// through another random node: mutations there must see the key (a
	// follower catches up before answering NotFound; see
	// TestClusterMutationRightAfterCreate). Without it a writer first waits
	// until every running node serves the key (local DescribeKey).
	FreshKeys bool

	stop chan struct{}
	wg   sync.WaitGroup

	mu         sync.Mutex
	keys       []string // recently created keys, shared by all writers
	sealed     []Sealed // recent ciphertexts, for Decrypt
	violations []string
}

const (
	recentKeys   = 24
	recentSealed = 64
)

// Start starts the writers; Stop stops them.
func (w *Workload) Start() {
	if w.Writers == 0 {
		w.Writers = 4
	}
	if w.OpTimeout == 0 {
		w.OpTimeout = 5 * time.Second
	}
	if w.Seed == 0 {
		w.Seed = rand.Uint64()
	}
	w.C.Logf("chaos: %d writers, seed %d, fresh keys %v", w.Writers, w.Seed, w.FreshKeys)
	w.stop = make(chan struct{})
	for i := range w.Writers {
		w.wg.Add(1)
		go w.writer(i)
	}
}

// Stop tells the writers to stop and waits until their calls in flight
// have returned (calls are not cancelled: they end by themselves or by
// OpTimeout).
func (w *Workload) Stop() {
	close(w.stop)
	w.wg.Wait()
}

// Violations returns what the writers saw that no correct cluster answers
// (wrong plaintext, wrong X-Kmsd-Served-By...).
func (w *Workload) Violations() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.violations...)
}

func (w *Workload) violation(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	w.C.Logf("chaos: VIOLATION: %s", msg)
	w.mu.Lock()
	w.violations = append(w.violations, msg)
	w.mu.Unlock()
}

func (w *Workload) addKey(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keys = append(w.keys, id)
	if len(w.keys) > recentKeys {
		w.keys = w.keys[len(w.keys)-recentKeys:]
	}
}

func (w *Workload) pickKey(r *rand.Rand) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.keys) == 0 {
		return ""
	}
	return w.keys[r.IntN(len(w.keys))]
}

func (w *Workload) addSealed(s Sealed) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sealed = append(w.sealed, s)
	if len(w.sealed) > recentSealed {
		w.sealed = w.sealed[len(w.sealed)-recentSealed:]
	}
}

func (w *Workload) pickSealed(r *rand.Rand) (Sealed, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.sealed) == 0 {
		return Sealed{}, false
	}
	return w.sealed[r.IntN(len(w.sealed))], true
}

// awaitVisible waits until every running node serves key id from its
// local state. A node that refuses connections is down: when it comes back
// it catches up (to a read barrier taken after this CreateKey) before it
// serves, so it is skipped. A node that is up but not ready yet is waited
// for: its read barrier may predate the CreateKey. Not seeing an
// acknowledged key at a serving node within 20s is a violation. These reads
// are not part of the history.
func (w *Workload) awaitVisible(id string, created Op) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, n := range w.C.Nodes() {
		cl := n.PlainClient()
		var last Op
		err := poll(ctx, 5*time.Millisecond, func() (bool, error) {
			last = cl.DescribeKey(ctx, id, false)
			return last.Outcome == OK || last.Error == "dial", nil
		}, func() string { return "key " + id + " at " + n.ID })
		if err != nil && last.Error == "NotFoundException" {
			w.violation("key %s (CreateKey op %d acknowledged by %s) not served by %s after 20s: %v", id, created.ID, created.Node, n.ID, err)
		}
	}
}

func (w *Workload) writer(id int) {
	defer w.wg.Done()
	r := rand.New(rand.NewPCG(w.Seed, uint64(id)))
	h := w.C.History()
	nodes := w.C.Nodes()
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		n := nodes[r.IntN(len(nodes))]
		cl := n.Client().WithID(id)
		ctx, cancel := context.WithTimeout(context.Background(), w.OpTimeout)
		op := w.step(ctx, r, cl, h)
		cancel()
		if op.Outcome != OK {
			// Pace a writer whose node is down or not ready.
			t := time.NewTimer(time.Duration(10+r.IntN(40)) * time.Millisecond)
			select {
			case <-w.stop:
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// step runs one random operation.
func (w *Workload) step(ctx context.Context, r *rand.Rand, cl *Client, h *History) Op {
	key := w.pickKey(r)
	p := r.IntN(100)
	if key == "" {
		p = 0
	}
	switch {
	case p < 15:
		id, op := cl.CreateKey(ctx, NextCorr(fmt.Sprintf("w%d", cl.ID)))
		if op.Outcome != OK {
			return op
		}
		if op.State != "Enabled" {
			w.violation("op %d: CreateKey %s answered state %q", op.ID, id, op.State)
		}
		if !w.FreshKeys {
			w.awaitVisible(id, op)
			w.addKey(id)
			return op
		}
		w.addKey(id)
		nodes := w.C.Nodes()
		other := nodes[r.IntN(len(nodes))]
		if other == cl.Node {
			other = nodes[(slices.Index(nodes, other)+1)%len(nodes)]
		}
		ocl := other.Client().WithID(cl.ID)
		octx, cancel := context.WithTimeout(context.Background(), w.OpTimeout)
		defer cancel()
		switch r.IntN(3) {
		case 0:
			return ocl.SetEnabled(octx, id, false)
		case 1:
			return ocl.SetEnabled(octx, id, true)
		default:
			return ocl.DescribeKey(octx, id, true)
		}
	case p < 32:
		return cl.SetEnabled(ctx, key, false)
	case p < 49:
		return cl.SetEnabled(ctx, key, true)
	case p < 74:
		return cl.DescribeKey(ctx, key, true)
	case p < 87:
		pt := make([]byte, 16+r.IntN(48))
		for i := range pt {
			pt[i] = byte(r.Uint32())
		}
		ct, op := cl.Encrypt(ctx, key, pt)
		if op.Outcome == OK {
			s := Sealed{OpID: op.ID, KeyID: key, Plaintext: pt, Ciphertext: ct}
			h.Seal(s)
			w.addSealed(s)
		}
		return op
	default:
		s, ok := w.pickSealed(r)
		if !ok {
			return cl.DescribeKey(ctx, key, true)
		}
		pt, op := cl.Decrypt(ctx, s.KeyID, s.Ciphertext)
		switch {
		case op.Outcome == OK && !bytes.Equal(pt, s.Plaintext):
			w.violation("op %d: Decrypt at %s of the ciphertext of op %d returned a different plaintext", op.ID, op.Node, s.OpID)
		case op.Error == "InvalidCiphertextException" || op.Error == "IncorrectKeyException":
			w.violation("op %d: Decrypt at %s of the ciphertext of op %d: %s: %s", op.ID, op.Node, s.OpID, op.Error, op.Message)
		}
		return op
	}
}
