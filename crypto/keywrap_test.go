package crypto

import (
	"bytes"
	"crypto/aes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
	"testing"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyWrapRFC3394Vectors checks the shared wrapping core against the
// test vectors of RFC 3394 §4.
func TestKeyWrapRFC3394Vectors(t *testing.T) {
	cases := []struct{ name, kek, key, want string }{
		{"4.1 128-bit data, 128-bit KEK", "000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF",
			"1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2 128-bit data, 192-bit KEK", "000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF",
			"96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3 128-bit data, 256-bit KEK", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF",
			"64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.6 256-bit data, 256-bit KEK", "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F",
			"00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F",
			"28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	}
	for _, c := range cases {
		got, err := keyWrapRFC3394(unhex(t, c.kek), unhex(t, c.key))
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, c.want); !bytes.Equal(got, want) {
			t.Errorf("%s: got %x, want %x", c.name, got, want)
		}
	}
}

// TestKeyWrapWithPaddingRFC5649Vectors checks AES-KWP against the test
// vectors of RFC 5649 §6 (20 and 7 octets under a 192-bit KEK).
func TestKeyWrapWithPaddingRFC5649Vectors(t *testing.T) {
	kek := unhex(t, "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8")
	cases := []struct{ key, wrapped string }{
		{"c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
		{"466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
	}
	for _, c := range cases {
		key, want := unhex(t, c.key), unhex(t, c.wrapped)
		got, err := KeyWrapWithPadding(kek, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("wrap %x: got %x, want %x", key, got, want)
		}
		back, err := KeyUnwrapWithPadding(kek, want)
		if err != nil {
			t.Fatalf("unwrap %x: %v", want, err)
		}
		if !bytes.Equal(back, key) {
			t.Errorf("unwrap: got %x, want %x", back, key)
		}
	}
}

func TestKeyWrapWithPaddingRoundTripAndTamper(t *testing.T) {
	for _, kekLen := range []int{16, 24, 32} {
		kek := make([]byte, kekLen)
		rand.Read(kek)
		for _, n := range []int{1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 100, 1000} {
			pt := make([]byte, n)
			rand.Read(pt)
			w, err := KeyWrapWithPadding(kek, pt)
			if err != nil {
				t.Fatal(err)
			}
			if len(w)%8 != 0 || len(w) < 16 || len(w) != 8+8*((n+7)/8) {
				t.Fatalf("len %d: wrapped length %d", n, len(w))
			}
			back, err := KeyUnwrapWithPadding(kek, w)
			if err != nil || !bytes.Equal(back, pt) {
				t.Fatalf("kek %d len %d: round trip failed: %v", kekLen, n, err)
			}
			// Every single-bit flip is detected.
			for i := range w {
				bad := bytes.Clone(w)
				bad[i] ^= 0x01
				if _, err := KeyUnwrapWithPadding(kek, bad); !errors.Is(err, ErrKeyUnwrap) {
					t.Fatalf("kek %d len %d: flip of byte %d: err %v", kekLen, n, i, err)
				}
			}
			// Wrong key, truncation, extension.
			other := bytes.Clone(kek)
			other[0] ^= 0x80
			if _, err := KeyUnwrapWithPadding(other, w); !errors.Is(err, ErrKeyUnwrap) {
				t.Fatalf("wrong kek: %v", err)
			}
			if _, err := KeyUnwrapWithPadding(kek, w[:len(w)-8]); !errors.Is(err, ErrKeyUnwrap) {
				t.Fatalf("truncated: %v", err)
			}
			if _, err := KeyUnwrapWithPadding(kek, append(bytes.Clone(w), make([]byte, 8)...)); !errors.Is(err, ErrKeyUnwrap) {
				t.Fatalf("extended: %v", err)
			}
		}
	}
	kek := make([]byte, 32)
	for _, bad := range [][]byte{nil, make([]byte, 8), make([]byte, 15), make([]byte, 17)} {
		if _, err := KeyUnwrapWithPadding(kek, bad); !errors.Is(err, ErrKeyUnwrap) {
			t.Errorf("len %d: %v", len(bad), err)
		}
	}
	if _, err := KeyWrapWithPadding(kek, nil); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("empty plaintext: %v", err)
	}
	if _, err := KeyWrapWithPadding(make([]byte, 20), []byte{1}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("bad kek: %v", err)
	}
}

// TestKeyUnwrapWithPaddingRejectsBadMLI builds ciphertexts with a valid
// AIV prefix but an MLI outside 8(n-1) < MLI <= 8n, or non-zero padding.
func TestKeyUnwrapWithPaddingRejectsBadMLI(t *testing.T) {
	kek := make([]byte, 16)
	rand.Read(kek)
	wrapRaw := func(aiv [8]byte, padded []byte) []byte {
		buf := append(aiv[:], padded...)
		blk, err := aes.NewCipher(kek)
		if err != nil {
			t.Fatal(err)
		}
		if len(padded) == 8 {
			blk.Encrypt(buf, buf)
		} else {
			wrapBlocks(blk, buf)
		}
		return buf
	}
	aiv := func(mli uint32) [8]byte {
		return [8]byte{0xa6, 0x59, 0x59, 0xa6, byte(mli >> 24), byte(mli >> 16), byte(mli >> 8), byte(mli)}
	}
	// Sanity: a hand-built valid one unwraps.
	if _, err := KeyUnwrapWithPadding(kek, wrapRaw(aiv(12), make([]byte, 16))); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for _, c := range []struct {
		mli    uint32
		padded []byte
	}{
		{0, make([]byte, 8)},
		{9, make([]byte, 8)},
		{8, make([]byte, 16)},  // fits in one block fewer
		{17, make([]byte, 16)}, // longer than the blocks
		{12, append(make([]byte, 15), 1)},
		{1, []byte{1, 0, 0, 0, 0, 0, 0, 2}},
	} {
		if _, err := KeyUnwrapWithPadding(kek, wrapRaw(aiv(c.mli), c.padded)); !errors.Is(err, ErrKeyUnwrap) {
			t.Errorf("mli %d padded %x: %v", c.mli, c.padded, err)
		}
	}
	// Plain RFC 3394 output (IV A6A6...) is not KWP.
	w, _ := keyWrapRFC3394(kek, make([]byte, 16))
	if _, err := KeyUnwrapWithPadding(kek, w); !errors.Is(err, ErrKeyUnwrap) {
		t.Errorf("RFC 3394 ciphertext accepted: %v", err)
	}
}

// clientWrap wraps material for import the way a BYOK client does, with the
// standard library only (and KeyWrapWithPadding for the AES-KWP step).
func clientWrap(t *testing.T, pub *rsa.PublicKey, w ImportWrapping, material []byte) []byte {
	t.Helper()
	var h hash.Hash = sha256.New()
	if w == ImportRSAESOAEPSHA1 || w == ImportRSAAESKeyWrapSHA1 {
		h = sha1.New()
	}
	if !w.aesKeyWrap() {
		ct, err := rsa.EncryptOAEP(h, rand.Reader, pub, material, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ct
	}
	aesKey := make([]byte, 32)
	rand.Read(aesKey)
	ek, err := rsa.EncryptOAEP(h, rand.Reader, pub, aesKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrapped, err := KeyWrapWithPadding(aesKey, material)
	if err != nil {
		t.Fatal(err)
	}
	return append(ek, wrapped...)
}

func TestUnwrapImportedMaterial(t *testing.T) {
	priv, _, err := GenerateKeyPair(nil, RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	k, err := rsaPrivate(priv)
	if err != nil {
		t.Fatal(err)
	}
	material := make([]byte, 32)
	rand.Read(material)
	all := []ImportWrapping{ImportRSAESOAEPSHA1, ImportRSAESOAEPSHA256, ImportRSAAESKeyWrapSHA1, ImportRSAAESKeyWrapSHA256}
	for _, w := range all {
		enc := clientWrap(t, &k.PublicKey, w, material)
		got, err := UnwrapImportedMaterial(priv, w, enc)
		if err != nil {
			t.Fatalf("alg %d: %v", w, err)
		}
		if !bytes.Equal(got.Bytes(), material) {
			t.Fatalf("alg %d: wrong material", w)
		}
		// The other algorithms do not accept it.
		for _, o := range all {
			if o == w {
				continue
			}
			if _, err := UnwrapImportedMaterial(priv, o, enc); !errors.Is(err, ErrInvalidCiphertext) {
				t.Errorf("alg %d ciphertext under alg %d: %v", w, o, err)
			}
		}
		bad := bytes.Clone(enc)
		bad[len(bad)-1] ^= 1
		if _, err := UnwrapImportedMaterial(priv, w, bad); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("alg %d tampered: %v", w, err)
		}
		if _, err := UnwrapImportedMaterial(priv, w, enc[:10]); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("alg %d truncated: %v", w, err)
		}
	}
	// Under another wrapping key.
	other, _, err := GenerateKeyPair(nil, RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	enc := clientWrap(t, &k.PublicKey, ImportRSAAESKeyWrapSHA256, material)
	if _, err := UnwrapImportedMaterial(other, ImportRSAAESKeyWrapSHA256, enc); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("other wrapping key: %v", err)
	}
	if _, err := UnwrapImportedMaterial(priv, ImportWrapping(99), enc); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("unknown algorithm: %v", err)
	}
}

func TestWrapImportKey(t *testing.T) {
	dk := randSecret(t)
	priv, _, err := GenerateKeyPair(nil, RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	const arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	tok := randID(t)
	w, err := WrapImportKey(nil, dk, "dk-1", arn, tok, priv)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(w, priv.Bytes()[40:80]) {
		t.Fatal("wrapped key contains the private key")
	}
	got, err := UnwrapImportKey(dk, "dk-1", arn, tok, w)
	if err != nil || !got.Equal(priv) {
		t.Fatalf("round trip: %v", err)
	}
	if _, err := UnwrapImportKey(dk, "dk-1", arn, randID(t), w); !errors.Is(err, ErrUnwrap) {
		t.Errorf("other token id: %v", err)
	}
	if _, err := UnwrapImportKey(dk, "dk-1", arn+"x", tok, w); !errors.Is(err, ErrUnwrap) {
		t.Errorf("other key: %v", err)
	}
	// Domain separation: an import key never unwraps as key material.
	if _, err := UnwrapKeyMaterial(dk, "dk-1", arn, tok, w); !errors.Is(err, ErrUnwrap) {
		t.Errorf("unwrapped as material: %v", err)
	}
}
