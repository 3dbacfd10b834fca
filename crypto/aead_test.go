package crypto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func sealOpen(t *testing.T, mat *Secret, h Header, sealCtx, openCtx map[string]string, pt []byte) ([]byte, error) {
	t.Helper()
	b, err := Seal(nil, mat, h, sealCtx, pt)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := ParseBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	return Open(mat, blob, openCtx)
}

func TestSealOpen(t *testing.T) {
	mat := randSecret(t)
	ctxA := map[string]string{"purpose": "test", "tenant": "42"}
	tests := []struct {
		name      string
		mrk       bool
		sealCtx   map[string]string
		openCtx   map[string]string
		plaintext []byte
		wantErr   bool
	}{
		{"no context", false, nil, nil, []byte("hello"), false},
		{"nil vs empty context", false, nil, map[string]string{}, []byte("hello"), false},
		{"empty vs nil context", false, map[string]string{}, nil, []byte("hello"), false},
		{"context", false, ctxA, map[string]string{"tenant": "42", "purpose": "test"}, []byte("hello"), false},
		{"multi-region", true, ctxA, ctxA, []byte("hello"), false},
		{"empty plaintext", false, nil, nil, []byte{}, false},
		{"4 KiB", false, ctxA, ctxA, bytes.Repeat([]byte{0xAB}, 4096), false},
		{"binary", false, nil, nil, []byte{0, 1, 2, 255}, false},
		{"missing context", false, ctxA, nil, []byte("x"), true},
		{"unexpected context", false, nil, ctxA, []byte("x"), true},
		{"wrong value", false, ctxA, map[string]string{"purpose": "test", "tenant": "43"}, []byte("x"), true},
		{"extra pair", false, ctxA, map[string]string{"purpose": "test", "tenant": "42", "x": ""}, []byte("x"), true},
		{"missing pair", false, ctxA, map[string]string{"purpose": "test"}, []byte("x"), true},
		{"key case", false, ctxA, map[string]string{"Purpose": "test", "tenant": "42"}, []byte("x"), true},
		{"ab:c vs a:bc", false, map[string]string{"ab": "c"}, map[string]string{"a": "bc"}, []byte("x"), true},
		{"a:bc vs ab:c", false, map[string]string{"a": "bc"}, map[string]string{"ab": "c"}, []byte("x"), true},
		{"empty value vs no pair", false, map[string]string{"a": ""}, nil, []byte("x"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := testHeader(t, tc.mrk)
			got, err := sealOpen(t, mat, h, tc.sealCtx, tc.openCtx, tc.plaintext)
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidCiphertext) || got != nil {
					t.Fatalf("err = %v, want ErrInvalidCiphertext", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatal("plaintext mismatch")
			}
		})
	}
}

func TestSealFillsHeader(t *testing.T) {
	mat := randSecret(t)
	h := testHeader(t, true)
	h.Salt[0], h.Nonce[0] = 0xAA, 0xBB // caller values are overwritten
	pt := []byte("plaintext-payload")
	b, err := Seal(nil, mat, h, nil, pt)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != len(pt)+BlobOverhead {
		t.Fatalf("blob size %d", len(b))
	}
	p, _ := ParseBlob(b)
	if p.KeyID != h.KeyID || p.VersionID != h.VersionID || !p.MultiRegion {
		t.Fatal("ids not carried")
	}
	if p.Salt == h.Salt || p.Nonce == h.Nonce || p.Salt == [SaltSize]byte{} || p.Nonce == [NonceSize]byte{} {
		t.Fatal("salt/nonce not filled from randomness")
	}
	if bytes.Contains(b, pt) {
		t.Fatal("plaintext visible in blob")
	}
	b2, _ := Seal(nil, mat, h, nil, pt)
	if bytes.Equal(b, b2) {
		t.Fatal("two seals of the same plaintext are equal")
	}
	p2, _ := ParseBlob(b2)
	if p.Salt == p2.Salt || p.Nonce == p2.Nonce || bytes.Equal(p.Sealed, p2.Sealed) {
		t.Fatal("two seals share salt, nonce or ciphertext")
	}
}

func TestOpenTamperAndTruncate(t *testing.T) {
	mat := randSecret(t)
	ctx := map[string]string{"k": "v"}
	for _, mrk := range []bool{false, true} {
		b, err := Seal(nil, mat, testHeader(t, mrk), ctx, []byte("attack at dawn, bring snacks"))
		if err != nil {
			t.Fatal(err)
		}
		open := func(x []byte) error {
			p, err := ParseBlob(x)
			if err != nil {
				return err
			}
			_, err = Open(mat, p, ctx)
			return err
		}
		if err := open(b); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			for _, mask := range []byte{0x01, 0x80, 0xFF} {
				x := bytes.Clone(b)
				x[i] ^= mask
				if err := open(x); !errors.Is(err, ErrInvalidCiphertext) {
					t.Fatalf("mrk=%v byte %d ^ %#x: err = %v", mrk, i, mask, err)
				}
			}
		}
		for n := range len(b) {
			if err := open(b[:n]); !errors.Is(err, ErrInvalidCiphertext) {
				t.Fatalf("truncated to %d: err = %v", n, err)
			}
		}
		if err := open(append(bytes.Clone(b), 0)); !errors.Is(err, ErrInvalidCiphertext) {
			t.Fatalf("extended: err = %v", err)
		}
	}
}

func TestOpenWrongKeyOrHeader(t *testing.T) {
	mat := randSecret(t)
	h := testHeader(t, false)
	b, _ := Seal(nil, mat, h, nil, []byte("x"))
	p, _ := ParseBlob(b)
	if _, err := Open(randSecret(t), p, nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("other material: %v", err)
	}
	for name, f := range map[string]func(*Blob){
		"key id":     func(x *Blob) { x.KeyID[0] ^= 1 },
		"version id": func(x *Blob) { x.VersionID[0] ^= 1 },
		"mrk flag":   func(x *Blob) { x.MultiRegion = true },
		"salt":       func(x *Blob) { x.Salt[15] ^= 1 },
		"nonce":      func(x *Blob) { x.Nonce[0] ^= 1 },
		"nil sealed": func(x *Blob) { x.Sealed = nil },
		"short":      func(x *Blob) { x.Sealed = x.Sealed[:TagSize-1] },
	} {
		x := *p
		x.Sealed = bytes.Clone(p.Sealed)
		f(&x)
		if _, err := Open(mat, &x, nil); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := Open(mat, nil, nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("nil blob: %v", err)
	}
	for _, n := range []int{0, 16, 31, 33} {
		bad := NewSecret(make([]byte, n))
		if _, err := Seal(nil, bad, h, nil, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Seal material %d bytes: %v", n, err)
		}
		if _, err := Open(bad, p, nil); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Open material %d bytes: %v", n, err)
		}
	}
	if _, err := Seal(strings.NewReader("short"), mat, h, nil, nil); err == nil {
		t.Error("failing randomness accepted")
	}
}

func TestDeriveMessageKey(t *testing.T) {
	mat := randBytes(t, 32)
	kid, vid := randID(t), randID(t)
	var salt [SaltSize]byte
	k := deriveMessageKey(mat, &kid, &vid, &salt)
	if len(k) != KeySize || bytes.Equal(k, mat) {
		t.Fatal("bad message key")
	}
	if !bytes.Equal(k, deriveMessageKey(mat, &kid, &vid, &salt)) {
		t.Fatal("not deterministic")
	}
	kid2, vid2, salt2 := kid, vid, salt
	kid2[0] ^= 1
	vid2[0] ^= 1
	salt2[0] ^= 1
	for _, other := range [][]byte{
		deriveMessageKey(mat, &kid2, &vid, &salt),
		deriveMessageKey(mat, &kid, &vid2, &salt),
		deriveMessageKey(mat, &kid, &vid, &salt2),
		deriveMessageKey(randBytes(t, 32), &kid, &vid, &salt),
	} {
		if bytes.Equal(k, other) {
			t.Fatal("message key does not depend on every input")
		}
	}
}
