// Package kmsdclient is a small Go client for kmsd's Batch API, the
// KmsdService operations that kmsd serves next to AWS KMS's TrentService
// (BatchEncrypt, BatchDecrypt, BatchGenerateDataKey,
// BatchGenerateDataKeyWithoutPlaintext). The AWS SDKs do not know these
// operations; this client speaks the same wire protocol as they do (POST /,
// AWS JSON 1.1, X-Amz-Target, SigV4 with service "kms", signed by the AWS
// SDK for Go v2's signer), so the same credentials and endpoints work.
//
//	c, err := kmsdclient.New(kmsdclient.Options{
//		Endpoint:    "http://127.0.0.1:8080",
//		Region:      "us-east-1",
//		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
//	})
//	out, err := c.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items})
//	for i, r := range out.Results {
//		if r.Error != nil { ... } // item i failed alone: r.Error.Code is the AWS exception
//	}
//
// A request carries 1 to MaxItems items and gets one result per item, in
// the same order; an item that fails has Error set and nothing else. A
// request that fails as a whole (authentication, a malformed request, more
// than MaxItems items, a request quota with no token left) returns an
// *APIError. Both error types implement smithy.APIError (ErrorCode,
// ErrorMessage), as the AWS SDK's errors do.
package kmsdclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go"
)

// Wire constants.
const (
	// TargetPrefix prefixes the X-Amz-Target of every batch operation.
	TargetPrefix = "KmsdService."
	// ContentType is the AWS JSON 1.1 media type.
	ContentType = "application/x-amz-json-1.1"
	// SigningName is the SigV4 service name kmsd verifies.
	SigningName = "kms"
	// MaxItems is the most items kmsd accepts in one request; a request
	// with more fails as a whole with ValidationException. The client does
	// not check it: the server's answer is the one that counts.
	MaxItems = 1000
	// DefaultMaxAttempts is Options.MaxAttempts when it is zero.
	DefaultMaxAttempts = 3
	// maxResponseBytes bounds what a response may make the client read
	// (1,000 decrypted 4 KiB plaintexts are about 5.5 MB of JSON).
	maxResponseBytes = 64 << 20
)

// Errors of the client itself, wrapped with detail.
var (
	// ErrConfig reports unusable Options.
	ErrConfig = errors.New("kmsdclient: invalid options")
	// ErrResponse reports a response that is not what kmsd sends.
	ErrResponse = errors.New("kmsdclient: malformed response")
)

// HTTPClient sends requests; *http.Client satisfies it (and so do the AWS
// SDK's buildable clients).
type HTTPClient interface {
	Do(*http.Request) (*http.Response, error)
}

// Options configures a Client.
type Options struct {
	// Endpoint is the kmsd base URL, e.g. http://127.0.0.1:8080 (required).
	Endpoint string
	// Region is the region to sign for (required).
	Region string
	// Credentials sign every request (required), e.g.
	// credentials.NewStaticCredentialsProvider.
	Credentials aws.CredentialsProvider
	// HTTPClient sends the requests; nil means http.DefaultClient.
	HTTPClient HTTPClient
	// MaxAttempts is how often a request that failed as a whole with a
	// retryable error (ThrottlingException, a 5xx answer, a transport
	// error) is sent in all, with jittered exponential backoff; 0 means
	// DefaultMaxAttempts, 1 means no retries. The batch operations change
	// no state, so resending is safe. Items that failed alone are never
	// retried by the client.
	MaxAttempts int
}

// Client calls the batch operations of one kmsd endpoint. It is safe for
// concurrent use.
type Client struct {
	endpoint string
	region   string
	creds    aws.CredentialsProvider
	http     HTTPClient
	attempts int
	signer   *v4.Signer
}

// New returns a client for o.
func New(o Options) (*Client, error) {
	u, err := url.Parse(o.Endpoint)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("%w: endpoint %q: want http(s)://host[:port]", ErrConfig, o.Endpoint)
	case o.Region == "":
		return nil, fmt.Errorf("%w: region is empty", ErrConfig)
	case o.Credentials == nil:
		return nil, fmt.Errorf("%w: no credentials", ErrConfig)
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("%w: MaxAttempts %d is negative", ErrConfig, o.MaxAttempts)
	}
	c := &Client{
		endpoint: strings.TrimRight(o.Endpoint, "/") + "/",
		region:   o.Region,
		creds:    o.Credentials,
		http:     o.HTTPClient,
		attempts: o.MaxAttempts,
		signer:   v4.NewSigner(),
	}
	if c.http == nil {
		c.http = http.DefaultClient
	}
	if c.attempts == 0 {
		c.attempts = DefaultMaxAttempts
	}
	return c, nil
}

// ItemError is the error of one item: the AWS exception the single
// operation would have answered.
type ItemError struct {
	Code    string `json:"__type"`
	Message string `json:"message"`
}

func (e *ItemError) Error() string { return e.Code + ": " + e.Message }

// ErrorCode implements smithy.APIError.
func (e *ItemError) ErrorCode() string { return e.Code }

// ErrorMessage implements smithy.APIError.
func (e *ItemError) ErrorMessage() string { return e.Message }

// ErrorFault implements smithy.APIError.
func (e *ItemError) ErrorFault() smithy.ErrorFault { return faultOf(e.Code) }

// APIError is the answer to a request that failed as a whole.
type APIError struct {
	Operation  string // e.g. "BatchEncrypt"
	Code       string // the AWS exception name, e.g. ValidationException
	Message    string
	StatusCode int
	RequestID  string // x-amzn-RequestId
}

func (e *APIError) Error() string {
	return fmt.Sprintf("kmsd %s: %s: %s (HTTP %d, request id %s)", e.Operation, e.Code, e.Message, e.StatusCode, e.RequestID)
}

// ErrorCode implements smithy.APIError.
func (e *APIError) ErrorCode() string { return e.Code }

// ErrorMessage implements smithy.APIError.
func (e *APIError) ErrorMessage() string { return e.Message }

// ErrorFault implements smithy.APIError.
func (e *APIError) ErrorFault() smithy.ErrorFault {
	if e.StatusCode >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

var (
	_ smithy.APIError = (*ItemError)(nil)
	_ smithy.APIError = (*APIError)(nil)
)

func faultOf(code string) smithy.ErrorFault {
	switch code {
	case "KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException":
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// EncryptItem is one item of BatchEncrypt (an Encrypt request).
type EncryptItem struct {
	KeyId               string            `json:"KeyId,omitempty"`
	Plaintext           []byte            `json:"Plaintext,omitempty"`
	EncryptionContext   map[string]string `json:"EncryptionContext,omitempty"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm,omitempty"`
}

// BatchEncryptInput is a BatchEncrypt request. GrantTokens and DryRun
// apply to every item.
type BatchEncryptInput struct {
	Items       []EncryptItem `json:"Items"`
	GrantTokens []string      `json:"GrantTokens,omitempty"`
	DryRun      bool          `json:"DryRun,omitempty"`
}

// EncryptResult is one item's result: an Encrypt response, or Error.
type EncryptResult struct {
	CiphertextBlob      []byte     `json:"CiphertextBlob,omitempty"`
	KeyId               string     `json:"KeyId,omitempty"`
	EncryptionAlgorithm string     `json:"EncryptionAlgorithm,omitempty"`
	Error               *ItemError `json:"Error,omitempty"`
}

// BatchEncryptOutput is a BatchEncrypt response.
type BatchEncryptOutput struct {
	Results   []EncryptResult `json:"Results"`
	RequestID string          `json:"-"` // x-amzn-RequestId; item i's is RequestID#i
}

// DecryptItem is one item of BatchDecrypt (a Decrypt request).
type DecryptItem struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob,omitempty"`
	EncryptionContext   map[string]string `json:"EncryptionContext,omitempty"`
	KeyId               string            `json:"KeyId,omitempty"`
	EncryptionAlgorithm string            `json:"EncryptionAlgorithm,omitempty"`
}

// BatchDecryptInput is a BatchDecrypt request.
type BatchDecryptInput struct {
	Items       []DecryptItem `json:"Items"`
	GrantTokens []string      `json:"GrantTokens,omitempty"`
	DryRun      bool          `json:"DryRun,omitempty"`
}

// DecryptResult is one item's result: a Decrypt response, or Error.
type DecryptResult struct {
	Plaintext           []byte     `json:"Plaintext,omitempty"`
	KeyId               string     `json:"KeyId,omitempty"`
	EncryptionAlgorithm string     `json:"EncryptionAlgorithm,omitempty"`
	KeyMaterialId       string     `json:"KeyMaterialId,omitempty"`
	Error               *ItemError `json:"Error,omitempty"`
}

// BatchDecryptOutput is a BatchDecrypt response.
type BatchDecryptOutput struct {
	Results   []DecryptResult `json:"Results"`
	RequestID string          `json:"-"`
}

// DataKeyItem is one item of BatchGenerateDataKey and
// BatchGenerateDataKeyWithoutPlaintext (a GenerateDataKey request): give
// KeySpec (AES_256, AES_128) or NumberOfBytes.
type DataKeyItem struct {
	KeyId             string            `json:"KeyId,omitempty"`
	EncryptionContext map[string]string `json:"EncryptionContext,omitempty"`
	NumberOfBytes     int32             `json:"NumberOfBytes,omitempty"`
	KeySpec           string            `json:"KeySpec,omitempty"`
}

// BatchGenerateDataKeyInput is a BatchGenerateDataKey or
// BatchGenerateDataKeyWithoutPlaintext request.
type BatchGenerateDataKeyInput struct {
	Items       []DataKeyItem `json:"Items"`
	GrantTokens []string      `json:"GrantTokens,omitempty"`
	DryRun      bool          `json:"DryRun,omitempty"`
}

// DataKeyResult is one item's result: a GenerateDataKey response
// (Plaintext is empty for BatchGenerateDataKeyWithoutPlaintext), or Error.
type DataKeyResult struct {
	CiphertextBlob []byte     `json:"CiphertextBlob,omitempty"`
	Plaintext      []byte     `json:"Plaintext,omitempty"`
	KeyId          string     `json:"KeyId,omitempty"`
	KeyMaterialId  string     `json:"KeyMaterialId,omitempty"`
	Error          *ItemError `json:"Error,omitempty"`
}

// BatchGenerateDataKeyOutput is a BatchGenerateDataKey or
// BatchGenerateDataKeyWithoutPlaintext response.
type BatchGenerateDataKeyOutput struct {
	Results   []DataKeyResult `json:"Results"`
	RequestID string          `json:"-"`
}

// BatchEncrypt encrypts every item's plaintext (as Encrypt).
func (c *Client) BatchEncrypt(ctx context.Context, in *BatchEncryptInput) (*BatchEncryptOutput, error) {
	out := new(BatchEncryptOutput)
	rid, err := c.call(ctx, "BatchEncrypt", in, out, len(in.Items), func() int { return len(out.Results) })
	out.RequestID = rid
	return out, err
}

// BatchDecrypt decrypts every item's ciphertext (as Decrypt).
func (c *Client) BatchDecrypt(ctx context.Context, in *BatchDecryptInput) (*BatchDecryptOutput, error) {
	out := new(BatchDecryptOutput)
	rid, err := c.call(ctx, "BatchDecrypt", in, out, len(in.Items), func() int { return len(out.Results) })
	out.RequestID = rid
	return out, err
}

// BatchGenerateDataKey returns a data key per item, in plaintext and
// encrypted (as GenerateDataKey).
func (c *Client) BatchGenerateDataKey(ctx context.Context, in *BatchGenerateDataKeyInput) (*BatchGenerateDataKeyOutput, error) {
	out := new(BatchGenerateDataKeyOutput)
	rid, err := c.call(ctx, "BatchGenerateDataKey", in, out, len(in.Items), func() int { return len(out.Results) })
	out.RequestID = rid
	return out, err
}

// BatchGenerateDataKeyWithoutPlaintext returns a data key per item,
// encrypted only (as GenerateDataKeyWithoutPlaintext).
func (c *Client) BatchGenerateDataKeyWithoutPlaintext(ctx context.Context, in *BatchGenerateDataKeyInput) (*BatchGenerateDataKeyOutput, error) {
	out := new(BatchGenerateDataKeyOutput)
	rid, err := c.call(ctx, "BatchGenerateDataKeyWithoutPlaintext", in, out, len(in.Items), func() int { return len(out.Results) })
	out.RequestID = rid
	return out, err
}

// call sends one request (retrying retryable failures) and decodes the
// answer into out; results() must then equal the number of items sent. It
// returns the request id of the last attempt.
func (c *Client) call(ctx context.Context, op string, in, out any, items int, results func() int) (string, error) {
	body, err := json.Marshal(in)
	if err != nil {
		return "", fmt.Errorf("kmsdclient: encoding %s request: %w", op, err)
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	var rid string
	for attempt := 1; ; attempt++ {
		var retry bool
		rid, retry, err = c.attempt(ctx, op, body, payloadHash, out)
		if err == nil {
			if n := results(); n != items {
				return rid, fmt.Errorf("%w: %s: %d results for %d items", ErrResponse, op, n, items)
			}
			return rid, nil
		}
		if !retry || attempt >= c.attempts {
			return rid, err
		}
		// Full jitter over an exponential ceiling: 50 ms, 100 ms, ... 2 s.
		ceiling := min(50*time.Millisecond<<(attempt-1), 2*time.Second)
		t := time.NewTimer(rand.N(ceiling) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return rid, err
		case <-t.C:
		}
	}
}

// attempt sends the request once. retry reports whether the failure is
// worth another attempt.
func (c *Client) attempt(ctx context.Context, op string, body []byte, payloadHash string, out any) (rid string, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint, bytes.NewReader(body))
	if err != nil {
		return "", false, fmt.Errorf("kmsdclient: %w", err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("X-Amz-Target", TargetPrefix+op)
	creds, err := c.creds.Retrieve(ctx)
	if err != nil {
		return "", false, fmt.Errorf("kmsdclient: retrieving credentials: %w", err)
	}
	if err := c.signer.SignHTTP(ctx, creds, req, payloadHash, SigningName, c.region, time.Now().UTC()); err != nil {
		return "", false, fmt.Errorf("kmsdclient: signing: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Nothing of a batch changes state: any transport failure may be
		// retried, unless the caller gave up.
		return "", ctx.Err() == nil, fmt.Errorf("kmsdclient: %s: %w", op, err)
	}
	defer resp.Body.Close()
	rid = resp.Header.Get("X-Amzn-Requestid")
	raw, err := readBody(resp, maxResponseBytes+1)
	if err != nil {
		return rid, ctx.Err() == nil, fmt.Errorf("kmsdclient: %s: reading response: %w", op, err)
	}
	if len(raw) > maxResponseBytes {
		return rid, false, fmt.Errorf("%w: %s: response larger than %d bytes", ErrResponse, op, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		ae := DecodeAPIError(op, resp, raw, rid)
		return rid, ae.Code == "ThrottlingException" || resp.StatusCode >= 500, ae
	}
	if err := decodeAnswer(raw, out); err != nil {
		return rid, false, fmt.Errorf("%w: %s: %v", ErrResponse, op, err)
	}
	return rid, false, nil
}

// readBody reads at most limit bytes of resp's body, into one buffer sized
// by Content-Length when the server sent it (io.ReadAll would regrow and
// copy a 1,000-item answer several times).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := resp.ContentLength; n > 0 && n < limit {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(resp.Body, limit))
	return buf.Bytes(), err
}

// DecodeAPIError reads an AWS JSON error body ({"__type", "message"}) of
// an answer to op, falling back to X-Amzn-ErrorType and the HTTP status;
// rid is the answer's request id. Raw clients (bench/load) name errors
// with it as this client does.
func DecodeAPIError(op string, resp *http.Response, raw []byte, rid string) *APIError {
	var body struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(raw, &body)
	code := body.Type
	if code == "" {
		code = resp.Header.Get("X-Amzn-Errortype")
	}
	// AWS may qualify the name ("com.amazonaws.kms#NotFoundException") or
	// append details after a colon.
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	code, _, _ = strings.Cut(code, ":")
	if code == "" {
		code = fmt.Sprintf("HTTP%d", resp.StatusCode)
	}
	msg := body.Message
	if msg == "" {
		msg = body.MessageU
	}
	return &APIError{Operation: op, Code: code, Message: msg, StatusCode: resp.StatusCode, RequestID: rid}
}
