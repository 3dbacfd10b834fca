package cluster

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Batched forwarding. A follower with many concurrent writers sends their
// commands to the leader several at a time, in one request to
// ProposeBatchPath, instead of one request each: per forwarded command
// the HTTP request, its authentication and the socket reads and writes on
// both nodes were a large share of the cluster's CPU per CreateKey. The
// leader proposes each command of a batch on its own (raft groups them
// into log batches as it does for its own callers) and answers each
// command's index or error; the follower then waits for its own state
// machine as for a single forward.
//
// A command's outcome does not depend on the batch it travelled in: each
// is proposed, committed and answered separately, and a caller who stops
// waiting (its context ended) gets ErrOutcomeUnknown as before.

// ProposeBatchPath is the leader's endpoint for batched proposals.
const ProposeBatchPath = "/internal/v1/propose-batch"

const (
	// maxBatchCommands and maxBatchBytes bound one batch (the leader
	// refuses larger ones); a follower sends what has queued up to them.
	maxBatchCommands = 256
	maxBatchBytes    = 1 << 20
	// maxBatchesInFlight is how many batch requests a follower has open
	// at once: while they are out, new commands queue for the next one.
	// More than one keeps the leader's pipeline full (it commits one
	// batch while the next arrives).
	maxBatchesInFlight = 4
	// batchRetryAfter is how long a follower forwards one command per
	// request after a leader did not know ProposeBatchPath (an older
	// version during a rolling upgrade) before trying batches again.
	batchRetryAfter = time.Minute
)

// queuedProposal is one caller's command waiting to be sent.
type queuedProposal struct {
	cmd    []byte
	caller string
	done   chan forwardResult // buffered: the sender never blocks
}

type forwardResult struct {
	index uint64
	err   error
}

// batcher queues a follower's forwarded commands and sends them in batches.
type batcher struct {
	mu       sync.Mutex
	queue    []*queuedProposal
	inFlight int
	// singleUntil: until then, send each command on its own (the leader
	// did not know ProposeBatchPath).
	singleUntil time.Time
}

// forwardQueued sends cmd to the leader in a batch and returns the index it
// was committed at.
func (f *Forwarder) forwardQueued(ctx context.Context, cmd []byte) (uint64, error) {
	caller := ""
	if f.cfg.Caller != nil {
		caller = sanitizeCaller(f.cfg.Caller(ctx))
	}
	p := &queuedProposal{cmd: cmd, caller: caller, done: make(chan forwardResult, 1)}
	b := &f.batch
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := b.inFlight < maxBatchesInFlight
	if start {
		b.inFlight++
	}
	b.mu.Unlock()
	if start {
		go f.sendBatches()
	}
	select {
	case r := <-p.done:
		return r.index, r.err
	case <-ctx.Done():
		// The command may still be sent and committed: a retry carries
		// the same request id.
		return 0, fmt.Errorf("%w: forwarding: %w", ErrOutcomeUnknown, ctx.Err())
	}
}

// sendBatches sends what is queued, batch after batch, until the queue is
// empty; it holds one of the maxBatchesInFlight slots.
func (f *Forwarder) sendBatches() {
	b := &f.batch
	for {
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(b.queue) && n < maxBatchCommands {
			size += len(b.queue[n].cmd) + len(b.queue[n].caller) + 2*binary.MaxVarintLen64
			if n > 0 && size > maxBatchBytes {
				break
			}
			n++
		}
		batch := make([]*queuedProposal, n)
		copy(batch, b.queue)
		rest := copy(b.queue, b.queue[n:])
		clear(b.queue[rest:])
		b.queue = b.queue[:rest]
		single := time.Now().Before(b.singleUntil)
		b.mu.Unlock()
		if single || len(batch) == 1 {
			f.sendSingly(batch)
			continue
		}
		f.sendBatch(batch)
	}
}

// sendSingly forwards each command in a request of its own, concurrently.
func (f *Forwarder) sendSingly(batch []*queuedProposal) {
	var wg sync.WaitGroup
	for _, p := range batch {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
			defer cancel()
			var out struct {
				Index uint64 `json:"index"`
			}
			err := f.callLeader(ctx, ProposePath, p.caller, p.cmd, &out)
			p.done <- forwardResult{index: out.Index, err: err}
		})
	}
	wg.Wait()
}

// batchItemResult is the leader's answer for one command of a batch:
// Status is the HTTP status a single forward would have got.
type batchItemResult struct {
	Index  uint64 `json:"index,omitempty"`
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

type batchResponse struct {
	Results []batchItemResult `json:"results"`
}

func (f *Forwarder) sendBatch(batch []*queuedProposal) {
	body := encodeBatch(batch)
	ctx, cancel := context.WithTimeout(context.Background(), forwardTimeout)
	defer cancel()
	var out batchResponse
	err := f.callLeader(ctx, ProposeBatchPath, "", body, &out)
	if errors.Is(err, errNoBatchEndpoint) {
		f.log.Info("the leader does not take batched proposals: forwarding one command per request", "for", batchRetryAfter)
		f.batch.mu.Lock()
		f.batch.singleUntil = time.Now().Add(batchRetryAfter)
		f.batch.mu.Unlock()
		f.sendSingly(batch)
		return
	}
	if err == nil && len(out.Results) != len(batch) {
		err = fmt.Errorf("%w: leader answered %d results for %d commands", ErrOutcomeUnknown, len(out.Results), len(batch))
	}
	for i, p := range batch {
		if err != nil {
			p.done <- forwardResult{err: err}
			continue
		}
		r := out.Results[i]
		p.done <- forwardResult{index: r.Index, err: itemError(r)}
	}
}

// itemError maps one batch item's status as callLeader maps a response's.
func itemError(r batchItemResult) error {
	return statusError(r.Status, "the leader", r.Error)
}

// encodeBatch frames each command as uvarint(len(caller)) caller
// uvarint(len(cmd)) cmd. The callers are inside the body, so the node
// authentication (a MAC over the body) covers them.
func encodeBatch(batch []*queuedProposal) []byte {
	size := 0
	for _, p := range batch {
		size += len(p.caller) + len(p.cmd) + 2*binary.MaxVarintLen64
	}
	out := make([]byte, 0, size)
	for _, p := range batch {
		out = binary.AppendUvarint(out, uint64(len(p.caller)))
		out = append(out, p.caller...)
		out = binary.AppendUvarint(out, uint64(len(p.cmd)))
		out = append(out, p.cmd...)
	}
	return out
}

type batchItem struct {
	caller string
	cmd    []byte
}

func decodeBatch(body []byte) ([]batchItem, error) {
	var items []batchItem
	next := func() ([]byte, error) {
		n, k := binary.Uvarint(body)
		if k <= 0 || n > uint64(len(body)-k) {
			return nil, errors.New("malformed batch")
		}
		v := body[k : k+int(n)]
		body = body[k+int(n):]
		return v, nil
	}
	for len(body) > 0 {
		if len(items) == maxBatchCommands {
			return nil, fmt.Errorf("more than %d commands in a batch", maxBatchCommands)
		}
		caller, err := next()
		if err != nil {
			return nil, err
		}
		cmd, err := next()
		if err != nil {
			return nil, err
		}
		items = append(items, batchItem{caller: sanitizeCaller(string(caller)), cmd: cmd})
	}
	if len(items) == 0 {
		return nil, errors.New("empty batch")
	}
	return items, nil
}

// serveProposeBatch is the leader's side of a batch: every command is
// proposed concurrently, as if each had come in a request of its own.
func (f *Forwarder) serveProposeBatch(w http.ResponseWriter, r *http.Request) {
	body, ok := f.readAuthenticated(w, r)
	if !ok {
		return
	}
	items, err := decodeBatch(body)
	if err != nil {
		http.Error(w, "bad batch: "+err.Error(), http.StatusBadRequest)
		return
	}
	results := make([]batchItemResult, len(items))
	var wg sync.WaitGroup
	for i, it := range items {
		wg.Go(func() {
			_, index, err := f.cfg.Node.Propose(r.Context(), it.cmd)
			f.log.Debug("forwarded proposal", "from", r.RemoteAddr, "caller", it.caller, "index", index, "err", err, "batch", len(items))
			results[i] = batchItemResult{Index: index, Status: statusFor(err)}
			if err != nil {
				results[i].Error = err.Error()
			}
		})
	}
	wg.Wait()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(batchResponse{Results: results})
}

// statusFor is the HTTP status answer gives err.
func statusFor(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrNotLeader):
		return http.StatusMisdirectedRequest
	default:
		return http.StatusServiceUnavailable
	}
}
