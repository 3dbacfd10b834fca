package crypto

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

func vid(i int) (v [16]byte) {
	v[0], v[1] = byte(i>>8), byte(i)
	return v
}

// matFor is deterministic material for version i.
func matFor(i int) []byte { return bytes.Repeat([]byte{byte(i%250 + 1)}, KeySize) }

type countingLoader struct {
	mu     sync.Mutex
	calls  map[int]int
	loaded map[int][]*Secret
}

func newCountingLoader() *countingLoader {
	return &countingLoader{calls: map[int]int{}, loaded: map[int][]*Secret{}}
}

func (l *countingLoader) load(i int) func() (*Secret, error) {
	return func() (*Secret, error) {
		s := NewSecret(matFor(i))
		l.mu.Lock()
		l.calls[i]++
		l.loaded[i] = append(l.loaded[i], s)
		l.mu.Unlock()
		return s, nil
	}
}

func TestMaterialCacheLRU(t *testing.T) {
	c := NewMaterialCache(3)
	l := newCountingLoader()
	get := func(i int) *Secret {
		t.Helper()
		s, err := c.Get(vid(i), l.load(i))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Bytes(), matFor(i)) {
			t.Fatalf("version %d: wrong material", i)
		}
		return s
	}
	for i := 1; i <= 3; i++ {
		get(i)
	}
	if c.Len() != 3 {
		t.Fatalf("Len %d", c.Len())
	}
	got1 := get(1) // hit; 1 becomes most recent, 2 is now least recent
	if l.calls[1] != 1 {
		t.Fatalf("hit called loader: %d", l.calls[1])
	}
	get(4) // evicts 2
	if c.Len() != 3 {
		t.Fatalf("capacity not respected: Len %d", c.Len())
	}
	if !isZero(l.loaded[2][0].Bytes()) {
		t.Fatal("evicted secret not zeroed")
	}
	for _, i := range []int{1, 3, 4} {
		if isZero(l.loaded[i][0].Bytes()) {
			t.Fatalf("resident secret %d zeroed", i)
		}
	}
	get(2) // miss again: reload, evicts 3
	if l.calls[2] != 2 || !isZero(l.loaded[3][0].Bytes()) {
		t.Fatalf("calls[2]=%d, 3 zeroed=%v", l.calls[2], isZero(l.loaded[3][0].Bytes()))
	}
	// The copy handed out earlier survives eviction and purge of the original.
	c.Purge()
	if c.Len() != 0 {
		t.Fatal("Purge left entries")
	}
	for _, i := range []int{1, 2, 4} {
		for _, s := range l.loaded[i] {
			if !isZero(s.Bytes()) {
				t.Fatalf("Purge did not zero version %d", i)
			}
		}
	}
	if !bytes.Equal(got1.Bytes(), matFor(1)) {
		t.Fatal("copy returned by Get was zeroed by the cache")
	}
	// Zeroing a returned copy does not poison the cache.
	s := get(7)
	s.Zero()
	get(7)
	if l.calls[7] != 1 {
		t.Fatal("unexpected reload")
	}
	c.Remove(vid(7))
	if c.Len() != 0 || !isZero(l.loaded[7][0].Bytes()) {
		t.Fatal("Remove")
	}
}

func TestMaterialCacheErrors(t *testing.T) {
	c := NewMaterialCache(2)
	boom := errors.New("boom")
	calls := 0
	fail := func() (*Secret, error) { calls++; return nil, boom }
	for range 2 {
		if s, err := c.Get(vid(1), fail); !errors.Is(err, boom) || s != nil {
			t.Fatalf("err = %v", err)
		}
	}
	if calls != 2 || c.Len() != 0 {
		t.Fatal("error was cached")
	}
	if _, err := c.Get(vid(1), func() (*Secret, error) { return nil, nil }); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("nil secret: %v", err)
	}
}

func TestMaterialCacheDisabled(t *testing.T) {
	for _, capacity := range []int{0, -1} {
		c := NewMaterialCache(capacity)
		l := newCountingLoader()
		for range 3 {
			s, err := c.Get(vid(1), l.load(1))
			if err != nil || !bytes.Equal(s.Bytes(), matFor(1)) {
				t.Fatal(err)
			}
		}
		if l.calls[1] != 3 || c.Len() != 0 {
			t.Fatalf("capacity %d: calls %d len %d", capacity, l.calls[1], c.Len())
		}
	}
}

// Two concurrent misses of one version: the first stored result wins and the
// loser's secret is zeroed. Ordered with channels, no sleeps.
func TestMaterialCacheConcurrentMiss(t *testing.T) {
	c := NewMaterialCache(4)
	started, release := make(chan struct{}), make(chan struct{})
	slow := NewSecret(matFor(9))
	var slowGot *Secret
	done := make(chan error)
	go func() {
		s, err := c.Get(vid(1), func() (*Secret, error) {
			close(started)
			<-release
			return slow, nil
		})
		slowGot = s
		done <- err
	}()
	<-started
	fast := NewSecret(matFor(1))
	got, err := c.Get(vid(1), func() (*Secret, error) { return fast, nil })
	if err != nil || !bytes.Equal(got.Bytes(), matFor(1)) {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(slowGot.Bytes(), matFor(1)) || !isZero(slow.Bytes()) || isZero(fast.Bytes()) || c.Len() != 1 {
		t.Fatal("losing load not discarded")
	}
}

func TestMaterialCacheConcurrent(t *testing.T) {
	const capacity, versions, workers, iters = 8, 20, 16, 500
	c := NewMaterialCache(capacity)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range iters {
				v := (w*7 + i*13) % versions
				s, err := c.Get(vid(v), func() (*Secret, error) { return NewSecret(matFor(v)), nil })
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(s.Bytes(), matFor(v)) {
					errs <- fmt.Errorf("version %d: wrong material", v)
					return
				}
				if i%97 == 0 {
					c.Purge()
				}
				if n := c.Len(); n > capacity {
					errs <- fmt.Errorf("Len %d > capacity", n)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
