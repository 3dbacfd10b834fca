package crypto

import (
	"bytes"
	"errors"
	"maps"
	"testing"
)

// fuzzMaterial is fixed material so FuzzParseBlob can also drive Open.
var fuzzMaterial = NewSecret(bytes.Repeat([]byte{0x5A}, KeySize))

func FuzzParseBlob(f *testing.F) {
	seal := func(mrk bool, ctx map[string]string, pt string) []byte {
		h := Header{MultiRegion: mrk, KeyID: [16]byte{1, 2, 3}, VersionID: [16]byte{4, 5, 6}}
		b, err := Seal(&detReader{seed: pt}, fuzzMaterial, h, ctx, []byte(pt))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	good := seal(false, nil, "hello, fuzzer")
	f.Add(good)
	f.Add(seal(true, nil, ""))
	f.Add(seal(false, map[string]string{"a": "b"}, "with context"))
	f.Add(seal(true, nil, string(bytes.Repeat([]byte{0xAB}, 300))))
	f.Add([]byte{})
	f.Add([]byte("KD"))
	f.Add([]byte("KD\x01\x00"))
	f.Add(good[:HeaderSize])
	f.Add(good[:MinBlobSize-1])
	f.Add(append([]byte("KD\x02\x00"), good[4:]...))
	f.Add(append([]byte("KD\x03\x00"), good[4:]...))
	// Format 1 (HKDF), still opened.
	v1 := Header{Version: 1, KeyID: [16]byte{1, 2, 3}, VersionID: [16]byte{4, 5, 6}}
	if b, err := Seal(&detReader{seed: "v1"}, fuzzMaterial, v1, map[string]string{"a": "b"}, []byte("format one")); err == nil {
		f.Add(b)
	} else {
		f.Fatal(err)
	}
	f.Add(append([]byte("KD\x01\x02"), good[4:]...))
	f.Add(append([]byte("KD\x01\xff"), good[4:]...))
	f.Add(append([]byte("DK\x01\x00"), good[4:]...))

	f.Fuzz(func(t *testing.T, in []byte) {
		blob, err := ParseBlob(in)
		if err != nil {
			if !errors.Is(err, ErrInvalidCiphertext) || blob != nil {
				t.Fatalf("ParseBlob error %v does not wrap ErrInvalidCiphertext", err)
			}
			return
		}
		if out := blob.Encode(); !bytes.Equal(out, in) {
			t.Fatalf("Encode not byte-identical:\n in  %x\n out %x", in, out)
		}
		if h := blob.Header.Encode(); !bytes.Equal(h, in[:HeaderSize]) {
			t.Fatalf("Header.Encode is not the input's header")
		}
		if len(blob.Sealed) > 0 && &blob.Sealed[0] == &in[HeaderSize] {
			t.Fatal("Sealed aliases the input")
		}
		// Open must never panic; on any input it fails with
		// ErrInvalidCiphertext unless it is an authentic blob.
		if _, err := Open(fuzzMaterial, blob, nil); err != nil && !errors.Is(err, ErrInvalidCiphertext) {
			t.Fatalf("Open error %v does not wrap ErrInvalidCiphertext", err)
		}
	})
}

func FuzzEncryptionContext(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0}, "ab", "c", "a", "bc")
	f.Add(EncodeEncryptionContext(map[string]string{"a": "bc", "purpose": "test"}), "", "", "k", "v")
	f.Add(EncodeEncryptionContext(map[string]string{"": "", "\x00": "\xff"}), "x", "", "x", "y")
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 1, 'a', 0, 0, 0, 0}, "k\x00v", "\x00\x00\x00\x01", "ä", "\xff\xfe")
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, "a", "b", "b", "a")
	f.Add([]byte{0, 0, 0, 2, 0, 0, 0, 1, 'b', 0, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0}, "", "", "", "")
	f.Add([]byte("k1\x00v1\x00k2\x00v2\x00k3"), "x", "1", "y", "2")

	f.Fuzz(func(t *testing.T, data []byte, k1, v1, k2, v2 string) {
		// 1. Decoding arbitrary bytes: if accepted, re-encoding is identical.
		if m, err := DecodeEncryptionContext(data); err == nil {
			if out := EncodeEncryptionContext(m); !bytes.Equal(out, data) {
				t.Fatalf("decode/encode not byte-identical:\n in  %x\n out %x", data, out)
			}
		}

		// 2. Maps built from the input survive encode -> decode.
		m := map[string]string{k1: v1, k2: v2}
		parts := bytes.Split(data, []byte{0})
		for i := 0; i+1 < len(parts) && i < 64; i += 2 {
			m[string(parts[i])] = string(parts[i+1])
		}
		enc := EncodeEncryptionContext(m)
		if app := appendEncryptionContext([]byte("prefix"), m); !bytes.Equal(app[6:], enc) || string(app[:6]) != "prefix" {
			t.Fatalf("appendEncryptionContext differs from EncodeEncryptionContext:\n %x\n %x", app, enc)
		}
		back, err := DecodeEncryptionContext(enc)
		if err != nil {
			t.Fatalf("decoding an encoding failed: %v", err)
		}
		if !maps.Equal(back, m) {
			t.Fatalf("round trip changed the map: %q -> %q", m, back)
		}

		// 3. Injectivity on a classic ambiguity: moving bytes between a key
		// and its value changes the encoding.
		a := EncodeEncryptionContext(map[string]string{k1 + v1: ""})
		b := EncodeEncryptionContext(map[string]string{k1: v1})
		if v1 != "" && bytes.Equal(a, b) {
			t.Fatal("ambiguous encoding")
		}
	})
}
