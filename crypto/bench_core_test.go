package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"fmt"
	"testing"
)

// coreSizes are the message sizes of the crypto-core figures in
// bench/README.md (32 B … 1 MiB).
var coreSizes = []int{32, 1 << 10, 4 << 10, 64 << 10, 1 << 20}

// BenchmarkCoreSeal measures kmsd's Seal as the service calls it (a key
// version cached as a SymmetricKey; a fresh random salt and nonce, the
// per-message key, a fresh AES-256-GCM, header and encryption context as
// AAD), in both blob formats, next to raw crypto/cipher AES-256-GCM with a
// prebuilt cipher, no derivation and a fresh random nonce, size by size in
// one run, so the ratio between them is what to read:
//
//   - kmsd/…: format 2 (AES-CMAC derivation), output appended to a reused
//     buffer as raw-gcm's is;
//   - kmsd-alloc/…: the same with a new output slice per message (what an
//     Encrypt response needs);
//   - kmsd-format1/…: format 1 (HKDF-SHA256 derivation), reused buffer.
func BenchmarkCoreSeal(b *testing.B) {
	for _, n := range coreSizes {
		pt := make([]byte, n)
		seal := func(name string, version byte, reuse bool) {
			b.Run(fmt.Sprintf("%s/%dB", name, n), func(b *testing.B) {
				mat, h, ctx := benchSetup(b)
				k, err := NewSymmetricKey(mat.Bytes(), h.KeyID, h.VersionID)
				if err != nil {
					b.Fatal(err)
				}
				defer k.Release()
				h.Version = version
				out := make([]byte, 0, n+BlobOverhead)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					dst := out[:0]
					if !reuse {
						dst = nil
					}
					if out, err = k.AppendSeal(dst, nil, h, ctx, pt); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		seal("kmsd", 2, true)
		seal("kmsd-alloc", 2, false)
		seal("kmsd-format1", 1, true)
		b.Run(fmt.Sprintf("raw-gcm/%dB", n), func(b *testing.B) {
			block, err := aes.NewCipher(randBytes(b, KeySize))
			if err != nil {
				b.Fatal(err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, aead.NonceSize())
			out := make([]byte, 0, n+aead.Overhead())
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				// A fresh random nonce per message, as Seal draws one.
				if _, err := cryptorand.Read(nonce); err != nil {
					b.Fatal(err)
				}
				out = aead.Seal(out[:0], nonce, pt, nil)
			}
		})
	}
}

// BenchmarkCoreDataKey measures what GenerateDataKey costs in the crypto
// core: 32 random bytes, sealed under a cached key version (ns/op → data
// keys/s per core).
func BenchmarkCoreDataKey(b *testing.B) {
	mat, h, ctx := benchSetup(b)
	k, err := NewSymmetricKey(mat.Bytes(), h.KeyID, h.VersionID)
	if err != nil {
		b.Fatal(err)
	}
	defer k.Release()
	b.ReportAllocs()
	for b.Loop() {
		dk, err := GenerateDataKey(nil, 32)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := k.AppendSeal(nil, nil, h, ctx, dk.Bytes()); err != nil {
			b.Fatal(err)
		}
		dk.Zero()
	}
}

// BenchmarkCoreDerivation compares the two per-message derivations of
// DESIGN.md §3: format 1's HKDF-SHA256 over the key version's material, and
// format 2's AES-CMAC under the derivation cipher cached with the key
// version (SymmetricKey); and what preparing a key version once costs, and
// the per-message AES-256-GCM set-up that any per-message key needs.
func BenchmarkCoreDerivation(b *testing.B) {
	mat := randBytes(b, KeySize)
	kid, vid := randID(b), randID(b)
	var salt [SaltSize]byte
	copy(salt[:], randBytes(b, SaltSize))
	b.Run("hkdf-sha256", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(deriveMessageKey(mat, &kid, &vid, &salt))
		}
	})
	b.Run("aes-cmac-cached", func(b *testing.B) {
		k, err := NewSymmetricKey(mat, kid, vid)
		if err != nil {
			b.Fatal(err)
		}
		defer k.Release()
		var mk [KeySize]byte
		b.ReportAllocs()
		for b.Loop() {
			k.deriveMessageKeyV2(&salt, &mk)
		}
		clear(mk[:])
	})
	b.Run("prepare-key-version", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k, err := NewSymmetricKey(mat, kid, vid)
			if err != nil {
				b.Fatal(err)
			}
			k.Release()
		}
	})
	// The derived key still needs its own cipher: the part of a message's
	// cost that no derivation scheme removes.
	b.Run("aes-gcm-setup", func(b *testing.B) {
		key := randBytes(b, KeySize)
		b.ReportAllocs()
		for b.Loop() {
			block, err := aes.NewCipher(key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := cipher.NewGCM(block); err != nil {
				b.Fatal(err)
			}
		}
	})
}
