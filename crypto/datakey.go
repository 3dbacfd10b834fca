package crypto

import (
	"encoding/hex"
	"fmt"
	"io"
)

// MaxDataKeySize is the largest data key GenerateDataKey makes (AWS KMS
// NumberOfBytes maximum).
const MaxDataKeySize = 1024

// GenerateKey returns KeySize random bytes from rand (nil means crypto/rand):
// a new domain key or symmetric customer key material.
func GenerateKey(rand io.Reader) (*Secret, error) {
	return GenerateDataKey(rand, KeySize)
}

// GenerateDataKey returns n random bytes from rand (nil means crypto/rand),
// 1 <= n <= MaxDataKeySize: the plaintext of a GenerateDataKey answer (32 for
// AES_256, 16 for AES_128, NumberOfBytes otherwise). The caller seals it with
// Seal for the CiphertextBlob and zeroes it when done.
func GenerateDataKey(rand io.Reader, n int) (*Secret, error) {
	if n < 1 || n > MaxDataKeySize {
		return nil, fmt.Errorf("%w: data key size must be 1 to %d bytes", ErrInvalidKey, MaxDataKeySize)
	}
	s := &Secret{b: make([]byte, n)}
	if err := readRandom(rand, s.b); err != nil {
		return nil, err
	}
	return s, nil
}

// mrkPrefix starts the id of a multi-region key.
const mrkPrefix = "mrk-"

// FormatKeyID returns the AWS form of a raw key id: a lowercase UUID
// ("1234abcd-12ab-34cd-56ef-1234567890ab"), or for a multi-region key "mrk-"
// and 32 lowercase hex digits.
func FormatKeyID(id [16]byte, multiRegion bool) string {
	if multiRegion {
		return mrkPrefix + hex.EncodeToString(id[:])
	}
	var b [36]byte
	hex.Encode(b[0:8], id[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], id[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], id[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], id[8:10])
	b[23] = '-'
	hex.Encode(b[24:36], id[10:16])
	return string(b[:])
}

// ParseKeyID reverses FormatKeyID. It accepts only the exact forms
// FormatKeyID produces (lowercase), so FormatKeyID(ParseKeyID(s)) == s.
// It does not accept ARNs or aliases.
func ParseKeyID(s string) (id [16]byte, multiRegion bool, err error) {
	// It runs on every request naming a key: the error is built only on
	// failure and the digits gathered on the stack.
	var digits [32]byte
	switch {
	case len(s) == len(mrkPrefix)+32 && s[:len(mrkPrefix)] == mrkPrefix:
		multiRegion = true
		copy(digits[:], s[len(mrkPrefix):])
	case len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-':
		n := copy(digits[:], s[0:8])
		n += copy(digits[n:], s[9:13])
		n += copy(digits[n:], s[14:18])
		n += copy(digits[n:], s[19:23])
		copy(digits[n:], s[24:36])
	default:
		return id, false, errNotKeyID()
	}
	for _, c := range digits {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return id, false, errNotKeyID()
		}
	}
	if _, err := hex.Decode(id[:], digits[:]); err != nil {
		return id, false, errNotKeyID()
	}
	return id, multiRegion, nil
}

// errNotKeyID is ParseKeyID's error.
func errNotKeyID() error { return fmt.Errorf("%w: not a key id", ErrInvalidKey) }
