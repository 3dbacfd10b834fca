package crypto

import (
	"container/list"
	"fmt"
	"sync"
)

// MaterialCache is a bounded LRU cache of unwrapped key material, keyed by
// key version id, and of symmetric key versions prepared for Seal and Open
// (SymmetricKey: the cached derivation cipher). It is safe for concurrent
// use.
//
// The cache owns the secrets it stores and zeroes them when they are evicted
// or purged. Get therefore hands out a copy, which stays valid whatever the
// cache does next; the caller owns the copy and may Zero it when done. (Handing
// out the cached Secret itself would let an eviction in another goroutine zero
// material in the middle of a Seal, silently encrypting under a zero key.)
type MaterialCache struct {
	mu       sync.Mutex
	capacity int
	ll       *list.List // of *cacheEntry, most recently used at the front
	items    map[[16]byte]*list.Element
}

type cacheEntry struct {
	versionID [16]byte
	secret    *Secret
	// sym is the version prepared for Seal and Open, built by the first
	// Symmetric call; the cache holds one reference to it.
	sym *SymmetricKey
}

// NewMaterialCache returns a cache holding at most capacity entries. A
// capacity below 1 disables caching: every Get calls its loader.
func NewMaterialCache(capacity int) *MaterialCache {
	return &MaterialCache{
		capacity: capacity,
		ll:       list.New(),
		items:    make(map[[16]byte]*list.Element),
	}
}

// Get returns a copy of the material of versionID, calling load on a miss.
// load runs without the cache's lock held; concurrent misses of the same
// version may each call it (the first stored result wins, later ones are
// zeroed). The cache takes ownership of the Secret load returns. Errors from
// load are returned unchanged and not cached.
func (c *MaterialCache) Get(versionID [16]byte, load func() (*Secret, error)) (*Secret, error) {
	if s, ok := c.lookup(versionID); ok {
		return s, nil
	}
	loaded, err := load()
	if err != nil {
		return nil, err
	}
	if loaded == nil {
		return nil, fmt.Errorf("%w: material loader returned nil", ErrInvalidKey)
	}
	if c.capacity < 1 {
		return loaded, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[versionID]; ok {
		// Another goroutine stored it meanwhile: keep theirs.
		if e.Value.(*cacheEntry).secret != loaded {
			loaded.Zero()
		}
		c.ll.MoveToFront(e)
		return NewSecret(e.Value.(*cacheEntry).secret.Bytes()), nil
	}
	c.items[versionID] = c.ll.PushFront(&cacheEntry{versionID: versionID, secret: loaded})
	for c.ll.Len() > c.capacity {
		c.removeElement(c.ll.Back())
	}
	return NewSecret(loaded.Bytes()), nil
}

// Symmetric returns the symmetric key version versionID of key keyID ready
// for Seal and Open, calling load for its material on a miss (as Get does).
// The key is built once per cached version and shared: the caller holds one
// reference and must Release it; an eviction meanwhile only drops the
// cache's reference, so the key stays usable until the caller's Release.
func (c *MaterialCache) Symmetric(keyID, versionID [16]byte, load func() (*Secret, error)) (*SymmetricKey, error) {
	c.mu.Lock()
	if e, ok := c.items[versionID]; ok {
		// Version ids are unique across keys; a key id that differs would
		// be a caller bug, answered with an uncached key below rather than
		// with another key's.
		if k := e.Value.(*cacheEntry).sym; k != nil && k.keyID == keyID {
			c.ll.MoveToFront(e)
			k.Acquire()
			c.mu.Unlock()
			return k, nil
		}
	}
	c.mu.Unlock()
	m, err := c.Get(versionID, load)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	k, err := NewSymmetricKey(m.Bytes(), keyID, versionID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[versionID]; ok {
		ent := e.Value.(*cacheEntry)
		if ent.sym != nil && ent.sym.keyID != keyID {
			return k, nil // see above: the caller holds the only reference
		}
		if ent.sym == nil {
			ent.sym = k // the cache keeps the reference k was built with
			k.Acquire() // and the caller gets one
			return k, nil
		}
		// Another goroutine built it meanwhile: use theirs.
		k.Release()
		theirs := ent.sym
		theirs.Acquire()
		return theirs, nil
	}
	// Not cached (capacity below 1, or already evicted): the caller holds
	// the only reference.
	return k, nil
}

// lookup returns a copy of a cached secret and marks it recently used.
func (c *MaterialCache) lookup(versionID [16]byte) (*Secret, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[versionID]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(e)
	return NewSecret(e.Value.(*cacheEntry).secret.Bytes()), true
}

// Remove drops and zeroes the material of one version, if cached.
func (c *MaterialCache) Remove(versionID [16]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[versionID]; ok {
		c.removeElement(e)
	}
}

// Len returns the number of cached versions.
func (c *MaterialCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}

// Purge zeroes and drops everything in the cache. Copies already returned by
// Get are not affected.
func (c *MaterialCache) Purge() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for e := c.ll.Front(); e != nil; e = e.Next() {
		e.Value.(*cacheEntry).drop()
	}
	c.ll.Init()
	clear(c.items)
}

// removeElement zeroes and unlinks e. c.mu must be held.
func (c *MaterialCache) removeElement(e *list.Element) {
	ent := c.ll.Remove(e).(*cacheEntry)
	delete(c.items, ent.versionID)
	ent.drop()
}

// drop zeroes the entry's material and drops the cache's reference to its
// symmetric key (zeroed once no caller holds it).
func (ent *cacheEntry) drop() {
	ent.secret.Zero()
	if ent.sym != nil {
		ent.sym.Release()
		ent.sym = nil
	}
}
