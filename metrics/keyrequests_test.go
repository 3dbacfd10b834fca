package metrics

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserveKeyRequest(t *testing.T) {
	m := newMetrics(t, Config{NodeID: "n1"})
	m.ObserveKeyRequest("k1", "Encrypt")
	m.ObserveKeyRequest("k1", "Encrypt")
	m.ObserveKeyRequest("k1", "Decrypt")
	m.ObserveKeyRequest("k2", "Encrypt")
	if got := testutil.ToFloat64(m.keyRequests.WithLabelValues("k1", "Encrypt")); got != 2 {
		t.Errorf("k1 Encrypt = %v, want 2", got)
	}
	wantLines(t, scrape(t, m),
		`kmsd_key_requests_total{key_id="k1",node_id="n1",operation="Decrypt"} 1`,
		`kmsd_key_requests_total{key_id="k2",node_id="n1",operation="Encrypt"} 1`,
	)
	var nilM *Metrics
	nilM.ObserveKeyRequest("k1", "Encrypt") // no-op, no panic
}

func TestObserveKeyRequestCardinalityGuard(t *testing.T) {
	m := newMetrics(t, Config{})
	m.maxKeyIDs = 5 // MaxKeyIDs in production; small here
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.ObserveKeyRequest(fmt.Sprintf("key-%02d", i), "Encrypt")
		}()
	}
	wg.Wait()
	if n := testutil.CollectAndCount(m.keyRequests); n != 6 {
		t.Errorf("series = %d, want 5 key ids + other", n)
	}
	if got := testutil.ToFloat64(m.keyRequests.WithLabelValues(OtherKeyID, "Encrypt")); got != 15 {
		t.Errorf("other = %v, want 15", got)
	}
	// Known key ids keep their own series once the guard is full.
	var known string
	for id := range m.keyIDs {
		known = id
	}
	m.ObserveKeyRequest(known, "Decrypt")
	if got := testutil.ToFloat64(m.keyRequests.WithLabelValues(known, "Decrypt")); got != 1 {
		t.Errorf("%s Decrypt = %v, want 1", known, got)
	}
	m.ObserveKeyRequest("brand-new", "Decrypt")
	m.ObserveKeyRequest("brand-new", "Decrypt")
	if got := testutil.ToFloat64(m.keyRequests.WithLabelValues(OtherKeyID, "Decrypt")); got != 2 {
		t.Errorf("other Decrypt = %v, want 2", got)
	}
	// Only key ids with their own series are cached: 5 for Encrypt and one
	// for Decrypt, however many others were seen.
	for i := range 100 {
		m.ObserveKeyRequest(fmt.Sprintf("more-%d", i), "Encrypt")
	}
	cached := 0
	m.keyCounters.Range(func(k, _ any) bool {
		if _, own := m.keyIDs[k.(keyOp).keyID]; !own {
			t.Errorf("%v cached without its own series", k)
		}
		cached++
		return true
	})
	if cached != 6 {
		t.Errorf("cached series = %d, want 6", cached)
	}
	if got := testutil.ToFloat64(m.keyRequests.WithLabelValues(OtherKeyID, "Encrypt")); got != 115 {
		t.Errorf("other Encrypt = %v, want 115", got)
	}
	if MaxKeyIDs != 10000 {
		t.Errorf("MaxKeyIDs = %d", MaxKeyIDs)
	}
}
