package api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/kmsdclient"
	"github.com/kmsd/kmsd/service"
)

// The Batch API's wire side on a real node: the handler of these tests is
// built over a real service (testserver: Raft on BoltDB) with the hooks
// testserver does not set (audit, quotas, observation, body caps).

// batchNode is a handler over a real node, served on loopback.
type batchNode struct {
	url    string
	sdk    *kms.Client
	client *kmsdclient.Client
}

func startBatchNode(t *testing.T, configure func(*api.Config)) *batchNode {
	t.Helper()
	srv := testserver.Start(t)
	cfg := api.Config{
		KMS:    srv.Service,
		Auth:   &api.DevAuthenticator{AccountID: testserver.AccountID},
		Logger: testserver.Logger(t),
		NodeID: "n1",
	}
	if configure != nil {
		configure(&cfg)
	}
	h, err := api.NewHandler(cfg)
	require.NoError(t, err)
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	c, err := kmsdclient.New(kmsdclient.Options{Endpoint: hs.URL, Region: testserver.Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		HTTPClient:  &http.Client{Timeout: time.Minute}, MaxAttempts: 1})
	require.NoError(t, err)
	return &batchNode{url: hs.URL, sdk: testserver.NewClient(hs.URL), client: c}
}

func (n *batchNode) key(t *testing.T) string {
	t.Helper()
	out, err := n.sdk.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	return aws.ToString(out.KeyMetadata.KeyId)
}

// auditEvents reads every event record (not headers or digests) of the
// audit files in dir.
func auditEvents(t *testing.T, dir string) (records []map[string]any, raw []byte) {
	t.Helper()
	files, err := audit.Files(dir)
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		raw = append(raw, b...)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			require.NoError(t, json.Unmarshal(sc.Bytes(), &m))
			if _, ok := m["kmsdRecordType"]; !ok {
				records = append(records, m)
			}
		}
		require.NoError(t, sc.Err())
	}
	return records, raw
}

func byRequestID(recs []map[string]any, prefix string) map[string]map[string]any {
	m := map[string]map[string]any{}
	for _, r := range recs {
		if id, _ := r["requestID"].(string); strings.HasPrefix(id, prefix) {
			m[id] = r
		}
	}
	return m
}

// batchItems returns the items of a batch's summary record, by requestID.
func batchItems(t *testing.T, rec map[string]any) map[string]map[string]any {
	t.Helper()
	add, ok := rec["additionalEventData"].(map[string]any)
	require.True(t, ok, "no additionalEventData in %v", rec)
	list, ok := add["items"].([]any)
	require.True(t, ok)
	m := map[string]map[string]any{}
	for _, it := range list {
		item := it.(map[string]any)
		m[item["requestID"].(string)] = item
	}
	require.Len(t, m, len(list), "item requestIDs repeated")
	return m
}

func TestBatchAuditOneSummaryRecordWithoutSecrets(t *testing.T) {
	dir := t.TempDir()
	w, err := audit.Open(audit.Options{Dir: dir, NodeID: "n1", Region: testserver.Region, AccountID: testserver.AccountID})
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	n := startBatchNode(t, func(c *api.Config) { c.Audit = w })
	ctx := context.Background()
	key := n.key(t)

	// Secrets that must never reach the log: plaintexts, data keys,
	// ciphertexts, grant tokens.
	var secrets []string
	items := []kmsdclient.EncryptItem{
		{KeyId: key, Plaintext: []byte("SECRET-PLAINTEXT-0"), EncryptionContext: map[string]string{"purpose": "audit-test"}},
		{KeyId: "alias/missing", Plaintext: []byte("SECRET-PLAINTEXT-1")},
		{KeyId: key, Plaintext: []byte("SECRET-PLAINTEXT-2"), EncryptionAlgorithm: "BOGUS"},
		{KeyId: key, Plaintext: []byte("SECRET-PLAINTEXT-3")},
	}
	for _, it := range items {
		secrets = append(secrets, string(it.Plaintext), base64.StdEncoding.EncodeToString(it.Plaintext))
	}
	enc, err := n.client.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items, GrantTokens: []string{"SECRET-GRANT-TOKEN"}})
	require.NoError(t, err)
	secrets = append(secrets, "SECRET-GRANT-TOKEN")
	for _, r := range enc.Results {
		if r.Error == nil {
			secrets = append(secrets, base64.StdEncoding.EncodeToString(r.CiphertextBlob))
		}
	}
	dk, err := n.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: []kmsdclient.DataKeyItem{
		{KeyId: key, KeySpec: "AES_256"}, {KeyId: key, NumberOfBytes: 64}, {KeyId: key}}})
	require.NoError(t, err)
	for _, r := range dk.Results[:2] {
		secrets = append(secrets, base64.StdEncoding.EncodeToString(r.Plaintext), base64.StdEncoding.EncodeToString(r.CiphertextBlob))
	}
	dec, err := n.client.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: []kmsdclient.DecryptItem{
		{CiphertextBlob: dk.Results[0].CiphertextBlob}, {CiphertextBlob: []byte("junk")}}})
	require.NoError(t, err)
	require.Nil(t, dec.Results[0].Error)
	// A batch refused as a whole: one record, for the request.
	tooMany := make([]kmsdclient.DataKeyItem, 1001)
	for i := range tooMany {
		tooMany[i] = kmsdclient.DataKeyItem{KeyId: key, KeySpec: "AES_256"}
	}
	_, err = n.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: tooMany})
	var ae *kmsdclient.APIError
	require.ErrorAs(t, err, &ae)
	require.NoError(t, w.Close())

	recs, raw := auditEvents(t, dir)
	for _, s := range secrets {
		require.NotContains(t, string(raw), s)
	}

	// BatchEncrypt: one record for the request, with an entry per item
	// named by the item's request id.
	got := byRequestID(recs, enc.RequestID)
	require.Len(t, got, 1)
	rec := got[enc.RequestID]
	require.Equal(t, "BatchEncrypt", rec["eventName"])
	require.Equal(t, true, rec["readOnly"])
	require.Nil(t, rec["errorCode"])
	require.Equal(t, map[string]any{"itemCount": float64(len(items))}, rec["requestParameters"])
	require.Equal(t, map[string]any{"failedItemCount": float64(2)}, rec["responseElements"])
	require.Equal(t, []any{map[string]any{"ARN": "arn:aws:kms:us-east-1:" + testserver.AccountID + ":key/" + key,
		"type": "AWS::KMS::Key", "accountId": testserver.AccountID}}, rec["resources"])
	entries := batchItems(t, rec)
	require.Len(t, entries, len(items))
	for i, r := range enc.Results {
		e := entries[fmt.Sprintf("%s#%d", enc.RequestID, i)]
		require.NotNil(t, e, "item %d", i)
		params, _ := e["requestParameters"].(map[string]any)
		require.Equal(t, items[i].KeyId, params["keyId"], "item %d", i)
		if r.Error != nil {
			require.Equal(t, r.Error.Code, e["errorCode"], "item %d", i)
			require.Equal(t, r.Error.Message, e["errorMessage"], "item %d", i)
			require.Nil(t, e["responseElements"], "item %d", i)
		} else {
			require.Nil(t, e["errorCode"], "item %d", i)
			resp, _ := e["responseElements"].(map[string]any)
			require.Equal(t, r.KeyId, resp["keyId"], "item %d", i)
			require.Equal(t, "SYMMETRIC_DEFAULT", resp["encryptionAlgorithm"])
		}
	}
	require.Equal(t, map[string]any{"purpose": "audit-test"}, entries[enc.RequestID+"#0"]["requestParameters"].(map[string]any)["encryptionContext"])
	require.Equal(t, "NotFoundException", entries[enc.RequestID+"#1"]["errorCode"])
	require.Equal(t, "ValidationException", entries[enc.RequestID+"#2"]["errorCode"])

	got = byRequestID(recs, dk.RequestID)
	require.Len(t, got, 1)
	require.Equal(t, "BatchGenerateDataKey", got[dk.RequestID]["eventName"])
	entries = batchItems(t, got[dk.RequestID])
	require.Len(t, entries, 3)
	require.Equal(t, "AES_256", entries[dk.RequestID+"#0"]["requestParameters"].(map[string]any)["keySpec"])
	require.Equal(t, "ValidationException", entries[dk.RequestID+"#2"]["errorCode"])
	got = byRequestID(recs, dec.RequestID)
	require.Len(t, got, 1)
	entries = batchItems(t, got[dec.RequestID])
	require.Len(t, entries, 2)
	require.Equal(t, "InvalidCiphertextException", entries[dec.RequestID+"#1"]["errorCode"])

	// A batch refused as a whole: an ordinary record for the request.
	got = byRequestID(recs, ae.RequestID)
	require.Len(t, got, 1)
	require.Equal(t, "BatchGenerateDataKey", got[ae.RequestID]["eventName"])
	require.Equal(t, "ValidationException", got[ae.RequestID]["errorCode"])
	require.Nil(t, got[ae.RequestID]["additionalEventData"])

	// The chain is intact.
	files, err := audit.Files(dir)
	require.NoError(t, err)
	reps, err := audit.VerifyFiles(files, audit.VerifyOptions{})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%v", r.Problems)
	}
}

// batchRecorder is an Auditor that is also a BatchAuditor, recording what
// it is given and failing when told to.
type batchRecorder struct {
	mu      sync.Mutex
	single  []api.AuditEvent
	reqs    []api.AuditEvent
	batches [][]api.AuditEvent
	err     error
}

func (a *batchRecorder) Record(_ context.Context, ev api.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.single = append(a.single, ev)
	return a.err
}

func (a *batchRecorder) RecordBatch(_ context.Context, req api.AuditEvent, evs []api.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reqs = append(a.reqs, req)
	a.batches = append(a.batches, evs)
	return a.err
}

// state returns what was recorded (never asserting under the lock: a
// failed assertion would leave it held and the server stuck).
func (a *batchRecorder) state() (single []api.AuditEvent, batches [][]api.AuditEvent) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]api.AuditEvent(nil), a.single...), append([][]api.AuditEvent(nil), a.batches...)
}

// requests returns the request events of the batches recorded.
func (a *batchRecorder) requests() []api.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]api.AuditEvent(nil), a.reqs...)
}

func (a *batchRecorder) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

// singleRecorder is an Auditor without RecordBatch.
type singleRecorder struct {
	mu  sync.Mutex
	evs []api.AuditEvent
	err error
}

func (a *singleRecorder) Record(_ context.Context, ev api.AuditEvent) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.evs = append(a.evs, ev)
	return a.err
}

func (a *singleRecorder) events() []api.AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]api.AuditEvent(nil), a.evs...)
}

func (a *singleRecorder) fail(err error) {
	a.mu.Lock()
	a.err = err
	a.mu.Unlock()
}

func TestBatchAuditorGetsTheBatchAtOnceAndFailsClosed(t *testing.T) {
	rec := &batchRecorder{}
	// Observe runs after the response is written: the test waits for it.
	observed := make(chan string, 16)
	n := startBatchNode(t, func(c *api.Config) {
		c.Audit = rec
		c.Observe = func(op, outcome string, _ time.Duration) { observed <- op + "/" + outcome }
	})
	ctx := context.Background()
	key := n.key(t)
	items := make([]kmsdclient.DataKeyItem, 50)
	for i := range items {
		items[i] = kmsdclient.DataKeyItem{KeyId: key, KeySpec: "AES_128"}
	}
	out, err := n.client.BatchGenerateDataKeyWithoutPlaintext(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items})
	require.NoError(t, err)
	singles, batches := rec.state()
	rec.fail(errors.New("disk full"))
	require.Len(t, batches, 1)
	evs := batches[0]
	require.Len(t, singles, 1) // CreateKey
	require.Len(t, evs, 50)
	// The request's event: the items' caller, operation and time, the
	// request's own id, no bodies.
	reqs := rec.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "BatchGenerateDataKeyWithoutPlaintext", reqs[0].Operation)
	require.Equal(t, out.RequestID, reqs[0].Info.RequestID)
	require.Equal(t, evs[0].Info.Caller, reqs[0].Info.Caller)
	require.Equal(t, evs[0].Info.SourceIP, reqs[0].Info.SourceIP)
	require.True(t, evs[0].Time.Equal(reqs[0].Time))
	require.Nil(t, reqs[0].Request)
	require.Nil(t, reqs[0].Response)
	for i, ev := range evs {
		require.Equal(t, "BatchGenerateDataKeyWithoutPlaintext", ev.Operation)
		require.Equal(t, fmt.Sprintf("%s#%d", out.RequestID, i), ev.Info.RequestID)
		require.Equal(t, "AKIDEXAMPLE", ev.Info.Caller.AccessKeyID)
		require.Empty(t, ev.ErrorCode)
		require.NotContains(t, string(ev.Response), "CiphertextBlob")
		require.Contains(t, string(ev.Response), out.Results[i].KeyId)
	}
	for _, want := range []string{"CreateKey/ok", "BatchGenerateDataKeyWithoutPlaintext/ok"} {
		select {
		case got := <-observed:
			require.Equal(t, want, got)
		case <-time.After(10 * time.Second):
			t.Fatalf("no observation %s", want)
		}
	}
	select {
	case got := <-observed:
		t.Fatalf("one observation per batch, got also %s", got)
	default:
	}

	// No answer without the records.
	_, err = n.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items})
	var ae *kmsdclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "KMSInternalException", ae.Code)
	require.Equal(t, http.StatusInternalServerError, ae.StatusCode)

	// An Auditor without RecordBatch gets every item through Record.
	single := &singleRecorder{}
	n2 := startBatchNode(t, func(c *api.Config) { c.Audit = single })
	key2 := n2.key(t)
	items2 := make([]kmsdclient.DataKeyItem, 300)
	for i := range items2 {
		items2[i] = kmsdclient.DataKeyItem{KeyId: key2, KeySpec: "AES_256"}
	}
	out2, err := n2.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items2})
	require.NoError(t, err)
	got := single.events()
	single.fail(errors.New("disk full"))
	require.Len(t, got, 301)
	ids := map[string]bool{}
	for _, ev := range got[1:] {
		ids[ev.Info.RequestID] = true
		require.NotContains(t, string(ev.Response), "Plaintext")
	}
	for i := range items2 {
		require.True(t, ids[fmt.Sprintf("%s#%d", out2.RequestID, i)], "item %d", i)
	}
	_, err = n2.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items2[:3]})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "KMSInternalException", ae.Code)

	// Fail open: answered anyway.
	open := &singleRecorder{err: errors.New("disk full")}
	n3 := startBatchNode(t, func(c *api.Config) { c.Audit, c.AuditFailOpen = open, true })
	key3 := n3.key(t)
	out3, err := n3.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: []kmsdclient.DataKeyItem{{KeyId: key3, KeySpec: "AES_256"}}})
	require.NoError(t, err)
	require.Nil(t, out3.Results[0].Error)
}

// fixedClock is a settable clock for the quota limiter.
type fixedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fixedClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fixedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestBatchItemsCountAgainstQuota(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	q, err := api.NewQuotaLimiter(api.QuotaLimiterConfig{Now: clock.now,
		Quotas: api.Quotas{Default: map[string]float64{api.QuotaCryptographic: 10}}})
	require.NoError(t, err)
	n := startBatchNode(t, func(c *api.Config) { c.Quota = q })
	ctx := context.Background()
	key := n.key(t)
	items := make([]kmsdclient.EncryptItem, 25)
	for i := range items {
		items[i] = kmsdclient.EncryptItem{KeyId: key, Plaintext: []byte{byte(i)}}
	}
	// 10 tokens: the first 10 items run, the others are throttled alone.
	out, err := n.client.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items})
	require.NoError(t, err)
	for i, r := range out.Results {
		if i < 10 {
			require.Nil(t, r.Error, "item %d", i)
			continue
		}
		require.NotNil(t, r.Error, "item %d", i)
		require.Equal(t, "ThrottlingException", r.Error.Code)
		require.Equal(t, "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.", r.Error.Message)
	}
	// No token left: the whole batch, and a single Encrypt (same quota
	// group), are throttled.
	_, err = n.client.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items[:1]})
	var ae *kmsdclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "ThrottlingException", ae.Code)
	_, err = n.sdk.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
	require.ErrorContains(t, err, "ThrottlingException")
	// Half a second refills 5 tokens.
	clock.advance(500 * time.Millisecond)
	dk, err := n.client.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: []kmsdclient.DataKeyItem{
		{KeyId: key, KeySpec: "AES_256"}, {KeyId: key, KeySpec: "AES_256"}, {KeyId: key, KeySpec: "AES_256"},
		{KeyId: key, KeySpec: "AES_256"}, {KeyId: key, KeySpec: "AES_256"}, {KeyId: key, KeySpec: "AES_256"}}})
	require.NoError(t, err)
	require.Nil(t, dk.Results[4].Error)
	require.Equal(t, "ThrottlingException", dk.Results[5].Error.Code)
	// A refused batch takes no tokens.
	clock.advance(time.Second)
	_, err = n.client.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: make([]kmsdclient.EncryptItem, 1001)})
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "ValidationException", ae.Code)
	require.Equal(t, 10, q.AllowN("Encrypt", 50, "arn:aws:iam::"+testserver.AccountID+":root", "AKIDEXAMPLE"))
}

func TestQuotaAllowN(t *testing.T) {
	clock := &fixedClock{t: time.Now()}
	q, err := api.NewQuotaLimiter(api.QuotaLimiterConfig{Now: clock.now,
		Quotas: api.Quotas{Default: map[string]float64{api.QuotaCryptographic: 100}}})
	require.NoError(t, err)
	require.Equal(t, 60, q.AllowN("GenerateDataKey", 60, "p"))
	require.Equal(t, 40, q.AllowN("Decrypt", 60, "p"))
	require.Equal(t, 0, q.AllowN("Encrypt", 1, "p"))
	require.False(t, q.Allow("Encrypt", "p"))
	require.Equal(t, 7, q.AllowN("CreateKey", 7, "p"), "a group without a rate is not limited")
	require.Equal(t, 5, q.AllowN("Encrypt", 5, ""), "no principal: nothing to charge")
	require.Equal(t, 0, q.AllowN("Encrypt", 0, "q"))
	clock.advance(250 * time.Millisecond)
	require.Equal(t, 25, q.AllowN("Encrypt", 1000, "p"))
	require.True(t, q.Allow("Encrypt", "other"))
}

func TestBatchBodyCaps(t *testing.T) {
	n := startBatchNode(t, nil)
	ctx := context.Background()
	key := n.key(t)
	// 1,000 items of 4 KiB: a 5.5 MB body, over TrentService's 1 MiB cap.
	items := make([]kmsdclient.EncryptItem, 1000)
	pt := bytes.Repeat([]byte("k"), 4096)
	for i := range items {
		items[i] = kmsdclient.EncryptItem{KeyId: key, Plaintext: pt, EncryptionContext: map[string]string{"i": fmt.Sprint(i)}}
	}
	out, err := n.client.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items})
	require.NoError(t, err)
	dItems := make([]kmsdclient.DecryptItem, 1000)
	for i, r := range out.Results {
		require.Nil(t, r.Error, "item %d", i)
		dItems[i] = kmsdclient.DecryptItem{CiphertextBlob: r.CiphertextBlob, EncryptionContext: items[i].EncryptionContext}
	}
	dec, err := n.client.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: dItems})
	require.NoError(t, err)
	for i, r := range dec.Results {
		require.Nil(t, r.Error, "item %d", i)
		require.Equal(t, pt, r.Plaintext)
	}
	// TrentService keeps its cap.
	status, typ := postRaw(t, n.url, "TrentService.Encrypt", bytes.Repeat([]byte(" "), 1<<20+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "RequestEntityTooLargeException", typ)
	status, typ = postRaw(t, n.url, "KmsdService.BatchEncrypt", bytes.Repeat([]byte(" "), 1<<20+1))
	require.Equal(t, http.StatusBadRequest, status, "under the batch cap: read, then refused as empty")
	require.Equal(t, "ValidationException", typ)

	// The batch cap is configurable and enforced.
	small := startBatchNode(t, func(c *api.Config) { c.MaxBatchBodyBytes = 64 << 10 })
	status, typ = postRaw(t, small.url, "KmsdService.BatchEncrypt", bytes.Repeat([]byte(" "), 64<<10+1))
	require.Equal(t, http.StatusRequestEntityTooLarge, status)
	require.Equal(t, "RequestEntityTooLargeException", typ)
	_, err = api.NewHandler(api.Config{KMS: nil, MaxBatchBodyBytes: -1})
	require.ErrorContains(t, err, "MaxBatchBodyBytes -1 is negative")
}

// postRaw POSTs body to target with a SigV4 header the dev authenticator
// accepts, and returns the status and error type.
func postRaw(t *testing.T, url, target string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+"/", bytes.NewReader(body))
	require.NoError(t, err)
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Target", target)
	req.Header.Set("Content-Type", api.ContentTypeJSON)
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
		"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0f", 32))
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var e struct {
		Type string `json:"__type"`
	}
	require.NoError(t, json.Unmarshal(b, &e), "%s", b)
	return resp.StatusCode, e.Type
}

// batchCPU is this process's user+system CPU time so far.
func batchCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportBatchItems reports items/s (wall clock), the CPU an item cost
// (cpu-µs/item: the whole process, so robust when other work shares the
// machine) and items/s-per-core, the rate one core would sustain.
func reportBatchItems(b *testing.B, items int, cpu time.Duration) {
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(items), "cpu-µs/item")
		b.ReportMetric(float64(items)/cpu.Seconds(), "items/s-per-core")
	}
}

// BenchmarkBatchGenerateDataKey sends BatchGenerateDataKey requests of
// 1,000 AES_256 items to a real node's handler, with 2 requests in flight:
//
//   - handler/audit=off|nosync|fsync: Handler.ServeHTTP called directly on
//     a prebuilt request (decode, per-item validation, service, encoding,
//     audit), no network, no client;
//
//   - loopback: kmsdclient over loopback HTTP (signing, JSON on both
//     sides; the client's CPU is in cpu-µs/item too).
//
//     go test -run '^$' -bench BatchGenerateDataKey -benchtime 30x ./api/
func BenchmarkBatchGenerateDataKey(b *testing.B) {
	for _, mode := range []string{"off", "nosync", "fsync"} {
		b.Run("handler/audit="+mode, func(b *testing.B) {
			srv := testserver.Start(b)
			cfg := api.Config{KMS: srv.Service, Auth: &api.DevAuthenticator{AccountID: testserver.AccountID}, NodeID: "n1",
				Logger: slog.New(slog.DiscardHandler)}
			if mode != "off" {
				w, err := audit.Open(audit.Options{Dir: b.TempDir(), NodeID: "n1", Region: testserver.Region,
					AccountID: testserver.AccountID, NoSync: mode == "nosync", Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { w.Close() })
				cfg.Audit = w
			}
			h, err := api.NewHandler(cfg)
			if err != nil {
				b.Fatal(err)
			}
			key, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
			if err != nil {
				b.Fatal(err)
			}
			body := dataKeyBatchBody(aws.ToString(key.KeyMetadata.KeyId), 1000)
			now := time.Now().UTC()
			req := func() *http.Request {
				r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				r.Header.Set("X-Amz-Target", "KmsdService.BatchGenerateDataKey")
				r.Header.Set("Content-Type", api.ContentTypeJSON)
				r.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
				r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
					"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0f", 32))
				return r
			}
			b.SetParallelism(1)
			b.ReportAllocs()
			cpu0 := batchCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req())
					if w.Code != http.StatusOK {
						b.Errorf("status %d: %.300s", w.Code, w.Body)
						return
					}
				}
			})
			b.StopTimer()
			reportBatchItems(b, b.N*1000, batchCPU()-cpu0)
		})
	}
	b.Run("loopback", func(b *testing.B) {
		srv := testserver.Start(b)
		key, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
		if err != nil {
			b.Fatal(err)
		}
		c, err := kmsdclient.New(kmsdclient.Options{Endpoint: srv.URL, Region: testserver.Region,
			Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""), MaxAttempts: 1,
			HTTPClient: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}})
		if err != nil {
			b.Fatal(err)
		}
		items := make([]kmsdclient.DataKeyItem, 1000)
		for i := range items {
			items[i] = kmsdclient.DataKeyItem{KeyId: aws.ToString(key.KeyMetadata.KeyId), KeySpec: "AES_256"}
		}
		in := &kmsdclient.BatchGenerateDataKeyInput{Items: items}
		b.SetParallelism(1)
		b.ReportAllocs()
		cpu0 := batchCPU()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				out, err := c.BatchGenerateDataKey(context.Background(), in)
				if err != nil || out.Results[999].Error != nil {
					b.Errorf("%v %v", err, out.Results[999].Error)
					return
				}
			}
		})
		b.StopTimer()
		reportBatchItems(b, b.N*1000, batchCPU()-cpu0)
	})
}

func dataKeyBatchBody(keyID string, n int) []byte {
	var buf bytes.Buffer
	buf.WriteString(`{"Items":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"KeyId":%q,"KeySpec":"AES_256"}`, keyID)
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// BenchmarkBatchEncrypt4KiB compares, in the same run and on the same
// cores, AES-256-GCM sealing of 1,000 plaintexts of 4 KiB three ways, each
// spread over GOMAXPROCS goroutines:
//
//   - raw: crypto/cipher's AEAD.Seal with one prebuilt AES-256-GCM (the
//     ceiling: no key derivation, no allocation, no policy);
//   - service: Service.BatchEncrypt of a real node, the batch item path
//     (key resolution, authorization, per-message HKDF key and AES key
//     schedule, blob header, metering);
//   - handler: the same through Handler.ServeHTTP (JSON decoding of the
//     5.5 MB request, per-item validation and encoding; audit off).
//
// Each iteration runs all three on the same items, alternately, so that
// machine noise hits them alike; the metrics are wall ns per item and the
// ratios to raw.
//
//	go test -run '^$' -bench BatchEncrypt4KiB -benchtime 20x ./api/
func BenchmarkBatchEncrypt4KiB(b *testing.B) {
	const n, size = 1000, 4096
	srv := testserver.Start(b)
	h, err := api.NewHandler(api.Config{KMS: srv.Service, Auth: &api.DevAuthenticator{AccountID: testserver.AccountID},
		NodeID: "n1", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ck, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		b.Fatal(err)
	}
	keyID := aws.ToString(ck.KeyMetadata.KeyId)
	pts := make([][]byte, n)
	in := &service.BatchEncryptInput{Items: make([]service.BatchEncryptItem, n)}
	wire := make([]kmsdclient.EncryptItem, n)
	for i := range pts {
		pts[i] = make([]byte, size)
		rand.Read(pts[i])
		in.Items[i] = service.BatchEncryptItem{KeyId: aws.String(keyID), Plaintext: pts[i]}
		wire[i] = kmsdclient.EncryptItem{KeyId: keyID, Plaintext: pts[i]}
	}
	body, err := json.Marshal(kmsdclient.BatchEncryptInput{Items: wire})
	if err != nil {
		b.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		b.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([][]byte, n)
	for i := range dst {
		dst[i] = make([]byte, 0, size+aead.Overhead())
	}
	procs := runtime.GOMAXPROCS(0)
	raw := func() {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range procs {
			wg.Go(func() {
				var nonce [12]byte
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					rand.Read(nonce[:])
					dst[i] = aead.Seal(dst[i][:0], nonce[:], pts[i], nil)
				}
			})
		}
		wg.Wait()
	}
	ctx := service.WithRequestInfo(context.Background(), service.RequestInfo{RequestID: "bench",
		Caller: service.Caller{AccessKeyID: "AKIDEXAMPLE", ARN: "arn:aws:iam::" + testserver.AccountID + ":root", AccountID: testserver.AccountID}})
	now := time.Now().UTC()
	var tRaw, tSvc, tHTTP time.Duration
	b.SetBytes(n * size)
	b.ResetTimer()
	for b.Loop() {
		t0 := time.Now()
		raw()
		t1 := time.Now()
		out, err := srv.Service.BatchEncrypt(ctx, in, service.BatchOptions{})
		if err != nil || out.Results[n-1].Err != nil {
			b.Fatal(err, out.Results[n-1].Err)
		}
		t2 := time.Now()
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		r.Header.Set("X-Amz-Target", "KmsdService.BatchEncrypt")
		r.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
			"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0f", 32))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d", w.Code)
		}
		t3 := time.Now()
		tRaw, tSvc, tHTTP = tRaw+t1.Sub(t0), tSvc+t2.Sub(t1), tHTTP+t3.Sub(t2)
	}
	items := float64(b.N * n)
	b.ReportMetric(float64(tRaw.Nanoseconds())/items, "raw-ns/item")
	b.ReportMetric(float64(tSvc.Nanoseconds())/items, "service-ns/item")
	b.ReportMetric(float64(tHTTP.Nanoseconds())/items, "handler-ns/item")
	b.ReportMetric(float64(tSvc)/float64(tRaw), "service/raw")
	b.ReportMetric(float64(tHTTP)/float64(tRaw), "handler/raw")
}

// lostDone is the real service with a Done hook that panics for item 1.
type lostDone struct{ *service.Service }

func (l lostDone) BatchGenerateDataKey(ctx context.Context, in *service.BatchGenerateDataKeyInput, opts service.BatchOptions) (*service.BatchOutput[service.GenerateDataKeyOutput], error) {
	done := opts.Done
	opts.Done = func(i int, rid string, out any, err error) {
		if i == 1 {
			panic("lost")
		}
		done(i, rid, out, err)
	}
	return l.Service.BatchGenerateDataKey(ctx, in, opts)
}

func TestBatchItemWithoutEncodingIsAnInternalError(t *testing.T) {
	srv := testserver.Start(t)
	rec := &batchRecorder{}
	h, err := api.NewHandler(api.Config{KMS: lostDone{srv.Service}, Auth: &api.DevAuthenticator{}, NodeID: "n1",
		Logger: testserver.Logger(t), Audit: rec})
	require.NoError(t, err)
	hs := httptest.NewServer(h)
	defer hs.Close()
	key, err := srv.Client.CreateKey(context.Background(), &kms.CreateKeyInput{})
	require.NoError(t, err)
	c, err := kmsdclient.New(kmsdclient.Options{Endpoint: hs.URL, Region: testserver.Region,
		Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), MaxAttempts: 1,
		HTTPClient: &http.Client{Timeout: time.Minute}})
	require.NoError(t, err)
	items := []kmsdclient.DataKeyItem{{KeyId: aws.ToString(key.KeyMetadata.KeyId), KeySpec: "AES_256"},
		{KeyId: aws.ToString(key.KeyMetadata.KeyId), KeySpec: "AES_256"}, {KeyId: "alias/none", KeySpec: "AES_256"}}
	out, err := c.BatchGenerateDataKey(context.Background(), &kmsdclient.BatchGenerateDataKeyInput{Items: items})
	require.NoError(t, err)
	require.Nil(t, out.Results[0].Error)
	require.Equal(t, &kmsdclient.ItemError{Code: "KMSInternalException", Message: "An internal error occurred."}, out.Results[1].Error)
	require.Equal(t, "NotFoundException", out.Results[2].Error.Code)
	_, batches := rec.state()
	require.Len(t, batches, 1)
	require.Equal(t, "KMSInternalException", batches[0][1].ErrorCode)
	require.Equal(t, out.RequestID+"#1", batches[0][1].Info.RequestID)
}
