package api

import (
	"bytes"
	"net/http/httptest"
	"testing"
)

// readBody reads a body of known length into one buffer of about that
// size: bytes.Buffer.ReadFrom doubles a buffer that has less than MinRead
// bytes of room left, which for many lengths (a power of two, a full size
// class) meant a second buffer twice the body's size and a copy of it.
func TestReadBodyOneBuffer(t *testing.T) {
	h := &Handler{}
	for _, n := range []int{1, 100, 4096, 8192, 65536, 1 << 20, 5_505_024} {
		body := bytes.Repeat([]byte("x"), n)
		w := httptest.NewRecorder()
		r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		got, err := h.readBody(w, r, 8<<20)
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("%d bytes: body changed", n)
		}
		if limit := n + n/8 + 2*bytes.MinRead; cap(got) > limit {
			t.Errorf("%d-byte body read into a %d-byte buffer (want at most %d)", n, cap(got), limit)
		}
	}
}
