package chaos

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/kmsd/kmsd/internal/sdkhttp"
)

// Header names kmsd uses.
const (
	HeaderServedBy    = "X-Kmsd-Served-By"
	HeaderConsistency = "X-Kmsd-Consistency"
)

// EncryptionContext is bound to every ciphertext the workload makes.
var EncryptionContext = map[string]string{"purpose": "chaos"}

func newHTTPClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
	}}
}

// newKMSClient builds an SDK client for one node: static credentials, no
// SDK retries (every answer is recorded as it came), and optionally the
// strong-consistency header on every request.
func newKMSClient(endpoint string, hc *http.Client, strong bool) *kms.Client {
	o := kms.Options{
		Region:           Region,
		BaseEndpoint:     aws.String(endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.OwnBody(hc),
	}
	if strong {
		o.APIOptions = append(o.APIOptions, smithyhttp.SetHeaderValue(HeaderConsistency, "strong"))
	}
	return kms.New(o)
}

// ServedBy returns the X-Kmsd-Served-By header of a successful call's
// output metadata.
func ServedBy(md middleware.Metadata) string {
	if r, ok := awsmiddleware.GetRawResponse(md).(*smithyhttp.Response); ok && r != nil {
		return r.Header.Get(HeaderServedBy)
	}
	return ""
}

// ServedByErr returns the X-Kmsd-Served-By header of a failed call's HTTP
// response, if there was one.
func ServedByErr(err error) string {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		return re.Response.Header.Get(HeaderServedBy)
	}
	return ""
}

// Classify maps a call's error to what the client knows about its effect,
// the error's name (the AWS exception, or a transport class) and its text.
// 4xx answers had no effect; 5xx answers, timeouts and transport errors
// after the connection was made may have; a refused connection had none.
func Classify(err error) (Outcome, string, string) {
	if err == nil {
		return OK, "", ""
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		status = re.Response.StatusCode
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if status >= 500 || status == 0 {
			return Maybe, ae.ErrorCode(), ae.ErrorMessage()
		}
		return Fail, ae.ErrorCode(), ae.ErrorMessage()
	}
	if status >= 400 && status < 500 {
		return Fail, "HTTP4xx", err.Error()
	}
	if status >= 500 {
		return Maybe, "HTTP5xx", err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return Fail, "dial", err.Error()
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return Maybe, "timeout", err.Error()
	}
	return Maybe, "transport", err.Error()
}

// Client calls one node and records every call in the cluster's history
// (if any) under a client id (porcupine's ClientId: one per goroutine).
type Client struct {
	Node *Node
	ID   int
	rec  *History
}

// WithID returns a copy of the client recording under id.
func (c *Client) WithID(id int) *Client {
	cc := *c
	cc.ID = id
	return &cc
}

func (c *Client) now() int64 {
	if c.rec == nil {
		return 0
	}
	return c.rec.Now()
}

// finish classifies err, fills the op's outcome and return time, and
// records it.
func (c *Client) finish(op Op, err error, servedBy string) Op {
	op.Return = c.now()
	op.Client = c.ID
	op.Node = c.Node.ID
	op.Outcome, op.Error, op.Message = Classify(err)
	if err != nil {
		servedBy = ServedByErr(err)
	}
	op.ServedBy = servedBy
	if servedBy != "" && servedBy != c.Node.ID {
		op.Note = "served by " + servedBy + ", asked " + c.Node.ID
	}
	if c.rec != nil {
		op.ID = c.rec.add(op)
	}
	return op
}

// CreateKey creates a key whose description is corr (the client's
// correlation id) and returns the new key id (empty unless acknowledged).
func (c *Client) CreateKey(ctx context.Context, corr string) (string, Op) {
	op := Op{Kind: OpCreateKey, Corr: corr, Call: c.now()}
	out, err := c.Node.client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String(corr)})
	served := ""
	if err == nil {
		served = ServedBy(out.ResultMetadata)
		op.KeyID = aws.ToString(out.KeyMetadata.KeyId)
		op.State = string(out.KeyMetadata.KeyState)
	}
	op = c.finish(op, err, served)
	return op.KeyID, op
}

// SetEnabled calls EnableKey or DisableKey.
func (c *Client) SetEnabled(ctx context.Context, keyID string, enabled bool) Op {
	op := Op{KeyID: keyID, Call: c.now()}
	var md middleware.Metadata
	var err error
	if enabled {
		op.Kind = OpEnableKey
		var out *kms.EnableKeyOutput
		if out, err = c.Node.client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(keyID)}); err == nil {
			md = out.ResultMetadata
		}
	} else {
		op.Kind = OpDisableKey
		var out *kms.DisableKeyOutput
		if out, err = c.Node.client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyID)}); err == nil {
			md = out.ResultMetadata
		}
	}
	return c.finish(op, err, ServedBy(md))
}

// DescribeKey reads a key's state, linearizably if strong.
func (c *Client) DescribeKey(ctx context.Context, keyID string, strong bool) Op {
	op := Op{Kind: OpDescribeKey, KeyID: keyID, Strong: strong, Call: c.now()}
	out, err := c.Node.SDK(strong).DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
	served := ""
	if err == nil {
		served = ServedBy(out.ResultMetadata)
		op.State = string(out.KeyMetadata.KeyState)
		if got := aws.ToString(out.KeyMetadata.KeyId); got != keyID {
			op.Note = "DescribeKey answered for key " + got
		}
	}
	return c.finish(op, err, served)
}

// Encrypt seals plaintext under keyID with EncryptionContext.
func (c *Client) Encrypt(ctx context.Context, keyID string, plaintext []byte) ([]byte, Op) {
	op := Op{Kind: OpEncrypt, KeyID: keyID, Call: c.now()}
	out, err := c.Node.client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext, EncryptionContext: EncryptionContext})
	var ct []byte
	served := ""
	if err == nil {
		served = ServedBy(out.ResultMetadata)
		ct = out.CiphertextBlob
	}
	return ct, c.finish(op, err, served)
}

// Decrypt opens a ciphertext made by Encrypt; keyID is recorded as the
// key the ciphertext was made under.
func (c *Client) Decrypt(ctx context.Context, keyID string, ciphertext []byte) ([]byte, Op) {
	op := Op{Kind: OpDecrypt, KeyID: keyID, Call: c.now()}
	out, err := c.Node.client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ciphertext, EncryptionContext: EncryptionContext})
	var pt []byte
	served := ""
	if err == nil {
		served = ServedBy(out.ResultMetadata)
		pt = out.Plaintext
	}
	return pt, c.finish(op, err, served)
}
