package jsontext

import (
	"encoding/json"
	"testing"
)

// AppendString writes every byte, and every string of them, as
// json.Marshal does.
func TestAppendStringEveryByte(t *testing.T) {
	for c := range 256 {
		for _, s := range []string{string([]byte{byte(c)}), "ab" + string([]byte{byte(c)}) + "cd", "\xe2\x82" + string([]byte{byte(c)})} {
			want, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			if got := AppendString([]byte("x"), s); string(got) != "x"+string(want) {
				t.Fatalf("byte %#x: %q, want x%s", c, got, want)
			}
		}
	}
}
