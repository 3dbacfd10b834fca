package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/kmsd/kmsd/service"
)

// fakeClock is a settable clock for QuotaLimiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestLimiter(t *testing.T, q Quotas, clk *fakeClock, max int) *QuotaLimiter {
	t.Helper()
	l, err := NewQuotaLimiter(QuotaLimiterConfig{Quotas: q, Now: clk.Now, MaxPrincipals: max})
	if err != nil {
		t.Fatalf("NewQuotaLimiter: %v", err)
	}
	return l
}

func TestQuotaBucket(t *testing.T) {
	// A step: advance the clock by wait, then send n requests; want is how
	// many are allowed.
	type step struct {
		wait time.Duration
		n    int
		want int
	}
	tests := []struct {
		name  string
		rate  float64
		steps []step
	}{
		{"burst is one second of rate", 5, []step{{0, 10, 5}}},
		{"empty bucket refuses", 5, []step{{0, 5, 5}, {0, 1, 0}}},
		{"refill is continuous", 5, []step{{0, 5, 5}, {200 * time.Millisecond, 2, 1}, {100 * time.Millisecond, 1, 0}, {100 * time.Millisecond, 1, 1}}},
		{"refill caps at burst", 5, []step{{0, 5, 5}, {time.Hour, 10, 5}}},
		{"fractional rate", 0.5, []step{{0, 3, 1}, {time.Second, 1, 0}, {time.Second, 1, 1}}},
		{"burst at least one", 0.1, []step{{0, 2, 1}, {9 * time.Second, 1, 0}, {time.Second, 1, 1}}},
		{"sustained rate", 100, []step{{0, 100, 100}, {10 * time.Millisecond, 1, 1}, {10 * time.Millisecond, 2, 1}, {500 * time.Millisecond, 100, 50}}},
		{"zero is unlimited", 0, []step{{0, 1000, 1000}}},
		{"negative is unlimited", -1, []step{{0, 1000, 1000}}},
		{"clock going back takes nothing", 2, []step{{0, 2, 2}, {-time.Second, 1, 0}, {1500 * time.Millisecond, 1, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			l := newTestLimiter(t, Quotas{Default: map[string]float64{"CreateKey": tt.rate}}, clk, 0)
			for i, s := range tt.steps {
				clk.Advance(s.wait)
				got := 0
				for range s.n {
					if l.Allow("CreateKey", "arn:aws:iam::111122223333:user/a") {
						got++
					}
				}
				if got != s.want {
					t.Fatalf("step %d (%+v): %d allowed, want %d", i, s, got, s.want)
				}
			}
		})
	}
}

func TestQuotaGroupsAndPrincipals(t *testing.T) {
	clk := newFakeClock()
	const alice, bob = "arn:aws:iam::111122223333:user/alice", "arn:aws:iam::111122223333:user/bob"
	l := newTestLimiter(t, Quotas{
		Default: map[string]float64{QuotaCryptographic: 3, "CreateKey": 1},
		Principals: map[string]map[string]float64{
			bob:           {"CreateKey": 4},
			"AKIDSPECIAL": {"CreateKey": 2},
		},
	}, clk, 0)
	count := func(op string, names ...string) int {
		n := 0
		for range 10 {
			if l.Allow(op, names...) {
				n++
			}
		}
		return n
	}
	// Encrypt, Decrypt and GenerateDataKey share one bucket.
	if !l.Allow("Encrypt", alice) || !l.Allow("Decrypt", alice) || !l.Allow("GenerateDataKey", alice) || l.Allow("ReEncrypt", alice) {
		t.Fatal("the cryptographic operations do not share one quota of 3")
	}
	// ... which is not CreateKey's, nor another principal's.
	if got := count("CreateKey", alice); got != 1 {
		t.Errorf("alice CreateKey: %d allowed, want 1", got)
	}
	if got := count("Encrypt", bob); got != 3 {
		t.Errorf("bob Encrypt: %d allowed, want 3 (default)", got)
	}
	if got := count("CreateKey", bob, "AKIDBOB"); got != 4 {
		t.Errorf("bob CreateKey: %d allowed, want 4 (his override)", got)
	}
	// An override by access key id applies when the ARN has none.
	if got := count("CreateKey", alice, "AKIDSPECIAL"); got != 2 {
		t.Errorf("AKIDSPECIAL CreateKey: %d allowed, want 2", got)
	}
	// Ungrouped, unlisted operations are not limited.
	if got := count("DescribeKey", alice); got != 10 {
		t.Errorf("DescribeKey: %d allowed, want 10 (no quota)", got)
	}
	// No principal: not limited.
	if got := count("CreateKey", "", ""); got != 10 {
		t.Errorf("anonymous CreateKey: %d allowed, want 10", got)
	}
	if got := QuotaGroup("VerifyMac"); got != QuotaCryptographicHMAC {
		t.Errorf("QuotaGroup(VerifyMac) = %q", got)
	}
}

func TestQuotaMemoryBounded(t *testing.T) {
	clk := newFakeClock()
	l := newTestLimiter(t, Quotas{Default: map[string]float64{"CreateKey": 1}}, clk, 3)
	for _, p := range []string{"a", "b", "c", "d", "e"} {
		if !l.Allow("CreateKey", p) {
			t.Fatalf("first request of %s refused", p)
		}
	}
	if n := l.Tracked(); n != 3 {
		t.Fatalf("tracking %d principals, want the cap 3", n)
	}
	// The most recent ones are kept (their buckets are empty) ...
	if l.Allow("CreateKey", "e") {
		t.Error("e's bucket was dropped")
	}
	// ... the least recent were dropped and start again full.
	if !l.Allow("CreateKey", "a") {
		t.Error("a was not evicted")
	}
	// Idle principals are dropped as requests come in.
	clk.Advance(2 * quotaIdle)
	for range 3 {
		l.Allow("CreateKey", "z")
	}
	if n := l.Tracked(); n != 1 {
		t.Errorf("tracking %d principals after they went idle, want 1", n)
	}
}

func TestParseQuotas(t *testing.T) {
	q, err := ParseQuotas([]byte(`{"default": {"Cryptographic": 50000, "CreateKey": 0},
		"principals": {"arn:aws:iam::111122223333:user/batch": {"CreateKey": 50}}}`), AWSQuotas())
	if err != nil {
		t.Fatal(err)
	}
	if q.Default[QuotaCryptographic] != 50000 || q.Default["CreateKey"] != 0 || q.Default["ListKeys"] != 100 {
		t.Errorf("defaults not laid over AWS's: %v", q.Default)
	}
	if q.Principals["arn:aws:iam::111122223333:user/batch"]["CreateKey"] != 50 {
		t.Errorf("principals: %v", q.Principals)
	}
	for _, bad := range []string{
		`{"default": {"CreatKey": 5}}`,
		`{"default": {"Encrypt": 5}}`,
		`{"principals": {"x": {"Nope": 1}}}`,
		`{"defaults": {}}`,
		`{"default": {"CreateKey": "5"}}`,
		`[]`,
	} {
		if _, err := ParseQuotas([]byte(bad), nil); err == nil {
			t.Errorf("ParseQuotas(%s) accepted", bad)
		}
	}
	// Every served operation has a quota group that AWSQuotas knows.
	h := newEnv(t, nil).h
	aws := AWSQuotas()
	for _, op := range h.Operations() {
		if _, ok := aws[QuotaGroup(op)]; !ok {
			t.Errorf("operation %s (group %s) has no AWS default", op, QuotaGroup(op))
		}
	}
}

// userAuth is DevAuthenticator with one IAM user per access key id.
type userAuth struct{ DevAuthenticator }

func (a *userAuth) Authenticate(r *http.Request, body []byte) (service.Caller, error) {
	c, err := a.DevAuthenticator.Authenticate(r, body)
	if err == nil {
		c.ARN = "arn:aws:iam::" + c.AccountID + ":user/" + c.AccessKeyID
	}
	return c, err
}

func sdkClientAs(url, akid string, attempts int) *kms.Client {
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(url),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, "secret", ""),
		RetryMaxAttempts: attempts,
	})
}

func TestQuotaThrottlingOverSDK(t *testing.T) {
	clk := newFakeClock()
	l := newTestLimiter(t, Quotas{Default: map[string]float64{"CreateKey": 2, QuotaCryptographic: 1000}}, clk, 0)
	aud := &fakeAuditor{}
	obs := &observer{}
	e := newEnv(t, func(c *Config) {
		c.Auth = &userAuth{DevAuthenticator{AccountID: "111122223333"}}
		c.Quota = l
		c.Audit = aud
		c.Observe = obs.observe
	})
	ctx := context.Background()
	alice := sdkClientAs(e.srv.URL, "AKIDALICE", 1)
	for i := range 2 {
		if _, err := alice.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
			t.Fatalf("CreateKey %d: %v", i, err)
		}
	}
	calls := len(e.fake.Calls())
	_, err := alice.CreateKey(ctx, &kms.CreateKeyInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" || ae.ErrorMessage() != throttleMessage {
		t.Fatalf("third CreateKey: want a ThrottlingException, got %T %v", err, err)
	}
	var re interface{ HTTPStatusCode() int }
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusBadRequest {
		t.Errorf("status: %v", err)
	}
	if n := len(e.fake.Calls()); n != calls {
		t.Errorf("the throttled request reached KMS")
	}
	// Another group of alice's, and another principal, are unaffected.
	if _, err := alice.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("x")}); err != nil {
		t.Errorf("alice Encrypt: %v", err)
	}
	bob := sdkClientAs(e.srv.URL, "AKIDBOB", 1)
	if _, err := bob.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
		t.Errorf("bob CreateKey: %v", err)
	}
	// Observed and audited like any error.
	var throttled []AuditEvent
	for _, ev := range aud.take() {
		if ev.ErrorCode == "ThrottlingException" {
			throttled = append(throttled, ev)
		}
	}
	if len(throttled) != 1 || throttled[0].Operation != "CreateKey" || throttled[0].Info.Caller.AccessKeyID != "AKIDALICE" ||
		throttled[0].ErrorMessage != throttleMessage {
		t.Errorf("audit of throttled requests: %+v", throttled)
	}
	n := 0
	for _, o := range obs.take() {
		if o.outcome == "ThrottlingException" {
			n++
			if o.operation != "CreateKey" {
				t.Errorf("throttle observed as %q", o.operation)
			}
		}
	}
	if n != 1 {
		t.Errorf("observed %d throttled requests, want 1", n)
	}
	// Time passes: alice may create keys again.
	clk.Advance(time.Second)
	if _, err := alice.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
		t.Errorf("CreateKey after a second: %v", err)
	}
}

func TestQuotaSDKRetriesSucceed(t *testing.T) {
	// Real clock: 20 CreateKey/s, burst 20. The bucket is drained first, so
	// the client's first call is throttled; an SDK client with the default
	// retry policy (3 attempts, jittered exponential backoff) still gets
	// all its calls through.
	l, err := NewQuotaLimiter(QuotaLimiterConfig{Quotas: Quotas{Default: map[string]float64{"CreateKey": 20}}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Quota = l })
	c := kms.New(kms.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(e.srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDRETRY", "secret", ""),
	})
	// DevAuthenticator's caller is the account root.
	for l.Allow("CreateKey", "arn:aws:iam::111122223333:root", "AKIDRETRY") {
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range 10 {
		if _, err := c.CreateKey(ctx, &kms.CreateKeyInput{}); err != nil {
			t.Fatalf("CreateKey %d with retries: %v", i, err)
		}
	}
	n := strings.Count(e.logs.String(), `"error_type":"ThrottlingException"`)
	if n == 0 {
		t.Error("no request was throttled: the test did not exercise retries")
	}
	t.Logf("%d requests throttled and retried", n)
}
