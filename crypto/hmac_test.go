package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// TestMACKnownAnswers checks GenerateMAC against RFC 4231 test case 2.
func TestMACKnownAnswers(t *testing.T) {
	key := NewSecret([]byte("Jefe"))
	msg := []byte("what do ya want for nothing?")
	tests := []struct {
		alg  MACAlgorithm
		size int
		want string
	}{
		{HMACSHA224, 28, "a30e01098bc6dbbf45690f3a7e9e6d0f8bbea2a39e6148008fd05e44"},
		{HMACSHA256, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{HMACSHA384, 48, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"},
		{HMACSHA512, 64, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
	}
	for _, tc := range tests {
		if tc.alg.Size() != tc.size || tc.alg.KeySize() != tc.size {
			t.Errorf("alg %d: Size %d KeySize %d, want %d", tc.alg, tc.alg.Size(), tc.alg.KeySize(), tc.size)
		}
		mac, err := GenerateMAC(tc.alg, key, msg)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(mac) != tc.want {
			t.Errorf("alg %d: MAC %x, want %s", tc.alg, mac, tc.want)
		}
		ok, err := VerifyMAC(tc.alg, key, msg, mac)
		if err != nil || !ok {
			t.Errorf("alg %d: VerifyMAC of its own MAC = %v, %v", tc.alg, ok, err)
		}
		for _, bad := range [][]byte{nil, mac[:len(mac)-1], append(bytes.Clone(mac), 0)} {
			if ok, err := VerifyMAC(tc.alg, key, msg, bad); ok || err != nil {
				t.Errorf("alg %d: VerifyMAC of a %d-byte MAC = %v, %v", tc.alg, len(bad), ok, err)
			}
		}
		flipped := bytes.Clone(mac)
		flipped[3] ^= 0x10
		if ok, _ := VerifyMAC(tc.alg, key, msg, flipped); ok {
			t.Errorf("alg %d: flipped MAC verified", tc.alg)
		}
		if ok, _ := VerifyMAC(tc.alg, key, []byte("what do ya want for nothing!"), mac); ok {
			t.Errorf("alg %d: MAC verified for another message", tc.alg)
		}
	}
}

func TestMACRejects(t *testing.T) {
	key := NewSecret(make([]byte, 32))
	if _, err := GenerateMAC(MACAlgorithm(0), key, []byte("m")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("unknown algorithm: %v", err)
	}
	if MACAlgorithm(99).Size() != 0 {
		t.Error("unknown algorithm has a size")
	}
	if _, err := GenerateMAC(HMACSHA256, NewSecret(nil), []byte("m")); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("empty key: %v", err)
	}
	for _, n := range []int{0, MaxMACMessageSize + 1} {
		if _, err := GenerateMAC(HMACSHA256, key, make([]byte, n)); err == nil {
			t.Errorf("%d-byte message accepted", n)
		}
	}
	if _, err := GenerateMAC(HMACSHA256, key, make([]byte, MaxMACMessageSize)); err != nil {
		t.Errorf("maximal message: %v", err)
	}
}
