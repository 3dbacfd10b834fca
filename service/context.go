package service

import "context"

// Caller is the authenticated principal making a request.
type Caller struct {
	AccessKeyID string
	ARN         string
	AccountID   string
	// Policy is the caller's IAM identity policy (a JSON object), or ""
	// when it has none. It is a string, not a json.RawMessage, so that
	// Caller and RequestInfo stay comparable.
	Policy string
}

// RequestInfo is what the api layer knows about a request. Its RequestID is
// the x-amzn-RequestId returned to the client and doubles as the id of any
// Raft command the request proposes, so a retried proposal is deduplicated.
type RequestInfo struct {
	RequestID string
	Caller    Caller
	SourceIP  string
	UserAgent string
	// Consistency is the X-Kmsd-Consistency header: ConsistencyStrong asks
	// for a linearizable read of key metadata.
	Consistency string
	// SecureTransport is true when the request came over TLS (the
	// aws:SecureTransport condition key).
	SecureTransport bool
}

// ConsistencyStrong is the X-Kmsd-Consistency value for linearizable reads.
const ConsistencyStrong = "strong"

type requestInfoKey struct{}

// WithRequestInfo attaches request information to ctx.
func WithRequestInfo(ctx context.Context, ri RequestInfo) context.Context {
	return context.WithValue(ctx, requestInfoKey{}, ri)
}

// RequestInfoFrom returns the request information attached to ctx.
func RequestInfoFrom(ctx context.Context) (RequestInfo, bool) {
	switch ri := ctx.Value(requestInfoKey{}).(type) {
	case RequestInfo:
		return ri, true
	case *RequestInfo: // a batch item's (batchItemContext)
		return *ri, true
	}
	return RequestInfo{}, false
}

type requestInputKey struct{}

// WithRequestInput attaches an operation's decoded input (*EncryptInput,
// *SignInput, ...) to ctx. Authorization reads the condition keys AWS KMS
// takes from request parameters (kms:SigningAlgorithm, aws:RequestTag/KEY,
// ...) from it; without it those keys are absent from the request.
func WithRequestInput(ctx context.Context, in any) context.Context {
	return context.WithValue(ctx, requestInputKey{}, in)
}

// requestInputFrom returns the input attached by WithRequestInput, or nil.
func requestInputFrom(ctx context.Context) any {
	return ctx.Value(requestInputKey{})
}

// batchItemContext is a batch item's context: the batch's, with the item's
// own RequestInfo and input, in one allocation where WithRequestInfo and
// WithRequestInput would take four (two contexts, two boxed values).
type batchItemContext struct {
	context.Context
	info RequestInfo
	in   any
}

func (c *batchItemContext) Value(key any) any {
	switch key.(type) {
	case requestInfoKey:
		return &c.info
	case requestInputKey:
		return c.in
	}
	return c.Context.Value(key)
}
