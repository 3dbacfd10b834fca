package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	cryptorand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// NonceSize is the size of an AES-GCM nonce.
	NonceSize = 12
	// TagSize is the size of an AES-GCM authentication tag.
	TagSize = 16
)

// readRandom fills b from r, or from crypto/rand when r is nil.
func readRandom(r io.Reader, b []byte) error {
	if r == nil {
		r = cryptorand.Reader
	}
	if _, err := io.ReadFull(r, b); err != nil {
		return fmt.Errorf("crypto: reading randomness: %w", err)
	}
	return nil
}

// newGCM returns AES-256-GCM under key, which must be KeySize bytes.
func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: AES-256 key must be %d bytes", ErrInvalidKey, KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	return cipher.NewGCM(block)
}

// appendLP appends the uint32 big-endian length of s, then s.
func appendLP(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// appendLPBytes is appendLP for a byte slice.
func appendLPBytes(dst, b []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}
