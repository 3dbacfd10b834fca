package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
)

func testEvents(from, n int) []api.AuditEvent {
	evs := make([]api.AuditEvent, n)
	for i := range evs {
		evs[i] = testEvent(from + i)
	}
	return evs
}

// requestIDs returns the requestID of every event record in files, in file
// order.
func requestIDs(t *testing.T, files []string) []string {
	t.Helper()
	var ids []string
	for _, path := range files {
		f, err := os.Open(path)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				RecordType string `json:"kmsdRecordType"`
				RequestID  string `json:"requestID"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			if rec.RecordType == "" {
				ids = append(ids, rec.RequestID)
			}
		}
		require.NoError(t, sc.Err())
		require.NoError(t, f.Close())
	}
	return ids
}

// A lone batch is one write (one fsync) and its records are consecutive
// and in order in a chain that verifies.
func TestRecordBatchOneWrite(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.DigestEvery = 7 })
	require.NoError(t, w.Record(context.Background(), testEvent(0)))
	before := w.batches
	require.NoError(t, w.RecordBatch(context.Background(), testEvents(1, 50)))
	require.Equal(t, before+1, w.batches, "batches written for one RecordBatch")
	require.NoError(t, w.RecordBatch(context.Background(), nil))
	require.Equal(t, before+1, w.batches, "an empty batch writes nothing")
	require.NoError(t, w.Close())

	files, err := Files(dir)
	require.NoError(t, err)
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
	}
	ids := requestIDs(t, files)
	require.Len(t, ids, 51)
	for i, id := range ids {
		require.Equal(t, fmt.Sprintf("req-%d", i), id)
	}
}

// Batches and single records from concurrent callers, with periodic
// digests and rotations in the middle of batches, make a chain that
// verifies across files and holds every record exactly once, each batch in
// its order.
func TestRecordBatchConcurrentWithRotation(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.DigestEvery = 5; o.MaxBytes = 8 << 10 })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for b := range 5 {
				if err := w.RecordBatch(context.Background(), testEvents(g*1000+b*100, 13)); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Go(func() {
			for i := range 20 {
				if err := w.Record(context.Background(), testEvent(100000+g*100+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(t, w.Close())

	files, err := Files(dir)
	require.NoError(t, err)
	require.Greater(t, len(files), 2, "rotation exercised")
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	events := 0
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
		events += r.Events
	}
	require.Equal(t, 4*5*13+4*20, events)

	seen := map[string]int{}
	for pos, id := range requestIDs(t, files) {
		_, dup := seen[id]
		require.False(t, dup, "record %s written twice", id)
		seen[id] = pos
	}
	for g := range 4 {
		for b := range 5 {
			for i := range 13 {
				id := fmt.Sprintf("req-%d", g*1000+b*100+i)
				require.Contains(t, seen, id)
				if i > 0 {
					require.Greater(t, seen[id], seen[fmt.Sprintf("req-%d", g*1000+b*100+i-1)], "batch order")
				}
			}
		}
		for i := range 20 {
			require.Contains(t, seen, fmt.Sprintf("req-%d", 100000+g*100+i))
		}
	}
}

func TestRecordBatchAfterFailureOrClose(t *testing.T) {
	w := openTest(t, t.TempDir(), nil)
	require.NoError(t, w.RecordBatch(context.Background(), testEvents(0, 3)))
	w.f.Close() // every later write fails
	require.Error(t, w.RecordBatch(context.Background(), testEvents(3, 3)))
	require.Error(t, w.RecordBatch(context.Background(), testEvents(6, 3)))
	require.Error(t, w.Record(context.Background(), testEvent(9)))

	w = openTest(t, t.TempDir(), nil)
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.RecordBatch(context.Background(), testEvents(0, 3)), ErrClosed)
}

// BenchmarkRecordBatch compares one RecordBatch of 100 events with 100
// concurrent Record calls (what the api handler does for an Auditor that is
// not a BatchAuditor); cpu-µs/op is per event.
func BenchmarkRecordBatch(b *testing.B) {
	const n = 100
	evs := testEvents(0, n)
	for _, mode := range []string{"RecordBatch", "Record"} {
		b.Run(mode, func(b *testing.B) {
			w, err := Open(Options{Dir: b.TempDir(), NodeID: "n1", Region: "us-east-1", AccountID: "111122223333"})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ReportAllocs()
			cpu0 := cpuTime()
			for b.Loop() {
				if mode == "RecordBatch" {
					if err := w.RecordBatch(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
					continue
				}
				var wg sync.WaitGroup
				for i := range evs {
					wg.Go(func() {
						if err := w.Record(context.Background(), evs[i]); err != nil {
							b.Error(err)
						}
					})
				}
				wg.Wait()
			}
			b.ReportMetric(float64((cpuTime()-cpu0).Nanoseconds())/1e3/float64(b.N*n), "cpu-µs/op")
		})
	}
}
