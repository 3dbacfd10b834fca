package crypto

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
)

// MACAlgorithm is an HMAC construction (RFC 2104) over one SHA-2 hash.
type MACAlgorithm int

// The HMAC algorithms kmsd computes.
const (
	HMACSHA224 MACAlgorithm = iota + 1
	HMACSHA256
	HMACSHA384
	HMACSHA512
)

// MaxMACMessageSize is the largest message GenerateMAC and VerifyMAC take
// (AWS KMS's GenerateMac/VerifyMac Message limit).
const MaxMACMessageSize = 4096

func (a MACAlgorithm) hash() (func() hash.Hash, bool) {
	switch a {
	case HMACSHA224:
		return sha256.New224, true
	case HMACSHA256:
		return sha256.New, true
	case HMACSHA384:
		return sha512.New384, true
	case HMACSHA512:
		return sha512.New, true
	}
	return nil, false
}

// KeySize is the size in bytes of the key material of an HMAC key made for
// the algorithm: the hash's output size (224, 256, 384 or 512 bits), as AWS
// KMS's HMAC_224 ... HMAC_512 key specs have. 0 for an unknown algorithm.
func (a MACAlgorithm) KeySize() int {
	return a.Size()
}

// Size is the length in bytes of the algorithm's MAC. 0 for an unknown
// algorithm.
func (a MACAlgorithm) Size() int {
	h, ok := a.hash()
	if !ok {
		return 0
	}
	return h().Size()
}

// GenerateMAC returns the standard HMAC of msg under key with the
// algorithm's hash: it equals crypto/hmac's result for the same key bytes.
// msg may be 1 to MaxMACMessageSize bytes; key must not be empty.
func GenerateMAC(alg MACAlgorithm, key *Secret, msg []byte) ([]byte, error) {
	h, ok := alg.hash()
	if !ok {
		return nil, fmt.Errorf("%w: unknown MAC algorithm %d", ErrInvalidKey, int(alg))
	}
	if key.Len() == 0 {
		return nil, fmt.Errorf("%w: empty HMAC key", ErrInvalidKey)
	}
	if len(msg) == 0 || len(msg) > MaxMACMessageSize {
		return nil, fmt.Errorf("crypto: MAC message must be 1 to %d bytes", MaxMACMessageSize)
	}
	m := hmac.New(h, key.Bytes())
	m.Write(msg)
	return m.Sum(nil), nil
}

// VerifyMAC reports, in constant time, whether mac is the HMAC of msg under
// key with the algorithm. A MAC of the wrong length is simply not valid.
func VerifyMAC(alg MACAlgorithm, key *Secret, msg, mac []byte) (bool, error) {
	want, err := GenerateMAC(alg, key, msg)
	if err != nil {
		return false, err
	}
	return hmac.Equal(want, mac), nil
}
