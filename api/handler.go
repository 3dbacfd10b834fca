package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/service"
)

// KMS is the operation set the handler dispatches to. *service.Service
// satisfies it.
type KMS interface {
	CreateKey(context.Context, *service.CreateKeyInput) (*service.CreateKeyOutput, error)
	DescribeKey(context.Context, *service.DescribeKeyInput) (*service.DescribeKeyOutput, error)
	ListKeys(context.Context, *service.ListKeysInput) (*service.ListKeysOutput, error)
	UpdateKeyDescription(context.Context, *service.UpdateKeyDescriptionInput) (*service.Empty, error)
	EnableKey(context.Context, *service.KeyIDInput) (*service.Empty, error)
	DisableKey(context.Context, *service.KeyIDInput) (*service.Empty, error)
	ScheduleKeyDeletion(context.Context, *service.ScheduleKeyDeletionInput) (*service.ScheduleKeyDeletionOutput, error)
	CancelKeyDeletion(context.Context, *service.KeyIDInput) (*service.CancelKeyDeletionOutput, error)
	Encrypt(context.Context, *service.EncryptInput) (*service.EncryptOutput, error)
	Decrypt(context.Context, *service.DecryptInput) (*service.DecryptOutput, error)
	ReEncrypt(context.Context, *service.ReEncryptInput) (*service.ReEncryptOutput, error)
	GenerateDataKey(context.Context, *service.GenerateDataKeyInput) (*service.GenerateDataKeyOutput, error)
	GenerateDataKeyWithoutPlaintext(context.Context, *service.GenerateDataKeyInput) (*service.GenerateDataKeyOutput, error)
	GenerateRandom(context.Context, *service.GenerateRandomInput) (*service.GenerateRandomOutput, error)
	CreateAlias(context.Context, *service.AliasInput) (*service.Empty, error)
	UpdateAlias(context.Context, *service.AliasInput) (*service.Empty, error)
	DeleteAlias(context.Context, *service.DeleteAliasInput) (*service.Empty, error)
	ListAliases(context.Context, *service.ListAliasesInput) (*service.ListAliasesOutput, error)
	TagResource(context.Context, *service.TagResourceInput) (*service.Empty, error)
	UntagResource(context.Context, *service.UntagResourceInput) (*service.Empty, error)
	ListResourceTags(context.Context, *service.ListResourceTagsInput) (*service.ListResourceTagsOutput, error)
}

// RotationKMS is the key-rotation operation set. The handler serves these
// operations when Config.KMS also implements it, as *service.Service does.
type RotationKMS interface {
	EnableKeyRotation(context.Context, *service.EnableKeyRotationInput) (*service.Empty, error)
	DisableKeyRotation(context.Context, *service.KeyIDInput) (*service.Empty, error)
	GetKeyRotationStatus(context.Context, *service.KeyIDInput) (*service.GetKeyRotationStatusOutput, error)
	RotateKeyOnDemand(context.Context, *service.KeyIDInput) (*service.RotateKeyOnDemandOutput, error)
	ListKeyRotations(context.Context, *service.ListKeyRotationsInput) (*service.ListKeyRotationsOutput, error)
}

var _ RotationKMS = (*service.Service)(nil)

// MacKMS is the HMAC operation set. The handler serves these operations when
// Config.KMS also implements it, as *service.Service does.
type MacKMS interface {
	GenerateMac(context.Context, *service.GenerateMacInput) (*service.GenerateMacOutput, error)
	VerifyMac(context.Context, *service.VerifyMacInput) (*service.VerifyMacOutput, error)
}

var _ MacKMS = (*service.Service)(nil)

// PolicyKMS is the key policy operation set. The handler serves these
// operations when Config.KMS also implements it, as *service.Service does.
type PolicyKMS interface {
	GetKeyPolicy(context.Context, *service.GetKeyPolicyInput) (*service.GetKeyPolicyOutput, error)
	PutKeyPolicy(context.Context, *service.PutKeyPolicyInput) (*service.Empty, error)
	ListKeyPolicies(context.Context, *service.ListKeyPoliciesInput) (*service.ListKeyPoliciesOutput, error)
}

var _ PolicyKMS = (*service.Service)(nil)

// GrantKMS is the grant operation set. The handler serves these operations
// when Config.KMS also implements it, as *service.Service does.
type GrantKMS interface {
	CreateGrant(context.Context, *service.CreateGrantInput) (*service.CreateGrantOutput, error)
	ListGrants(context.Context, *service.ListGrantsInput) (*service.ListGrantsOutput, error)
	ListRetirableGrants(context.Context, *service.ListRetirableGrantsInput) (*service.ListGrantsOutput, error)
	RetireGrant(context.Context, *service.RetireGrantInput) (*service.Empty, error)
	RevokeGrant(context.Context, *service.RevokeGrantInput) (*service.Empty, error)
}

var _ GrantKMS = (*service.Service)(nil)

// AsymmetricKMS is the asymmetric-key operation set (signing, public keys,
// data key pairs). The handler serves these operations when Config.KMS also
// implements it, as *service.Service does.
type AsymmetricKMS interface {
	Sign(context.Context, *service.SignInput) (*service.SignOutput, error)
	Verify(context.Context, *service.VerifyInput) (*service.VerifyOutput, error)
	GetPublicKey(context.Context, *service.GetPublicKeyInput) (*service.GetPublicKeyOutput, error)
	GenerateDataKeyPair(context.Context, *service.GenerateDataKeyPairInput) (*service.GenerateDataKeyPairOutput, error)
	GenerateDataKeyPairWithoutPlaintext(context.Context, *service.GenerateDataKeyPairWithoutPlaintextInput) (*service.GenerateDataKeyPairOutput, error)
}

var _ AsymmetricKMS = (*service.Service)(nil)

// ImportKMS is the imported key material (BYOK) operation set. The handler
// serves these operations when Config.KMS also implements it, as
// *service.Service does.
type ImportKMS interface {
	GetParametersForImport(context.Context, *service.GetParametersForImportInput) (*service.GetParametersForImportOutput, error)
	ImportKeyMaterial(context.Context, *service.ImportKeyMaterialInput) (*service.ImportKeyMaterialOutput, error)
	DeleteImportedKeyMaterial(context.Context, *service.DeleteImportedKeyMaterialInput) (*service.DeleteImportedKeyMaterialOutput, error)
}

var _ ImportKMS = (*service.Service)(nil)

// Wire constants.
const (
	HeaderRequestID = "x-amzn-RequestId"
	HeaderServedBy  = "X-Kmsd-Served-By"
	// HeaderConsistency asks for a linearizable metadata read ("strong").
	HeaderConsistency = "X-Kmsd-Consistency"
	HeaderErrorType   = "X-Amzn-ErrorType"
	HeaderTarget      = "X-Amz-Target"
	TargetPrefix      = "TrentService."
	ContentTypeJSON   = "application/x-amz-json-1.1"

	// DefaultMaxBodyBytes is Config.MaxBodyBytes when it is zero.
	DefaultMaxBodyBytes int64 = 1 << 20

	// OperationUnknown is the operation passed to Config.Observe for a
	// request whose X-Amz-Target is missing or names no TrentService
	// operation this handler serves.
	OperationUnknown = "unknown"
	// OutcomeOK is the outcome passed to Config.Observe for a success; any
	// other outcome is the AWS exception name sent as __type.
	OutcomeOK = "ok"
)

// Config configures a Handler.
type Config struct {
	KMS          KMS
	Auth         Authenticator
	Logger       *slog.Logger // nil: slog.Default()
	NodeID       string       // sent as X-Kmsd-Served-By on every response
	MaxBodyBytes int64        // 0: DefaultMaxBodyBytes
	// MaxBatchBodyBytes caps the body of a batch request (KmsdService
	// targets, see batch.go); 0: DefaultMaxBatchBodyBytes. The target
	// header picks the cap before the body is read.
	MaxBatchBodyBytes int64
	// Ready reports whether the node's state is caught up enough to serve
	// KMS operations (nil: always). Until it is, KMS requests get a 503
	// DependencyTimeoutException, which the SDKs retry.
	Ready func() bool
	// Observe, if set, is called exactly once for every KMS request (POST /)
	// the handler answers, errors included, after the response is written.
	// operation is the TrentService or batch (KmsdService) operation named
	// by X-Amz-Target when the handler serves it (also when the request
	// then fails authentication), else OperationUnknown: it never carries a
	// client-chosen string. A batch request is observed once, whatever its
	// number of items.
	// outcome is OutcomeOK or the AWS exception name (the __type, e.g.
	// "NotFoundException"). elapsed runs from the request's arrival until the
	// response has been written to the ResponseWriter. Requests to other
	// paths or methods, to endpoints registered with Handle, and requests
	// aborted with http.ErrAbortHandler (never answered) are not observed.
	// Observe runs on the request's goroutine and must be safe for
	// concurrent use.
	Observe func(operation, outcome string, elapsed time.Duration)
	// Audit, if set, is given one AuditEvent for every KMS request (POST /)
	// the handler answers, success or failure, before the response is
	// written; for a batch request that runs its items, one AuditEvent per
	// item instead (see batch.go). If it returns an error the client gets a 500
	// KMSInternalException instead of the answer (fail closed: no answer
	// without a record), unless AuditFailOpen is set, in which case the
	// error is logged and the answer sent. A mutation has already been
	// committed by then: fail closed means the caller is not told about
	// it, not that it did not happen. Audit runs on the request's
	// goroutine and must be safe for concurrent use.
	Audit         Auditor
	AuditFailOpen bool
	// Quota, if set, limits each authenticated principal's request rate
	// (see QuotaLimiter); a request over it gets a ThrottlingException
	// (400), observed and audited like any error, without reaching KMS.
	Quota *QuotaLimiter
}

// Auditor records KMS requests (see Config.Audit).
type Auditor interface {
	Record(ctx context.Context, ev AuditEvent) error
}

// AuditEvent is one answered KMS request, for an Auditor. It carries the
// request body and the response as they are on the wire: plaintexts,
// ciphertexts and other secrets included. The Auditor must remove them.
type AuditEvent struct {
	// Operation is the TrentService operation, or OperationUnknown (see
	// Config.Observe).
	Operation string
	// Info is the request id, source address, user agent and, once
	// authenticated, the caller.
	Info service.RequestInfo
	// Time is when the request arrived.
	Time time.Time
	// Request is the request body as received (nil if it was not read,
	// e.g. over the size limit); it need not be valid JSON.
	Request []byte
	// Response is the JSON response body of a success; nil on failure.
	Response []byte
	// ErrorCode and ErrorMessage are the AWS exception name and the
	// message sent to the client on failure; both empty on success.
	ErrorCode    string
	ErrorMessage string
}

// Validate reports a configuration the handler cannot run with.
func (c Config) Validate() error {
	var errs []error
	if c.KMS == nil || reflect.ValueOf(c.KMS).Kind() == reflect.Pointer && reflect.ValueOf(c.KMS).IsNil() {
		errs = append(errs, errors.New("api: Config.KMS is nil"))
	}
	if c.Auth == nil || reflect.ValueOf(c.Auth).Kind() == reflect.Pointer && reflect.ValueOf(c.Auth).IsNil() {
		errs = append(errs, errors.New("api: Config.Auth is nil"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("api: Config.NodeID is empty"))
	} else if strings.ContainsAny(c.NodeID, "\r\n\x00") {
		errs = append(errs, errors.New("api: Config.NodeID contains a control character"))
	}
	if c.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("api: Config.MaxBodyBytes %d is negative", c.MaxBodyBytes))
	}
	if c.MaxBatchBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("api: Config.MaxBatchBodyBytes %d is negative", c.MaxBatchBodyBytes))
	}
	return errors.Join(errs...)
}

// Handler serves the KMS API on POST / and the extra endpoints registered
// with Handle. It is safe for concurrent use.
type Handler struct {
	auth    Authenticator
	log     *slog.Logger
	nodeID  string
	maxBody int64
	ready   func() bool
	observe func(operation, outcome string, elapsed time.Duration)
	ops     map[string]opHandler
	extra   *http.ServeMux

	batchOps     map[string]batchOp // nil unless Config.KMS implements BatchKMS
	maxBatchBody int64

	audit Auditor
	// auditFailOpen answers requests whose audit record failed.
	auditFailOpen bool
	quota         *QuotaLimiter // nil: no request quotas
}

// opHandler decodes, validates and runs one operation.
type opHandler struct {
	inType reflect.Type
	serve  func(ctx context.Context, body []byte) (any, error)
}

// op builds the handler of one operation from its service method.
func op[In, Out any](fn func(context.Context, *In) (*Out, error)) opHandler {
	return opHandler{
		inType: reflect.TypeFor[In](),
		serve: func(ctx context.Context, body []byte) (any, error) {
			in := new(In)
			if err := decodeJSON(body, in); err != nil {
				return nil, err
			}
			if err := validateInput(in); err != nil {
				return nil, err
			}
			// Authorization reads condition keys from the input.
			out, err := fn(service.WithRequestInput(ctx, in), in)
			if err != nil {
				return nil, err
			}
			if out == nil {
				return nil, nil
			}
			return out, nil
		},
	}
}

// NewHandler returns a handler for cfg.
func NewHandler(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	k := cfg.KMS
	h := &Handler{
		auth:    cfg.Auth,
		log:     cfg.Logger,
		nodeID:  cfg.NodeID,
		maxBody: cfg.MaxBodyBytes,
		ready:   cfg.Ready,
		observe: cfg.Observe,
		extra:   http.NewServeMux(),
		ops: map[string]opHandler{
			"CreateKey":                       op(k.CreateKey),
			"DescribeKey":                     op(k.DescribeKey),
			"ListKeys":                        op(k.ListKeys),
			"UpdateKeyDescription":            op(k.UpdateKeyDescription),
			"EnableKey":                       op(k.EnableKey),
			"DisableKey":                      op(k.DisableKey),
			"ScheduleKeyDeletion":             op(k.ScheduleKeyDeletion),
			"CancelKeyDeletion":               op(k.CancelKeyDeletion),
			"Encrypt":                         op(k.Encrypt),
			"Decrypt":                         op(k.Decrypt),
			"ReEncrypt":                       op(k.ReEncrypt),
			"GenerateDataKey":                 op(k.GenerateDataKey),
			"GenerateDataKeyWithoutPlaintext": op(k.GenerateDataKeyWithoutPlaintext),
			"GenerateRandom":                  op(k.GenerateRandom),
			"CreateAlias":                     op(k.CreateAlias),
			"UpdateAlias":                     op(k.UpdateAlias),
			"DeleteAlias":                     op(k.DeleteAlias),
			"ListAliases":                     op(k.ListAliases),
			"TagResource":                     op(k.TagResource),
			"UntagResource":                   op(k.UntagResource),
			"ListResourceTags":                op(k.ListResourceTags),
		},
	}
	if r, ok := k.(RotationKMS); ok {
		h.ops["EnableKeyRotation"] = op(r.EnableKeyRotation)
		h.ops["DisableKeyRotation"] = op(r.DisableKeyRotation)
		h.ops["GetKeyRotationStatus"] = op(r.GetKeyRotationStatus)
		h.ops["RotateKeyOnDemand"] = op(r.RotateKeyOnDemand)
		h.ops["ListKeyRotations"] = op(r.ListKeyRotations)
	}
	if m, ok := k.(MacKMS); ok {
		h.ops["GenerateMac"] = op(m.GenerateMac)
		h.ops["VerifyMac"] = op(m.VerifyMac)
	}
	if p, ok := k.(PolicyKMS); ok {
		h.ops["GetKeyPolicy"] = op(p.GetKeyPolicy)
		h.ops["PutKeyPolicy"] = op(p.PutKeyPolicy)
		h.ops["ListKeyPolicies"] = op(p.ListKeyPolicies)
	}
	if g, ok := k.(GrantKMS); ok {
		h.ops["CreateGrant"] = op(g.CreateGrant)
		h.ops["ListGrants"] = op(g.ListGrants)
		h.ops["ListRetirableGrants"] = op(g.ListRetirableGrants)
		h.ops["RetireGrant"] = op(g.RetireGrant)
		h.ops["RevokeGrant"] = op(g.RevokeGrant)
	}
	if a, ok := k.(AsymmetricKMS); ok {
		h.ops["Sign"] = op(a.Sign)
		h.ops["Verify"] = op(a.Verify)
		h.ops["GetPublicKey"] = op(a.GetPublicKey)
		h.ops["GenerateDataKeyPair"] = op(a.GenerateDataKeyPair)
		h.ops["GenerateDataKeyPairWithoutPlaintext"] = op(a.GenerateDataKeyPairWithoutPlaintext)
	}
	if im, ok := k.(ImportKMS); ok {
		h.ops["GetParametersForImport"] = op(im.GetParametersForImport)
		h.ops["ImportKeyMaterial"] = op(im.ImportKeyMaterial)
		h.ops["DeleteImportedKeyMaterial"] = op(im.DeleteImportedKeyMaterial)
	}
	if b, ok := k.(BatchKMS); ok {
		h.batchOps = batchOps(b)
	}
	h.maxBatchBody = cfg.MaxBatchBodyBytes
	if h.maxBatchBody == 0 {
		h.maxBatchBody = DefaultMaxBatchBodyBytes
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	h.audit, h.auditFailOpen = cfg.Audit, cfg.AuditFailOpen
	h.quota = cfg.Quota
	if h.audit != nil && reflect.ValueOf(h.audit).Kind() == reflect.Pointer && reflect.ValueOf(h.audit).IsNil() {
		h.audit = nil
	}
	if h.maxBody == 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	// Build (and cache) every input's validation rules now, so a bad tag
	// fails at startup rather than on a request.
	for name, o := range h.ops {
		if _, err := rulesFor(o.inType); err != nil {
			return nil, fmt.Errorf("api: operation %s: %w", name, err)
		}
	}
	for name, o := range h.batchOps {
		if _, err := rulesFor(reflect.TypeOf(o.inType).Elem()); err != nil {
			return nil, fmt.Errorf("api: operation %s: %w", name, err)
		}
	}
	return h, nil
}

// Operations returns the names of the operations the handler serves.
func (h *Handler) Operations() []string {
	names := make([]string, 0, len(h.ops))
	for n := range h.ops {
		names = append(names, n)
	}
	return names
}

// Handle registers an extra (non-KMS) endpoint with an http.ServeMux
// pattern such as "GET /healthz". POST / always goes to the KMS API. Like
// ServeMux.Handle it panics on an invalid or conflicting pattern. Responses
// of extra endpoints also carry the request id and X-Kmsd-Served-By headers.
func (h *Handler) Handle(pattern string, handler http.Handler) {
	h.extra.Handle(pattern, handler)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := service.RequestInfo{
		RequestID: newRequestID(),
		SourceIP:  sourceIP(r.RemoteAddr),
		UserAgent: r.UserAgent(),
		// Only "strong" changes anything; other values read locally.
		Consistency: r.Header.Get(HeaderConsistency),
		// aws:SecureTransport.
		SecureTransport: r.TLS != nil,
	}
	hdr := w.Header()
	// Assigned directly to keep AWS's spelling: Set would canonicalise the
	// name to X-Amzn-Requestid. Readers match header names case-insensitively.
	hdr[HeaderRequestID] = []string{info.RequestID}
	hdr.Set(HeaderServedBy, h.nodeID)

	if r.URL.Path == "/" && r.Method == http.MethodPost {
		if isBatchTarget(r) {
			h.serveBatch(w, r, &info, start)
			return
		}
		h.serveKMS(w, r, &info, start)
		return
	}
	if _, pattern := h.extra.Handler(r); pattern != "" {
		h.serveExtra(w, r, info, start)
		return
	}
	h.finish(w, r, &info, "", start, nil, apiError(ErrNoRoute, "No route for "+r.Method+" "+truncate(r.URL.Path, 128)))
}

// serveKMS runs one KMS operation and writes its response.
func (h *Handler) serveKMS(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, start time.Time) {
	var opName string
	var body []byte // as run read it, for the audit record
	label := h.operationLabel(r)
	out, err := h.runSafely(w, r, info, &opName, &body)
	if h.audit != nil {
		out, err = h.auditRequest(r, info, start, label, body, out, err)
	}
	errName := h.finish(w, r, info, opName, start, out, err)
	if h.observe != nil {
		outcome := OutcomeOK
		if errName != "" {
			outcome = errName
		}
		h.observe(label, outcome, time.Since(start))
	}
}

// errAuditFailed replaces the answer to a request whose audit record could
// not be written (fail closed); it is a KMSInternalException.
var errAuditFailed = errors.New("api: audit record not written")

// auditRequest gives the answer (out, err) to the Auditor and returns the
// answer to send: out is then the encoded JSON (rawJSON) on success.
// operation is operationLabel(r); body is the request body as read (nil if
// it was not).
func (h *Handler) auditRequest(r *http.Request, info *service.RequestInfo, start time.Time, operation string, body []byte, out any, err error) (any, error) {
	ev := AuditEvent{Operation: operation, Info: *info, Time: start, Request: body}
	if err == nil {
		payload := []byte("{}")
		if out != nil {
			var mErr error
			if payload, mErr = json.Marshal(out); mErr != nil {
				err = fmt.Errorf("api: encoding %s output: %w", ev.Operation, mErr)
			}
		}
		if err == nil {
			out, ev.Response = rawJSON(payload), payload
		}
	}
	if err != nil {
		out = nil
		we := classify(err)
		ev.ErrorCode, ev.ErrorMessage = we.name, we.message
	}
	if aErr := h.audit.Record(r.Context(), ev); aErr != nil {
		if h.auditFailOpen {
			h.log.ErrorContext(r.Context(), "audit record not written; answering anyway (-audit-fail-open)",
				"request_id", info.RequestID, "err", aErr)
			return out, err
		}
		h.log.ErrorContext(r.Context(), "audit record not written; failing the request",
			"request_id", info.RequestID, "op", ev.Operation, "outcome", firstNonEmptyString(ev.ErrorCode, OutcomeOK), "err", aErr)
		return nil, errAuditFailed
	}
	return out, err
}

func firstNonEmptyString(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// operationLabel names the operation r asks for, for Config.Observe: the
// operation name if the handler serves it, else OperationUnknown. It looks
// at the header alone, so requests that fail before the operation lookup
// (body limit, authentication) are still attributed to their operation.
func (h *Handler) operationLabel(r *http.Request) string {
	target := r.Header.Get(HeaderTarget)
	if name, ok := strings.CutPrefix(target, TargetPrefix); ok {
		if _, known := h.ops[name]; known {
			return name
		}
	} else if name, ok := strings.CutPrefix(target, BatchTargetPrefix); ok {
		if _, known := h.batchOps[name]; known {
			return name
		}
	}
	return OperationUnknown
}

// errPanic stands for a recovered panic; the stack is logged where it is
// recovered.
var errPanic = errors.New("api: panic while serving request")

func (h *Handler) runSafely(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, opName *string, body *[]byte) (out any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "panic serving KMS request",
				"op", *opName, "request_id", info.RequestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out, err = nil, errPanic
		}
	}()
	return h.run(w, r, info, opName, body)
}

// run is the request pipeline up to the service call. It sets *rawBody to
// the request body once read, for the audit record.
func (h *Handler) run(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, opName *string, rawBody *[]byte) (any, error) {
	// 1. Body limit: refuse a declared oversize body without reading it.
	if r.ContentLength > h.maxBody {
		w.Header().Set("Connection", "close")
		return nil, tooLarge(h.maxBody)
	}
	// 2. Read the body (chunked bodies are capped by MaxBytesReader).
	body, err := h.readBody(w, r, h.maxBody)
	if err != nil {
		return nil, err
	}
	*rawBody = body
	// 3. Authenticate.
	caller, err := h.auth.Authenticate(r, body)
	if err != nil {
		return nil, err
	}
	info.Caller = caller
	// 4. Operation.
	target := r.Header.Get(HeaderTarget)
	name, ok := strings.CutPrefix(target, TargetPrefix)
	o, known := h.ops[name]
	if !ok || !known {
		if target == "" {
			return nil, apiError(ErrUnknownOperation, "Missing X-Amz-Target header")
		}
		return nil, apiError(ErrUnknownOperation, "Unknown operation "+strconv.Quote(truncate(target, 128)))
	}
	*opName = name
	if h.ready != nil && !h.ready() {
		return nil, &service.Error{Kind: service.ErrDependencyTimeout, Message: "This node is catching up with its cluster; retry the request."}
	}
	// 4b. Request quota of the authenticated principal.
	if h.quota != nil && !h.quota.Allow(name, caller.ARN, caller.AccessKeyID) {
		return nil, errThrottled()
	}
	// 5. Content type.
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	// 6. Decode, validate, call.
	return o.serve(service.WithRequestInfo(r.Context(), *info), body)
}

// checkContentType accepts no Content-Type, AWS JSON 1.1 and plain JSON.
func checkContentType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != ContentTypeJSON && mt != "application/json") {
			return apiError(ErrSerialization, "Content-Type must be "+ContentTypeJSON)
		}
	}
	return nil
}

func tooLarge(limit int64) error {
	return apiError(ErrRequestTooLarge, "Request body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
}

// readBody reads the body, at most limit bytes.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rd := http.MaxBytesReader(w, r.Body, limit)
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		// <= limit, checked by the caller. ReadFrom wants MinRead bytes of
		// room to see the end of the body: without them it would double
		// the buffer (and copy the body) after reading it all.
		buf.Grow(int(r.ContentLength) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(rd); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			w.Header().Set("Connection", "close")
			return nil, tooLarge(limit)
		}
		return nil, apiError(ErrSerialization, "Could not read the request body")
	}
	return buf.Bytes(), nil
}

// decodeJSON decodes an AWS JSON 1.1 request body into in (a pointer to an
// input struct). An empty body is {}; null members are absent; unknown
// members are ignored. Every failure is a SerializationException whose
// message does not echo the body.
func decodeJSON(body []byte, in any) error {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil
	}
	if trimmed[0] != '{' {
		return apiError(ErrSerialization, "Request body must be a JSON object")
	}
	err := json.Unmarshal(body, in)
	if err == nil {
		return nil
	}
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return apiError(ErrSerialization, "Malformed JSON at byte offset "+strconv.FormatInt(se.Offset, 10))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		kind, _, _ := strings.Cut(te.Value, " ") // "number 1e99" -> "number": do not echo values
		field := te.Field
		if field == "" {
			field = "(root)"
		}
		return apiError(ErrSerialization, fmt.Sprintf("Cannot deserialize a JSON %s into %s at '%s'", kind, awsTypeName(te.Type), truncate(field, 256)))
	}
	if _, ok := errors.AsType[base64.CorruptInputError](err); ok {
		return apiError(ErrSerialization, "Blob member is not valid base64")
	}
	return apiError(ErrSerialization, "Malformed request body")
}

// awsTypeName names a Go type as the AWS model does.
func awsTypeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	t = derefType(t)
	switch {
	case t.Kind() == reflect.String:
		return "String"
	case t.Kind() == reflect.Bool:
		return "Boolean"
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return "Blob"
	case isIntKind(t.Kind()):
		return "Integer"
	case t.Kind() == reflect.Slice:
		return "List"
	case t.Kind() == reflect.Map:
		return "Map"
	case t == reflect.TypeFor[service.Timestamp]():
		return "Timestamp"
	case t.Kind() == reflect.Struct:
		return "Structure"
	}
	return "a value"
}

// finish writes the response for (out, err) and logs the request. It
// returns the AWS exception name it answered with, "" for a success.
//
// The per-request line is logged at Debug (Error for a 5xx): the audit log
// already records every call, and at the default level building the line
// cost a noticeable share of a request's CPU.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, opName string, start time.Time, out any, err error) string {
	var payload []byte
	status := http.StatusOK
	errName := ""
	if err == nil {
		switch o := out.(type) {
		case rawJSON: // encoded by auditRequest or a batch: json.Marshal would only re-scan it
			payload = o
		case nil:
			payload = []byte("{}")
		default:
			if payload, err = json.Marshal(out); err != nil {
				err = fmt.Errorf("api: encoding %s output: %w", opName, err)
			}
		}
	}
	level := slog.LevelDebug
	var cause string
	if err != nil {
		we := classify(err)
		status, errName = we.status, we.name
		w.Header()[HeaderErrorType] = []string{we.name}
		payload, _ = json.Marshal(struct {
			Type    string `json:"__type"`
			Message string `json:"message"`
		}{we.name, we.message})
		if status >= 500 {
			level = slog.LevelError
		}
		if we.internal && !errors.Is(err, errPanic) {
			cause = err.Error()
		}
	}
	w.Header().Set("Content-Type", ContentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(payload)
	}
	if ctx := r.Context(); h.log.Enabled(ctx, level) {
		attrs := make([]slog.Attr, 0, 8)
		if cause != "" {
			attrs = append(attrs, slog.String("cause", cause))
		}
		attrs = append(attrs,
			slog.String("op", opName),
			slog.String("request_id", info.RequestID),
			slog.Int("status", status),
			slog.String("error_type", errName),
			slog.Duration("duration", time.Since(start)),
			slog.String("source_ip", info.SourceIP),
			slog.String("access_key_id", info.Caller.AccessKeyID),
		)
		h.log.LogAttrs(ctx, level, "kms request", attrs...)
	}
	return errName
}

// serveExtra runs a registered non-KMS endpoint, recovering panics.
func (h *Handler) serveExtra(w http.ResponseWriter, r *http.Request, info service.RequestInfo, start time.Time) {
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "panic serving extra endpoint",
				"path", r.URL.Path, "request_id", info.RequestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			if !sw.wrote {
				h.finish(w, r, &info, "", start, nil, errPanic)
				return
			}
			panic(http.ErrAbortHandler) // response half written: drop the connection
		}
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.String("request_id", info.RequestID), slog.Int("status", sw.statusOr200()),
			slog.Duration("duration", time.Since(start)))
	}()
	h.extra.ServeHTTP(sw, r.WithContext(service.WithRequestInfo(r.Context(), info)))
}

// statusWriter records the status an extra endpoint wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if !s.wrote {
		s.status, s.wrote = http.StatusOK, true
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) statusOr200() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it aborts the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:], b[10:])
	return string(s[:])
}

func sourceIP(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
