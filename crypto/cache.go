package crypto

import (
	"container/list"
	"fmt"
	"sync"
)

// MaterialCache is a bounded LRU cache of unwrapped key material, keyed by
// key version id. It is safe for concurrent use.
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
		e.Value.(*cacheEntry).secret.Zero()
	}
	c.ll.Init()
	clear(c.items)
}

// removeElement zeroes and unlinks e. c.mu must be held.
func (c *MaterialCache) removeElement(e *list.Element) {
	ent := c.ll.Remove(e).(*cacheEntry)
	delete(c.items, ent.versionID)
	ent.secret.Zero()
}
