package crypto

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestParseRootKey(t *testing.T) {
	k32 := bytes.Repeat([]byte{0xA5}, 32)
	good := base64.StdEncoding.EncodeToString(k32)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"plain", good, true},
		{"trailing newline", good + "\n", true},
		{"surrounding whitespace", " \t\r\n" + good + " \r\n\n", true},
		{"empty", "", false},
		{"whitespace only", " \n", false},
		{"31 bytes", base64.StdEncoding.EncodeToString(k32[:31]), false},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(k32, 1)), false},
		{"64 bytes", base64.StdEncoding.EncodeToString(append(k32, k32...)), false},
		{"16 bytes", base64.StdEncoding.EncodeToString(k32[:16]), false},
		{"unpadded", base64.RawStdEncoding.EncodeToString(k32), false},
		{"url alphabet", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xFB, 0xFF}, 16))), false},
		{"not base64", strings.Repeat("!", 44), false},
		{"inner newline", good[:20] + "\n" + good[20:], false},
		{"inner space", good[:20] + " " + good[20:], false},
		{"two lines", good + "\n" + good + "\n", false},
		{"hex", strings.Repeat("ab", 32), false},
		{"non-canonical padding bits", good[:42] + "B=", false}, // last char carries nonzero unused bits
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rk, err := ParseRootKey([]byte(tc.in))
			if tc.ok {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if !bytes.Equal(rk.root.Bytes(), k32) {
					t.Fatal("wrong key bytes")
				}
				return
			}
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("err = %v, want ErrInvalidKey", err)
			}
			if err != nil && strings.TrimSpace(tc.in) != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
				t.Fatal("error quotes the file contents")
			}
		})
	}
}

func TestNewRootKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewRootKey(make([]byte, n)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("len %d: err = %v", n, err)
		}
	}
	b := bytes.Repeat([]byte{7}, 32)
	rk, err := NewRootKey(b)
	if err != nil {
		t.Fatal(err)
	}
	b[0] = 8
	if rk.root.Bytes()[0] != 7 {
		t.Fatal("NewRootKey did not copy")
	}
}

func TestGenerateRootKeyFile(t *testing.T) {
	f, err := GenerateRootKeyFile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 45 || f[44] != '\n' || bytes.Count(f, []byte("\n")) != 1 {
		t.Fatalf("bad file form %q", f)
	}
	if _, err := ParseRootKey(f); err != nil {
		t.Fatal(err)
	}
	g, _ := GenerateRootKeyFile(nil)
	if bytes.Equal(f, g) {
		t.Fatal("two generated root keys are equal")
	}
	if _, err := GenerateRootKeyFile(bytes.NewReader(make([]byte, 5))); err == nil {
		t.Fatal("short randomness accepted")
	}
}

func TestDomainKeyWrap(t *testing.T) {
	rk, _ := NewRootKey(randBytes(t, 32))
	other, _ := NewRootKey(randBytes(t, 32))
	dk := randSecret(t)
	w, err := rk.WrapDomainKey(nil, "dk-1", dk)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != KeySize+wrapOverhead {
		t.Fatalf("wrapped size %d", len(w))
	}
	if bytes.Contains(w, dk.Bytes()) {
		t.Fatal("wrapped domain key contains the key")
	}
	got, err := rk.UnwrapDomainKey("dk-1", w)
	if err != nil || !got.Equal(dk) {
		t.Fatalf("round trip: %v", err)
	}
	w2, _ := rk.WrapDomainKey(nil, "dk-1", dk)
	if bytes.Equal(w, w2) {
		t.Fatal("two wraps are equal")
	}

	cases := map[string]func() (*Secret, error){
		"other id":        func() (*Secret, error) { return rk.UnwrapDomainKey("dk-2", w) },
		"other root":      func() (*Secret, error) { return other.UnwrapDomainKey("dk-1", w) },
		"empty":           func() (*Secret, error) { return rk.UnwrapDomainKey("dk-1", nil) },
		"truncated":       func() (*Secret, error) { return rk.UnwrapDomainKey("dk-1", w[:len(w)-1]) },
		"extended":        func() (*Secret, error) { return rk.UnwrapDomainKey("dk-1", append(append([]byte{}, w...), 0)) },
		"bad version":     func() (*Secret, error) { x := bytes.Clone(w); x[0] = 2; return rk.UnwrapDomainKey("dk-1", x) },
		"as material":     func() (*Secret, error) { return UnwrapKeyMaterial(rk.wrapKey, "dk-1", "", [16]byte{}, w) },
		"root key direct": func() (*Secret, error) { return unwrapSecret(rk.root.Bytes(), domainKeyAAD("dk-1"), w) },
	}
	for name, f := range cases {
		if s, err := f(); !errors.Is(err, ErrUnwrap) || s != nil {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	for i := range w {
		x := bytes.Clone(w)
		x[i] ^= 0x01
		if _, err := rk.UnwrapDomainKey("dk-1", x); !errors.Is(err, ErrUnwrap) {
			t.Errorf("flip byte %d: err = %v", i, err)
		}
	}
	for _, n := range []int{0, 16, 33} {
		if _, err := rk.WrapDomainKey(nil, "dk-1", NewSecret(make([]byte, n))); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("domain key of %d bytes: err = %v", n, err)
		}
	}
}

func TestDeriveSecret(t *testing.T) {
	raw := randBytes(t, 32)
	rk, _ := NewRootKey(raw)
	rk2, _ := NewRootKey(raw)
	a := rk.DeriveSecret("node-auth")
	if a.Len() != KeySize {
		t.Fatal("wrong length")
	}
	if !a.Equal(rk2.DeriveSecret("node-auth")) {
		t.Fatal("not deterministic")
	}
	if a.Equal(rk.DeriveSecret("node-auth2")) || a.Equal(rk.DeriveSecret("")) {
		t.Fatal("labels not separated")
	}
	if a.Equal(rk.root) || rk.DeriveSecret("").Equal(rk.wrapKey) {
		t.Fatal("derived secret equals root or wrap key")
	}
	// The wrap-key label, given as a DeriveSecret label, must not yield the wrap key.
	if rk.DeriveSecret(labelRootWrapKey).Equal(rk.wrapKey) {
		t.Fatal("DeriveSecret can reproduce the domain key KEK")
	}
	other, _ := NewRootKey(randBytes(t, 32))
	if a.Equal(other.DeriveSecret("node-auth")) {
		t.Fatal("independent of root key")
	}
	rk.Zero()
	if !isZero(rk.root.Bytes()) || !isZero(rk.wrapKey.Bytes()) {
		t.Fatal("RootKey.Zero")
	}
}
