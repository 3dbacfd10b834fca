// Package fsm owns kmsd's replicated state: keys and their wrapped key
// material versions, aliases, tags, policies and domain keys. It defines the
// Raft command encoding, applies commands (Apply), and writes and restores
// snapshots.
//
// Apply is deterministic: it never reads a clock or a random source. Ids,
// key material (already wrapped) and timestamps arrive inside commands, drawn
// by the leader before proposing. Every command carries a request id; Apply
// remembers the result of the last requests it applied and answers a repeat
// with the remembered result, so a proposal retried after an "outcome
// unknown" error takes effect once.
//
// Readers get immutable *Key values: Apply never modifies a Key in place, it
// stores a modified copy, so a reader may keep using a pointer after the read
// lock is released.
package fsm
