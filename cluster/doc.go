// Package cluster owns the Raft side of a kmsd node: the TCP transport, the
// raft-boltdb/v2 log and stable store (fsync on every write), the file
// snapshot store, membership changes and node status.
//
// It knows nothing of KMS operations: the replicated state machine is a
// raft.FSM passed in by the caller, commands are opaque bytes, and whatever the
// FSM's Apply returns is handed back to the proposer untouched.
//
// Layout under Config.DataDir (directories are created with mode 0700):
//
//	raft/raft.db       log and stable store (BoltDB, fsync on)
//	raft/snapshots/    file snapshots (the newest SnapshotRetain are kept)
//
// Consistency notes. Propose returns once the entry is committed and applied
// by this node's FSM. AppliedIndex and WaitForApplied track what the FSM has
// actually applied, not raft's own AppliedIndex (which only says that an entry
// was handed to the FSM goroutine), so a follower that waits for the index a
// leader returned reads its own FSM with that entry in it.
package cluster
