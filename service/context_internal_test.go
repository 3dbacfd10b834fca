package service

import (
	"context"
	"testing"
)

type otherKey struct{}

func TestBatchItemContext(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(
		WithRequestInfo(context.Background(), RequestInfo{RequestID: "batch", SourceIP: "10.0.0.1"}), otherKey{}, "kept"))
	in := &GenerateDataKeyInput{}
	c := &batchItemContext{Context: parent, info: RequestInfo{RequestID: "batch#3", SourceIP: "10.0.0.1"}, in: in}
	if ri, ok := RequestInfoFrom(c); !ok || ri.RequestID != "batch#3" || ri.SourceIP != "10.0.0.1" {
		t.Fatalf("RequestInfoFrom = %+v, %v", ri, ok)
	}
	if got := requestInputFrom(c); got != in {
		t.Fatalf("requestInputFrom = %v", got)
	}
	if c.Value(otherKey{}) != "kept" {
		t.Fatal("other values of the batch's context are lost")
	}
	if ri, _ := RequestInfoFrom(parent); ri.RequestID != "batch" {
		t.Fatal("the batch's own RequestInfo changed")
	}
	if _, ok := RequestInfoFrom(context.Background()); ok {
		t.Fatal("RequestInfo found in an empty context")
	}
	cancel()
	if c.Err() == nil {
		t.Fatal("cancelling the batch does not reach the item")
	}
}
