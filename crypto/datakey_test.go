package crypto

import (
	"errors"
	"strings"
	"testing"
)

func TestGenerateDataKey(t *testing.T) {
	for _, n := range []int{1, 16, 32, 1024} {
		s, err := GenerateDataKey(nil, n)
		if err != nil || s.Len() != n {
			t.Fatalf("%d: %v", n, err)
		}
	}
	for _, n := range []int{0, -1, 1025} {
		if _, err := GenerateDataKey(nil, n); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("%d: err = %v", n, err)
		}
	}
	a, _ := GenerateKey(nil)
	b, _ := GenerateKey(nil)
	if a.Len() != KeySize || a.Equal(b) || isZero(a.Bytes()) {
		t.Fatal("GenerateKey")
	}
	if _, err := GenerateKey(strings.NewReader("short")); err == nil {
		t.Fatal("failing randomness accepted")
	}
}

func TestKeyIDFormat(t *testing.T) {
	id := [16]byte{0x12, 0x34, 0xab, 0xcd, 0x12, 0xab, 0x34, 0xcd, 0x56, 0xef, 0x12, 0x34, 0x56, 0x78, 0x90, 0xab}
	tests := []struct {
		s   string
		mrk bool
	}{
		{"1234abcd-12ab-34cd-56ef-1234567890ab", false},
		{"mrk-1234abcd12ab34cd56ef1234567890ab", true},
	}
	for _, tc := range tests {
		if got := FormatKeyID(id, tc.mrk); got != tc.s {
			t.Errorf("FormatKeyID = %q want %q", got, tc.s)
		}
		gid, mrk, err := ParseKeyID(tc.s)
		if err != nil || gid != id || mrk != tc.mrk {
			t.Errorf("ParseKeyID(%q) = %x %v %v", tc.s, gid, mrk, err)
		}
	}
	for _, bad := range []string{
		"", "1234ABCD-12ab-34cd-56ef-1234567890ab", "1234abcd12ab34cd56ef1234567890ab",
		"1234abcd-12ab-34cd-56ef-1234567890a", "1234abcd-12ab-34cd-56ef_1234567890ab",
		"1234abcg-12ab-34cd-56ef-1234567890ab", "mrk-1234abcd-12ab-34cd-56ef-1234567890ab",
		"MRK-1234abcd12ab34cd56ef1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890aB",
		"alias/foo", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"+234abcd-12ab-34cd-56ef-1234567890ab",
	} {
		if _, _, err := ParseKeyID(bad); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("ParseKeyID(%q) accepted", bad)
		}
	}
}

// ParseKeyID runs on every request naming a key: a success must not
// allocate (it used to build its error up front).
func TestParseKeyIDDoesNotAllocate(t *testing.T) {
	for _, s := range []string{"1234abcd-12ab-34cd-56ef-1234567890ab", "mrk-1234abcd12ab34cd56ef1234567890ab"} {
		if n := testing.AllocsPerRun(100, func() {
			if _, _, err := ParseKeyID(s); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("ParseKeyID(%q): %v allocations per call, want 0", s, n)
		}
	}
}
