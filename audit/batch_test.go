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

// testBatch is a batch request and its n items, whose request ids are
// req-from to req-(from+n-1).
func testBatch(from, n int) (api.AuditEvent, []api.AuditEvent) {
	req := testEvent(from)
	req.Info.RequestID = fmt.Sprintf("batch-%d", from)
	req.Request, req.Response = nil, nil
	return req, testEvents(from, n)
}

// requestIDs returns the requestID of every event record in files, in file
// order; a batch's summary record stands for its items' requestIDs.
func requestIDs(t *testing.T, files []string) []string {
	t.Helper()
	var ids []string
	for _, path := range files {
		f, err := os.Open(path)
		require.NoError(t, err)
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var rec struct {
				RecordType string `json:"kmsdRecordType"`
				RequestID  string `json:"requestID"`
				Additional *struct {
					Items []struct {
						RequestID string `json:"requestID"`
					} `json:"items"`
				} `json:"additionalEventData"`
			}
			require.NoError(t, json.Unmarshal(sc.Bytes(), &rec))
			switch {
			case rec.RecordType != "":
			case rec.Additional != nil:
				for _, it := range rec.Additional.Items {
					ids = append(ids, it.RequestID)
				}
			default:
				ids = append(ids, rec.RequestID)
			}
		}
		require.NoError(t, sc.Err())
		require.NoError(t, f.Close())
	}
	return ids
}

// A lone batch is one write (one fsync) of one record holding its items in
// order, in a chain that verifies.
func TestRecordBatchOneWrite(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.DigestEvery = 7 })
	require.NoError(t, w.Record(context.Background(), testEvent(0)))
	before := w.batches
	req, items := testBatch(1, 50)
	require.NoError(t, w.RecordBatch(context.Background(), req, items))
	require.Equal(t, before+1, w.batches, "batches written for one RecordBatch")
	require.NoError(t, w.RecordBatch(context.Background(), req, nil))
	require.Equal(t, before+1, w.batches, "an empty batch writes nothing")
	require.NoError(t, w.Close())

	files, err := Files(dir)
	require.NoError(t, err)
	reps, err := VerifyFiles(files, VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
		require.Equal(t, 2, r.Events, "one record, then the batch's")
	}
	ids := requestIDs(t, files)
	require.Len(t, ids, 51)
	for i, id := range ids {
		require.Equal(t, fmt.Sprintf("req-%d", i), id)
	}
}

// Batches and single records from concurrent callers, with periodic
// digests and rotations, make a chain that verifies across files and holds
// every record exactly once, each batch's items in their order.
func TestRecordBatchConcurrentWithRotation(t *testing.T) {
	dir := t.TempDir()
	w := openTest(t, dir, func(o *Options) { o.NoSync = false; o.DigestEvery = 5; o.MaxBytes = 8 << 10 })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for b := range 5 {
				req, items := testBatch(g*1000+b*100, 13)
				if err := w.RecordBatch(context.Background(), req, items); err != nil {
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
	require.Equal(t, 4*5+4*20, events)

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
	req, items := testBatch(0, 3)
	require.NoError(t, w.RecordBatch(context.Background(), req, items))
	w.f.Close() // every later write fails
	require.Error(t, w.RecordBatch(context.Background(), req, items))
	require.Error(t, w.RecordBatch(context.Background(), req, items))
	require.Error(t, w.Record(context.Background(), testEvent(9)))

	w = openTest(t, t.TempDir(), nil)
	require.NoError(t, w.Close())
	require.ErrorIs(t, w.RecordBatch(context.Background(), req, items), ErrClosed)
}

// BenchmarkRecordBatch compares one RecordBatch of 100 events with 100
// concurrent Record calls (what the api handler does for an Auditor that is
// not a BatchAuditor); cpu-µs/op is per event.
func BenchmarkRecordBatch(b *testing.B) {
	const n = 100
	req, evs := testBatch(0, n)
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
					if err := w.RecordBatch(context.Background(), req, evs); err != nil {
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
