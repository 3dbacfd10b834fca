package load

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/kmsdclient"
)

// TestRunBatchOps drives the batch ops against a real in-process node and
// checks that items, not only requests, are counted.
func TestRunBatchOps(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	srv := testserver.Start(t)
	mix, err := ParseMix("BatchGenerateDataKey=2,BatchGenerateDataKeyWithoutPlaintext=1,BatchEncrypt=1,BatchDecrypt=1,GenerateDataKey=1")
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := Run(context.Background(), Config{
		Endpoints:   []string{srv.URL},
		Region:      testserver.Region,
		AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret",
		Mix: mix, Concurrency: 3, BatchSize: 40, PlaintextSize: 100,
		Warmup: 300 * time.Millisecond, Duration: 1200 * time.Millisecond,
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	var rep bytes.Buffer
	WriteReport(&rep, res)
	t.Logf("progress:\n%s\nreport:\n%s", progress.String(), rep.String())
	if res.Errors != 0 || res.BatchSize != 40 {
		t.Fatalf("errors %d %v, batch size %d", res.Errors, res.ErrorExamples, res.BatchSize)
	}
	items := checkOpItems(t, res, mix, 40)
	for _, e := range mix {
		if o := res.Ops[e.Op]; o.ItemsPerSecond <= o.Throughput && IsBatchOp(e.Op) {
			t.Errorf("%s: %.1f items/s, %.1f requests/s", e.Op, o.ItemsPerSecond, o.Throughput)
		}
	}
	if res.Items != items || res.ItemsPerSecond <= 0 {
		t.Errorf("total items %d (ops: %d), %.1f/s", res.Items, items, res.ItemsPerSecond)
	}
	if !strings.Contains(rep.String(), "items/s") || !strings.Contains(progress.String(), "items/s") {
		t.Error("items/s not reported")
	}
	if _, err := Run(context.Background(), Config{Endpoints: []string{srv.URL}, AccessKeyID: "a", SecretAccessKey: "b",
		Mix: mix, Duration: time.Second, BatchSize: 1001}); err == nil || !strings.Contains(err.Error(), "at most 1000") {
		t.Errorf("batch size 1001: %v", err)
	}
}

func TestCountItems(t *testing.T) {
	errs := []*kmsdclient.ItemError{nil, {Code: "NotFoundException"}, nil, {Code: "ThrottlingException"}, {Code: "NotFoundException"}}
	o := countItems(len(errs), func(i int) *kmsdclient.ItemError { return errs[i] })
	if o.items != 2 || o.itemErrors != 3 || o.itemErrorTypes["NotFoundException"] != 2 || o.itemErrorTypes["ThrottlingException"] != 1 {
		t.Errorf("%+v", o)
	}
}

// checkOpItems checks that every op of mix succeeded and counted batchSize
// items per batch request (one per single request), without item errors;
// it returns the items of all ops.
func checkOpItems(t *testing.T, res *Result, mix Mix, batchSize uint64) (items uint64) {
	t.Helper()
	for _, e := range mix {
		o := res.Ops[e.Op]
		if o == nil || o.OK == 0 {
			t.Fatalf("no successful %s", e.Op)
		}
		per := uint64(1)
		if IsBatchOp(e.Op) {
			per = batchSize
		}
		if o.Items != o.OK*per || o.ItemErrors != 0 {
			t.Errorf("%s: %d requests, %d items, %d item errors", e.Op, o.OK, o.Items, o.ItemErrors)
		}
		items += o.Items
	}
	return items
}
