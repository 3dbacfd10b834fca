// Package audit is kmsd's audit trail: every KMS API call a node answers,
// success or failure, becomes one JSON line in CloudTrail's record shape
// (eventVersion 1.08) in that node's audit directory, with plaintexts,
// ciphertexts, key material, MACs, signatures and grant tokens removed
// (request parameters and response elements are allow-listed per field
// name, so a new API field is left out until it is added to the list).
//
// Files are append-only (O_APPEND, 0600), named audit-NNNNNN.jsonl, and
// hash-chained: every record carries kmsdSeq (its position in the file,
// the header being 0) and kmsdPrevHash, the SHA-256 of the previous line's
// bytes. A file starts with a header record (node id, the node's Ed25519
// public key, the hash of the previous file's last record) and every
// DigestEvery events, at rotation (MaxBytes) and at shutdown a digest
// record signs the chain so far with the node key (node.key in the audit
// directory, 0600, created on first start; node.pub next to it). The
// digest written at rotation and shutdown is final: a file without one was
// truncated, or its node crashed (the next file's header then says so).
//
// Records are written and fsynced before Record returns (with NoSync,
// written): no answer without a record. Concurrent callers share one
// write and one fsync per batch (group commit: a batch is what arrived
// while the previous one was being written; nothing waits to let a batch
// grow). Records are encoded without reflection for the request shapes
// SDKs send, falling back to encoding/json for anything else, with the
// same bytes either way. RecordBatch writes the items of a batch request
// as one summary record with an entry per item (see batch.go), filtering
// an item's body only when its bytes differ from the previous item's.
// Verify and VerifyFiles check a file's chain,
// sequence numbers, signatures and end, and name each modified, deleted,
// inserted, reordered or truncated record they find. Without an external
// anchor, records written after the last digest can be cut off
// undetectably; Verify says how many there are.
package audit
