package fsm

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"
	"sync"
)

// stateHasher computes StateHash incrementally. The hash covers every part
// of the state; for the maps (keys, aliases, grants, import parameters),
// which grow with use, it covers them through an order-independent sum of
// one digest per entry (SHA-256 of the entry's id and canonical JSON,
// truncated to 128 bits, added mod 2^128), and remembers each entry's
// digest with the value it was computed from. Values in the state are
// immutable, Apply stores a new pointer on every change (package doc), so
// an entry whose pointer is the remembered one has the remembered digest:
// a call encodes only the entries that changed since the previous call and
// compares pointers for the rest. The small parts (domain keys, the
// request-id window) are encoded whole every time.
//
// The sum is a replica check, not a commitment against an adversary: it
// detects states that differ by accident (a non-deterministic Apply, a
// lost entry), which is what /v1/status's state_hash is compared for.
type stateHasher struct {
	mu      sync.Mutex // serialises hash calls; the digests are its own
	keys    digestMap[Key]
	aliases digestMap[Alias]
	grants  digestMap[Grant]
	imports digestMap[ImportParams]
}

// stateHashFormat starts the hashed stream: a different way of hashing
// gets a different name, never a colliding value.
const stateHashFormat = "kmsd state hash v2\n"

func (h *stateHasher) hash(f *FSM) ([32]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := f.copyState()
	enc := newElemEncoder(nil)
	out := sha256.New()
	out.Write([]byte(stateHashFormat))
	for _, sec := range []struct {
		name string
		sum  func() (digest, int, error)
	}{
		{"keys", func() (digest, int, error) { return h.keys.update(enc, st.Keys) }},
		{"aliases", func() (digest, int, error) { return h.aliases.update(enc, st.Aliases) }},
		{"grants", func() (digest, int, error) { return h.grants.update(enc, st.Grants) }},
		{"import_params", func() (digest, int, error) { return h.imports.update(enc, st.ImportParams) }},
	} {
		sum, n, err := sec.sum()
		if err != nil {
			return [32]byte{}, fmt.Errorf("fsm: state hash: %s: %w", sec.name, err)
		}
		writeSection(out, sec.name, uint64(n))
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], sum.hi)
		binary.BigEndian.PutUint64(b[8:], sum.lo)
		out.Write(b[:])
	}
	for _, sec := range []struct {
		name string
		n    int
		enc  func(*elemEncoder)
	}{
		{"domain_keys", len(st.DomainKeys), func(e *elemEncoder) { encodeSlice(e, st.DomainKeys) }},
		{"recent", len(st.Recent), func(e *elemEncoder) { encodeSlice(e, st.Recent) }},
	} {
		writeSection(out, sec.name, uint64(sec.n))
		enc.w = out
		sec.enc(enc)
		if enc.err != nil {
			return [32]byte{}, fmt.Errorf("fsm: state hash: %s: %w", sec.name, enc.err)
		}
	}
	var sum [32]byte
	out.Sum(sum[:0])
	return sum, nil
}

// reset forgets every remembered digest (after Restore replaced the state,
// so the old values are not kept alive until the next call).
func (h *stateHasher) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keys, h.aliases, h.grants, h.imports = digestMap[Key]{}, digestMap[Alias]{}, digestMap[Grant]{}, digestMap[ImportParams]{}
}

func writeSection(h hash.Hash, name string, n uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(len(name)))
	h.Write(b[:])
	h.Write([]byte(name))
	binary.BigEndian.PutUint64(b[:], n)
	h.Write(b[:])
}

// digest is a 128-bit value; digests add mod 2^128.
type digest struct{ hi, lo uint64 }

func (d digest) add(o digest) digest {
	lo, carry := bits.Add64(d.lo, o.lo, 0)
	hi, _ := bits.Add64(d.hi, o.hi, carry)
	return digest{hi, lo}
}

func (d digest) sub(o digest) digest {
	lo, borrow := bits.Sub64(d.lo, o.lo, 0)
	hi, _ := bits.Sub64(d.hi, o.hi, borrow)
	return digest{hi, lo}
}

// digestMap is the running sum of one map's entry digests.
type digestMap[V any] struct {
	sum     digest
	entries map[string]entryDigest[V]
}

type entryDigest[V any] struct {
	v *V // the value d was computed from; kept so the pointer is not reused
	d digest
}

// update brings the sum to the entries of cur and returns it with the
// entry count.
func (m *digestMap[V]) update(enc *elemEncoder, cur map[string]*V) (digest, int, error) {
	if m.entries == nil {
		m.entries = make(map[string]entryDigest[V], len(cur))
	}
	for id, v := range cur {
		old, ok := m.entries[id]
		if ok && old.v == v {
			continue
		}
		d, err := entryDigestOf(enc, id, v)
		if err != nil {
			return digest{}, 0, err
		}
		if ok {
			m.sum = m.sum.sub(old.d)
		}
		m.sum = m.sum.add(d)
		m.entries[id] = entryDigest[V]{v: v, d: d}
	}
	// Every id of cur is remembered now; any other was deleted.
	if len(m.entries) > len(cur) {
		for id, old := range m.entries {
			if _, ok := cur[id]; !ok {
				m.sum = m.sum.sub(old.d)
				delete(m.entries, id)
			}
		}
	}
	return m.sum, len(cur), nil
}

// entryDigestOf is SHA-256(len(id) | id | json(v)), first 128 bits.
func entryDigestOf[V any](enc *elemEncoder, id string, v *V) (digest, error) {
	body, err := enc.encode(v)
	if err != nil {
		return digest{}, err
	}
	h := sha256.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(len(id)))
	h.Write(b[:])
	h.Write([]byte(id))
	h.Write(body)
	var sum [32]byte
	h.Sum(sum[:0])
	return digest{hi: binary.BigEndian.Uint64(sum[:8]), lo: binary.BigEndian.Uint64(sum[8:16])}, nil
}
