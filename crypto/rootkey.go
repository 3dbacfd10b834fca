package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
)

// RootKey is a region root key (KeySize bytes). It wraps domain keys, through
// a key derived from it with HKDF-SHA256, and derives purpose-specific
// secrets. It never reveals its bytes when printed.
type RootKey struct {
	root    *Secret // the operator's 32 bytes
	wrapKey *Secret // HKDF(root, info=labelRootWrapKey): the domain key KEK
}

// NewRootKey returns a root key holding a copy of b, which must be KeySize
// bytes.
func NewRootKey(b []byte) (*RootKey, error) {
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: root key must be %d bytes, got %d", ErrInvalidKey, KeySize, len(b))
	}
	root := NewSecret(b)
	wk := mustHKDF(root.Bytes(), nil, labelRootWrapKey, KeySize)
	return &RootKey{root: root, wrapKey: &Secret{b: wk}}, nil
}

// ParseRootKey parses the root key file form: one line of standard, padded
// base64 encoding exactly KeySize bytes. Whitespace around the line is
// ignored; whitespace inside it is not. Errors wrap ErrInvalidKey and never
// quote the file's contents.
func ParseRootKey(fileContents []byte) (*RootKey, error) {
	line := bytes.TrimSpace(fileContents)
	if bytes.ContainsAny(line, " \t\r\n\v\f") {
		return nil, fmt.Errorf("%w: root key file must be one line of base64", ErrInvalidKey)
	}
	if base64.StdEncoding.DecodedLen(len(line)) > KeySize+2 {
		return nil, fmt.Errorf("%w: root key file must hold base64 of %d bytes", ErrInvalidKey, KeySize)
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(line)))
	defer clear(buf)
	n, err := base64.StdEncoding.Strict().Decode(buf, line)
	if err != nil {
		return nil, fmt.Errorf("%w: root key file is not valid base64", ErrInvalidKey)
	}
	if n != KeySize {
		return nil, fmt.Errorf("%w: root key must be %d bytes, got %d", ErrInvalidKey, KeySize, n)
	}
	return NewRootKey(buf[:n])
}

// GenerateRootKeyFile returns the contents of a new root key file: the
// standard base64 of KeySize random bytes and a newline. rand nil means
// crypto/rand. The caller writes it with mode 0600.
func GenerateRootKeyFile(rand io.Reader) ([]byte, error) {
	k := make([]byte, KeySize)
	defer clear(k)
	if err := readRandom(rand, k); err != nil {
		return nil, err
	}
	out := make([]byte, base64.StdEncoding.EncodedLen(KeySize)+1)
	base64.StdEncoding.Encode(out, k)
	out[len(out)-1] = '\n'
	return out, nil
}

// domainKeyAAD binds a wrapped domain key to its id.
func domainKeyAAD(domainKeyID string) []byte {
	aad := make([]byte, 0, 8+len(labelDomainKeyWrap)+len(domainKeyID))
	aad = appendLP(aad, labelDomainKeyWrap)
	aad = appendLP(aad, domainKeyID)
	return aad
}

// WrapDomainKey wraps the domain key dk (KeySize bytes) for storage. The AAD
// binds a domain-separation label and domainKeyID, so the result unwraps only
// under this root key and the same id. rand nil means crypto/rand. Result
// size: KeySize + 29 bytes.
func (r *RootKey) WrapDomainKey(rand io.Reader, domainKeyID string, dk *Secret) ([]byte, error) {
	if dk.Len() != KeySize {
		return nil, fmt.Errorf("%w: domain key must be %d bytes", ErrInvalidKey, KeySize)
	}
	return wrapSecret(rand, r.wrapKey.Bytes(), domainKeyAAD(domainKeyID), dk.Bytes())
}

// UnwrapDomainKey reverses WrapDomainKey. Any failure (malformed, another
// root key, another id, tampering) wraps ErrUnwrap.
func (r *RootKey) UnwrapDomainKey(domainKeyID string, wrapped []byte) (*Secret, error) {
	s, err := unwrapSecret(r.wrapKey.Bytes(), domainKeyAAD(domainKeyID), wrapped)
	if err != nil {
		return nil, err
	}
	if s.Len() != KeySize {
		s.Zero()
		return nil, fmt.Errorf("%w: unwrapped domain key has the wrong size", ErrUnwrap)
	}
	return s, nil
}

// DeriveSecret derives a KeySize-byte secret for one purpose from the root
// key: HKDF-SHA256 with no salt and info = "kmsd/v1/derived-secret/" + label.
// Different labels give independent secrets, none equal to the domain key
// wrapping key. Every node holding the same root key derives the same secret.
func (r *RootKey) DeriveSecret(label string) *Secret {
	return &Secret{b: mustHKDF(r.root.Bytes(), nil, labelDeriveSecret+label, KeySize)}
}

// Zero overwrites the root key and its derived wrapping key. The RootKey is
// unusable afterwards.
func (r *RootKey) Zero() {
	r.root.Zero()
	r.wrapKey.Zero()
}

// String returns "crypto.RootKey(REDACTED)".
func (RootKey) String() string { return "crypto.RootKey(REDACTED)" }

// GoString returns "crypto.RootKey(REDACTED)".
func (RootKey) GoString() string { return "crypto.RootKey(REDACTED)" }

// Format prints "crypto.RootKey(REDACTED)" for every verb.
func (RootKey) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "crypto.RootKey(REDACTED)") }

// mustHKDF is HKDF-SHA256. hkdf.Key fails only for output lengths above
// 255*32 bytes (or below 112 bits in FIPS-only mode), which our callers never
// ask for.
func mustHKDF(secret, salt []byte, info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, secret, salt, info, n)
	if err != nil {
		panic("crypto: hkdf: " + err.Error())
	}
	return k
}
