package cluster

import (
	"errors"
	"fmt"
)

// Errors returned by Node methods. Test for them with errors.Is: they are
// usually wrapped with more context (the raft error, the leader's address).
var (
	// ErrNotLeader means this node is not the leader, so nothing was
	// appended: the caller may send the request to the leader (see
	// NotLeaderError for its address) or retry later.
	ErrNotLeader = errors.New("cluster: not the leader")

	// ErrOutcomeUnknown means the entry may have been appended to the log
	// but this node cannot tell whether it was (or will be) committed:
	// leadership was lost, the context ended or the node shut down while
	// waiting. The caller must retry with the same request id so that the
	// state machine can recognise a duplicate.
	ErrOutcomeUnknown = errors.New("cluster: outcome unknown")

	// ErrShutdown means the node has been shut down.
	ErrShutdown = errors.New("cluster: shut down")
)

// NotLeaderError is the error returned when an operation that needs the
// leader runs on another node. errors.Is(err, ErrNotLeader) is true for it;
// use errors.As to learn the leader, if one is known.
type NotLeaderError struct {
	LeaderID   string // empty if no leader is known
	LeaderAddr string // the leader's Raft address; empty if no leader is known
	Cause      error  // the raft error, if there was one
}

func (e *NotLeaderError) Error() string {
	s := ErrNotLeader.Error()
	if e.LeaderID != "" || e.LeaderAddr != "" {
		s += fmt.Sprintf(" (leader is %q at %s)", e.LeaderID, e.LeaderAddr)
	} else {
		s += " (no known leader)"
	}
	if e.Cause != nil {
		s += ": " + e.Cause.Error()
	}
	return s
}

// Unwrap makes errors.Is(err, ErrNotLeader) true, and exposes the raft cause.
func (e *NotLeaderError) Unwrap() []error {
	if e.Cause == nil {
		return []error{ErrNotLeader}
	}
	return []error{ErrNotLeader, e.Cause}
}
