package api

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kmsd/kmsd/service"
)

// fakeKMS records calls and returns canned outputs, or err / a panic when
// configured. It exists to prove what reaches the service and to check
// encoding; the real service is tested end to end elsewhere.
type fakeKMS struct {
	mu       sync.Mutex
	calls    []string
	lastInfo service.RequestInfo
	lastIn   any
	err      error
	panicVal any
}

func (f *fakeKMS) hit(ctx context.Context, name string, in any) error {
	f.mu.Lock()
	f.calls = append(f.calls, name)
	f.lastInfo, _ = service.RequestInfoFrom(ctx)
	f.lastIn = in
	err, p := f.err, f.panicVal
	f.mu.Unlock()
	if p != nil {
		panic(p)
	}
	return err
}

func (f *fakeKMS) set(err error, panicVal any) {
	f.mu.Lock()
	f.err, f.panicVal = err, panicVal
	f.mu.Unlock()
}

func (f *fakeKMS) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeKMS) last() (service.RequestInfo, any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastInfo, f.lastIn
}

var (
	fixedTime = time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC)
	fakeKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab"
	fakeArn   = "arn:aws:kms:us-east-1:111122223333:key/" + fakeKeyID
)

func fakeMetadata() *service.KeyMetadata {
	return &service.KeyMetadata{
		AWSAccountId: "111122223333", KeyId: fakeKeyID, Arn: fakeArn,
		CreationDate: service.NewTimestamp(fixedTime), Enabled: true, Description: "d",
		KeyUsage: "ENCRYPT_DECRYPT", KeyState: "Enabled", Origin: "AWS_KMS",
		KeyManager: "CUSTOMER", KeySpec: "SYMMETRIC_DEFAULT", CustomerMasterKeySpec: "SYMMETRIC_DEFAULT",
		EncryptionAlgorithms: []string{"SYMMETRIC_DEFAULT"},
	}
}

func (f *fakeKMS) CreateKey(ctx context.Context, in *service.CreateKeyInput) (*service.CreateKeyOutput, error) {
	if err := f.hit(ctx, "CreateKey", in); err != nil {
		return nil, err
	}
	return &service.CreateKeyOutput{KeyMetadata: fakeMetadata()}, nil
}
func (f *fakeKMS) DescribeKey(ctx context.Context, in *service.DescribeKeyInput) (*service.DescribeKeyOutput, error) {
	if err := f.hit(ctx, "DescribeKey", in); err != nil {
		return nil, err
	}
	return &service.DescribeKeyOutput{KeyMetadata: fakeMetadata()}, nil
}
func (f *fakeKMS) ListKeys(ctx context.Context, in *service.ListKeysInput) (*service.ListKeysOutput, error) {
	if err := f.hit(ctx, "ListKeys", in); err != nil {
		return nil, err
	}
	return &service.ListKeysOutput{Keys: []service.KeyListEntry{{KeyId: fakeKeyID, KeyArn: fakeArn}}}, nil
}
func (f *fakeKMS) UpdateKeyDescription(ctx context.Context, in *service.UpdateKeyDescriptionInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "UpdateKeyDescription", in)
}
func (f *fakeKMS) EnableKey(ctx context.Context, in *service.KeyIDInput) (*service.Empty, error) {
	return &service.Empty{}, f.hit(ctx, "EnableKey", in)
}
func (f *fakeKMS) DisableKey(ctx context.Context, in *service.KeyIDInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "DisableKey", in)
}
func (f *fakeKMS) ScheduleKeyDeletion(ctx context.Context, in *service.ScheduleKeyDeletionInput) (*service.ScheduleKeyDeletionOutput, error) {
	if err := f.hit(ctx, "ScheduleKeyDeletion", in); err != nil {
		return nil, err
	}
	return &service.ScheduleKeyDeletionOutput{KeyId: fakeArn, DeletionDate: service.NewTimestamp(fixedTime), KeyState: "PendingDeletion", PendingWindowInDays: 7}, nil
}
func (f *fakeKMS) CancelKeyDeletion(ctx context.Context, in *service.KeyIDInput) (*service.CancelKeyDeletionOutput, error) {
	if err := f.hit(ctx, "CancelKeyDeletion", in); err != nil {
		return nil, err
	}
	return &service.CancelKeyDeletionOutput{KeyId: fakeArn}, nil
}
func (f *fakeKMS) Encrypt(ctx context.Context, in *service.EncryptInput) (*service.EncryptOutput, error) {
	if err := f.hit(ctx, "Encrypt", in); err != nil {
		return nil, err
	}
	return &service.EncryptOutput{CiphertextBlob: append([]byte("ct:"), in.Plaintext...), KeyId: fakeArn, EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
}
func (f *fakeKMS) Decrypt(ctx context.Context, in *service.DecryptInput) (*service.DecryptOutput, error) {
	if err := f.hit(ctx, "Decrypt", in); err != nil {
		return nil, err
	}
	return &service.DecryptOutput{KeyId: fakeArn, Plaintext: bytes.TrimPrefix(in.CiphertextBlob, []byte("ct:")), EncryptionAlgorithm: "SYMMETRIC_DEFAULT"}, nil
}
func (f *fakeKMS) ReEncrypt(ctx context.Context, in *service.ReEncryptInput) (*service.ReEncryptOutput, error) {
	if err := f.hit(ctx, "ReEncrypt", in); err != nil {
		return nil, err
	}
	return &service.ReEncryptOutput{CiphertextBlob: in.CiphertextBlob, SourceKeyId: fakeArn, KeyId: fakeArn}, nil
}
func (f *fakeKMS) GenerateDataKey(ctx context.Context, in *service.GenerateDataKeyInput) (*service.GenerateDataKeyOutput, error) {
	if err := f.hit(ctx, "GenerateDataKey", in); err != nil {
		return nil, err
	}
	return &service.GenerateDataKeyOutput{CiphertextBlob: []byte{1, 2}, Plaintext: make([]byte, 32), KeyId: fakeArn}, nil
}
func (f *fakeKMS) GenerateDataKeyWithoutPlaintext(ctx context.Context, in *service.GenerateDataKeyInput) (*service.GenerateDataKeyOutput, error) {
	if err := f.hit(ctx, "GenerateDataKeyWithoutPlaintext", in); err != nil {
		return nil, err
	}
	return &service.GenerateDataKeyOutput{CiphertextBlob: []byte{1, 2}, KeyId: fakeArn}, nil
}
func (f *fakeKMS) GenerateRandom(ctx context.Context, in *service.GenerateRandomInput) (*service.GenerateRandomOutput, error) {
	if err := f.hit(ctx, "GenerateRandom", in); err != nil {
		return nil, err
	}
	return &service.GenerateRandomOutput{Plaintext: []byte{0xff, 0x00, 0x10}}, nil
}
func (f *fakeKMS) CreateAlias(ctx context.Context, in *service.AliasInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "CreateAlias", in)
}
func (f *fakeKMS) UpdateAlias(ctx context.Context, in *service.AliasInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "UpdateAlias", in)
}
func (f *fakeKMS) DeleteAlias(ctx context.Context, in *service.DeleteAliasInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "DeleteAlias", in)
}
func (f *fakeKMS) ListAliases(ctx context.Context, in *service.ListAliasesInput) (*service.ListAliasesOutput, error) {
	if err := f.hit(ctx, "ListAliases", in); err != nil {
		return nil, err
	}
	return &service.ListAliasesOutput{Aliases: []service.AliasListEntry{{AliasName: "alias/a", AliasArn: "arn:aws:kms:us-east-1:111122223333:alias/a", TargetKeyId: fakeKeyID, CreationDate: service.NewTimestamp(fixedTime)}}}, nil
}
func (f *fakeKMS) TagResource(ctx context.Context, in *service.TagResourceInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "TagResource", in)
}
func (f *fakeKMS) UntagResource(ctx context.Context, in *service.UntagResourceInput) (*service.Empty, error) {
	return nil, f.hit(ctx, "UntagResource", in)
}
func (f *fakeKMS) ListResourceTags(ctx context.Context, in *service.ListResourceTagsInput) (*service.ListResourceTagsOutput, error) {
	if err := f.hit(ctx, "ListResourceTags", in); err != nil {
		return nil, err
	}
	return &service.ListResourceTagsOutput{Tags: []service.Tag{{TagKey: ptr("k"), TagValue: ptr("v")}}}, nil
}

var _ KMS = (*fakeKMS)(nil)
var _ KMS = (*service.Service)(nil)

func ptr[T any](v T) *T { return &v }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	testNode   = "node-test-1"
	validAuthz = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250304/us-east-1/kms/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" +
		"5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	validDate = "20250304T050607Z"
)

type testEnv struct {
	fake *fakeKMS
	h    *Handler
	srv  *httptest.Server
	logs *syncBuffer
}

func newEnv(t testing.TB, mutate func(*Config)) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fake := &fakeKMS{}
	cfg := Config{KMS: fake, Auth: &DevAuthenticator{AccountID: "111122223333", Logger: logger}, Logger: logger, NodeID: testNode}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testEnv{fake: fake, h: h, srv: srv, logs: logs}
}

// result is a decoded response.
type result struct {
	status  int
	header  http.Header
	body    []byte
	errType string // __type
	message string
}

func signedHeaders(target string) map[string]string {
	return map[string]string{
		"Authorization": validAuthz,
		"X-Amz-Date":    validDate,
		"Content-Type":  ContentTypeJSON,
		HeaderTarget:    target,
	}
}

// call sends a request with the given headers ("" value = header removed).
func (e *testEnv) call(t testing.TB, method, path string, headers map[string]string, body string) result {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.srv.Client().Do(req)
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

// op sends a correctly signed KMS request.
func (e *testEnv) op(t testing.TB, name, body string) result {
	t.Helper()
	return e.call(t, http.MethodPost, "/", signedHeaders(TargetPrefix+name), body)
}

func decodeResult(t testing.TB, status int, h http.Header, b []byte) result {
	t.Helper()
	r := result{status: status, header: h, body: b}
	if status >= 300 {
		var eb struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}
		if err := jsonUnmarshalStrict(b, &eb); err != nil {
			t.Fatalf("error body %q is not AWS-shaped: %v", b, err)
		}
		r.errType, r.message = eb.Type, eb.Message
		if got := headerValue(h, HeaderErrorType); got != eb.Type {
			t.Errorf("X-Amzn-ErrorType %q != __type %q", got, eb.Type)
		}
	}
	return r
}

// headerValue looks a header up case-insensitively: the handler keeps AWS's
// spelling of some names (x-amzn-RequestId), which http.Header.Get, with its
// canonical form, does not find in a recorder's map. Over the wire it does.
func headerValue(h http.Header, name string) string {
	for k, v := range h {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}
