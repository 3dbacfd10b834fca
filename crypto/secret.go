package crypto

import (
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
)

const redacted = "crypto.Secret(REDACTED)"

// Secret holds secret key bytes. NewSecret copies its input; Bytes is the one
// accessor for the raw bytes, so that every use is greppable; Zero overwrites
// them. A Secret never reveals its bytes through fmt (any verb), encoding/json,
// encoding.TextMarshaler or log/slog: all print "crypto.Secret(REDACTED)".
//
// A Secret is not synchronized: do not Zero it while another goroutine uses it.
type Secret struct {
	b []byte
}

// NewSecret returns a Secret holding a copy of b. The caller may (and should)
// clear b afterwards.
func NewSecret(b []byte) *Secret {
	c := make([]byte, len(b))
	copy(c, b)
	return &Secret{b: c}
}

// Bytes returns the secret bytes themselves, not a copy. The caller must not
// modify or retain them beyond the Secret's lifetime. Nil-safe.
func (s *Secret) Bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Len returns the number of secret bytes. Nil-safe.
func (s *Secret) Len() int {
	if s == nil {
		return 0
	}
	return len(s.b)
}

// Zero overwrites the secret bytes with zeros. The length is unchanged.
// Nil-safe.
func (s *Secret) Zero() {
	if s == nil {
		return
	}
	clear(s.b)
}

// Equal reports, in constant time for equal lengths, whether s and o hold the
// same bytes.
func (s *Secret) Equal(o *Secret) bool {
	return subtle.ConstantTimeCompare(s.Bytes(), o.Bytes()) == 1
}

// The redaction methods use value receivers so that both Secret and *Secret
// (and structs embedding either) are covered.

// String returns "crypto.Secret(REDACTED)".
func (Secret) String() string { return redacted }

// GoString returns "crypto.Secret(REDACTED)" (the %#v form).
func (Secret) GoString() string { return redacted }

// Format prints "crypto.Secret(REDACTED)" for every fmt verb, including %x,
// %v, %+v and %#v.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalJSON returns the JSON string "crypto.Secret(REDACTED)".
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "crypto.Secret(REDACTED)".
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue makes log/slog print "crypto.Secret(REDACTED)".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }
