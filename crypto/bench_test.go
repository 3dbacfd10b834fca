package crypto

import (
	"fmt"
	"testing"
)

var benchSizes = []int{32, 1024, 4096}

func benchSetup(b *testing.B) (*Secret, Header, map[string]string) {
	mat := randSecret(b)
	h := Header{KeyID: randID(b), VersionID: randID(b)}
	return mat, h, map[string]string{"purpose": "bench", "tenant": "42"}
}

// BenchmarkSeal and BenchmarkOpen measure a message under a key version
// prepared once (SymmetricKey, what the service keeps in its cache); the
// one-shot Seal and Open add BenchmarkCoreDerivation/prepare-key-version.
func BenchmarkSeal(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			k, h, ctx := benchKey(b)
			pt := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.AppendSeal(nil, nil, h, ctx, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			k, h, ctx := benchKey(b)
			enc, err := k.AppendSeal(nil, nil, h, ctx, make([]byte, n))
			if err != nil {
				b.Fatal(err)
			}
			blob, err := ParseBlob(enc)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := k.Open(blob, ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchKey is benchSetup's key version prepared for Seal and Open.
func benchKey(b *testing.B) (*SymmetricKey, Header, map[string]string) {
	mat, h, ctx := benchSetup(b)
	k, err := NewSymmetricKey(mat.Bytes(), h.KeyID, h.VersionID)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Release)
	return k, h, ctx
}

// BenchmarkDeriveMessageKey measures format 1's per-message HKDF-SHA256
// derivation alone (what opening a format-1 blob pays over format 2's
// AES-CMAC, BenchmarkCoreDerivation).
func BenchmarkDeriveMessageKey(b *testing.B) {
	mat := randBytes(b, KeySize)
	kid, vid := randID(b), randID(b)
	var salt [SaltSize]byte
	copy(salt[:], randBytes(b, SaltSize))
	b.ReportAllocs()
	for b.Loop() {
		clear(deriveMessageKey(mat, &kid, &vid, &salt))
	}
}

// BenchmarkSignVerifyECDSA compares, per call as the service makes them
// (PKCS#8 parse included), secp256k1 with P-256 (both ECDSA_SHA_256).
func BenchmarkSignVerifyECDSA(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec KeyPairSpec
	}{{"P256", ECCNISTP256}, {"secp256k1", Secp256k1}} {
		priv, _, err := GenerateKeyPair(nil, tc.spec)
		if err != nil {
			b.Fatal(err)
		}
		msg := []byte("benchmark message")
		sig, err := Sign(nil, priv, ECDSASHA256, msg, false)
		if err != nil {
			b.Fatal(err)
		}
		b.Run("Sign/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(nil, priv, ECDSASHA256, msg, false); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Verify/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if ok, err := Verify(priv, ECDSASHA256, msg, false, sig); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run("PublicKeyDER/"+tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := PublicKeyDER(priv); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
