package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func testHeader(t testing.TB, mrk bool) Header {
	return Header{MultiRegion: mrk, KeyID: randID(t), VersionID: randID(t)}
}

func TestBlobLayout(t *testing.T) {
	if HeaderSize != 64 || MinBlobSize != 80 || SaltSize < 16 {
		t.Fatalf("HeaderSize %d MinBlobSize %d SaltSize %d", HeaderSize, MinBlobSize, SaltSize)
	}
	h := Header{Version: 1, MultiRegion: true}
	for i := range 16 {
		h.KeyID[i] = byte(0x10 + i)
		h.VersionID[i] = byte(0x30 + i)
		h.Salt[i] = byte(0x50 + i)
	}
	for i := range 12 {
		h.Nonce[i] = byte(0x70 + i)
	}
	b := (&Blob{Header: h, Sealed: bytes.Repeat([]byte{0xEE}, 20)}).Encode()
	if len(b) != 84 || string(b[:3]) != "KD\x01" || b[3] != 1 ||
		b[4] != 0x10 || b[19] != 0x1F || b[20] != 0x30 || b[35] != 0x3F ||
		b[36] != 0x50 || b[51] != 0x5F || b[52] != 0x70 || b[63] != 0x7B || b[64] != 0xEE {
		t.Fatalf("layout wrong: %x", b)
	}
	if !bytes.Equal(b[:HeaderSize], h.Encode()) {
		t.Fatal("Header.Encode is not the blob prefix")
	}
	if v2 := (&Header{Version: 2}).Encode(); v2[2] != 2 {
		t.Fatalf("version 2 header: %x", v2)
	}
	if cur := (&Header{}).Encode(); cur[2] != BlobVersion || BlobVersion != 2 {
		t.Fatalf("a header without a version encodes as %d, want BlobVersion (2)", cur[2])
	}
	h.MultiRegion = false
	if h.Encode()[3] != 0 {
		t.Fatal("flags byte not 0")
	}
	p, err := ParseBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 1 || !p.MultiRegion || p.KeyID[0] != 0x10 || p.VersionID[15] != 0x3F || p.Salt[0] != 0x50 || p.Nonce[11] != 0x7B || len(p.Sealed) != 20 {
		t.Fatalf("parse wrong: %+v", p.Header)
	}
	b[64] = 0
	if p.Sealed[0] != 0xEE {
		t.Fatal("ParseBlob result aliases its input")
	}
}

func TestParseBlobRejects(t *testing.T) {
	good, err := Seal(nil, randSecret(t), testHeader(t, false), nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	mod := func(i int, v byte) []byte { x := bytes.Clone(good); x[i] = v; return x }
	tests := map[string][]byte{
		"nil":          nil,
		"magic only":   []byte("KD"),
		"header only":  good[:HeaderSize],
		"no full tag":  good[:MinBlobSize-1],
		"bad magic 0":  mod(0, 'k'),
		"bad magic 1":  mod(1, 'd'),
		"version 0":    mod(2, 0),
		"version 3":    mod(2, 3),
		"version 0xff": mod(2, 0xff),
		"flag bit 1":   mod(3, 2),
		"flag bit 7":   mod(3, 0x80),
		"all flags":    mod(3, 0xff),
	}
	for name, b := range tests {
		if p, err := ParseBlob(b); !errors.Is(err, ErrInvalidCiphertext) || p != nil {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Minimal blob (empty plaintext) parses.
	if _, err := ParseBlob(good[:MinBlobSize]); err != nil {
		t.Errorf("minimal blob: %v", err)
	}
}
