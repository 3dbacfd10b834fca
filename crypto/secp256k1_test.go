package crypto

import (
	"bytes"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// The private key 1, whose public key is the generator G of SEC 2 2.4.1,
// as kmsd encodes it. Checked with OpenSSL 3.0: `openssl pkey -inform DER
// -check` says "Key is valid" and `-pubout -outform DER` prints spkiOne.
const (
	pkcs8One = "30818d020100301006072a8648ce3d020106052b8104000a0476307402010104200000000000000000000000000000000000000000000000000000000000000001a00706052b8104000aa1440342000479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
	spkiOne  = "3056301006072a8648ce3d020106052b8104000a0342000479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8"
	// A key OpenSSL 3.0 made (genpkey secp256k1, then pkcs8 -topk8): its
	// ECPrivateKey has no parameters; the second form (ec -no_public) has
	// no public key either. opensslSPKI is `openssl pkey -pubout` of it.
	opensslPKCS8         = "308184020100301006072a8648ce3d020106052b8104000a046d306b02010104205c81ead9c506b66dd88524a0a29351a496bd11995fe5df97f0d6fd4362abb051a1440342000439dade56a8915b1358c1b155abc46967a55b5707e9d3e9eb8a63ec70f7cddc554d549049823fa4e02d838b5f4079c7519967cee4c360a3f3079bd22f0e2e3cce"
	opensslPKCS8NoPublic = "303e020100301006072a8648ce3d020106052b8104000a0427302502010104205c81ead9c506b66dd88524a0a29351a496bd11995fe5df97f0d6fd4362abb051"
	opensslSPKI          = "3056301006072a8648ce3d020106052b8104000a0342000439dade56a8915b1358c1b155abc46967a55b5707e9d3e9eb8a63ec70f7cddc554d549049823fa4e02d838b5f4079c7519967cee4c360a3f3079bd22f0e2e3cce"
)

// testParseSPKI parses a secp256k1 SubjectPublicKeyInfo independently of
// the code under test's marshalling, strictly: nothing after it, the
// secp256k1 AlgorithmIdentifier, a 65-byte uncompressed point on the curve.
func testParseSPKI(t testing.TB, der []byte) *secp256k1.PublicKey {
	t.Helper()
	var spki struct {
		Algo struct {
			Algorithm asn1.ObjectIdentifier
			Curve     asn1.ObjectIdentifier
		}
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	if err != nil || len(rest) != 0 {
		t.Fatalf("SPKI does not parse: %v, %d trailing bytes", err, len(rest))
	}
	if !spki.Algo.Algorithm.Equal(asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}) || !spki.Algo.Curve.Equal(asn1.ObjectIdentifier{1, 3, 132, 0, 10}) {
		t.Fatalf("SPKI algorithm %v %v, want id-ecPublicKey secp256k1", spki.Algo.Algorithm, spki.Algo.Curve)
	}
	p := spki.PublicKey.Bytes
	if spki.PublicKey.BitLength != 65*8 || len(p) != 65 || p[0] != 4 {
		t.Fatalf("SPKI point is not uncompressed: % x", p)
	}
	pub, err := secp256k1.ParsePubKey(p)
	if err != nil {
		t.Fatalf("SPKI point: %v", err)
	}
	return pub
}

func TestSecp256k1KnownAnswer(t *testing.T) {
	one := make([]byte, 32)
	one[31] = 1
	k := secp256k1.PrivKeyFromBytes(one)
	der, err := marshalSecp256k1PKCS8(k, k.PubKey())
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(der); got != pkcs8One {
		t.Errorf("PKCS#8 of 1:\n got  %s\n want %s", got, pkcs8One)
	}
	spki, err := PublicKeyDER(NewSecret(unhex(t, pkcs8One)))
	if err != nil || hex.EncodeToString(spki) != spkiOne {
		t.Errorf("PublicKeyDER of 1 = %x, %v; want %s", spki, err, spkiOne)
	}
	// Keys made by OpenSSL parse, with and without the embedded public key.
	for name, p8 := range map[string]string{"with public key": opensslPKCS8, "without public key": opensslPKCS8NoPublic} {
		spki, err := PublicKeyDER(NewSecret(unhex(t, p8)))
		if err != nil || hex.EncodeToString(spki) != opensslSPKI {
			t.Errorf("OpenSSL key %s: PublicKeyDER = %x, %v; want %s", name, spki, err, opensslSPKI)
		}
	}
}

func TestSecp256k1RoundTrip(t *testing.T) {
	for i := range 20 {
		priv, spki, err := GenerateKeyPair(nil, Secp256k1)
		if err != nil {
			t.Fatal(err)
		}
		pub := testParseSPKI(t, spki)
		k, ppub, err := parseSecp256k1PKCS8(priv.Bytes())
		if err != nil {
			t.Fatalf("%d: own PKCS#8 does not parse: %v", i, err)
		}
		if !ppub.IsEqual(pub) || !k.PubKey().IsEqual(pub) {
			t.Fatalf("%d: PKCS#8 public key, derived public key and SPKI differ", i)
		}
		again, err := marshalSecp256k1PKCS8(k, ppub)
		if err != nil || !bytes.Equal(again, priv.Bytes()) {
			t.Fatalf("%d: PKCS#8 re-encoding differs: %v", i, err)
		}
		spki2, err := marshalSecp256k1SPKI(pub)
		if err != nil || !bytes.Equal(spki2, spki) {
			t.Fatalf("%d: SPKI re-encoding differs: %v", i, err)
		}
		if d, err := PublicKeyDER(priv); err != nil || !bytes.Equal(d, spki) {
			t.Fatalf("%d: PublicKeyDER differs from GenerateKeyPair's: %v", i, err)
		}
		// parsePrivate routes it to the secp256k1 parser, and zeroSigner
		// clears the scalar it parsed.
		s, err := parsePrivate(priv)
		if err != nil {
			t.Fatal(err)
		}
		ks, ok := s.(secp256k1Signer)
		if !ok || ks.priv.Key.IsZero() {
			t.Fatalf("parsePrivate = %T", s)
		}
		zeroSigner(s)
		if !ks.priv.Key.IsZero() {
			t.Fatal("zeroSigner left the scalar")
		}
	}
}

// TestSecp256k1Deterministic checks that the randomness source is used: the
// same stream gives the same key, another stream another key.
func TestSecp256k1Deterministic(t *testing.T) {
	a, pa, err := GenerateKeyPair(&detReader{seed: "k1"}, Secp256k1)
	if err != nil {
		t.Fatal(err)
	}
	b, pb, _ := GenerateKeyPair(&detReader{seed: "k1"}, Secp256k1)
	c, pc, _ := GenerateKeyPair(&detReader{seed: "k2"}, Secp256k1)
	if !a.Equal(b) || !bytes.Equal(pa, pb) {
		t.Error("same randomness, different keys")
	}
	if a.Equal(c) || bytes.Equal(pa, pc) {
		t.Error("different randomness, same key")
	}
}

// highS returns the other valid signature (r, n - s) of a DER signature.
func highS(t testing.TB, sig []byte) []byte {
	t.Helper()
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(sig, &rs); err != nil || len(rest) != 0 {
		t.Fatalf("signature is not DER: %v", err)
	}
	// decred's Serialize would make S low again: encode it here.
	rs.S.Sub(secp256k1.Params().N, rs.S)
	der, err := asn1.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSecp256k1SignVerify(t *testing.T) {
	priv, spki, err := GenerateKeyPair(nil, Secp256k1)
	if err != nil {
		t.Fatal(err)
	}
	pub := testParseSPKI(t, spki)
	for _, msg := range [][]byte{{0}, []byte("message"), bytes.Repeat([]byte{0xa5}, MaxSignMessageSize)} {
		d := sha256.Sum256(msg)
		for _, isDigest := range []bool{false, true} {
			in := msg
			if isDigest {
				in = d[:]
			}
			sig, err := Sign(nil, priv, ECDSASHA256, in, isDigest)
			if err != nil {
				t.Fatal(err)
			}
			ps, err := secpecdsa.ParseDERSignature(sig)
			if err != nil || !ps.Verify(d[:], pub) {
				t.Fatalf("digest %v: signature does not verify outside: %v", isDigest, err)
			}
			if ok, err := Verify(priv, ECDSASHA256, in, isDigest, sig); !ok || err != nil {
				t.Fatalf("digest %v: Verify = %v, %v", isDigest, ok, err)
			}
			// (r, n-s) is as valid a signature: other signers make them.
			hs := highS(t, sig)
			if bytes.Equal(hs, sig) {
				t.Fatal("high-S form equals the signature")
			}
			if ok, err := Verify(priv, ECDSASHA256, in, isDigest, hs); !ok || err != nil {
				t.Fatalf("digest %v: high-S signature refused: %v, %v", isDigest, ok, err)
			}
			bad := bytes.Clone(sig)
			bad[len(bad)-1] ^= 1
			other := bytes.Clone(in)
			other[0] ^= 1
			for name, c := range map[string][2][]byte{
				"mangled":   {in, bad},
				"other":     {other, sig},
				"truncated": {in, sig[:len(sig)-1]},
				"trailing":  {in, append(bytes.Clone(sig), 0)},
				"garbage":   {in, {1, 2, 3}},
				"empty":     {in, nil},
			} {
				if ok, err := Verify(priv, ECDSASHA256, c[0], isDigest, c[1]); ok || err != nil {
					t.Errorf("digest %v %s: Verify = %v, %v; want false, nil", isDigest, name, ok, err)
				}
			}
		}
	}
	for name, call := range map[string]func() error{
		"short digest":  func() error { _, err := Sign(nil, priv, ECDSASHA256, make([]byte, 31), true); return err },
		"long digest":   func() error { _, err := Sign(nil, priv, ECDSASHA256, make([]byte, 33), true); return err },
		"SHA-384":       func() error { _, err := Sign(nil, priv, ECDSASHA384, []byte("m"), false); return err },
		"RSA algorithm": func() error { _, err := Sign(nil, priv, RSASSAPSSSHA256, []byte("m"), false); return err },
		"Ed25519":       func() error { _, err := Sign(nil, priv, Ed25519SHA512, []byte("m"), false); return err },
		"empty message": func() error { _, err := Sign(nil, priv, ECDSASHA256, nil, false); return err },
		"verify SHA-512": func() error {
			_, err := Verify(priv, ECDSASHA512, []byte("m"), false, []byte{1})
			return err
		},
	} {
		if err := call(); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	// A P-256 key does not take a secp256k1 signature or vice versa, and
	// an secp256k1 key does not encrypt.
	p256, _, _ := GenerateKeyPair(nil, ECCNISTP256)
	sig, _ := Sign(nil, priv, ECDSASHA256, []byte("m"), false)
	if ok, _ := Verify(p256, ECDSASHA256, []byte("m"), false, sig); ok {
		t.Error("a P-256 key verifies a secp256k1 signature")
	}
	if _, err := EncryptOAEP(nil, priv, RSAESOAEPSHA256, []byte("m")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("EncryptOAEP with secp256k1: %v, want ErrInvalidKey", err)
	}
}

// mutatePKCS8 re-encodes pkcs8One with f applied to its parts.
func mutatePKCS8(t *testing.T, f func(outer *pkcs8, inner *ecPrivateKey)) []byte {
	t.Helper()
	var outer pkcs8
	if _, err := asn1.Unmarshal(unhex(t, pkcs8One), &outer); err != nil {
		t.Fatal(err)
	}
	var inner ecPrivateKey
	if _, err := asn1.Unmarshal(outer.PrivateKey.Bytes, &inner); err != nil {
		t.Fatal(err)
	}
	inner.PrivateKey.FullBytes = nil
	f(&outer, &inner)
	in, err := asn1.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	outer.PrivateKey = octetString(in)
	der, err := asn1.Marshal(outer)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSecp256k1ParseRejects(t *testing.T) {
	n := secp256k1.Params().N.FillBytes(make([]byte, 32))
	offCurve := unhex(t, spkiOne)[23:]
	offCurve = bytes.Clone(offCurve)
	offCurve[64] ^= 1
	p256 := asn1.ObjectIdentifier{1, 2, 840, 10045, 3, 1, 7}
	cases := map[string][]byte{
		"scalar zero":   mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PrivateKey.Bytes = make([]byte, 32) }),
		"scalar n":      mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PrivateKey.Bytes = n }),
		"scalar 31 B":   mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PrivateKey.Bytes = e.PrivateKey.Bytes[1:] }),
		"scalar 33 B":   mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PrivateKey.Bytes = append([]byte{0}, e.PrivateKey.Bytes...) }),
		"scalar INT":    mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PrivateKey.Tag = asn1.TagInteger }),
		"inner v0":      mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.Version = 0 }),
		"inner P-256":   mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.NamedCurveOID = p256 }),
		"off curve":     mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PublicKey = asn1.BitString{Bytes: offCurve, BitLength: 520} }),
		"partial bits":  mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.PublicKey.BitLength-- }),
		"outer v1":      mutatePKCS8(t, func(o *pkcs8, _ *ecPrivateKey) { o.Version = 1 }),
		"trailing":      append(unhex(t, pkcs8One), 0),
		"truncated":     unhex(t, pkcs8One)[:100],
		"inner garbage": mutatePKCS8(t, func(_ *pkcs8, e *ecPrivateKey) { e.Version = 7 }),
		"empty":         nil,
	}
	// A PKCS#8 naming P-256 outside is not taken for secp256k1 (crypto/x509
	// answers for it).
	if _, ok := secp256k1ECPrivateKey(mutatePKCS8(t, func(o *pkcs8, _ *ecPrivateKey) {
		o.Algo.Parameters = asn1.RawValue{FullBytes: mustMarshalASN1(p256)}
	})); ok {
		t.Error("a P-256 PKCS#8 is taken for secp256k1")
	}
	// The mutation itself leaves an unchanged key parseable.
	if _, _, err := parseSecp256k1PKCS8(mutatePKCS8(t, func(*pkcs8, *ecPrivateKey) {})); err != nil {
		t.Fatalf("unmutated key: %v", err)
	}
	for name, der := range cases {
		if _, err := parsePrivate(NewSecret(der)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: parsePrivate = %v, want ErrInvalidKey", name, err)
		}
		if _, err := PublicKeyDER(NewSecret(der)); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%s: PublicKeyDER = %v, want ErrInvalidKey", name, err)
		}
	}
}

func FuzzParseSecp256k1PKCS8(f *testing.F) {
	for _, s := range []string{pkcs8One, opensslPKCS8, opensslPKCS8NoPublic} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		k, pub, err := parseSecp256k1PKCS8(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error %v does not wrap ErrInvalidKey", err)
			}
			return
		}
		// Whatever parses re-encodes (in kmsd's form) to a key that parses
		// back to the same scalar and public key.
		der, err := marshalSecp256k1PKCS8(k, pub)
		if err != nil {
			t.Fatal(err)
		}
		k2, pub2, err := parseSecp256k1PKCS8(der)
		if err != nil || !k2.Key.Equals(&k.Key) || !pub2.IsEqual(pub) {
			t.Fatalf("re-encoding does not round-trip: %v", err)
		}
	})
}

// TestSecp256k1OpenSSL checks keys and signatures against OpenSSL, when it
// is installed: it reads kmsd's PKCS#8 and finds the same public key, it
// verifies kmsd's signatures, and kmsd verifies its (randomised, possibly
// high-S) signatures.
func TestSecp256k1OpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed: skipping the OpenSSL cross-check")
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	openssl := func(args ...string) []byte {
		t.Helper()
		out, err := exec.Command("openssl", args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("openssl %v: %v: %s", args, err, ee.Stderr)
			}
			t.Fatalf("openssl %v: %v", args, err)
		}
		return out
	}
	priv, spki, err := GenerateKeyPair(nil, Secp256k1)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := write("key.der", priv.Bytes())
	if out := openssl("pkey", "-inform", "DER", "-in", keyFile, "-check", "-noout"); !bytes.Contains(out, []byte("Key is valid")) {
		t.Fatalf("openssl pkey -check: %s", out)
	}
	if got := openssl("pkey", "-inform", "DER", "-in", keyFile, "-pubout", "-outform", "DER"); !bytes.Equal(got, spki) {
		t.Fatalf("OpenSSL's public key of kmsd's PKCS#8 differs:\n openssl %x\n kmsd    %x", got, spki)
	}
	pubFile := write("pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
	msg := []byte("signed by kmsd, checked by OpenSSL")
	msgFile := write("msg", msg)
	sig, err := Sign(nil, priv, ECDSASHA256, msg, false)
	if err != nil {
		t.Fatal(err)
	}
	sigFile := write("sig", sig)
	if out := openssl("dgst", "-sha256", "-verify", pubFile, "-signature", sigFile, msgFile); !bytes.Contains(out, []byte("Verified OK")) {
		t.Fatalf("openssl dgst -verify: %s", out)
	}
	// A tampered signature fails in OpenSSL too (exit status 1).
	bad := bytes.Clone(sig)
	bad[len(bad)-1] ^= 1
	if err := exec.Command("openssl", "dgst", "-sha256", "-verify", pubFile, "-signature", write("bad", bad), msgFile).Run(); err == nil {
		t.Fatal("openssl verified a tampered signature")
	}
	for i := range 8 {
		osig := openssl("dgst", "-sha256", "-sign", keyFile, "-keyform", "DER", msgFile)
		if ok, err := Verify(priv, ECDSASHA256, msg, false, osig); !ok || err != nil {
			t.Fatalf("%d: kmsd refuses OpenSSL's signature %x: %v", i, osig, err)
		}
	}
}
