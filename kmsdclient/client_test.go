package kmsdclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/kmsdclient"
)

const creds = `{"account_id": "111122223333", "credentials": [
 {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "arn": "arn:aws:iam::111122223333:root"}]}`

func newClient(t *testing.T, endpoint, secret string, attempts int) *kmsdclient.Client {
	t.Helper()
	c, err := kmsdclient.New(kmsdclient.Options{Endpoint: endpoint, Region: testserver.Region,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", secret, ""),
		HTTPClient:  &http.Client{Timeout: 30 * time.Second}, MaxAttempts: attempts})
	require.NoError(t, err)
	return c
}

func TestNewChecksOptions(t *testing.T) {
	p := credentials.NewStaticCredentialsProvider("a", "b", "")
	for _, o := range []kmsdclient.Options{
		{Endpoint: "127.0.0.1:8080", Region: "us-east-1", Credentials: p},
		{Endpoint: "ftp://h", Region: "us-east-1", Credentials: p},
		{Endpoint: "http://h", Credentials: p},
		{Endpoint: "http://h", Region: "us-east-1"},
		{Endpoint: "http://h", Region: "us-east-1", Credentials: p, MaxAttempts: -1},
	} {
		_, err := kmsdclient.New(o)
		require.ErrorIs(t, err, kmsdclient.ErrConfig, "%+v", o)
	}
	_, err := kmsdclient.New(kmsdclient.Options{Endpoint: "https://h:1/", Region: "us-east-1", Credentials: p})
	require.NoError(t, err)
}

func TestClientSignsForSigV4Verification(t *testing.T) {
	srv := testserver.StartWithAuth(t, []byte(creds))
	ctx := context.Background()
	key, err := srv.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	id := aws.ToString(key.KeyMetadata.KeyId)

	out, err := newClient(t, srv.URL, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1).BatchGenerateDataKey(ctx,
		&kmsdclient.BatchGenerateDataKeyInput{Items: []kmsdclient.DataKeyItem{{KeyId: id, KeySpec: "AES_256"}}})
	require.NoError(t, err)
	require.Nil(t, out.Results[0].Error)
	require.Len(t, out.Results[0].Plaintext, 32)
	require.NotEmpty(t, out.RequestID)

	_, err = newClient(t, srv.URL, "not-the-secret", 3).BatchGenerateDataKey(ctx,
		&kmsdclient.BatchGenerateDataKeyInput{Items: []kmsdclient.DataKeyItem{{KeyId: id, KeySpec: "AES_256"}}})
	var ae smithy.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "InvalidSignatureException", ae.ErrorCode())
	require.Equal(t, smithy.FaultClient, ae.ErrorFault())
}

// flaky fronts a real node: the first fail requests get answer instead.
type flaky struct {
	fail     int32
	answer   func(w http.ResponseWriter)
	attempts atomic.Int32
	next     http.Handler
}

func (f *flaky) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.attempts.Add(1) <= f.fail {
		f.answer(w)
		return
	}
	f.next.ServeHTTP(w, r)
}

func throttle(w http.ResponseWriter) {
	w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
	w.WriteHeader(http.StatusBadRequest)
	w.Write([]byte(`{"__type":"ThrottlingException","message":"slow down"}`))
}

func TestClientRetriesWholeRequestFailures(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	key, err := srv.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	items := []kmsdclient.EncryptItem{{KeyId: aws.ToString(key.KeyMetadata.KeyId), Plaintext: []byte("x")}}
	target, err := url.Parse(srv.URL)
	require.NoError(t, err)
	proxy := httputil.NewSingleHostReverseProxy(target)

	run := func(fail int32, answer func(http.ResponseWriter), attempts int) (*kmsdclient.BatchEncryptOutput, int32, error) {
		f := &flaky{fail: fail, answer: answer, next: proxy}
		hs := httptest.NewServer(f)
		defer hs.Close()
		out, err := newClient(t, hs.URL, "s", attempts).BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items})
		return out, f.attempts.Load(), err
	}

	// Throttled twice, then answered: three attempts.
	out, n, err := run(2, throttle, 3)
	require.NoError(t, err)
	require.Equal(t, int32(3), n)
	require.Nil(t, out.Results[0].Error)
	// Not enough attempts: the last error.
	_, n, err = run(2, throttle, 2)
	var ae *kmsdclient.APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "ThrottlingException", ae.Code)
	require.Equal(t, "slow down", ae.Message)
	require.Equal(t, int32(2), n)
	// 5xx is retried; its fault is the server's.
	unavailable := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte(`{"__type":"com.amazonaws.kms#DependencyTimeoutException","message":"later"}`))
	}
	_, n, err = run(5, unavailable, 2)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "DependencyTimeoutException", ae.Code)
	require.Equal(t, smithy.FaultServer, ae.ErrorFault())
	require.Equal(t, int32(2), n)
	// A client error is final.
	invalid := func(w http.ResponseWriter) {
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"__type":"ValidationException","message":"no"}`))
	}
	_, n, err = run(1, invalid, 3)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "ValidationException", ae.Code)
	require.Equal(t, int32(1), n)
	// A 200 whose results do not match the items is an error.
	short := func(w http.ResponseWriter) { w.Write([]byte(`{"Results":[]}`)) }
	_, _, err = run(1, short, 3)
	require.ErrorIs(t, err, kmsdclient.ErrResponse)
	// No body at all: the status names the error.
	bare := func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) }
	_, _, err = run(9, bare, 1)
	require.ErrorAs(t, err, &ae)
	require.Equal(t, "HTTP502", ae.Code)

	// Transport failures are retried, and a cancelled context stops it.
	hs := httptest.NewServer(http.NotFoundHandler())
	dead := hs.URL
	hs.Close()
	_, err = newClient(t, dead, "s", 3).BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items})
	require.Error(t, err)
	require.False(t, errors.As(err, &ae))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = newClient(t, dead, "s", 3).BatchEncrypt(cctx, &kmsdclient.BatchEncryptInput{Items: items})
	require.ErrorIs(t, err, context.Canceled)
}
