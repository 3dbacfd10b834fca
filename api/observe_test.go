package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kmsd/kmsd/service"
)

// observation is one call of Config.Observe.
type observation struct {
	operation, outcome string
	elapsed            time.Duration
}

// observer records Config.Observe calls.
type observer struct {
	mu  sync.Mutex
	obs []observation
}

func (o *observer) observe(operation, outcome string, elapsed time.Duration) {
	o.mu.Lock()
	o.obs = append(o.obs, observation{operation, outcome, elapsed})
	o.mu.Unlock()
}

func (o *observer) take() []observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	got := o.obs
	o.obs = nil
	return got
}

// TestObserve checks that Config.Observe is called exactly once, with a
// bounded operation label and the wire outcome, for every KMS request, and
// never for other routes.
func TestObserve(t *testing.T) {
	const gr = "TrentService.GenerateRandom"
	without := func(target string, drop ...string) map[string]string {
		h := signedHeaders(target)
		for _, d := range drop {
			delete(h, d)
		}
		return h
	}
	with := func(target, k, v string) map[string]string {
		h := signedHeaders(target)
		h[k] = v
		return h
	}
	type want struct{ operation, outcome string }
	tests := []struct {
		name    string
		mutate  func(*Config)
		setup   func(*fakeKMS)
		method  string // "" = POST
		path    string // "" = /
		headers map[string]string
		body    string
		chunked bool  // send the body with an unknown length
		want    *want // nil: not observed
	}{
		{name: "success", headers: signedHeaders(gr), want: &want{"GenerateRandom", OutcomeOK}},
		{name: "success with output", headers: signedHeaders("TrentService.DescribeKey"), body: `{"KeyId":"k"}`,
			want: &want{"DescribeKey", OutcomeOK}},
		{name: "service error", headers: signedHeaders("TrentService.DescribeKey"), body: `{"KeyId":"k"}`,
			setup: func(f *fakeKMS) { f.set(&service.Error{Kind: service.ErrNotFound, Message: "no"}, nil) },
			want:  &want{"DescribeKey", "NotFoundException"}},
		{name: "internal error", headers: signedHeaders("TrentService.Decrypt"), body: `{"CiphertextBlob":"AAAA"}`,
			setup: func(f *fakeKMS) { f.set(fmt.Errorf("disk exploded"), nil) },
			want:  &want{"Decrypt", "KMSInternalException"}},
		{name: "panic", headers: signedHeaders("TrentService.DescribeKey"), body: `{"KeyId":"k"}`,
			setup: func(f *fakeKMS) { f.set(nil, "boom") },
			want:  &want{"DescribeKey", "KMSInternalException"}},
		{name: "validation", headers: signedHeaders("TrentService.DescribeKey"), body: `{}`,
			want: &want{"DescribeKey", "ValidationException"}},
		{name: "serialization", headers: signedHeaders("TrentService.ListKeys"), body: `{"Limit":`,
			want: &want{"ListKeys", "SerializationException"}},
		{name: "bad content type", headers: with(gr, "Content-Type", "text/plain"),
			want: &want{"GenerateRandom", "SerializationException"}},
		{name: "unknown operation", headers: signedHeaders("TrentService.Frobnicate"),
			want: &want{OperationUnknown, "UnknownOperationException"}},
		{name: "long client-chosen target", headers: signedHeaders("TrentService." + strings.Repeat("x", 4096)),
			want: &want{OperationUnknown, "UnknownOperationException"}},
		{name: "operation name without prefix", headers: signedHeaders("GenerateRandom"),
			want: &want{OperationUnknown, "UnknownOperationException"}},
		{name: "wrong service prefix", headers: signedHeaders("KMS.GenerateRandom"),
			want: &want{OperationUnknown, "UnknownOperationException"}},
		{name: "missing target", headers: without(gr, HeaderTarget),
			want: &want{OperationUnknown, "UnknownOperationException"}},
		{name: "missing auth", headers: without(gr, "Authorization"),
			want: &want{"GenerateRandom", "MissingAuthenticationTokenException"}},
		{name: "missing auth, unknown operation", headers: without("TrentService.Nope", "Authorization"),
			want: &want{OperationUnknown, "MissingAuthenticationTokenException"}},
		{name: "malformed auth", headers: with(gr, "Authorization", "AWS4-HMAC-SHA256 garbage"),
			want: &want{"GenerateRandom", "IncompleteSignatureException"}},
		{name: "not ready", mutate: func(c *Config) { c.Ready = func() bool { return false } },
			headers: signedHeaders("TrentService.DescribeKey"), body: `{"KeyId":"k"}`,
			want: &want{"DescribeKey", "DependencyTimeoutException"}},
		{name: "declared body too large", mutate: func(c *Config) { c.MaxBodyBytes = 16 },
			headers: signedHeaders("TrentService.Encrypt"), body: `{"KeyId":"k","Plaintext":"AAAA"}`,
			want: &want{"Encrypt", "RequestEntityTooLargeException"}},
		{name: "chunked body too large", mutate: func(c *Config) { c.MaxBodyBytes = 16 },
			headers: signedHeaders("TrentService.Encrypt"), body: `{"KeyId":"k","Plaintext":"AAAA"}`, chunked: true,
			want: &want{"Encrypt", "RequestEntityTooLargeException"}},
		{name: "GET / is not a KMS request", method: "GET", headers: signedHeaders(gr)},
		{name: "POST /other is not a KMS request", path: "/other", headers: signedHeaders(gr)},
		{name: "extra endpoint", method: "GET", path: "/healthz"},
		{name: "extra endpoint panic", method: "GET", path: "/boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := &observer{}
			e := newEnv(t, func(c *Config) {
				c.Observe = obs.observe
				if tc.mutate != nil {
					tc.mutate(c)
				}
			})
			e.h.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.WriteString(w, "ok")
			}))
			e.h.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("extra boom") }))
			if tc.setup != nil {
				tc.setup(e.fake)
			}
			method, path := tc.method, tc.path
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/"
			}
			// Served directly: Observe runs before ServeHTTP returns, so the
			// assertions below need no waiting.
			req := httptest.NewRequest(method, path, strings.NewReader(tc.body))
			if tc.chunked {
				req.ContentLength = -1
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			before := time.Now()
			e.h.ServeHTTP(rec, req)
			wall := time.Since(before)
			r := decodeResult(t, rec.Code, rec.Header(), rec.Body.Bytes())

			got := obs.take()
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("observed %+v, want no observation", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("observed %d times (%+v), want once", len(got), got)
			}
			o := got[0]
			if o.operation != tc.want.operation || o.outcome != tc.want.outcome {
				t.Errorf("observed (%q, %q), want (%q, %q)", o.operation, o.outcome, tc.want.operation, tc.want.outcome)
			}
			// The outcome is what the client was told.
			wantOutcome := r.errType
			if wantOutcome == "" {
				wantOutcome = OutcomeOK
			}
			if o.outcome != wantOutcome {
				t.Errorf("outcome %q, but the response said %q (status %d)", o.outcome, wantOutcome, r.status)
			}
			if o.elapsed <= 0 || o.elapsed > wall {
				t.Errorf("elapsed %v not in (0, %v]", o.elapsed, wall)
			}
		})
	}
}

// TestObserveConcurrent checks, over a real connection and under the race
// detector, that concurrent requests are each observed once, and that a
// request aborted with http.ErrAbortHandler (never answered) is not.
func TestObserveConcurrent(t *testing.T) {
	var (
		mu     sync.Mutex
		counts = map[string]int{}
		calls  atomic.Int64
	)
	e := newEnv(t, func(c *Config) {
		c.Observe = func(operation, outcome string, _ time.Duration) {
			calls.Add(1)
			mu.Lock()
			counts[operation+" "+outcome]++
			mu.Unlock()
		}
	})
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			target, body := "GenerateRandom", `{"NumberOfBytes":8}`
			if i%2 == 1 {
				target, body = "Frobnicate", ``
			}
			// Not e.op: t.Fatal must not be called off the test goroutine.
			req, err := http.NewRequest("POST", e.srv.URL+"/", strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			for k, v := range signedHeaders(TargetPrefix + target) {
				req.Header.Set(k, v)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		})
	}
	wg.Wait()
	// An aborted request: the client sees a dropped connection.
	e.fake.set(nil, http.ErrAbortHandler)
	req, _ := http.NewRequest("POST", e.srv.URL+"/", strings.NewReader(`{"KeyId":"k"}`))
	for k, v := range signedHeaders("TrentService.DescribeKey") {
		req.Header.Set(k, v)
	}
	if resp, err := e.srv.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("aborted request answered with %d", resp.StatusCode)
	}
	e.srv.Close() // waits for every handler to return

	if got := calls.Load(); got != n {
		t.Errorf("Observe called %d times, want %d", got, n)
	}
	mu.Lock()
	defer mu.Unlock()
	if counts["GenerateRandom ok"] != n/2 || counts["unknown UnknownOperationException"] != n/2 {
		t.Errorf("observations %v", counts)
	}
}
