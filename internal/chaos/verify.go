package chaos

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Summary is the outcome of a chaos run.
type Summary struct {
	Rounds     int
	Failpoints []string
	Counts     Counts
	// AckedKeys and AckedCiphertexts are what must survive.
	AckedKeys, AckedCiphertexts int
	// Lost counts acknowledged writes whose effect is missing somewhere:
	// a key absent at some node, a ciphertext that does not decrypt at
	// some node (each node counted once).
	Lost        int
	Failovers   []time.Duration
	Check       CheckResult
	Problems    []string // everything that failed, lost writes included
	Statuses    []*Status
	Took        time.Duration
	Violations  []string
	Unexpected  []string
	ReportDir   string
	HistoryOps  int
	MaybeKeys   int // maybe-applied CreateKeys whose key turned out to exist
	GhostKeys   int // keys no CreateKey (acknowledged or maybe) accounts for
	Duplicated  int // correlations with more than one key
	FailedButIn int // CreateKeys answered with a definite failure whose key exists
	// Errors counts the unacknowledged calls by operation, outcome and error.
	Errors map[string]int
}

// ErrorBreakdown renders Errors, most frequent first.
func (s *Summary) ErrorBreakdown() string {
	type kv struct {
		k string
		v int
	}
	var all []kv
	for k, v := range s.Errors {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v || all[i].v == all[j].v && all[i].k < all[j].k })
	var b strings.Builder
	for i, e := range all {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%d", e.k, e.v)
	}
	return b.String()
}

// OK reports whether the run found nothing wrong.
func (s *Summary) OK() bool {
	return len(s.Problems) == 0 && s.Check.Result != porcupine.Illegal
}

// Linearizable is "yes", "no" or "unknown" (the checker timed out).
func (s *Summary) Linearizable() string {
	switch s.Check.Result {
	case porcupine.Ok:
		return "yes"
	case porcupine.Illegal:
		return "no"
	}
	return "unknown"
}

// Line is the one-line summary.
func (s *Summary) Line() string {
	p50, mx := Percentile(s.Failovers, 50), Percentile(s.Failovers, 100)
	return fmt.Sprintf("chaos summary: rounds=%d ops attempted=%d acknowledged=%d failed=%d maybe=%d lost=%d "+
		"(acked keys=%d ciphertexts=%d) failover p50=%v max=%v (n=%d) linearizable=%s (keys=%d ops=%d, checked in %v) problems=%d took=%v",
		s.Rounds, s.Counts.Attempted, s.Counts.OK, s.Counts.Failed, s.Counts.Maybe, s.Lost,
		s.AckedKeys, s.AckedCiphertexts, p50.Round(time.Millisecond), mx.Round(time.Millisecond), len(s.Failovers),
		s.Linearizable(), s.Check.Keys, s.Check.Ops, s.Check.Took.Round(time.Millisecond), len(s.Problems), s.Took.Round(time.Second))
}

// Percentile returns the p-th percentile (nearest rank) of ds; 0 if empty.
func Percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[min(max(i, 0), len(s)-1)]
}

// Verify runs the end-of-run checks on a cluster whose workload has
// stopped: every node runs and is ready; replicas converge (same state
// hash at the same applied index); every acknowledged CreateKey exists at
// every node and exactly once, no definitely failed CreateKey took effect;
// every acknowledged ciphertext decrypts at every node (after enabling its
// key); the key-state history is linearizable. It fills s.
func Verify(ctx context.Context, c *Cluster, h *History, s *Summary, checkTimeout time.Duration) {
	problem := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		c.Logf("chaos: PROBLEM: %s", msg)
		s.Problems = append(s.Problems, msg)
	}
	ops := h.Ops()
	s.HistoryOps = len(ops)
	s.Counts = h.Count()
	for _, op := range ops {
		if op.Note != "" {
			problem("op %d %s at %s: %s", op.ID, op.Kind, op.Node, op.Note)
		}
	}
	s.Errors = map[string]int{}
	for _, op := range ops {
		if op.Outcome != OK {
			s.Errors[fmt.Sprintf("%s/%s/%s", op.Kind, op.Outcome, op.Error)]++
		}
	}
	s.Failovers = c.Failovers()

	for _, n := range c.nodes {
		if !n.Running() {
			problem("%s is not running at the end (last exit: %s)", n.ID, n.LastExit())
			if err := n.Start(); err != nil {
				problem("restart %s: %v", n.ID, err)
			}
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		problem("not every node is ready at the end: %v", err)
	}
	sts, err := c.Converged(ctx, 60*time.Second)
	if err != nil {
		problem("replicas did not converge: %v", err)
	}
	c.Logf("chaos: converged: %s", DescribeStatuses(sts))

	// Acknowledged keys at every node.
	acked := map[string]Op{}
	for _, op := range ops {
		if op.Kind == OpCreateKey && op.Outcome == OK {
			acked[op.KeyID] = op
		}
	}
	s.AckedKeys = len(acked)
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, n := range c.nodes {
		cl := n.PlainClient()
		missing := parallel(ctx, ids, func(ctx context.Context, id string) string {
			op := retry(ctx, func() Op { return cl.DescribeKey(ctx, id, false) })
			if op.Outcome != OK {
				return fmt.Sprintf("key %s (CreateKey op %d %q acknowledged by %s) at %s: %s %s", id, acked[id].ID, acked[id].Corr, acked[id].Node, n.ID, op.Error, op.Message)
			}
			return ""
		})
		s.Lost += len(missing)
		for _, m := range missing {
			problem("LOST: %s", m)
		}
	}

	// Every key that exists, by correlation (description): an acknowledged
	// CreateKey made exactly one key, a maybe-applied one at most one, a
	// failed one none.
	all, err := listAll(ctx, c.nodes[0])
	if err != nil {
		problem("ListKeys at %s: %v", c.nodes[0].ID, err)
	} else {
		byCorr := map[string][]string{}
		descs := parallel(ctx, all, func(ctx context.Context, id string) string {
			var out *kms.DescribeKeyOutput
			var err error
			for range 5 {
				out, err = c.nodes[0].client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
				if o, _, _ := Classify(err); o != Maybe && !isDial(err) {
					break
				}
			}
			if err != nil {
				return "!" + id + ": " + err.Error()
			}
			return id + "\t" + aws.ToString(out.KeyMetadata.Description)
		})
		for _, d := range descs {
			if strings.HasPrefix(d, "!") {
				problem("DescribeKey of listed key %s", d[1:])
				continue
			}
			id, corr, _ := strings.Cut(d, "\t")
			byCorr[corr] = append(byCorr[corr], id)
		}
		seen := map[string]bool{}
		for _, op := range ops {
			if op.Kind != OpCreateKey {
				continue
			}
			seen[op.Corr] = true
			got := byCorr[op.Corr]
			switch op.Outcome {
			case OK:
				if len(got) != 1 || got[0] != op.KeyID {
					problem("CreateKey op %d %q acknowledged key %s but the cluster has %v", op.ID, op.Corr, op.KeyID, got)
					if len(got) > 1 {
						s.Duplicated++
					}
				}
			case Maybe:
				if len(got) > 1 {
					s.Duplicated++
					problem("maybe-applied CreateKey op %d %q made %d keys: %v", op.ID, op.Corr, len(got), got)
				}
				if len(got) == 1 {
					s.MaybeKeys++
				}
			case Fail:
				if len(got) > 0 {
					s.FailedButIn++
					problem("CreateKey op %d %q failed with %s (%s) but made %v", op.ID, op.Corr, op.Error, op.Message, got)
				}
			}
		}
		for corr, got := range byCorr {
			if !seen[corr] {
				s.GhostKeys += len(got)
				problem("keys %v (description %q) were made by no CreateKey of the history", got, corr)
			}
		}
	}

	// Every acknowledged ciphertext decrypts at every node: enable the keys
	// first (the workload disables them), outside the history.
	sealed := h.SealedAll()
	s.AckedCiphertexts = len(sealed)
	keyset := map[string]bool{}
	for _, sl := range sealed {
		keyset[sl.KeyID] = true
	}
	var sealedKeys []string
	for k := range keyset {
		sealedKeys = append(sealedKeys, k)
	}
	sort.Strings(sealedKeys)
	if leader, err := c.Leader(ctx); err != nil {
		problem("no leader to enable keys through: %v", err)
	} else {
		cl := leader.PlainClient()
		failed := parallel(ctx, sealedKeys, func(ctx context.Context, id string) string {
			var op Op
			for range 5 {
				if op = cl.SetEnabled(ctx, id, true); op.Outcome != Maybe {
					break
				}
			}
			if op.Outcome != OK {
				return fmt.Sprintf("EnableKey %s at %s: %s %s", id, leader.ID, op.Error, op.Message)
			}
			return ""
		})
		for _, f := range failed {
			problem("%s", f)
		}
	}
	if sts, err = c.Converged(ctx, 60*time.Second); err != nil {
		problem("replicas did not converge after enabling keys: %v", err)
	}
	for _, n := range c.nodes {
		cl := n.PlainClient()
		idx := make([]int, len(sealed))
		for i := range idx {
			idx[i] = i
		}
		bad := parallel(ctx, idx, func(ctx context.Context, i int) string {
			sl := sealed[i]
			var pt []byte
			op := retry(ctx, func() (op Op) {
				pt, op = cl.Decrypt(ctx, sl.KeyID, sl.Ciphertext)
				return op
			})
			switch {
			case op.Outcome != OK:
				return fmt.Sprintf("ciphertext of Encrypt op %d (key %s) at %s: %s %s", sl.OpID, sl.KeyID, n.ID, op.Error, op.Message)
			case !bytes.Equal(pt, sl.Plaintext):
				return fmt.Sprintf("ciphertext of Encrypt op %d (key %s) at %s: wrong plaintext", sl.OpID, sl.KeyID, n.ID)
			}
			return ""
		})
		s.Lost += len(bad)
		for _, b := range bad {
			problem("LOST: %s", b)
		}
	}
	if sts, err = c.Converged(ctx, 60*time.Second); err != nil {
		problem("replicas did not converge at the end: %v", err)
	}
	s.Statuses = sts
	s.Unexpected = c.Unexpected()
	for _, u := range s.Unexpected {
		problem("node exited unexpectedly: %s", u)
	}

	s.Check = Check(ops, checkTimeout)
	switch s.Check.Result {
	case porcupine.Illegal:
		problem("key-state history is not linearizable: keys %v", s.Check.IllegalKeys)
	case porcupine.Unknown:
		c.Logf("chaos: the linearizability check timed out after %v (result unknown)", checkTimeout)
	}
}

// retry repeats a read whose answer was lost (timeout, transport error,
// 5xx, refused connection) a few times: end-of-run checks judge the
// cluster's state, not one connection.
func retry(ctx context.Context, f func() Op) Op {
	var op Op
	for range 5 {
		op = f()
		if op.Outcome != Maybe && op.Error != "dial" || ctx.Err() != nil {
			return op
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	return op
}

func isDial(err error) bool {
	_, name, _ := Classify(err)
	return name == "dial"
}

// listAll lists every key id at n.
func listAll(ctx context.Context, n *Node) ([]string, error) {
	var ids []string
	var marker *string
	for {
		var out *kms.ListKeysOutput
		var err error
		for range 5 {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			out, err = n.client.ListKeys(cctx, &kms.ListKeysInput{Limit: aws.Int32(1000), Marker: marker})
			cancel()
			if o, _, _ := Classify(err); o != Maybe && !isDial(err) {
				break
			}
			n.c.Logf("chaos: ListKeys at %s (retrying): %v", n.ID, err)
		}
		if err != nil {
			return nil, err
		}
		for _, k := range out.Keys {
			ids = append(ids, aws.ToString(k.KeyId))
		}
		if !out.Truncated {
			return ids, nil
		}
		marker = out.NextMarker
	}
}

// parallel runs f over items with a few workers (each call bounded by 10s)
// and returns the non-empty results.
func parallel[T any](ctx context.Context, items []T, f func(context.Context, T) string) []string {
	var mu sync.Mutex
	var out []string
	ch := make(chan T)
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r := f(cctx, it)
				cancel()
				if r != "" {
					mu.Lock()
					out = append(out, r)
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	sort.Strings(out)
	return out
}
