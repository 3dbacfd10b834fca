package crypto

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// Known-answer vectors (checked against an independent implementation of
// the formats with Python's cryptography package). Blobs, wrapped keys and derived secrets are stored
// durably and exchanged between nodes and kmsd versions: if this test fails,
// a format, label or derivation changed and every stored key and ciphertext
// would become unreadable. Do not "fix" the vectors; fix the change.
func TestKnownAnswers(t *testing.T) {
	rootBytes := bytes.Repeat([]byte{0x01}, 32)
	rk, err := NewRootKey(rootBytes)
	if err != nil {
		t.Fatal(err)
	}
	dk := NewSecret(bytes.Repeat([]byte{0x02}, 32))
	mat := NewSecret(bytes.Repeat([]byte{0x03}, 32))
	var kid, ver [16]byte
	for i := range 16 {
		kid[i], ver[i] = byte(i), byte(0xF0+i)
	}
	const arn = "arn:aws:kms:us-east-1:111122223333:key/00010203-0405-0607-0809-0a0b0c0d0e0f"

	wdk, err := rk.WrapDomainKey(&detReader{seed: "dk"}, "dk-1", dk)
	if err != nil {
		t.Fatal(err)
	}
	wmat, err := WrapKeyMaterial(&detReader{seed: "mat"}, dk, "dk-1", arn, ver, mat)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := Seal(&detReader{seed: "blob"}, mat, Header{Version: 1, MultiRegion: true, KeyID: kid, VersionID: ver},
		map[string]string{"a": "bc", "purpose": "kat"}, []byte("known answer"))
	if err != nil {
		t.Fatal(err)
	}
	// Format 2 (the default): the same inputs, the message key derived with
	// AES-CMAC. Checked against Python's cryptography (HKDF, CMAC, AESGCM).
	blob2, err := Seal(&detReader{seed: "blob"}, mat, Header{MultiRegion: true, KeyID: kid, VersionID: ver},
		map[string]string{"a": "bc", "purpose": "kat"}, []byte("known answer"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{
		"derived":       hex.EncodeToString(rk.DeriveSecret("node-auth").Bytes()),
		"wrapped dk":    hex.EncodeToString(wdk),
		"wrapped mat":   hex.EncodeToString(wmat),
		"blob":          hex.EncodeToString(blob),
		"blob v2":       hex.EncodeToString(blob2),
		"root key file": func() string { f, _ := GenerateRootKeyFile(&detReader{seed: "rk"}); return string(f) }(),
	}
	want := map[string]string{
		"derived":       "f12a7b68f1d760e9e1c45297d16e0becc618cf3ba2ba52cb835d12a42456adcb",
		"wrapped dk":    "0147cde668907ccd4d02be3d1ddc9474491d182cca3df582c9fb4b77aecef2cd6f467713199136e94bbc5f8e786c894670b291e88d1e729186c8223fb0",
		"wrapped mat":   "01a7be05d09714e3b14a161b4f542b42c0c17ca418a6894152ed62514e060d6d3c792f9c77d90bcf22c9b44321c364be2813e8006ffaa422b73890a089",
		"blob":          "4b440101000102030405060708090a0b0c0d0e0ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff666bc2d24fe8f2c086a0a07daebe5e1118e13325619391d67300db67425ba2e4852bef7afdf2c999501f580df31ab15d2d4f3aa07945e2c3",
		"blob v2":       "4b440201000102030405060708090a0b0c0d0e0ff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff666bc2d24fe8f2c086a0a07daebe5e1118e13325619391d67300db675b5027fc98427a46bf50a4c17d67bbe88af7452db7b422a2d57d8559",
		"root key file": "fVN3t0pYPd6S25d84wttwYEO9al7wJWU07fK5uaaW8Q=\n",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s:\n got  %q\n want %q", k, got[k], w)
		}
	}

	// And the vectors decode.
	if s, err := rk.UnwrapDomainKey("dk-1", wdk); err != nil || !s.Equal(dk) {
		t.Errorf("unwrap dk: %v", err)
	}
	if s, err := UnwrapKeyMaterial(dk, "dk-1", arn, ver, wmat); err != nil || !s.Equal(mat) {
		t.Errorf("unwrap material: %v", err)
	}
	for _, b := range [][]byte{blob, blob2} {
		p, err := ParseBlob(b)
		if err != nil {
			t.Fatal(err)
		}
		if pt, err := Open(mat, p, map[string]string{"purpose": "kat", "a": "bc"}); err != nil || string(pt) != "known answer" {
			t.Errorf("open format %d: %v", b[2], err)
		}
		if !bytes.Equal(p.Encode(), b) {
			t.Errorf("format %d: parse then encode is not byte-identical", b[2])
		}
	}
}
