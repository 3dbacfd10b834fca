package api

import (
	"sync/atomic"
	"testing"

	"github.com/kmsd/kmsd/service"
)

// TestNotReadyAnswersRetryably checks that a node that has not caught up
// answers KMS requests with a retryable 503 and never reaches the service,
// and serves them once ready.
func TestNotReadyAnswersRetryably(t *testing.T) {
	var ready atomic.Bool
	e := newEnv(t, func(c *Config) { c.Ready = ready.Load })
	r := e.op(t, "DescribeKey", `{"KeyId":"k"}`)
	if r.status != 503 || r.errType != "DependencyTimeoutException" {
		t.Fatalf("not ready: got %d %s %q", r.status, r.errType, r.message)
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("service reached while not ready: %v", calls)
	}
	ready.Store(true)
	e.fake.set(nil, nil)
	r = e.op(t, "DescribeKey", `{"KeyId":"k"}`)
	if r.status != 200 {
		t.Fatalf("ready: got %d %s %q", r.status, r.errType, r.message)
	}
	if info, _ := e.fake.last(); info.RequestID == "" {
		t.Fatal("service not reached once ready")
	}
}

// TestConsistencyHeaderReachesService checks X-Kmsd-Consistency is passed on.
func TestConsistencyHeaderReachesService(t *testing.T) {
	e := newEnv(t, nil)
	h := signedHeaders(TargetPrefix + "DescribeKey")
	h[HeaderConsistency] = service.ConsistencyStrong
	r := e.call(t, "POST", "/", h, `{"KeyId":"k"}`)
	if r.status != 200 {
		t.Fatalf("got %d %s", r.status, r.errType)
	}
	if info, _ := e.fake.last(); info.Consistency != service.ConsistencyStrong {
		t.Fatalf("consistency %q not passed on", info.Consistency)
	}
}
