package crypto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretCopiesAndZeroes(t *testing.T) {
	in := []byte("0123456789abcdef0123456789abcdef")
	s := NewSecret(in)
	in[0] = 'X'
	if s.Bytes()[0] != '0' {
		t.Fatal("NewSecret did not copy its input")
	}
	if s.Len() != 32 {
		t.Fatalf("Len = %d", s.Len())
	}
	if !s.Equal(NewSecret([]byte("0123456789abcdef0123456789abcdef"))) || s.Equal(NewSecret(in)) {
		t.Fatal("Equal wrong")
	}
	s.Zero()
	if !isZero(s.Bytes()) || s.Len() != 32 {
		t.Fatal("Zero did not overwrite the bytes")
	}
	var nilS *Secret
	nilS.Zero()
	if nilS.Bytes() != nil || nilS.Len() != 0 {
		t.Fatal("nil Secret not nil-safe")
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	raw := []byte("SECRETBYTES-0123456789-abcdefghi")
	s := NewSecret(raw)
	type wrapper struct {
		Name string
		S    *Secret
		V    Secret
	}
	w := wrapper{Name: "n", S: s, V: *s}

	var outs []string
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		outs = append(outs, fmt.Sprintf(f, s), fmt.Sprintf(f, *s), fmt.Sprintf(f, w), fmt.Sprintf(f, &w))
	}
	outs = append(outs, s.String(), s.GoString(), fmt.Sprint(s), fmt.Sprintln(*s))
	for _, v := range []any{s, *s, w, &w} {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, string(j))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("m", "s", s, "v", *s, "w", w)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("m", "s", s, "v", *s)
	outs = append(outs, buf.String())

	needles := []string{string(raw), hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)),
		"SECRETBYTES", fmt.Sprint(raw[:4]), "83 69 67"}
	for _, o := range outs {
		for _, n := range needles {
			if strings.Contains(o, n) {
				t.Errorf("output %q reveals secret (%q)", o, n)
			}
		}
		if !strings.Contains(o, "REDACTED") {
			t.Errorf("output %q lacks REDACTED", o)
		}
	}
	if got := fmt.Sprintf("%v|%+v", (*Secret)(nil), wrapper{}); strings.Contains(got, "PANIC") {
		t.Errorf("nil Secret printing panicked: %q", got)
	}
	if got := fmt.Sprintf("%v", s); got != "crypto.Secret(REDACTED)" {
		t.Errorf("%%v = %q", got)
	}
}

func TestRootKeyNeverPrinted(t *testing.T) {
	raw := []byte("ROOTKEYBYTES-0123456789-abcdefgh")
	rk, err := NewRootKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%x"} {
		for _, o := range []string{fmt.Sprintf(f, rk), fmt.Sprintf(f, *rk)} {
			if strings.Contains(o, "ROOTKEY") || strings.Contains(o, hex.EncodeToString(raw)) || !strings.Contains(o, "REDACTED") {
				t.Errorf("%s printed %q", f, o)
			}
		}
	}
	j, _ := json.Marshal(rk)
	if strings.Contains(string(j), "ROOTKEY") {
		t.Errorf("json %s", j)
	}
}
