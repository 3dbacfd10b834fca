package cluster

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Why this file exists: raft.AppliedIndex() is the index last *handed* to
// the FSM goroutine (through a buffered channel), not the index the FSM has
// applied, so a read right after raft.AppliedIndex() >= i may miss entry i.
// Node wraps the FSM to learn what the FSM has really applied.

// appliedTracker holds the index of the last log entry the FSM goroutine has
// finished with (applied command, stored configuration) and wakes waiters
// when it moves.
type appliedTracker struct {
	mu    sync.Mutex
	index uint64
	ch    chan struct{} // closed and replaced on every advance
	// restored is set when the FSM has restored a snapshot and no entry
	// has been applied since: only then can the FSM's state be ahead of
	// index (by the snapshot, whose index Restore is not told), so only
	// then does Node.AppliedIndex need raft's last-snapshot index (from
	// raft.Stats, too costly to read on every call under load).
	restored bool
}

func newAppliedTracker() *appliedTracker {
	return &appliedTracker{ch: make(chan struct{})}
}

func (t *appliedTracker) set(i uint64) {
	t.mu.Lock()
	// Entries applied after a restore follow the snapshot: index now
	// covers it.
	t.restored = false
	if i > t.index {
		t.index = i
		close(t.ch)
		t.ch = make(chan struct{})
	}
	t.mu.Unlock()
}

// get returns the index and a channel closed when it next advances.
func (t *appliedTracker) get() (uint64, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.index, t.ch
}

// markRestored records that the FSM restored a snapshot.
func (t *appliedTracker) markRestored() {
	t.mu.Lock()
	t.restored = true
	t.mu.Unlock()
}

// restoredSinceApply reports whether a snapshot was restored after the last
// entry was applied.
func (t *appliedTracker) restoredSinceApply() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.restored
}

// trackingFSM passes everything through to the caller's FSM and records the
// index of each entry once the FSM is done with it. Apply's response is
// returned untouched. It implements raft.ConfigurationStore so that
// configuration entries are recorded too (forwarded if the inner FSM wants
// them).
type trackingFSM struct {
	inner   raft.FSM
	confs   raft.ConfigurationStore // nil if inner does not implement it
	applied *appliedTracker
	observe func(time.Duration) // Config.ObserveApply; may be nil
}

func (f *trackingFSM) Apply(l *raft.Log) any {
	start := time.Now()
	resp := f.inner.Apply(l)
	f.applied.set(l.Index)
	if f.observe != nil && l.Type == raft.LogCommand {
		f.observe(time.Since(start))
	}
	return resp
}

func (f *trackingFSM) Snapshot() (raft.FSMSnapshot, error) { return f.inner.Snapshot() }

// Restore does not know the snapshot's index (raft does not pass it);
// Node.AppliedIndex takes it from raft's last-snapshot index instead, until
// the next entry is applied.
func (f *trackingFSM) Restore(rc io.ReadCloser) error {
	if err := f.inner.Restore(rc); err != nil {
		return err
	}
	f.applied.markRestored()
	return nil
}

func (f *trackingFSM) StoreConfiguration(index uint64, c raft.Configuration) {
	if f.confs != nil {
		f.confs.StoreConfiguration(index, c)
	}
	f.applied.set(index)
}

// batchingTrackingFSM is used when the inner FSM implements
// raft.BatchingFSM, so raft keeps batching: it hands the FSM every entry
// committed since the last call at once, and waiters are woken once per
// batch rather than once per entry.
type batchingTrackingFSM struct {
	*trackingFSM
	batch raft.BatchingFSM
}

// ApplyBatch gets LogCommand and LogConfiguration entries (raft calls no
// StoreConfiguration for a batching FSM; the configuration entries reach the
// inner FSM here, and their indexes are recorded with the batch).
func (f *batchingTrackingFSM) ApplyBatch(logs []*raft.Log) []any {
	start := time.Now()
	resps := f.batch.ApplyBatch(logs)
	n := len(logs)
	if n == 0 {
		return resps
	}
	f.applied.set(logs[n-1].Index)
	if f.observe != nil {
		commands := 0
		for _, l := range logs {
			if l.Type == raft.LogCommand {
				commands++
			}
		}
		// One observation per command, as in the unbatched case, so the
		// histogram still counts commands; each gets the batch's average.
		if commands > 0 {
			each := time.Since(start) / time.Duration(commands)
			for range commands {
				f.observe(each)
			}
		}
	}
	return resps
}

func wrapFSM(inner raft.FSM, t *appliedTracker, observe func(time.Duration)) raft.FSM {
	tf := &trackingFSM{inner: inner, applied: t, observe: observe}
	tf.confs, _ = inner.(raft.ConfigurationStore)
	if b, ok := inner.(raft.BatchingFSM); ok {
		return &batchingTrackingFSM{trackingFSM: tf, batch: b}
	}
	return tf
}

// transparent reports whether a log entry of this type never reaches the
// FSM, so the FSM's state after entry i-1 is also its state after entry i.
func transparent(t raft.LogType) bool {
	return t == raft.LogNoop || t == raft.LogBarrier
}
