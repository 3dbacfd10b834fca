package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/kmsd/kmsd/service"
)

// fakeAuditor records Config.Audit calls and fails when told to.
type fakeAuditor struct {
	mu  sync.Mutex
	evs []AuditEvent
	err error
}

func (a *fakeAuditor) Record(_ context.Context, ev AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	ev.Request = append([]byte(nil), ev.Request...)
	a.evs = append(a.evs, ev)
	return a.err
}

func (a *fakeAuditor) take() []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	evs := a.evs
	a.evs = nil
	return evs
}

func TestAuditHook(t *testing.T) {
	aud := &fakeAuditor{}
	obs := &observer{}
	env := newEnv(t, func(c *Config) { c.Audit = aud; c.Observe = obs.observe })

	// A success: the body as sent and the response as answered.
	body := `{"KeyId":"k","Plaintext":"aGVsbG8="}`
	res := env.call(t, http.MethodPost, "/", signedHeaders("TrentService.Encrypt"), body)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	evs := aud.take()
	if len(evs) != 1 {
		t.Fatalf("%d audit events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Operation != "Encrypt" || string(ev.Request) != body || ev.ErrorCode != "" || ev.Time.IsZero() {
		t.Fatalf("event %+v", ev)
	}
	if string(ev.Response) != string(res.body) {
		t.Fatalf("response %s, answered %s", ev.Response, res.body)
	}
	if ev.Info.RequestID != res.header.Get(HeaderRequestID) || ev.Info.Caller.AccessKeyID != "AKIDEXAMPLE" || ev.Info.SourceIP == "" {
		t.Fatalf("info %+v", ev.Info)
	}

	// Failures are recorded with the wire error.
	env.fake.set(&service.Error{Kind: service.ErrNotFound, Message: "no such key"}, nil)
	env.call(t, http.MethodPost, "/", signedHeaders("TrentService.DescribeKey"), `{"KeyId":"k"}`)
	env.fake.set(nil, nil)
	env.call(t, http.MethodPost, "/", signedHeaders("TrentService.Nope"), `{}`)
	env.call(t, http.MethodPost, "/", map[string]string{HeaderTarget: "TrentService.ListKeys"}, `{}`) // unsigned
	env.call(t, http.MethodGet, "/healthz-not-registered", nil, "")                                   // not a KMS request
	evs = aud.take()
	want := []struct{ op, code string }{
		{"DescribeKey", "NotFoundException"},
		{OperationUnknown, "UnknownOperationException"},
		{"ListKeys", "MissingAuthenticationTokenException"},
	}
	if len(evs) != len(want) {
		t.Fatalf("%d audit events, want %d: %+v", len(evs), len(want), evs)
	}
	for i, w := range want {
		if evs[i].Operation != w.op || evs[i].ErrorCode != w.code || evs[i].Response != nil {
			t.Errorf("event %d: %s %s %s, want %s %s", i, evs[i].Operation, evs[i].ErrorCode, evs[i].Response, w.op, w.code)
		}
	}
	if evs[0].ErrorMessage != "no such key" {
		t.Errorf("message %q", evs[0].ErrorMessage)
	}
	obs.take()

	// Fail closed: the audit error replaces the answer, plaintext included.
	aud.err = errors.New("disk full")
	res = env.call(t, http.MethodPost, "/", signedHeaders("TrentService.Decrypt"), `{"CiphertextBlob":"Y3Q6c2VjcmV0"}`)
	if res.status != 500 || res.errType != "KMSInternalException" || strings.Contains(string(res.body), "c2VjcmV0") {
		t.Fatalf("fail closed: status %d body %s", res.status, res.body)
	}
	if got := obs.take(); len(got) != 1 || got[0].outcome != "KMSInternalException" {
		t.Fatalf("observed %+v", got)
	}
	if !strings.Contains(env.logs.String(), "audit record not written") {
		t.Fatalf("no log of the audit failure")
	}
	aud.take()
}

func TestAuditFailOpen(t *testing.T) {
	aud := &fakeAuditor{err: errors.New("disk full")}
	env := newEnv(t, func(c *Config) { c.Audit = aud; c.AuditFailOpen = true })
	res := env.call(t, http.MethodPost, "/", signedHeaders("TrentService.DescribeKey"), `{"KeyId":"k"}`)
	if res.status != 200 {
		t.Fatalf("fail open: status %d body %s", res.status, res.body)
	}
	var out map[string]any
	if err := json.Unmarshal(res.body, &out); err != nil || out["KeyMetadata"] == nil {
		t.Fatalf("body %s", res.body)
	}
	if len(aud.take()) != 1 {
		t.Fatal("not audited")
	}
}
