package audit

import (
	"crypto/sha256"
	"hash"
	"runtime"
)

// testingMemStats is the heap allocation counters at one point.
type testingMemStats struct{ mallocs, bytes uint64 }

func (m *testingMemStats) read() {
	var s runtime.MemStats
	runtime.ReadMemStats(&s)
	m.mallocs, m.bytes = s.Mallocs, s.TotalAlloc
}

func newTestSHA256() hash.Hash { return sha256.New() }
