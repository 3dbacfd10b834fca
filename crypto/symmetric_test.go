package crypto

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

func TestSymmetricKeySealOpenBothFormats(t *testing.T) {
	mat := randBytes(t, KeySize)
	kid, vid := randID(t), randID(t)
	k, err := NewSymmetricKey(mat, kid, vid)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Release()
	ctx := map[string]string{"tenant": "a", "purpose": "test"}
	for _, version := range []byte{0, 1, 2} {
		blob, err := k.AppendSeal([]byte("prefix"), nil, Header{Version: version}, ctx, []byte("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if string(blob[:6]) != "prefix" {
			t.Fatalf("AppendSeal did not append: %q", blob[:6])
		}
		blob = blob[6:]
		want := version
		if want == 0 {
			want = BlobVersion
		}
		if blob[2] != want {
			t.Fatalf("version %d: blob format %d", version, blob[2])
		}
		p, err := ParseBlob(blob)
		if err != nil {
			t.Fatal(err)
		}
		if p.KeyID != kid || p.VersionID != vid {
			t.Fatal("AppendSeal did not write the key's ids")
		}
		if pt, err := k.Open(p, ctx); err != nil || string(pt) != "hello" {
			t.Fatalf("version %d: open: %q %v", version, pt, err)
		}
		// The material-based Open and a fresh key agree.
		if pt, err := Open(NewSecret(mat), p, ctx); err != nil || string(pt) != "hello" {
			t.Fatalf("version %d: Open(material): %q %v", version, pt, err)
		}
		// Flipping the format byte changes the derivation and the AAD.
		other := bytes.Clone(blob)
		other[2] = 3 - want
		po, err := ParseBlob(other)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := k.Open(po, ctx); !errors.Is(err, ErrInvalidCiphertext) {
			t.Fatalf("version %d read as %d: %v", want, other[2], err)
		}
		if _, err := k.Open(p, map[string]string{"tenant": "b", "purpose": "test"}); !errors.Is(err, ErrInvalidCiphertext) {
			t.Fatalf("wrong context: %v", err)
		}
	}
}

func TestSymmetricKeyRejects(t *testing.T) {
	mat := randBytes(t, KeySize)
	kid, vid := randID(t), randID(t)
	if _, err := NewSymmetricKey(mat[:16], kid, vid); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("short material: %v", err)
	}
	k, err := NewSymmetricKey(mat, kid, vid)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := k.AppendSeal(nil, nil, Header{}, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParseBlob(blob)

	// Another version of the same key, and another key with the same
	// version id: refused before any cipher work.
	for name, h := range map[string]Header{"version": {KeyID: kid, VersionID: randID(t)}, "key": {KeyID: randID(t), VersionID: vid}} {
		other, err := NewSymmetricKey(mat, h.KeyID, h.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := other.Open(p, nil); !errors.Is(err, ErrInvalidCiphertext) {
			t.Errorf("another %s opened the blob: %v", name, err)
		}
		other.Release()
	}
	// The same material under other ids derives another key: a blob whose
	// header ids are rewritten does not open.
	q := *p
	q.KeyID[0] ^= 1
	if _, err := Open(NewSecret(mat), &q, nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("rewritten key id opened: %v", err)
	}
	if _, err := k.Open(&Blob{Header: p.Header, Sealed: p.Sealed[:TagSize-1]}, nil); !errors.Is(err, ErrInvalidCiphertext) {
		t.Errorf("short sealed part: %v", err)
	}

	k.Release()
	if !isZero(k.material.Bytes()) || !isZero(k.pre[0][:]) || !isZero(k.pre[1][:]) {
		t.Fatal("last Release did not zero the key")
	}
	if _, err := k.AppendSeal(nil, nil, Header{}, nil, []byte("x")); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("seal after release: %v", err)
	}
	if _, err := k.Open(p, nil); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("open after release: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Release did not panic")
		}
	}()
	k.Release()
}

// The derivation gives distinct keys for distinct salts and differs from
// format 1's for the same salt.
func TestDeriveMessageKeyV2(t *testing.T) {
	mat := randBytes(t, KeySize)
	kid, vid := randID(t), randID(t)
	k, err := NewSymmetricKey(mat, kid, vid)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Release()
	seen := map[[KeySize]byte]bool{}
	var salt [SaltSize]byte
	for i := range 1000 {
		salt[i%SaltSize] ^= byte(i)
		salt[(i+1)%SaltSize]++
		var mk [KeySize]byte
		k.deriveMessageKeyV2(&salt, &mk)
		if seen[mk] {
			t.Fatalf("message key repeated at %d", i)
		}
		seen[mk] = true
		if bytes.Equal(mk[:16], mk[16:]) {
			t.Fatal("the two halves are equal")
		}
		if bytes.Equal(mk[:], deriveMessageKey(mat, &kid, &vid, &salt)) {
			t.Fatal("format 2 derived format 1's key")
		}
	}
}

func TestMaterialCacheSymmetric(t *testing.T) {
	c := NewMaterialCache(2)
	loads := 0
	mats := map[[16]byte][]byte{}
	loader := func(vid [16]byte) func() (*Secret, error) {
		return func() (*Secret, error) {
			loads++
			if _, ok := mats[vid]; !ok {
				mats[vid] = randBytes(t, KeySize)
			}
			return NewSecret(mats[vid]), nil
		}
	}
	kid := randID(t)
	v1, v2, v3 := randID(t), randID(t), randID(t)
	a, err := c.Symmetric(kid, v1, loader(v1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Symmetric(kid, v1, loader(v1))
	if err != nil {
		t.Fatal(err)
	}
	if a != b || loads != 1 {
		t.Fatalf("second Symmetric: same=%v loads=%d", a == b, loads)
	}
	blob, err := a.AppendSeal(nil, nil, Header{}, nil, []byte("kept"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ParseBlob(blob)
	// Evict v1 while a and b are held: still usable until released.
	for _, v := range [][16]byte{v2, v3} {
		k, err := c.Symmetric(kid, v, loader(v))
		if err != nil {
			t.Fatal(err)
		}
		k.Release()
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d", c.Len())
	}
	if pt, err := b.Open(p, nil); err != nil || string(pt) != "kept" {
		t.Fatalf("evicted key held by a caller: %q %v", pt, err)
	}
	a.Release()
	if !b.live() {
		t.Fatal("released while still held")
	}
	b.Release()
	if b.live() || !isZero(b.material.Bytes()) {
		t.Fatal("an evicted key not zeroed after its last release")
	}
	// Purge drops the cache's references; held keys survive until released.
	k3, err := c.Symmetric(kid, v3, loader(v3))
	if err != nil {
		t.Fatal(err)
	}
	c.Purge()
	if !k3.live() {
		t.Fatal("Purge zeroed a key a caller holds")
	}
	k3.Release()
	if k3.live() {
		t.Fatal("purged key not zeroed after its last release")
	}
	// A loader error is returned and nothing is cached.
	boom := errors.New("boom")
	if _, err := c.Symmetric(kid, v1, func() (*Secret, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("loader error: %v", err)
	}
	if c.Len() != 0 {
		t.Fatalf("Len after failed load = %d", c.Len())
	}
}

// Concurrent Symmetric, Seal, Open and evictions (run with -race): every
// blob opens, and no key is zeroed while in use.
func TestMaterialCacheSymmetricConcurrent(t *testing.T) {
	c := NewMaterialCache(3)
	kid := randID(t)
	var vids [8][16]byte
	mats := map[[16]byte][]byte{}
	for i := range vids {
		vids[i] = randID(t)
		mats[vids[i]] = randBytes(t, KeySize)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				vid := vids[(g+i)%len(vids)]
				k, err := c.Symmetric(kid, vid, func() (*Secret, error) { return NewSecret(mats[vid]), nil })
				if err != nil {
					t.Error(err)
					return
				}
				blob, err := k.AppendSeal(nil, nil, Header{}, nil, []byte{byte(i)})
				if err == nil {
					var p *Blob
					if p, err = ParseBlob(blob); err == nil {
						var pt []byte
						if pt, err = k.Open(p, nil); err == nil && (len(pt) != 1 || pt[0] != byte(i)) {
							err = errors.New("wrong plaintext")
						}
					}
				}
				k.Release()
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A version id asked for under another key id never gets the cached key of
// the first (its blobs would name the wrong key).
func TestMaterialCacheSymmetricKeyIDMismatch(t *testing.T) {
	c := NewMaterialCache(4)
	mat := randBytes(t, KeySize)
	load := func() (*Secret, error) { return NewSecret(mat), nil }
	a, b, vid := randID(t), randID(t), randID(t)
	ka, err := c.Symmetric(a, vid, load)
	if err != nil {
		t.Fatal(err)
	}
	defer ka.Release()
	kb, err := c.Symmetric(b, vid, load)
	if err != nil {
		t.Fatal(err)
	}
	defer kb.Release()
	if ka == kb || kb.keyID != b {
		t.Fatal("key b got key a's cached version")
	}
	blob, err := kb.AppendSeal(nil, nil, Header{}, nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := ParseBlob(blob); p.KeyID != b {
		t.Fatal("blob names the wrong key")
	}
}
