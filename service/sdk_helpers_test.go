package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// Helpers shared by the SDK-level tests of this package.

const (
	testRegion  = testserver.Region
	testAccount = testserver.AccountID
	keyARNPfx   = "arn:aws:kms:" + testRegion + ":" + testAccount + ":key/"
	aliasARNPfx = "arn:aws:kms:" + testRegion + ":" + testAccount + ":"
)

// rawResult is the answer to a raw (unvalidated by the SDK) request.
type rawResult struct {
	Status    int
	Type      string // __type of an error body, "" on success
	Message   string // message of an error body
	ErrHeader string // X-Amzn-ErrorType
	Body      map[string]any
}

var rawHTTPClient = &http.Client{Timeout: 30 * time.Second}

// rawCall POSTs body (a JSON-marshalable value, or a []byte sent verbatim)
// to op with a well-formed SigV4 Authorization header the dev authenticator
// accepts, bypassing the SDK's client-side validation.
func rawCall(t testing.TB, srv *testserver.Server, op string, body any) rawResult {
	t.Helper()
	var payload []byte
	switch b := body.(type) {
	case []byte:
		payload = b
	default:
		var err error
		payload, err = json.Marshal(body)
		require.NoError(t, err)
	}
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(payload))
	require.NoError(t, err)
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Target", "TrentService."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
		"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0f", 32))
	resp, err := rawHTTPClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	res := rawResult{Status: resp.StatusCode, ErrHeader: resp.Header.Get("X-Amzn-ErrorType")}
	require.NoError(t, json.Unmarshal(raw, &res.Body), "op %s: response %q is not a JSON object", op, raw)
	if s, ok := res.Body["__type"].(string); ok {
		res.Type = s
	}
	if s, ok := res.Body["message"].(string); ok {
		res.Message = s
	}
	return res
}

// requireRawError asserts a raw call failed with a 4xx AWS error of the
// given name, consistently in the body and the X-Amzn-ErrorType header.
func requireRawError(t testing.TB, res rawResult, name string, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, name, res.Type, append([]any{"body %v;"}, append([]any{res.Body}, msgAndArgs...)...)...)
	require.Equal(t, name, res.ErrHeader, msgAndArgs...)
	require.Equal(t, http.StatusBadRequest, res.Status, msgAndArgs...)
	require.NotEmpty(t, res.Message, msgAndArgs...)
}

// requireRawOK asserts a raw call succeeded.
func requireRawOK(t testing.TB, res rawResult, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, http.StatusOK, res.Status, append([]any{"body %v;"}, append([]any{res.Body}, msgAndArgs...)...)...)
	require.Empty(t, res.Type)
}

// requireErrAs asserts err is (or wraps) the SDK's typed error T and
// returns it.
func requireErrAs[T error](t testing.TB, err error, msgAndArgs ...any) T {
	t.Helper()
	var target T
	require.Error(t, err, msgAndArgs...)
	if !errors.As(err, &target) {
		require.Failf(t, "wrong error type", "want %T, got %T: %v %v", target, err, err, msgAndArgs)
	}
	return target
}

// errCode returns the AWS error code of err, or "" if it is not an API error.
func errCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// requireCode asserts err is an API error with the given code.
func requireCode(t testing.TB, err error, code string, msgAndArgs ...any) {
	t.Helper()
	require.Error(t, err, msgAndArgs...)
	require.Equal(t, code, errCode(err), append([]any{"error %v;"}, append([]any{err}, msgAndArgs...)...)...)
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae))
	require.NotEmpty(t, ae.ErrorMessage(), "error %s has no message", code)
}

// mkKey creates a default symmetric key and returns its id and ARN.
func mkKey(t testing.TB, c *kms.Client, desc ...string) (string, string) {
	t.Helper()
	in := &kms.CreateKeyInput{}
	if len(desc) > 0 {
		in.Description = aws.String(desc[0])
	}
	out, err := c.CreateKey(context.Background(), in)
	require.NoError(t, err)
	return aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
}

// mkAlias creates alias name for target.
func mkAlias(t testing.TB, c *kms.Client, name, target string) {
	t.Helper()
	_, err := c.CreateAlias(context.Background(), &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)})
	require.NoError(t, err)
}

// describe returns a key's metadata.
func describe(t testing.TB, c *kms.Client, ref string) *types.KeyMetadata {
	t.Helper()
	out, err := c.DescribeKey(context.Background(), &kms.DescribeKeyInput{KeyId: aws.String(ref)})
	require.NoError(t, err, "DescribeKey %s", ref)
	return out.KeyMetadata
}

// encrypt encrypts pt under ref with ctx and returns the blob.
func encrypt(t testing.TB, c *kms.Client, ref string, pt []byte, ectx map[string]string) []byte {
	t.Helper()
	out, err := c.Encrypt(context.Background(), &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: pt, EncryptionContext: ectx})
	require.NoError(t, err)
	return out.CiphertextBlob
}

// scheduleDeletion puts a key in PendingDeletion with a window of days.
func scheduleDeletion(t testing.TB, c *kms.Client, ref string, days int32) *kms.ScheduleKeyDeletionOutput {
	t.Helper()
	out, err := c.ScheduleKeyDeletion(context.Background(), &kms.ScheduleKeyDeletionInput{KeyId: aws.String(ref), PendingWindowInDays: aws.Int32(days)})
	require.NoError(t, err)
	return out
}

// listAllAliases returns every alias of the server (or of one key).
func listAllAliases(t testing.TB, c *kms.Client, keyID *string) []types.AliasListEntry {
	t.Helper()
	var all []types.AliasListEntry
	var marker *string
	for {
		out, err := c.ListAliases(context.Background(), &kms.ListAliasesInput{KeyId: keyID, Marker: marker})
		require.NoError(t, err)
		all = append(all, out.Aliases...)
		if !out.Truncated {
			return all
		}
		marker = out.NextMarker
	}
}

// listAllKeys returns every key id, following markers.
func listAllKeys(t testing.TB, c *kms.Client) []string {
	t.Helper()
	var ids []string
	var marker *string
	for {
		out, err := c.ListKeys(context.Background(), &kms.ListKeysInput{Marker: marker})
		require.NoError(t, err)
		for _, k := range out.Keys {
			ids = append(ids, aws.ToString(k.KeyId))
		}
		if !out.Truncated {
			return ids
		}
		require.NotNil(t, out.NextMarker)
		marker = out.NextMarker
	}
}

func aliasNames(as []types.AliasListEntry) []string {
	names := make([]string, len(as))
	for i, a := range as {
		names[i] = aws.ToString(a.AliasName)
	}
	return names
}

// requireTimeNear is require.WithinDuration for a *time.Time.
func requireTimeNear(t testing.TB, want time.Time, got *time.Time, delta time.Duration, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	require.WithinDuration(t, want, *got, delta, msgAndArgs...)
}
