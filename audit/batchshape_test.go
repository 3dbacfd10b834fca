package audit

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/service"
)

// apiBatchEvents returns the events the api package hands RecordBatch for
// one BatchGenerateDataKey request of n items: one Info (but for the
// RequestID, batch id + "#i"), Time and Caller shared by all, and small
// JSON request and response bodies. With keyPerItem every item names its
// own key (and key material), else all name the same one.
func apiBatchEvents(n int, keyPerItem bool) []api.AuditEvent {
	info := service.RequestInfo{
		RequestID: "5f0c6f3e-8e4a-4d0b-9a54-0a8f5b2d9c11",
		SourceIP:  "192.0.2.10",
		UserAgent: "aws-sdk-go-v2/1.36.3 os/linux lang/go#1.26 md/GOOS#linux md/GOARCH#amd64 api/kms#1.38.1",
		Caller:    service.Caller{ARN: "arn:aws:iam::111122223333:user/alice", AccountID: "111122223333", AccessKeyID: "AKIDEXAMPLE"},
	}
	now := time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)
	evs := make([]api.AuditEvent, n)
	for i := range evs {
		key, material := testKeyID, 0xabcdef
		if keyPerItem {
			key, material = fmt.Sprintf("%08x-12ab-34cd-56ef-1234567890ab", i), i
		}
		ev := api.AuditEvent{Operation: "BatchGenerateDataKey", Info: info, Time: now}
		ev.Info.RequestID = fmt.Sprintf("%s#%d", info.RequestID, i)
		ev.Request = []byte(`{"KeyId":"` + key + `","KeySpec":"AES_256"}`)
		ev.Response = fmt.Appendf(nil, `{"KeyId":"arn:aws:kms:us-east-1:111122223333:key/%s","KeyMaterialId":"%064x"}`, key, material)
		evs[i] = ev
	}
	return evs
}

// apiBatchRequest is the request event the api package hands RecordBatch
// with items from apiBatchEvents.
func apiBatchRequest(items []api.AuditEvent) api.AuditEvent {
	req := items[0]
	req.Info.RequestID, _, _ = strings.Cut(req.Info.RequestID, "#")
	req.Request, req.Response = nil, nil
	return req
}

// BenchmarkRecordBatchAPIShape is one RecordBatch of 1,000 events shaped
// as the api package's BatchGenerateDataKey hands them over (see
// apiBatchEvents), all items naming the same key or each its own, with and
// without fsync: cpu-ns/event is the process's
// CPU per event (fsync's kernel time included), allocs/event the heap
// allocations per event.
func BenchmarkRecordBatchAPIShape(b *testing.B) {
	const n = 1000
	for _, c := range []struct {
		keys string
		sync bool
	}{{"same", false}, {"same", true}, {"per-item", false}, {"per-item", true}} {
		evs := apiBatchEvents(n, c.keys == "per-item")
		req := apiBatchRequest(evs)
		sync := c.sync
		b.Run(fmt.Sprintf("keys=%s/fsync=%t", c.keys, sync), func(b *testing.B) {
			w, err := Open(Options{Dir: b.TempDir(), NodeID: "n1", Region: "us-east-1", AccountID: "111122223333", NoSync: !sync,
				Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			b.ReportAllocs()
			var ms0, ms1 testingMemStats
			ms0.read()
			cpu0 := cpuTime()
			for b.Loop() {
				if err := w.RecordBatch(context.Background(), req, evs); err != nil {
					b.Fatal(err)
				}
			}
			cpu := cpuTime() - cpu0
			ms1.read()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*n), "cpu-ns/event")
			b.ReportMetric(float64(ms1.mallocs-ms0.mallocs)/float64(b.N*n), "allocs/event")
			b.ReportMetric(float64(ms1.bytes-ms0.bytes)/float64(b.N*n), "B/event")
		})
	}
}
