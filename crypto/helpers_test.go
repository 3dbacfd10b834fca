package crypto

import (
	"bytes"
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"testing"
)

// detReader is a deterministic byte stream (SHA-256 in counter mode over a
// seed) for known-answer tests.
type detReader struct {
	seed string
	ctr  uint64
	buf  []byte
}

func (d *detReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.buf) == 0 {
			var c [8]byte
			binary.BigEndian.PutUint64(c[:], d.ctr)
			d.ctr++
			h := sha256.Sum256(append([]byte(d.seed), c[:]...))
			d.buf = h[:]
		}
		k := copy(p[n:], d.buf)
		d.buf = d.buf[k:]
		n += k
	}
	return n, nil
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := cryptorand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randID(t testing.TB) (id [16]byte) {
	copy(id[:], randBytes(t, 16))
	return id
}

func randSecret(t testing.TB) *Secret { return NewSecret(randBytes(t, KeySize)) }

func isZero(b []byte) bool { return len(b) > 0 && bytes.Count(b, []byte{0}) == len(b) }
