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

func BenchmarkSeal(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			mat, h, ctx := benchSetup(b)
			pt := make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Seal(nil, mat, h, ctx, pt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("%dB", n), func(b *testing.B) {
			mat, h, ctx := benchSetup(b)
			enc, err := Seal(nil, mat, h, ctx, make([]byte, n))
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
				if _, err := Open(mat, blob, ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDeriveMessageKey measures the per-message HKDF-SHA256 derivation
// alone (the cost Seal and Open pay over plain AES-256-GCM).
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
