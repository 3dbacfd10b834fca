package crypto

import (
	"bytes"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	cryptorand "crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"testing"
)

func TestMaxOAEPPlaintext(t *testing.T) {
	for _, tc := range []struct {
		spec       KeyPairSpec
		sha1, s256 int
	}{
		{RSA2048, 214, 190}, {RSA3072, 342, 318}, {RSA4096, 470, 446}, {ECCNISTP256, 0, 0},
	} {
		if got := MaxOAEPPlaintext(tc.spec, RSAESOAEPSHA1); got != tc.sha1 {
			t.Errorf("spec %d SHA-1: %d, want %d", tc.spec, got, tc.sha1)
		}
		if got := MaxOAEPPlaintext(tc.spec, RSAESOAEPSHA256); got != tc.s256 {
			t.Errorf("spec %d SHA-256: %d, want %d", tc.spec, got, tc.s256)
		}
	}
}

// TestSignVerifyStandard signs with every algorithm and checks the result
// with the standard library's verifiers over the SubjectPublicKeyInfo
// GenerateKeyPair returned.
func TestSignVerifyStandard(t *testing.T) {
	cases := []struct {
		spec KeyPairSpec
		algs []SigningAlgorithm
	}{
		{RSA2048, []SigningAlgorithm{RSASSAPSSSHA256, RSASSAPSSSHA384, RSASSAPSSSHA512, RSASSAPKCS1v15SHA256, RSASSAPKCS1v15SHA384, RSASSAPKCS1v15SHA512}},
		{ECCNISTP256, []SigningAlgorithm{ECDSASHA256}},
		{ECCNISTP384, []SigningAlgorithm{ECDSASHA384}},
		{ECCNISTP521, []SigningAlgorithm{ECDSASHA512}},
		{Ed25519, []SigningAlgorithm{Ed25519SHA512, Ed25519PHSHA512}},
	}
	msg := []byte("message")
	for _, tc := range cases {
		priv, spki, err := GenerateKeyPair(nil, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.ParsePKIXPublicKey(spki)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := PublicKeyDER(priv); err != nil || !bytes.Equal(d, spki) {
			t.Fatalf("PublicKeyDER differs from GenerateKeyPair's: %v", err)
		}
		for _, alg := range tc.algs {
			isDigest := alg == Ed25519PHSHA512
			in := msg
			if isDigest {
				d := sha512.Sum512(msg)
				in = d[:]
			}
			sig, err := Sign(nil, priv, alg, in, isDigest)
			if err != nil {
				t.Fatalf("alg %d: %v", alg, err)
			}
			h := alg.Hash()
			var d []byte
			if alg != Ed25519SHA512 && alg != Ed25519PHSHA512 {
				hh := newHash(h)
				hh.Write(msg)
				d = hh.Sum(nil)
			}
			ok := false
			switch p := pub.(type) {
			case *rsa.PublicKey:
				if alg.isPSS() {
					ok = rsa.VerifyPSS(p, h, d, sig, &rsa.PSSOptions{SaltLength: h.Size()}) == nil
				} else {
					ok = rsa.VerifyPKCS1v15(p, h, d, sig) == nil
				}
			case *ecdsa.PublicKey:
				ok = ecdsa.VerifyASN1(p, d, sig)
			case ed25519.PublicKey:
				if alg == Ed25519PHSHA512 {
					ph := sha512.Sum512(in)
					ok = ed25519.VerifyWithOptions(p, ph[:], sig, &ed25519.Options{Hash: gocrypto.SHA512}) == nil
				} else {
					ok = ed25519.Verify(p, msg, sig)
				}
			}
			if !ok {
				t.Errorf("spec %d alg %d: standard library rejects the signature", tc.spec, alg)
			}
			if v, err := Verify(priv, alg, in, isDigest, sig); err != nil || !v {
				t.Errorf("spec %d alg %d: Verify = %v, %v", tc.spec, alg, v, err)
			}
			sig[len(sig)-1] ^= 1
			if v, _ := Verify(priv, alg, in, isDigest, sig); v {
				t.Errorf("spec %d alg %d: a mangled signature verifies", tc.spec, alg)
			}
		}
	}
}

func TestSignInputErrors(t *testing.T) {
	priv, _, err := GenerateKeyPair(nil, ECCNISTP256)
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"short digest":  func() error { _, err := Sign(nil, priv, ECDSASHA256, make([]byte, 31), true); return err },
		"wrong curve":   func() error { _, err := Sign(nil, priv, ECDSASHA384, []byte("m"), false); return err },
		"RSA algorithm": func() error { _, err := Sign(nil, priv, RSASSAPSSSHA256, []byte("m"), false); return err },
		"empty message": func() error { _, err := Sign(nil, priv, ECDSASHA256, nil, false); return err },
		"too long":      func() error { _, err := Sign(nil, priv, ECDSASHA256, make([]byte, 4097), false); return err },
	} {
		if err := call(); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	d := sha256.Sum256([]byte("m"))
	if _, err := Sign(nil, priv, ECDSASHA256, d[:], true); err != nil {
		t.Errorf("digest: %v", err)
	}
}

func TestOAEP(t *testing.T) {
	priv, spki, err := GenerateKeyPair(nil, RSA2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.ParsePKIXPublicKey(spki)
	pt := []byte("plaintext")
	ct, err := rsa.EncryptOAEP(sha256.New(), cryptorand.Reader, pub.(*rsa.PublicKey), pt, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecryptOAEP(priv, RSAESOAEPSHA256, ct)
	if err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("DecryptOAEP = %q, %v", got, err)
	}
	if _, err := DecryptOAEP(priv, RSAESOAEPSHA1, ct); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("wrong hash: %v, want ErrInvalidCiphertext", err)
	}
	ct2, err := EncryptOAEP(nil, priv, RSAESOAEPSHA1, pt)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecryptOAEP(priv, RSAESOAEPSHA1, ct2); err != nil || !bytes.Equal(got, pt) {
		t.Fatalf("round trip = %q, %v", got, err)
	}
	ec, _, _ := GenerateKeyPair(nil, ECCNISTP256)
	if _, err := EncryptOAEP(nil, ec, RSAESOAEPSHA1, pt); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("ECC key: %v, want ErrInvalidKey", err)
	}
}
