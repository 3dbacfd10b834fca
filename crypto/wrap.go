package crypto

import (
	"fmt"
	"io"
)

// wrapVersion is the first byte of every wrapped domain key and wrapped
// material.
const wrapVersion byte = 1

// wrapOverhead is the size a wrapped secret adds to the secret itself.
const wrapOverhead = 1 + NonceSize + TagSize

// MaxMaterialSize bounds the size of customer key material WrapKeyMaterial
// accepts (symmetric material is KeySize; HMAC and private keys are larger).
const MaxMaterialSize = 16 << 10

// wrapSecret seals secret under kek: version | nonce | GCM(secret) || tag.
// aad must already bind the label and identifiers; the version byte is
// prepended to it here.
func wrapSecret(rand io.Reader, kek []byte, aad []byte, secret []byte) ([]byte, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 1+NonceSize, wrapOverhead+len(secret))
	out[0] = wrapVersion
	if err := readRandom(rand, out[1:1+NonceSize]); err != nil {
		return nil, err
	}
	fullAAD := append([]byte{wrapVersion}, aad...)
	return aead.Seal(out, out[1:1+NonceSize], secret, fullAAD), nil
}

// unwrapSecret reverses wrapSecret. Any failure is ErrUnwrap, except a kek of
// the wrong size, which is ErrInvalidKey.
func unwrapSecret(kek []byte, aad []byte, wrapped []byte) (*Secret, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < wrapOverhead {
		return nil, fmt.Errorf("%w: wrapped secret too short", ErrUnwrap)
	}
	if wrapped[0] != wrapVersion {
		return nil, fmt.Errorf("%w: unknown wrap format version %d", ErrUnwrap, wrapped[0])
	}
	nonce := wrapped[1 : 1+NonceSize]
	fullAAD := append([]byte{wrapVersion}, aad...)
	pt, err := aead.Open(nil, nonce, wrapped[1+NonceSize:], fullAAD)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed", ErrUnwrap)
	}
	s := &Secret{b: pt} // pt is freshly allocated: no copy needed
	return s, nil
}

// materialAAD binds wrapped material to its domain key, key ARN and version.
func materialAAD(domainKeyID, keyARN string, versionID [16]byte) []byte {
	aad := make([]byte, 0, 4*4+len(labelMaterialWrap)+len(domainKeyID)+len(keyARN)+16)
	aad = appendLP(aad, labelMaterialWrap)
	aad = appendLP(aad, domainKeyID)
	aad = appendLP(aad, keyARN)
	aad = appendLPBytes(aad, versionID[:])
	return aad
}

// WrapKeyMaterial wraps one key version's material under a domain key
// (AES-256-GCM, random nonce). The AAD binds a domain-separation label, the
// domain key id, the key ARN and the version id, each length-prefixed, so the
// result unwraps only with the same four values. material may be 1 to
// MaxMaterialSize bytes; domainKey must be KeySize bytes. rand nil means
// crypto/rand. Result size: len(material) + 29 bytes.
func WrapKeyMaterial(rand io.Reader, domainKey *Secret, domainKeyID, keyARN string, versionID [16]byte, material *Secret) ([]byte, error) {
	if n := material.Len(); n == 0 || n > MaxMaterialSize {
		return nil, fmt.Errorf("%w: key material must be 1 to %d bytes", ErrInvalidKey, MaxMaterialSize)
	}
	return wrapSecret(rand, domainKey.Bytes(), materialAAD(domainKeyID, keyARN, versionID), material.Bytes())
}

// UnwrapKeyMaterial reverses WrapKeyMaterial. It fails with ErrUnwrap if the
// blob is malformed or was wrapped under another domain key, domain key id,
// key ARN or version id; with ErrInvalidKey if domainKey is not KeySize bytes.
func UnwrapKeyMaterial(domainKey *Secret, domainKeyID, keyARN string, versionID [16]byte, wrapped []byte) (*Secret, error) {
	return unwrapSecret(domainKey.Bytes(), materialAAD(domainKeyID, keyARN, versionID), wrapped)
}
