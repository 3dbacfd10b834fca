package cluster_test

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// listFSM is the test state machine: an append-only list of commands with
// the log index each was applied at.
type listFSM struct {
	mu       sync.Mutex
	entries  []string
	indexes  []uint64
	restores int
}

func newListFSM() raft.FSM { return &listFSM{} }

// appliedEntry is what Apply returns for an accepted command.
type appliedEntry struct {
	Index uint64
	Len   int
}

// errRejected is returned (as the Apply response) for the command "reject".
var errRejected = errors.New("listfsm: rejected")

func (f *listFSM) Apply(l *raft.Log) any {
	if string(l.Data) == "reject" {
		return errRejected
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, string(l.Data))
	f.indexes = append(f.indexes, l.Index)
	return appliedEntry{Index: l.Index, Len: len(f.entries)}
}

type listState struct {
	Entries []string
	Indexes []uint64
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return listState{Entries: slices.Clone(f.entries), Indexes: slices.Clone(f.indexes)}, nil
}

func (f *listFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s listState
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries, f.indexes = s.Entries, s.Indexes
	f.restores++
	return nil
}

func (s listState) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (listState) Release() {}

func (f *listFSM) state() (entries []string, indexes []uint64, restores int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries), slices.Clone(f.indexes), f.restores
}

func (f *listFSM) Entries() []string {
	e, _, _ := f.state()
	return e
}
