package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
)

// SymmetricKey is one version of a symmetric customer key made ready for
// Seal and Open: it holds the version's material (for format-1 blobs, whose
// message keys are HKDF outputs of it) and the state of the format-2
// derivation, an AES-256 block cipher under a key derived once from the
// material. Building one costs an HKDF and two AES key schedules; sealing
// under it then derives each message key with two AES block encryptions
// instead of an HKDF (BenchmarkCoreDerivation).
//
// A SymmetricKey is reference counted because a cache shares it between
// goroutines while it may evict it: NewSymmetricKey returns it holding one
// reference, Acquire adds one, Release drops one, and the last Release zeroes
// the material and the precomputed derivation blocks. Using it after its last
// Release is a bug (Seal and Open then fail with ErrInvalidKey).
//
// The expanded AES key schedule inside crypto/aes cannot be zeroed through
// the standard library; it is dropped for the garbage collector, as are the
// per-message ciphers of every Seal and Open.
type SymmetricKey struct {
	refs      atomic.Int32
	keyID     [16]byte
	versionID [16]byte
	material  *Secret
	// deriver is AES-256 under HKDF(material, labelMessageDerivation ||
	// keyID || versionID).
	deriver cipher.Block
	// pre[i] = AES_deriver(derivationBlock(i+1)) XOR K1: the first CMAC block
	// and the CMAC subkey of the two derivations, which depend only on the
	// key (secret, zeroed with the material).
	pre [2][aes.BlockSize]byte
}

// NewSymmetricKey copies material (KeySize bytes) and prepares the key
// version keyID/versionID for Seal and Open. The caller holds the one
// reference it returns with.
func NewSymmetricKey(material []byte, keyID, versionID [16]byte) (*SymmetricKey, error) {
	if len(material) != KeySize {
		return nil, fmt.Errorf("%w: key material must be %d bytes", ErrInvalidKey, KeySize)
	}
	k := &SymmetricKey{keyID: keyID, versionID: versionID, material: NewSecret(material)}
	var info [len(labelMessageDerivation) + 32]byte
	n := copy(info[:], labelMessageDerivation)
	n += copy(info[n:], keyID[:])
	copy(info[n:], versionID[:])
	dk := mustHKDF(material, nil, string(info[:]), KeySize)
	block, err := aes.NewCipher(dk)
	clear(dk)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	k.deriver = block

	// CMAC subkey K1 = dbl(AES(0^128)) (NIST SP 800-38B).
	var l, k1 [aes.BlockSize]byte
	block.Encrypt(l[:], l[:])
	msb := l[0] >> 7
	for i := range aes.BlockSize - 1 {
		k1[i] = l[i]<<1 | l[i+1]>>7
	}
	k1[aes.BlockSize-1] = l[aes.BlockSize-1]<<1 ^ byte(subtle.ConstantTimeSelect(int(msb), 0x87, 0))
	for i := range k.pre {
		b := derivationBlock(byte(i + 1))
		block.Encrypt(k.pre[i][:], b[:])
		subtle.XORBytes(k.pre[i][:], k.pre[i][:], k1[:])
	}
	clear(l[:])
	clear(k1[:])
	k.refs.Store(1)
	return k, nil
}

// The label fills a block after the counter byte: a compile-time check.
var _ = [1]struct{}{}[len(labelMessageKeyV2)-(aes.BlockSize-1)]

// derivationBlock is the first block of the i-th CMAC message: the counter
// byte, then the 15-byte label.
func derivationBlock(i byte) [aes.BlockSize]byte {
	var b [aes.BlockSize]byte
	b[0] = i
	copy(b[1:], labelMessageKeyV2)
	return b
}

// Acquire adds a reference. The caller must already hold one (or a lock
// that keeps one alive), and must Release the new one.
func (k *SymmetricKey) Acquire() { k.refs.Add(1) }

// Release drops a reference; the last one zeroes the key.
func (k *SymmetricKey) Release() {
	switch n := k.refs.Add(-1); {
	case n == 0:
		k.material.Zero()
		clear(k.pre[0][:])
		clear(k.pre[1][:])
		k.deriver = nil
	case n < 0:
		panic("crypto: SymmetricKey released more often than acquired")
	}
}

// live reports whether the key has not been released for good.
func (k *SymmetricKey) live() bool { return k.refs.Load() > 0 }

// deriveMessageKeyV2 writes the format-2 per-message key of salt to out:
//
//	AES-CMAC(D, [1] || "kmsd/v2/msg-key" || salt) || AES-CMAC(D, [2] || "kmsd/v2/msg-key" || salt)
//
// with D the derivation key (NewSymmetricKey). Each CMAC input is two full
// blocks, so with the first block's encryption and the subkey precomputed a
// CMAC is one block encryption. CMAC is a PRF: distinct salts give
// independent 256-bit message keys, which collide with probability about
// n^2/2^129 after n messages (salt collisions), as format 1's HKDF does; the
// SP 800-108 counter-mode construction (counter in the input) keeps the two
// halves independent.
func (k *SymmetricKey) deriveMessageKeyV2(salt *[SaltSize]byte, out *[KeySize]byte) {
	for i := range k.pre {
		half := out[i*aes.BlockSize : (i+1)*aes.BlockSize]
		subtle.XORBytes(half, k.pre[i][:], salt[:])
		k.deriver.Encrypt(half, half)
	}
}

// messageScratch holds what one Seal or Open needs besides the ciphers, so
// that it costs no allocation of its own (pooled; the message key is
// cleared before it goes back).
type messageScratch struct {
	h   Header
	r   [SaltSize + NonceSize]byte
	mk  [KeySize]byte
	aad [HeaderSize + 192]byte
}

var messageScratchPool = sync.Pool{New: func() any { return new(messageScratch) }}

func getMessageScratch() *messageScratch { return messageScratchPool.Get().(*messageScratch) }

func putMessageScratch(sc *messageScratch) {
	clear(sc.mk[:])
	messageScratchPool.Put(sc)
}

// messageAEAD returns the AES-256-GCM of the message whose header is h,
// deriving its key in sc.mk (cleared by putMessageScratch).
func (k *SymmetricKey) messageAEAD(h *Header, sc *messageScratch) (cipher.AEAD, error) {
	switch h.version() {
	case blobVersion1:
		mk := deriveMessageKey(k.material.Bytes(), &h.KeyID, &h.VersionID, &h.Salt)
		copy(sc.mk[:], mk)
		clear(mk)
	case blobVersion2:
		k.deriveMessageKeyV2(&h.Salt, &sc.mk)
	default:
		return nil, fmt.Errorf("%w: unsupported format version", ErrInvalidCiphertext)
	}
	return newGCM(sc.mk[:])
}

// AppendSeal encrypts plaintext under this key version and appends the
// ciphertext blob to dst. h.MultiRegion and h.Version (0: the current
// BlobVersion) are taken from h; KeyID and VersionID are the key's; Salt and
// Nonce are drawn fresh from rand (nil means crypto/rand). The blob's AAD is
// the header bytes followed by EncodeEncryptionContext(ctx). It appends
// len(plaintext) + BlobOverhead bytes.
func (k *SymmetricKey) AppendSeal(dst []byte, rand io.Reader, h Header, ctx map[string]string, plaintext []byte) ([]byte, error) {
	if !k.live() {
		return nil, fmt.Errorf("%w: symmetric key used after release", ErrInvalidKey)
	}
	sc := getMessageScratch()
	defer putMessageScratch(sc)
	sc.h = h
	sc.h.KeyID, sc.h.VersionID = k.keyID, k.versionID
	if sc.h.Version == 0 {
		sc.h.Version = BlobVersion
	}
	if err := readRandom(rand, sc.r[:]); err != nil {
		return nil, err
	}
	copy(sc.h.Salt[:], sc.r[:SaltSize])
	copy(sc.h.Nonce[:], sc.r[SaltSize:])
	aead, err := k.messageAEAD(&sc.h, sc)
	if err != nil {
		return nil, err
	}
	dst = sc.h.appendTo(slices.Grow(dst, HeaderSize+len(plaintext)+TagSize))
	return aead.Seal(dst, sc.h.Nonce[:], plaintext, sc.appendAAD(&sc.h, ctx)), nil
}

// appendAAD returns the AAD of a blob with header h, in sc.aad unless the
// encryption context is large.
func (sc *messageScratch) appendAAD(h *Header, ctx map[string]string) []byte {
	return appendEncryptionContext(h.appendTo(sc.aad[:0]), ctx)
}

// Open authenticates and decrypts a parsed blob with the encryption context
// given at Seal. Every failure of the blob (another key or version,
// tampering, the wrong context, an unknown format) wraps
// ErrInvalidCiphertext.
func (k *SymmetricKey) Open(blob *Blob, ctx map[string]string) ([]byte, error) {
	if !k.live() {
		return nil, fmt.Errorf("%w: symmetric key used after release", ErrInvalidKey)
	}
	if blob == nil || len(blob.Sealed) < TagSize {
		return nil, fmt.Errorf("%w: too short", ErrInvalidCiphertext)
	}
	if blob.KeyID != k.keyID || blob.VersionID != k.versionID {
		return nil, fmt.Errorf("%w: another key version", ErrInvalidCiphertext)
	}
	sc := getMessageScratch()
	defer putMessageScratch(sc)
	aead, err := k.messageAEAD(&blob.Header, sc)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, blob.Nonce[:], blob.Sealed, sc.appendAAD(&blob.Header, ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrInvalidCiphertext)
	}
	return pt, nil
}
