package crypto

import (
	"bytes"
	"errors"
	"testing"
)

func TestWrapKeyMaterial(t *testing.T) {
	dk, otherDK := randSecret(t), randSecret(t)
	const dkID, arn = "dk-2026-11-23", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	ver := randID(t)
	mat := randSecret(t)
	w, err := WrapKeyMaterial(nil, dk, dkID, arn, ver, mat)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, mat.Bytes()) {
		t.Fatal("wrapped material contains the material")
	}
	got, err := UnwrapKeyMaterial(dk, dkID, arn, ver, w)
	if err != nil || !got.Equal(mat) {
		t.Fatalf("round trip: %v", err)
	}

	otherVer := ver
	otherVer[15] ^= 1
	tests := []struct {
		name    string
		dk      *Secret
		dkID    string
		arn     string
		ver     [16]byte
		wrapped []byte
	}{
		{"other ARN", dk, dkID, arn + "x", ver, w},
		{"other ARN prefix", dk, dkID, arn[:len(arn)-1], ver, w},
		{"other version", dk, dkID, arn, otherVer, w},
		{"other domain key", otherDK, dkID, arn, ver, w},
		{"other domain key id", dk, "dk-2026-11-24", arn, ver, w},
		// Length prefixes: shifting a byte between adjacent fields must fail.
		{"field boundary shift", dk, dkID + "a", arn[1:], ver, w},
		{"empty", dk, dkID, arn, ver, nil},
		{"truncated", dk, dkID, arn, ver, w[:len(w)-1]},
		{"too short", dk, dkID, arn, ver, w[:wrapOverhead-1]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := UnwrapKeyMaterial(tc.dk, tc.dkID, tc.arn, tc.ver, tc.wrapped)
			if !errors.Is(err, ErrUnwrap) || s != nil {
				t.Fatalf("err = %v, want ErrUnwrap", err)
			}
		})
	}
	for i := range w {
		x := bytes.Clone(w)
		x[i] ^= 0x80
		if _, err := UnwrapKeyMaterial(dk, dkID, arn, ver, x); !errors.Is(err, ErrUnwrap) {
			t.Errorf("flip byte %d: err = %v", i, err)
		}
	}
	// A wrapped domain key cannot pass as wrapped material and vice versa.
	rk, _ := NewRootKey(dk.Bytes())
	wdk, _ := rk.WrapDomainKey(nil, dkID, mat)
	if _, err := UnwrapKeyMaterial(rk.wrapKey, dkID, "", [16]byte{}, wdk); !errors.Is(err, ErrUnwrap) {
		t.Error("domain key wrap accepted as material")
	}
}

func TestWrapKeyMaterialSizes(t *testing.T) {
	dk := randSecret(t)
	for _, n := range []int{1, 32, 64, 2400, MaxMaterialSize} {
		m := NewSecret(randBytes(t, n))
		w, err := WrapKeyMaterial(nil, dk, "d", "a", [16]byte{1}, m)
		if err != nil {
			t.Fatalf("%d: %v", n, err)
		}
		if len(w) != n+wrapOverhead {
			t.Fatalf("%d: wrapped len %d", n, len(w))
		}
		if got, err := UnwrapKeyMaterial(dk, "d", "a", [16]byte{1}, w); err != nil || !got.Equal(m) {
			t.Fatalf("%d: %v", n, err)
		}
	}
	for _, n := range []int{0, MaxMaterialSize + 1} {
		if _, err := WrapKeyMaterial(nil, dk, "d", "a", [16]byte{}, NewSecret(make([]byte, n))); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("material %d bytes: err = %v", n, err)
		}
	}
	for _, n := range []int{0, 16, 31, 33} {
		bad := NewSecret(make([]byte, n))
		if _, err := WrapKeyMaterial(nil, bad, "d", "a", [16]byte{}, dk); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("domain key %d bytes: err = %v", n, err)
		}
		if _, err := UnwrapKeyMaterial(bad, "d", "a", [16]byte{}, make([]byte, 61)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("unwrap, domain key %d bytes: err = %v", n, err)
		}
	}
	if _, err := WrapKeyMaterial(bytes.NewReader(nil), dk, "d", "a", [16]byte{}, dk); err == nil {
		t.Error("failing randomness accepted")
	}
}
