package crypto

import (
	"fmt"
	"io"
)

// messageKeyInfoSize is the size of the HKDF info of a per-message key.
const messageKeyInfoSize = len(labelMessageKey) + 16 + 16

// deriveMessageKey returns the per-message AES-256 key:
//
//	HKDF-SHA256(secret = material, salt = salt,
//	            info = "kmsd/v1/message-key" || keyID || versionID, 32 bytes)
//
// With a fresh 128-bit random salt per message, message keys of one key
// version collide with probability about n^2/2^129 after n messages (2^-49 at
// n = 2^40); a (key, nonce) repeat additionally needs a 96-bit nonce
// collision. The caller must clear the result.
func deriveMessageKey(material []byte, keyID, versionID *[16]byte, salt *[SaltSize]byte) []byte {
	var info [messageKeyInfoSize]byte
	n := copy(info[:], labelMessageKey)
	n += copy(info[n:], keyID[:])
	copy(info[n:], versionID[:])
	return mustHKDF(material, salt[:], string(info[:]), KeySize)
}

// aad returns header bytes || EncodeEncryptionContext(ctx).
func blobAAD(h *Header, ctx map[string]string) []byte {
	enc := EncodeEncryptionContext(ctx)
	aad := make([]byte, 0, HeaderSize+len(enc))
	aad = h.appendTo(aad)
	return append(aad, enc...)
}

// Seal encrypts plaintext under one key version's material (KeySize bytes)
// and returns the encoded ciphertext blob. The caller sets h.KeyID,
// h.VersionID and h.MultiRegion; Seal overwrites h.Salt and h.Nonce with
// fresh randomness from rand (nil means crypto/rand). The blob's AAD is the
// header bytes followed by EncodeEncryptionContext(ctx). The output is
// len(plaintext) + BlobOverhead bytes.
func Seal(rand io.Reader, material *Secret, h Header, ctx map[string]string, plaintext []byte) ([]byte, error) {
	if material.Len() != KeySize {
		return nil, fmt.Errorf("%w: key material must be %d bytes", ErrInvalidKey, KeySize)
	}
	var r [SaltSize + NonceSize]byte
	if err := readRandom(rand, r[:]); err != nil {
		return nil, err
	}
	copy(h.Salt[:], r[:SaltSize])
	copy(h.Nonce[:], r[SaltSize:])

	mk := deriveMessageKey(material.Bytes(), &h.KeyID, &h.VersionID, &h.Salt)
	aead, err := newGCM(mk)
	clear(mk)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, HeaderSize+len(plaintext)+TagSize)
	out = h.appendTo(out)
	return aead.Seal(out, h.Nonce[:], plaintext, blobAAD(&h, ctx)), nil
}

// Open authenticates and decrypts a parsed blob under the material of the key
// version it names, with the encryption context given at Seal. Every failure
// of the blob (tampering, wrong material, wrong context) wraps
// ErrInvalidCiphertext; material that is not KeySize bytes is a caller bug
// and wraps ErrInvalidKey.
func Open(material *Secret, blob *Blob, ctx map[string]string) ([]byte, error) {
	if material.Len() != KeySize {
		return nil, fmt.Errorf("%w: key material must be %d bytes", ErrInvalidKey, KeySize)
	}
	if blob == nil || len(blob.Sealed) < TagSize {
		return nil, fmt.Errorf("%w: too short", ErrInvalidCiphertext)
	}
	mk := deriveMessageKey(material.Bytes(), &blob.KeyID, &blob.VersionID, &blob.Salt)
	aead, err := newGCM(mk)
	clear(mk)
	if err != nil {
		return nil, err
	}
	pt, err := aead.Open(nil, blob.Nonce[:], blob.Sealed, blobAAD(&blob.Header, ctx))
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrInvalidCiphertext)
	}
	return pt, nil
}
