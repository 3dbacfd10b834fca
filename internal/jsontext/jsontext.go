// Package jsontext writes JSON text as encoding/json writes it, without
// reflection, for the encoders of the request path (api's batch output
// and audit bodies, audit's records): one implementation, checked against
// encoding/json byte by byte.
package jsontext

import "encoding/json"

// plain[c] is true for the bytes encoding/json writes unchanged inside a
// string: printable ASCII but the quote, the backslash and the HTML
// characters it escapes.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendString appends s as encoding/json writes a string (HTML characters
// escaped, invalid UTF-8 replaced): as it is, quoted, when no byte needs
// escaping (one table load per byte), else through encoding/json.
func AppendString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			b, _ := json.Marshal(s) // a string always marshals
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}
