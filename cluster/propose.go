package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Propose appends cmd to the log and waits until it is committed and applied
// by this node's FSM; this node must be the leader. It returns the FSM's
// Apply response untouched (an error value returned by the FSM is a response,
// not err) and the entry's log index, which followers can pass to
// WaitForApplied.
//
// Errors:
//   - ErrNotLeader (a *NotLeaderError naming the leader if known): nothing
//     was appended.
//   - ErrOutcomeUnknown: the entry may or may not commit (leadership lost,
//     context or ApplyTimeout ended while waiting, node shut down). Retry
//     with the same request id.
//   - ErrShutdown: the node is shut down (together with ErrOutcomeUnknown if
//     that happened while waiting).
//   - the context's error, if it was done before anything was attempted.
func (n *Node) Propose(ctx context.Context, cmd []byte) (resp any, index uint64, err error) {
	if err := n.preflight(ctx); err != nil {
		return nil, 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	f := n.raft.Apply(cmd, enqueueTimeout(ctx))
	if err := n.await(ctx, f); err != nil {
		return nil, 0, n.mapError("propose", err)
	}
	return f.Response(), f.Index(), nil
}

// Barrier waits until every entry committed before it has been applied by
// this node's FSM; this node must be the leader. A new leader calls it
// before serving anything derived from its state (leader duties start).
// Errors are those of Propose.
func (n *Node) Barrier(ctx context.Context) error {
	if err := n.preflight(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()
	if err := n.await(ctx, n.raft.Barrier(enqueueTimeout(ctx))); err != nil {
		return n.mapError("barrier", err)
	}
	return nil
}

// preflight rejects calls that cannot succeed before touching raft.
func (n *Node) preflight(ctx context.Context) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if n.raft.State() != raft.Leader {
		return n.notLeader(nil)
	}
	return nil
}

// enqueueTimeout is how long raft may wait to hand an operation to its
// leader loop: what is left of ctx (which always has a deadline here).
func enqueueTimeout(ctx context.Context) time.Duration {
	d, _ := ctx.Deadline()
	return max(time.Until(d), time.Millisecond)
}

// await waits for a raft future, giving up when ctx is done or the node
// shuts down. Raft futures cannot be selected on, so the wait runs in a
// goroutine. Raft resolves every future it has taken from its apply
// channel (at the latest at shutdown), but not one still queued in that
// channel's buffer (BatchApplyCh) when it shuts down: without the shutdown
// case such a caller would wait for its whole deadline. (Its goroutine
// stays blocked; that happens only once per queued proposal of a node
// that is shut down.)
func (n *Node) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrOutcomeUnknown, ctx.Err())
	case <-n.shutdownCh:
		return fmt.Errorf("cluster: %w: %w", ErrShutdown, ErrOutcomeUnknown)
	}
}

// mapError classifies a raft error by whether the operation may have been
// appended to the log.
func (n *Node) mapError(op string, err error) error {
	switch {
	case errors.Is(err, ErrOutcomeUnknown), errors.Is(err, ErrShutdown), errors.Is(err, ErrNotLeader):
		return err // already ours
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		// Rejected by the leader loop before it appended anything.
		return n.notLeader(err)
	case errors.Is(err, raft.ErrRaftShutdown):
		// Also reported for entries committed but not yet applied at
		// shutdown.
		return fmt.Errorf("cluster: %s: %w: %w: %w", op, ErrShutdown, ErrOutcomeUnknown, err)
	default:
		// raft.ErrLeadershipLost, raft.ErrAbortedByRestore, a failed log
		// write, ... and raft.ErrEnqueueTimeout. The latter is in fact
		// returned when the entry could not even be queued for the leader
		// loop (raft's BatchApplyCh buffer stayed full), but it only
		// happens when our deadline is reached, and "unknown" is always a
		// safe answer.
		return fmt.Errorf("cluster: %s: %w: %w", op, ErrOutcomeUnknown, err)
	}
}
