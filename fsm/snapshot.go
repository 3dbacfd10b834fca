package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// Snapshot stream layout:
//
//	magic "KMSDSNAP" | format version (uint32 BE) | body length (uint64 BE) | body (JSON of state) | SHA-256 of body
//
// The body is json.Marshal of the state, written piecewise (encode.go). It
// is deterministic (encoding/json sorts map keys): equal states give equal
// bytes.
const (
	snapshotMagic   = "KMSDSNAP"
	snapshotVersion = 1
	// maxSnapshotBody bounds what Restore will allocate from a length field.
	maxSnapshotBody = 16 << 30
)

// ErrBadSnapshot reports a snapshot stream that is truncated, of an unknown
// version, or fails its checksum.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

// copyState takes a consistent shallow copy of the state; the values it
// points to are immutable, so it can be encoded without holding the lock.
func (f *FSM) copyState() *state {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return &state{
		Keys:       maps.Clone(f.st.Keys),
		Aliases:    maps.Clone(f.st.Aliases),
		DomainKeys: slices.Clone(f.st.DomainKeys),
		Recent:     slices.Clone(f.st.Recent),
		Grants:     maps.Clone(f.st.Grants),
		// Values are immutable: a shallow copy is consistent.
		ImportParams: maps.Clone(f.st.ImportParams),
	}
}

// StateHash is a digest of the whole state (see stateHasher). Replicas that
// applied the same log have equal hashes. After the first call it costs
// what changed since the previous call plus a scan of pointers, not a
// re-encoding of every key, so /v1/status stays cheap with many keys.
func (f *FSM) StateHash() ([32]byte, error) {
	return f.hasher.hash(f)
}

// Snapshot implements raft.FSM.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{st: f.copyState()}, nil
}

type snapshot struct{ st *state }

// Persist writes the snapshot stream.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.st); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {}

// writeSnapshot streams the snapshot: the body is encoded one key (map
// entry, slice element) at a time, twice: once only to learn its length,
// which the header carries before the body, then into w and the checksum.
// Encoding twice costs CPU in raft's background snapshot goroutine; holding
// the body in memory instead cost two to three times its size (about 1 KiB
// per key) at every snapshot, more than the state itself.
func writeSnapshot(w io.Writer, st *state) error {
	var length countingWriter
	if err := encodeStateTo(&length, st); err != nil {
		return fmt.Errorf("fsm: encode snapshot: %w", err)
	}
	var hdr [len(snapshotMagic) + 4 + 8]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint32(hdr[8:], snapshotVersion)
	binary.BigEndian.PutUint64(hdr[12:], uint64(length.n))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("fsm: write snapshot: %w", err)
	}
	sum := sha256.New()
	body := countingWriter{w: io.MultiWriter(w, sum)}
	buf := bufio.NewWriterSize(&body, 64<<10)
	if err := encodeStateTo(buf, st); err != nil {
		return fmt.Errorf("fsm: write snapshot: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return fmt.Errorf("fsm: write snapshot: %w", err)
	}
	if body.n != length.n {
		// st is an immutable copy and the encoding deterministic: this
		// would be a bug, and the header would lie.
		return fmt.Errorf("fsm: write snapshot: body is %d bytes, header says %d", body.n, length.n)
	}
	if _, err := w.Write(sum.Sum(nil)); err != nil {
		return fmt.Errorf("fsm: write snapshot: %w", err)
	}
	return nil
}

// countingWriter counts what it passes on to w (nil: discards).
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.w == nil {
		c.n += int64(len(p))
		return len(p), nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func readSnapshot(r io.Reader) (*state, error) {
	var hdr [len(snapshotMagic) + 4 + 8]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if string(hdr[:8]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	if v := binary.BigEndian.Uint32(hdr[8:]); v != snapshotVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrBadSnapshot, v)
	}
	n := binary.BigEndian.Uint64(hdr[12:])
	if n > maxSnapshotBody {
		return nil, fmt.Errorf("%w: body length %d", ErrBadSnapshot, n)
	}
	var body bytes.Buffer
	if _, err := io.CopyN(&body, r, int64(n)); err != nil {
		return nil, fmt.Errorf("%w: body: %v", ErrBadSnapshot, err)
	}
	var sum [32]byte
	if _, err := io.ReadFull(r, sum[:]); err != nil {
		return nil, fmt.Errorf("%w: checksum: %v", ErrBadSnapshot, err)
	}
	if sha256.Sum256(body.Bytes()) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrBadSnapshot)
	}
	st := newState()
	if err := json.Unmarshal(body.Bytes(), st); err != nil {
		return nil, fmt.Errorf("%w: decode: %v", ErrBadSnapshot, err)
	}
	if st.Keys == nil {
		st.Keys = map[string]*Key{}
	}
	if st.Aliases == nil {
		st.Aliases = map[string]*Alias{}
	}
	return st, nil
}

// Restore implements raft.FSM: it replaces the whole state atomically, or
// leaves it untouched when the stream is bad.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	recent := make(map[string]int, len(st.Recent))
	for i, e := range st.Recent {
		recent[e.RequestID] = i
	}
	f.mu.Lock()
	// The restored keys are not shared yet: they may be changed in place.
	for _, k := range st.Keys {
		f.strs.key(k)
	}
	f.st, f.recent, f.dropped = st, recent, 0
	f.grantsByKey = newGrantIndex(st.Grants)
	f.mu.Unlock()
	f.hasher.reset()
	return nil
}
