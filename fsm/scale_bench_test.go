package fsm_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	clusterbench "github.com/kmsd/kmsd/bench/cluster"
	"github.com/kmsd/kmsd/fsm"
)

// Benchmarks of the FSM at scale with CreateKey commands shaped like the
// service's (bench/cluster: default policy, one 32-byte version really
// wrapped, UUID ids):
//
//	KMSD_BENCH_KEYS=100000 go test -run '^$' -bench CreateKeyMemory -benchtime 1x ./fsm/
//	go test -run '^$' -bench 'ApplyCreateKey|StateHashAfter' ./fsm/

func benchKeys(b *testing.B, def int) int {
	s := os.Getenv("KMSD_BENCH_KEYS")
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("KMSD_BENCH_KEYS=%q: want a positive integer", s)
	}
	return n
}

// rssBytes reads this process's resident set size from /proc (Linux).
func rssBytes() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func heapAfterGC() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC() // the first cycle may leave finalizer-held objects
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// sampleHeapPeak samples HeapAlloc every millisecond until the returned
// function is called, which returns the highest value seen.
func sampleHeapPeak() func() uint64 {
	stop := make(chan struct{})
	done := make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-stop:
				done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(stop)
		return <-done
	}
}

// discardSink is a raft.SnapshotSink that drops what it is given.
type discardSink struct{}

func (discardSink) Write(p []byte) (int, error) { return len(p), nil }
func (discardSink) Close() error                { return nil }
func (discardSink) Cancel() error               { return nil }
func (discardSink) ID() string                  { return "discard" }

// applyCreateKeys applies n generated CreateKey commands one by one.
func applyCreateKeys(b *testing.B, f *fsm.FSM, gen *clusterbench.CreateKeys, first uint64, n int) {
	b.Helper()
	for i := range n {
		res, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Index: first + uint64(i), Data: gen.NextEncoded()}).(*fsm.Result)
		if !ok || res.Err != nil {
			b.Fatalf("apply %d: %+v", i, res)
		}
	}
}

// BenchmarkCreateKeyMemory reports the heap the FSM holds per key after
// KMSD_BENCH_KEYS (default 100,000) CreateKeys (HeapAlloc after a GC, minus
// the same before, over the key count; the dedupe window's fixed cost
// included) and the process's RSS. Run with -benchtime 1x.
func BenchmarkCreateKeyMemory(b *testing.B) {
	n := benchKeys(b, 100_000)
	for range b.N {
		b.StopTimer()
		before := heapAfterGC()
		rssBefore, _ := rssBytes()
		f := fsm.New()
		gen := clusterbench.NewCreateKeys(1)
		b.StartTimer()
		applyCreateKeys(b, f, gen, 1, n)
		b.StopTimer()
		after := heapAfterGC()
		rss, rssOK := rssBytes()
		if f.KeyCount() != n {
			b.Fatalf("%d keys, want %d", f.KeyCount(), n)
		}
		perKey := float64(int64(after)-int64(before)) / float64(n)
		b.ReportMetric(perKey, "heap-B/key")
		b.ReportMetric(float64(after)/(1<<20), "heap-MiB")
		if rssOK {
			b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
			b.ReportMetric(float64(int64(rss)-int64(rssBefore))/float64(n), "rss-B/key")
		}

		// A snapshot: what it allocates, and the highest heap seen while
		// it is taken and persisted (sampled every millisecond).
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		allocBefore := ms.TotalAlloc
		peak := sampleHeapPeak()
		snapStart := time.Now()
		snap, err := f.Snapshot()
		if err != nil {
			b.Fatal(err)
		}
		if err := snap.Persist(&discardSink{}); err != nil {
			b.Fatal(err)
		}
		snap.Release()
		b.ReportMetric(float64(time.Since(snapStart).Milliseconds()), "snapshot-ms")
		peakHeap := peak()
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.TotalAlloc-allocBefore)/float64(n), "snapshot-alloc-B/key")
		b.ReportMetric(float64(int64(peakHeap)-int64(before))/float64(n), "snapshot-peak-heap-B/key")

		// StateHash (/v1/status) once: what it keeps.
		if _, err := f.StateHash(); err != nil {
			b.Fatal(err)
		}
		withHash := heapAfterGC()
		b.ReportMetric(float64(int64(withHash)-int64(before))/float64(n), "heap-B/key-after-StateHash")
		runtime.KeepAlive(f)
		b.StartTimer()
	}
}

// BenchmarkApplyCreateKey measures one CreateKey Apply on an FSM that
// already holds a given number of keys: the cost must not grow with it.
func BenchmarkApplyCreateKey(b *testing.B) {
	for _, existing := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("existing=%d", existing), func(b *testing.B) {
			f := fsm.New()
			gen := clusterbench.NewCreateKeys(1)
			applyCreateKeys(b, f, gen, 1, existing)
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				logs[i] = &raft.Log{Type: raft.LogCommand, Index: uint64(existing + 1 + i), Data: gen.NextEncoded()}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for _, l := range logs {
				f.Apply(l)
			}
		})
	}
}

// BenchmarkStateHashAfter measures StateHash (/v1/status) on an FSM with
// 100,000 keys after a few more writes: it should cost what changed, not
// what is stored.
func BenchmarkStateHashAfter(b *testing.B) {
	n := benchKeys(b, 100_000)
	f := fsm.New()
	gen := clusterbench.NewCreateKeys(1)
	applyCreateKeys(b, f, gen, 1, n)
	if _, err := f.StateHash(); err != nil {
		b.Fatal(err)
	}
	next := uint64(n + 1)
	b.ResetTimer()
	for range b.N {
		applyCreateKeys(b, f, gen, next, 10)
		next += 10
		if _, err := f.StateHash(); err != nil {
			b.Fatal(err)
		}
	}
}
