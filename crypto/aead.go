package crypto

import (
	"fmt"
	"io"
)

// messageKeyInfoSize is the size of the HKDF info of a per-message key.
const messageKeyInfoSize = len(labelMessageKey) + 16 + 16

// deriveMessageKey returns the per-message AES-256 key of a format-1 blob:
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

// Seal encrypts plaintext under one key version's material (KeySize bytes)
// and returns the encoded ciphertext blob. The caller sets h.KeyID,
// h.VersionID and h.MultiRegion (and h.Version to write an older format);
// Seal overwrites h.Salt and h.Nonce with fresh randomness from rand (nil
// means crypto/rand). The blob's AAD is the header bytes followed by
// EncodeEncryptionContext(ctx). The output is len(plaintext) + BlobOverhead
// bytes. It prepares the key version for this one message: callers that seal
// repeatedly under one version keep a SymmetricKey instead.
func Seal(rand io.Reader, material *Secret, h Header, ctx map[string]string, plaintext []byte) ([]byte, error) {
	k, err := NewSymmetricKey(material.Bytes(), h.KeyID, h.VersionID)
	if err != nil {
		return nil, err
	}
	defer k.Release()
	return k.AppendSeal(nil, rand, h, ctx, plaintext)
}

// Open authenticates and decrypts a parsed blob under the material of the key
// version it names, with the encryption context given at Seal. Every failure
// of the blob (tampering, wrong material, wrong context) wraps
// ErrInvalidCiphertext; material that is not KeySize bytes is a caller bug
// and wraps ErrInvalidKey.
func Open(material *Secret, blob *Blob, ctx map[string]string) ([]byte, error) {
	if blob == nil {
		return nil, fmt.Errorf("%w: no blob", ErrInvalidCiphertext)
	}
	k, err := NewSymmetricKey(material.Bytes(), blob.KeyID, blob.VersionID)
	if err != nil {
		return nil, err
	}
	defer k.Release()
	return k.Open(blob, ctx)
}
