package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// AES Key Wrap with Padding (RFC 5649), built on the AES Key Wrap of
// RFC 3394. The standard library has neither. BYOK clients use it
// (RSA_AES_KEY_WRAP_SHA_*) to wrap key material under an ephemeral AES key.

// kwpAIVPrefix is the 32-bit constant of RFC 5649's alternative initial
// value; the message length indicator (MLI) follows it.
var kwpAIVPrefix = [4]byte{0xa6, 0x59, 0x59, 0xa6}

// ErrKeyUnwrap is the one error KeyUnwrapWithPadding reports for malformed or
// unauthentic input.
var ErrKeyUnwrap = errors.New("crypto: AES key unwrap failed")

// maxKWPPlaintext bounds the input of KeyWrapWithPadding (the MLI is 32 bits;
// far smaller inputs are all this package ever wraps).
const maxKWPPlaintext = 1 << 24

// KeyWrapWithPadding wraps plaintext (1 to 16 MiB) under kek (16, 24 or 32
// bytes) with AES-KWP (RFC 5649). The result is 8 to 15 bytes longer than
// plaintext, a multiple of 8, at least 16 bytes.
func KeyWrapWithPadding(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	m := len(plaintext)
	if m == 0 || m > maxKWPPlaintext {
		return nil, fmt.Errorf("%w: key wrap input must be 1 to %d bytes", ErrInvalidKey, maxKWPPlaintext)
	}
	n := (m + 7) / 8 // 64-bit blocks of the padded plaintext
	var aiv [8]byte
	copy(aiv[:4], kwpAIVPrefix[:])
	binary.BigEndian.PutUint32(aiv[4:], uint32(m))
	out := make([]byte, 8+8*n)
	copy(out[:8], aiv[:])
	copy(out[8:], plaintext) // zero padding: out is freshly zeroed
	if n == 1 {
		// One block: a single AES encryption of AIV || P (RFC 5649 §4.1).
		block.Encrypt(out, out)
		return out, nil
	}
	wrapBlocks(block, out)
	return out, nil
}

// wrapBlocks is the wrapping process W of RFC 3394 §2.2.1 (index-based
// form) in place: buf is A || R[1] || ... || R[n] with n >= 2.
func wrapBlocks(block cipher.Block, buf []byte) {
	n := len(buf)/8 - 1
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], buf[:8])
			copy(b[8:], buf[8*i:8*i+8])
			block.Encrypt(b[:], b[:])
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(b[:8])^uint64(n*j+i))
			copy(buf[8*i:8*i+8], b[8:])
		}
	}
	clear(b[:])
}

// KeyUnwrapWithPadding reverses KeyWrapWithPadding. Any malformed input,
// wrong key or failed integrity check is ErrKeyUnwrap; a kek of a wrong size
// is ErrInvalidKey.
func KeyUnwrapWithPadding(kek, ciphertext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKey, err)
	}
	if len(ciphertext) < 16 || len(ciphertext)%8 != 0 || len(ciphertext) > maxKWPPlaintext+16 {
		return nil, ErrKeyUnwrap
	}
	n := len(ciphertext)/8 - 1
	buf := make([]byte, len(ciphertext))
	copy(buf, ciphertext)
	if n == 1 {
		block.Decrypt(buf, buf)
	} else {
		var b [16]byte
		for j := 5; j >= 0; j-- {
			for i := n; i >= 1; i-- {
				t := uint64(n*j + i)
				binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(buf[:8])^t)
				copy(b[8:], buf[8*i:8*i+8])
				block.Decrypt(b[:], b[:])
				copy(buf[:8], b[:8])
				copy(buf[8*i:8*i+8], b[8:])
			}
		}
		clear(b[:])
	}
	// Integrity checks of RFC 5649 §3: the AIV prefix, 8(n-1) < MLI <= 8n,
	// and zero padding. Evaluated without early exits on the secret parts.
	ok := subtle.ConstantTimeCompare(buf[:4], kwpAIVPrefix[:])
	mli := binary.BigEndian.Uint32(buf[4:8])
	if uint64(mli) <= 8*uint64(n-1) || uint64(mli) > 8*uint64(n) {
		ok = 0
	}
	plain := buf[8:]
	if ok == 1 {
		var pad byte
		for _, c := range plain[mli:] {
			pad |= c
		}
		ok &= subtle.ConstantTimeByteEq(pad, 0)
	}
	if ok != 1 {
		clear(buf)
		return nil, ErrKeyUnwrap
	}
	out := make([]byte, mli)
	copy(out, plain[:mli])
	clear(buf)
	return out, nil
}

// keyWrapRFC3394 is the plain AES Key Wrap of RFC 3394 with its default IV
// (tests check the shared core against RFC 3394's vectors). plaintext must
// be a multiple of 8 bytes, at least 16.
func keyWrapRFC3394(kek, plaintext []byte) ([]byte, error) {
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(plaintext) < 16 || len(plaintext)%8 != 0 {
		return nil, errors.New("crypto: RFC 3394 input must be n*8 bytes, n >= 2")
	}
	out := make([]byte, 8+len(plaintext))
	for i := range 8 {
		out[i] = 0xa6
	}
	copy(out[8:], plaintext)
	wrapBlocks(block, out)
	return out, nil
}
