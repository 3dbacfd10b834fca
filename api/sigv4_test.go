package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
)

const (
	aliceID     = "AKIDALICE0000000001"
	aliceSecret = "alice/Secret+Key0000000000000000000000000"
	aliceARN    = "arn:aws:iam::111122223333:user/alice"
	bobID       = "AKIDBOB000000000001"
	bobSecret   = "bob-secret-000000000000000000000000000000"
	bobARN      = "arn:aws:iam::111122223333:user/bob"
)

// testClock is the verifier's clock: real time plus an offset.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) set(d time.Duration) {
	c.mu.Lock()
	c.off = d
	c.mu.Unlock()
}

type sigEnv struct {
	*testEnv
	auth  *SigV4Authenticator
	clock *testClock
	file  string
}

func writeCreds(t testing.TB, path string, creds ...Credential) {
	t.Helper()
	b, err := json.Marshal(CredentialsFile{AccountID: "111122223333", Credentials: creds})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".tmp", b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// newSigEnv serves the fake KMS with a SigV4Authenticator for region
// us-east-1 that knows alice.
func newSigEnv(t testing.TB) *sigEnv {
	t.Helper()
	se := &sigEnv{clock: &testClock{}, file: filepath.Join(t.TempDir(), "credentials.json")}
	writeCreds(t, se.file, Credential{AccessKeyID: aliceID, SecretAccessKey: aliceSecret, ARN: aliceARN,
		Policy: json.RawMessage(`{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*"}]}`)})
	se.testEnv = newEnv(t, func(c *Config) {
		a, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", AccountID: "111122223333", File: se.file,
			Now: se.clock.now, Logger: c.Logger})
		if err != nil {
			t.Fatal(err)
		}
		se.auth = a
		c.Auth = a
	})
	return se
}

// doerFunc is a kms.HTTPClient.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

// skewSigner signs with the SDK's signer at a shifted time.
type skewSigner struct {
	inner *v4.Signer
	off   time.Duration
}

func (s skewSigner) SignHTTP(ctx context.Context, c aws.Credentials, r *http.Request, payloadHash, service, region string, t time.Time, opts ...func(*v4.SignerOptions)) error {
	return s.inner.SignHTTP(ctx, c, r, payloadHash, service, region, t.Add(s.off), opts...)
}

func (e *sigEnv) client(akid, secret string, opts ...func(*kms.Options)) *kms.Client {
	return kms.New(kms.Options{
		Region:           "us-east-1",
		BaseEndpoint:     aws.String(e.srv.URL),
		Credentials:      credentials.NewStaticCredentialsProvider(akid, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       e.srv.Client(),
	}, opts...)
}

func describe(c *kms.Client) error {
	_, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String("alias/x")})
	return err
}

func wantCode(t *testing.T, err error, code, msgPart string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s, got %T %v", code, err, err)
	}
	if ae.ErrorCode() != code || !strings.Contains(ae.ErrorMessage(), msgPart) {
		t.Fatalf("want %s containing %q, got %s: %s", code, msgPart, ae.ErrorCode(), ae.ErrorMessage())
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() != http.StatusBadRequest {
		t.Fatalf("%s: HTTP status %d, want 400", code, re.HTTPStatusCode())
	}
}

func TestSigV4SDKRightSecret(t *testing.T) {
	e := newSigEnv(t)
	c := e.client(aliceID, aliceSecret)
	if err := describe(c); err != nil {
		t.Fatalf("DescribeKey: %v", err)
	}
	info, _ := e.fake.last()
	if info.Caller.AccessKeyID != aliceID || info.Caller.ARN != aliceARN || info.Caller.AccountID != "111122223333" {
		t.Fatalf("caller %+v", info.Caller)
	}
	// A body-carrying call (binary blob, encryption context) round-trips.
	enc, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String("k"), Plaintext: []byte("hello"),
		EncryptionContext: map[string]string{"purpose": "a b  c"}})
	if err != nil || string(enc.CiphertextBlob) != "ct:hello" {
		t.Fatalf("Encrypt: %+v %v", enc, err)
	}
	// Signing keys are cached and reused.
	if err := describe(c); err != nil {
		t.Fatal(err)
	}
	set := e.auth.set.Load()
	set.mu.Lock()
	n := len(set.keys)
	set.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d cached signing keys, want 1", n)
	}
	if cr, ok := e.auth.Lookup(aliceID); !ok || !strings.Contains(string(cr.Policy), "2012-10-17") {
		t.Fatalf("Lookup: %+v %v", cr, ok)
	}
	if strings.Contains(e.logs.String(), aliceSecret) {
		t.Fatal("the secret was logged")
	}
}

func TestSigV4SDKWrongSecret(t *testing.T) {
	e := newSigEnv(t)
	err := describe(e.client(aliceID, "not-the-secret"))
	wantCode(t, err, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided")
	if !strings.Contains(e.logs.String(), aliceID) {
		t.Error("the failure is not logged with the access key id")
	}
	if strings.Contains(e.logs.String(), aliceSecret) || strings.Contains(e.logs.String(), "not-the-secret") {
		t.Fatal("a secret was logged")
	}
}

func TestSigV4SDKUnknownKey(t *testing.T) {
	e := newSigEnv(t)
	wantCode(t, describe(e.client("AKIDNOBODY", aliceSecret)), "UnrecognizedClientException", "The security token included in the request is invalid.")
	// Session tokens are not issued here.
	c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.srv.URL), RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(aliceID, aliceSecret, "session-token")})
	wantCode(t, describe(c), "UnrecognizedClientException", "security token")
}

func TestSigV4ClockSkew(t *testing.T) {
	e := newSigEnv(t)
	for _, tc := range []struct {
		off     time.Duration
		wantErr string
	}{
		{-14 * time.Minute, ""},
		{14 * time.Minute, ""},
		{-16 * time.Minute, "Signature expired: "},
		{16 * time.Minute, "Signature not yet current: "},
		{-25 * time.Hour, "Signature expired: "},
	} {
		c := e.client(aliceID, aliceSecret, func(o *kms.Options) { o.HTTPSignerV4 = skewSigner{v4.NewSigner(), tc.off} })
		err := describe(c)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("signed %v off: %v", tc.off, err)
			}
			continue
		}
		wantCode(t, err, "InvalidSignatureException", tc.wantErr)
		if !strings.Contains(err.Error(), "15 min.)") {
			t.Errorf("message %v", err)
		}
	}
}

func TestSigV4ScopeRegionService(t *testing.T) {
	e := newSigEnv(t)
	// Wrong region: the SDK signs for the region it is configured with.
	wantCode(t, describe(e.client(aliceID, aliceSecret, func(o *kms.Options) { o.Region = "eu-west-1" })),
		"InvalidSignatureException", "Credential should be scoped to a valid region, not 'eu-west-1'.")
	// Wrong service and a scope date that is not X-Amz-Date's.
	body := []byte(`{"KeyId":"k"}`)
	r := e.signedRequest(t, body, "s3", "us-east-1", time.Now())
	res := e.do(t, r)
	if res.status != 400 || res.errType != "IncompleteSignatureException" || !strings.Contains(res.message, "'kms'") {
		t.Fatalf("wrong service: %+v", res)
	}
	r = e.signedRequest(t, body, "kms", "us-east-1", time.Now())
	authz := r.Header.Get("Authorization")
	d := r.Header.Get("X-Amz-Date")[:8]
	other := "20200101"
	if d == other {
		other = "20200102"
	}
	r.Header.Set("Authorization", strings.Replace(authz, "/"+d+"/", "/"+other+"/", 1))
	res = e.do(t, r)
	if res.status != 400 || res.errType != "InvalidSignatureException" || !strings.Contains(res.message, "Date in Credential scope does not match") {
		t.Fatalf("wrong scope date: %+v", res)
	}
}

func TestSigV4BodyChangedAfterSigning(t *testing.T) {
	e := newSigEnv(t)
	tamper := doerFunc(func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		b = bytes.Replace(b, []byte(`"alias/x"`), []byte(`"alias/y"`), 1)
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		return e.srv.Client().Do(r)
	})
	err := describe(e.client(aliceID, aliceSecret, func(o *kms.Options) { o.HTTPClient = tamper }))
	wantCode(t, err, "InvalidSignatureException", "does not match the signature you provided")
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("service reached: %v", calls)
	}
}

func TestSigV4MissingAndMalformed(t *testing.T) {
	e := newSigEnv(t)
	// The SDK with anonymous credentials does not sign at all.
	c := kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(e.srv.URL), RetryMaxAttempts: 1,
		Credentials: aws.AnonymousCredentials{}})
	wantCode(t, describe(c), "MissingAuthenticationTokenException", "Missing Authentication Token")

	body := []byte(`{"KeyId":"k"}`)
	for name, mutate := range map[string]func(r *http.Request){
		"garbage": func(r *http.Request) { r.Header.Set("Authorization", "AWS4-HMAC-SHA256 nonsense") },
		"no signature": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Split(r.Header.Get("Authorization"), ", Signature=")[0])
		},
		"no x-amz-date": func(r *http.Request) { r.Header.Del("X-Amz-Date") },
		"host not signed": func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "host;", "", 1))
		},
		"bad x-amz-date":    func(r *http.Request) { r.Header.Set("X-Amz-Date", "yesterday") },
		"two authz headers": func(r *http.Request) { r.Header.Add("Authorization", r.Header.Get("Authorization")) },
	} {
		r := e.signedRequest(t, body, "kms", "us-east-1", time.Now())
		mutate(r)
		res := e.do(t, r)
		if res.status != 400 || res.errType != "IncompleteSignatureException" {
			t.Errorf("%s: %d %s %s", name, res.status, res.errType, res.message)
		}
	}
	r := e.signedRequest(t, body, "kms", "us-east-1", time.Now())
	r.Header.Del("Authorization")
	if res := e.do(t, r); res.status != 400 || res.errType != "MissingAuthenticationTokenException" {
		t.Errorf("no Authorization: %+v", res)
	}
	if calls := e.fake.Calls(); len(calls) != 0 {
		t.Fatalf("service reached: %v", calls)
	}
}

func TestSigV4ContentSHA256Header(t *testing.T) {
	e := newSigEnv(t)
	body := []byte(`{"KeyId":"k"}`)
	sum := sha256.Sum256(body)
	good := hex.EncodeToString(sum[:])
	for _, tc := range []struct{ value, wantErr string }{
		{good, ""},
		{"UNSIGNED-PAYLOAD", "signed payload"},
		{"STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "signed payload"},
		{strings.Repeat("0", 64), "x-amz-content-sha256"},
	} {
		r := e.newRequest(t, body)
		r.Header.Set("X-Amz-Content-Sha256", tc.value)
		// The client signs with the header's value as payload hash, as S3-style signers do.
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: aliceID, SecretAccessKey: aliceSecret},
			r, tc.value, "kms", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		res := e.do(t, r)
		if tc.wantErr == "" {
			if res.status != 200 {
				t.Errorf("%s: %+v", tc.value, res)
			}
			continue
		}
		if res.status != 400 || res.errType != "InvalidSignatureException" || !strings.Contains(res.message, tc.wantErr) {
			t.Errorf("%s: %d %s %s", tc.value, res.status, res.errType, res.message)
		}
	}
}

func TestSigV4Replay(t *testing.T) {
	e := newSigEnv(t)
	var captured *http.Request
	var capturedBody []byte
	rec := doerFunc(func(r *http.Request) (*http.Response, error) {
		capturedBody, _ = io.ReadAll(r.Body)
		captured = r.Clone(context.Background())
		r.Body = io.NopCloser(bytes.NewReader(capturedBody))
		return e.srv.Client().Do(r)
	})
	if err := describe(e.client(aliceID, aliceSecret, func(o *kms.Options) { o.HTTPClient = rec })); err != nil {
		t.Fatal(err)
	}
	replay := func() result {
		r := captured.Clone(context.Background())
		r.Body = io.NopCloser(bytes.NewReader(capturedBody))
		return e.do(t, r)
	}
	// Within the window a replay is accepted (SigV4 cannot tell it apart).
	if res := replay(); res.status != 200 {
		t.Fatalf("replay within the window: %+v", res)
	}
	e.clock.set(16 * time.Minute)
	res := replay()
	if res.status != 400 || res.errType != "InvalidSignatureException" || !strings.HasPrefix(res.message, "Signature expired: ") {
		t.Fatalf("replay after 16 minutes: %+v", res)
	}
}

func TestSigV4Reload(t *testing.T) {
	e := newSigEnv(t)
	alice := e.client(aliceID, aliceSecret)
	bob := e.client(bobID, bobSecret)
	if err := describe(alice); err != nil {
		t.Fatal(err)
	}
	wantCode(t, describe(bob), "UnrecognizedClientException", "")

	// Bob added, alice removed.
	writeCreds(t, e.file, Credential{AccessKeyID: bobID, SecretAccessKey: bobSecret, ARN: bobARN})
	if err := e.auth.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := describe(bob); err != nil {
		t.Fatalf("bob after reload: %v", err)
	}
	if info, _ := e.fake.last(); info.Caller.ARN != bobARN {
		t.Fatalf("caller %+v", info.Caller)
	}
	wantCode(t, describe(alice), "UnrecognizedClientException", "")
	logs := e.logs.String()
	if !strings.Contains(logs, `"added":["`+bobID+`"]`) || !strings.Contains(logs, `"removed":["`+aliceID+`"]`) {
		t.Errorf("reload not logged with added/removed ids:\n%s", logs)
	}

	// A bad file keeps the previous credentials.
	for name, content := range map[string]string{
		"not json":      `{"account_id":`,
		"other account": `{"account_id":"999999999999","credentials":[{"access_key_id":"AKIDX","secret_access_key":"s","arn":"arn:aws:iam::999999999999:user/x"}]}`,
		"unknown field": `{"account_id":"111122223333","credentials":[],"extra":1}`,
	} {
		if err := os.WriteFile(e.file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.auth.Reload(); err == nil {
			t.Fatalf("%s: reload succeeded", name)
		}
		if err := describe(bob); err != nil {
			t.Fatalf("%s: bob after a failed reload: %v", name, err)
		}
	}
	os.Remove(e.file)
	if err := e.auth.Reload(); err == nil {
		t.Fatal("reload of a missing file succeeded")
	}
	if !strings.Contains(e.logs.String(), "keeping the previous credentials") {
		t.Error("failed reload not logged")
	}

	// A changed secret: the cached signing key of the old one is dropped.
	writeCreds(t, e.file, Credential{AccessKeyID: bobID, SecretAccessKey: "bob-new-secret", ARN: bobARN})
	if err := e.auth.Reload(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, describe(bob), "InvalidSignatureException", "")
	if err := describe(e.client(bobID, "bob-new-secret")); err != nil {
		t.Fatalf("bob with the new secret: %v", err)
	}
	if strings.Contains(e.logs.String(), bobSecret) || strings.Contains(e.logs.String(), "bob-new-secret") {
		t.Fatal("a secret was logged")
	}
}

func TestSigV4ConcurrentReload(t *testing.T) {
	e := newSigEnv(t)
	c := e.client(aliceID, aliceSecret)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := e.auth.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 20 {
		if err := describe(c); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

func TestSigV4PathAndQuery(t *testing.T) {
	// The canonical request of odd paths and queries matches the SDK's.
	a, err := NewSigV4Authenticator(SigV4Config{Region: "us-east-1", Logger: slog.New(slog.DiscardHandler),
		Credentials: &CredentialsFile{AccountID: "111122223333", Credentials: []Credential{{AccessKeyID: aliceID, SecretAccessKey: aliceSecret, ARN: aliceARN}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{
		"http://kms.local/",
		"http://kms.local",
		"http://kms.local:8080/a%20b/c~d/%2F/e+f",
		"http://kms.local/?b=2&a=1&a=0&c=x%20y&d=%2B&e=~&f",
		"http://kms.local/p?z=%E2%82%AC&y=a+b",
	} {
		body := []byte(`{}`)
		r, err := http.NewRequest("POST", u, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
		r.Header.Set("X-Custom", "  spaced   value ")
		r.Header.Add("X-Multi", "one")
		r.Header.Add("X-Multi", "two")
		sum := sha256.Sum256(body)
		if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: aliceID, SecretAccessKey: aliceSecret},
			r, hex.EncodeToString(sum[:]), "kms", "us-east-1", time.Now()); err != nil {
			t.Fatal(err)
		}
		// What the server sees: the request line as sent.
		srvReq, err := http.ReadRequest(bufioReader(t, r))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(srvReq, body); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// newRequest is an unsigned DescribeKey request to the test server.
func (e *sigEnv) newRequest(t testing.TB, body []byte) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodPost, e.srv.URL+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", ContentTypeJSON)
	r.Header.Set(HeaderTarget, TargetPrefix+"DescribeKey")
	return r
}

// signedRequest is newRequest signed by alice with the SDK signer.
func (e *sigEnv) signedRequest(t testing.TB, body []byte, service, region string, at time.Time) *http.Request {
	t.Helper()
	r := e.newRequest(t, body)
	sum := sha256.Sum256(body)
	if err := v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: aliceID, SecretAccessKey: aliceSecret},
		r, hex.EncodeToString(sum[:]), service, region, at); err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *sigEnv) do(t testing.TB, r *http.Request) result {
	t.Helper()
	resp, err := e.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return decodeResult(t, resp.StatusCode, resp.Header, b)
}

// bufioReader serialises r as a client would send it.
func bufioReader(t testing.TB, r *http.Request) *bufio.Reader {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return bufio.NewReader(&buf)
}

// Concurrent requests signed with the same signing key share its pooled
// HMACs: each must still be verified on its own (right signatures accepted,
// wrong ones refused), which -race checks too.
func TestSigV4ConcurrentVerification(t *testing.T) {
	e := newSigEnv(t)
	good := e.client(aliceID, aliceSecret)
	bad := e.client(aliceID, "not-"+aliceSecret)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for range 15 {
				if g%2 == 0 {
					if err := describe(good); err != nil {
						t.Errorf("right signature refused: %v", err)
						return
					}
				} else {
					var ae smithy.APIError
					if err := describe(bad); !errors.As(err, &ae) || ae.ErrorCode() != "InvalidSignatureException" {
						t.Errorf("wrong signature: got %v, want InvalidSignatureException", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
