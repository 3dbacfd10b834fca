package crypto

import (
	"bytes"
	"encoding/hex"
	"maps"
	"testing"
)

func TestEncodeEncryptionContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  map[string]string
		hex  string
	}{
		{"nil", nil, "00000000"},
		{"empty", map[string]string{}, "00000000"},
		{"one", map[string]string{"a": "bc"}, "00000001" + "00000001" + "61" + "00000002" + "6263"},
		{"sorted bytewise", map[string]string{"b": "", "B": "x", "ä": "1"},
			"00000003" + "00000001" + "42" + "00000001" + "78" + "00000001" + "62" + "00000000" + "00000002" + "c3a4" + "00000001" + "31"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := EncodeEncryptionContext(tc.ctx)
			if hex.EncodeToString(got) != tc.hex {
				t.Fatalf("got %x want %s", got, tc.hex)
			}
			back, err := DecodeEncryptionContext(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(back) != len(tc.ctx) || !maps.Equal(back, tc.ctx) {
				t.Fatalf("round trip %v != %v", back, tc.ctx)
			}
		})
	}
}

func TestEncryptionContextUnambiguous(t *testing.T) {
	distinct := []map[string]string{
		nil,
		{"ab": "c"},
		{"a": "bc"},
		{"abc": ""},
		{"": "abc"},
		{"a": "b", "c": ""},
		{"a": "", "b": "c"},
		{"a": "b\x00\x00\x00\x01c"},
		{"a": "b", "\x00\x00\x00\x01c": ""},
	}
	seen := map[string]int{}
	for i, m := range distinct {
		e := string(EncodeEncryptionContext(m))
		if j, ok := seen[e]; ok {
			t.Errorf("maps %d %v and %d %v encode identically", i, m, j, distinct[j])
		}
		seen[e] = i
	}
	// Deterministic regardless of map iteration order.
	m := map[string]string{}
	for i := range 50 {
		m[string(rune('a'+i%26))+string(rune('A'+i))] = "v"
	}
	first := EncodeEncryptionContext(m)
	for range 20 {
		if !bytes.Equal(first, EncodeEncryptionContext(maps.Clone(m))) {
			t.Fatal("encoding not deterministic")
		}
	}
}

func TestDecodeEncryptionContextRejects(t *testing.T) {
	tests := map[string]string{
		"empty":             "",
		"short count":       "000000",
		"count too big":     "00000001",
		"huge count":        "ffffffff" + "0000000000000000",
		"truncated key len": "00000001" + "000000",
		"key past end":      "00000001" + "00000005" + "61",
		"missing value":     "00000001" + "00000001" + "61",
		"value past end":    "00000001" + "00000001" + "61" + "00000002" + "62",
		"trailing":          "00000000" + "00",
		"trailing pair":     "00000001" + "00000001" + "61" + "00000000" + "00000001" + "62" + "00000000",
		"duplicate key":     "00000002" + "00000001" + "61" + "00000000" + "00000001" + "61" + "00000000",
		"unsorted":          "00000002" + "00000001" + "62" + "00000000" + "00000001" + "61" + "00000000",
		"huge key length":   "00000001" + "ffffffff" + "61" + "00000000",
	}
	for name, h := range tests {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatal(name, err)
		}
		if m, err := DecodeEncryptionContext(b); err == nil {
			t.Errorf("%s: accepted as %v", name, m)
		}
	}
}
