package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kmsd/kmsd/service"
)

// The kmsd Batch API: operations outside AWS's TrentService, on the same
// wire protocol (POST /, AWS JSON 1.1, SigV4 with service "kms"), named by
// X-Amz-Target: KmsdService.<Operation>:
//
//	KmsdService.BatchEncrypt                          items are Encrypt requests
//	KmsdService.BatchDecrypt                          items are Decrypt requests
//	KmsdService.BatchGenerateDataKey                  items are GenerateDataKey requests
//	KmsdService.BatchGenerateDataKeyWithoutPlaintext  items are GenerateDataKeyWithoutPlaintext requests
//
// Request: {"Items": [ITEM, ...], "GrantTokens": [...], "DryRun": false}
// with 1 to 1,000 items; GrantTokens (at most 10) and DryRun apply to every
// item. An ITEM is the single operation's request without GrantTokens and
// DryRun:
//
//	BatchEncrypt          {"KeyId", "Plaintext", "EncryptionContext", "EncryptionAlgorithm"}
//	BatchDecrypt          {"CiphertextBlob", "EncryptionContext", "KeyId", "EncryptionAlgorithm"}
//	BatchGenerateDataKey* {"KeyId", "EncryptionContext", "NumberOfBytes", "KeySpec"}
//
// Response (200): {"Results": [RESULT, ...]}, one RESULT per item in input
// order: the single operation's response (e.g. {"CiphertextBlob", "KeyId",
// "EncryptionAlgorithm"} for BatchEncrypt), or, if that item failed,
// {"Error": {"__type": "NotFoundException", "message": "..."}} with the
// exception the single operation would have answered.
//
// Each item is validated, authorized (key policy, grants, identity policy),
// metered and run exactly as the single operation, by the same service
// method (service.BatchOptions); items run on a pool of GOMAXPROCS workers.
// The request as a whole fails, with nothing done, when it cannot be
// authenticated, its body is over Config.MaxBatchBodyBytes or is not valid
// JSON of the request's shape, it has no or more than 1,000 items or more
// than 10 grant tokens (ValidationException), or the caller's request
// quota has no token left at all (ThrottlingException). With quotas on,
// each item takes one token of the single operation's quota group; items
// beyond the tokens available fail alone with ThrottlingException.
//
// Audit: one AuditEvent per item, whose Operation is the batch operation,
// whose RequestID is the item's ("<x-amzn-RequestId>#<position from 0>"),
// whose Request is the item without its secret members (no Plaintext, no
// CiphertextBlob, no GrantTokens) and whose Response is the item's result
// without Plaintext and CiphertextBlob (or its ErrorCode/ErrorMessage). A
// request that fails as a whole gets one AuditEvent for the request, with
// its x-amzn-RequestId and no request body.

// Batch wire constants.
const (
	// BatchTargetPrefix prefixes the X-Amz-Target of the batch operations.
	BatchTargetPrefix = "KmsdService."
	// DefaultMaxBatchBodyBytes is Config.MaxBatchBodyBytes when it is zero:
	// room for 1,000 items of the largest ciphertext (6,144 bytes, 8,192 in
	// base64) with a key ARN and an encryption context each.
	DefaultMaxBatchBodyBytes int64 = 16 << 20
	// maxAuditRecorders bounds the concurrent Auditor.Record calls of one
	// batch when the Auditor is not a BatchAuditor. Concurrent calls share
	// fsyncs (group commit) but each call waits for the fsync covering its
	// record: with k callers, a batch of n items waits for about n/k
	// fsyncs in a row. One call per item (the batch limit) makes it one or
	// two, for about 1,000 short-lived goroutines per batch.
	maxAuditRecorders = service.MaxBatchItems
)

// BatchKMS is the batch operation set. The handler serves the KmsdService
// targets when Config.KMS also implements it, as *service.Service does.
type BatchKMS interface {
	BatchEncrypt(context.Context, *service.BatchEncryptInput, service.BatchOptions) (*service.BatchOutput[service.EncryptOutput], error)
	BatchDecrypt(context.Context, *service.BatchDecryptInput, service.BatchOptions) (*service.BatchOutput[service.DecryptOutput], error)
	BatchGenerateDataKey(context.Context, *service.BatchGenerateDataKeyInput, service.BatchOptions) (*service.BatchOutput[service.GenerateDataKeyOutput], error)
	BatchGenerateDataKeyWithoutPlaintext(context.Context, *service.BatchGenerateDataKeyInput, service.BatchOptions) (*service.BatchOutput[service.GenerateDataKeyOutput], error)
}

var _ BatchKMS = (*service.Service)(nil)

// BatchAuditor is an Auditor that records a batch request's items in one
// call (audit.Writer writes them as one summary record, with one entry per
// item, in one write and one fsync); other Auditors get one Record call
// per item, concurrently.
type BatchAuditor interface {
	Auditor
	// RecordBatch records the items of one batch request. req is the
	// request itself: its Operation, Info (the request's id) and Time; it
	// has no bodies. items are in item order and share req's Operation,
	// Time and Info but for Info.RequestID, the request's id followed by
	// "#" and the item's position.
	RecordBatch(ctx context.Context, req AuditEvent, items []AuditEvent) error
}

// batchOp is one batch operation.
type batchOp struct {
	// serve decodes and validates the request, takes the caller's quota
	// tokens and runs the items.
	serve func(ctx context.Context, h *Handler, req batchRequest) (*batchAnswer, error)
	// inType is a pointer to the request type, whose validation rules
	// NewHandler builds at startup.
	inType any
}

// batchRequest is what an operation needs from the pipeline.
type batchRequest struct {
	op     string // batch operation name, e.g. "BatchEncrypt"
	body   []byte
	caller service.Caller
	info   service.RequestInfo
	start  time.Time
}

// batchAnswer is a batch's encoded response and its per-item audit events.
type batchAnswer struct {
	payload []byte
	audit   []AuditEvent // nil when the handler has no Auditor
}

// rawJSON is a response body that is already encoded.
type rawJSON []byte

// newBatchOp builds a batch operation. itemOp is the single operation the
// items are (its quota group is charged per item); count returns the
// number of items; auditItem returns item i as its audit record's request
// (no secrets); auditOut returns an item's output as its audit record's
// response (no secrets).
func newBatchOp[In, Out any](itemOp string,
	fn func(context.Context, *In, service.BatchOptions) (*service.BatchOutput[Out], error),
	count func(*In) int, auditItem func(in *In, i int) auditRequestItem, auditOut func(*Out) auditResponseItem) batchOp {
	return batchOp{
		inType: new(In),
		serve: func(ctx context.Context, h *Handler, req batchRequest) (*batchAnswer, error) {
			in := new(In)
			if !decodeBatchFast(req.body, in) {
				in = new(In)
				if err := decodeJSON(req.body, in); err != nil {
					return nil, err
				}
			}
			if err := validateInput(in); err != nil {
				return nil, err
			}
			n := count(in)
			granted := n
			if h.quota != nil {
				if granted = h.quota.AllowN(itemOp, n, req.caller.ARN, req.caller.AccessKeyID); granted == 0 {
					return nil, errThrottled()
				}
			}
			enc := make([][]byte, n)
			var evs []AuditEvent
			if h.audit != nil {
				evs = make([]AuditEvent, n)
			}
			opts := service.BatchOptions{
				Check: func(i int, item any) error {
					if i >= granted {
						return errThrottled()
					}
					return validateInput(item)
				},
				Done: func(i int, requestID string, o any, err error) {
					var out *Out
					if err == nil {
						out, _ = o.(*Out)
					}
					var we *wireError
					enc[i], we = h.encodeBatchItem(ctx, req.op, requestID, i, out, err)
					if evs != nil {
						evs[i] = itemAuditEvent(req, requestID, auditItem(in, i), out, auditOut, we)
					}
					if out != nil {
						clearPlaintext(out)
					}
				},
			}
			if _, err := fn(ctx, in, opts); err != nil {
				return nil, err
			}
			// Every item has its encoding unless Done failed for it (a
			// panic, which the service logged): answer that item with an
			// internal error rather than a malformed response.
			for i, e := range enc {
				if e == nil {
					rid := ""
					if req.info.RequestID != "" {
						rid = req.info.RequestID + "#" + strconv.Itoa(i)
					}
					var we *wireError
					enc[i], we = h.encodeBatchItem(ctx, req.op, rid, i, nil, errPanic)
					if evs != nil {
						evs[i] = itemAuditEvent[Out](req, rid, auditItem(in, i), nil, auditOut, we)
					}
				}
			}
			size := len(`{"Results":[]}`) + n
			for _, e := range enc {
				size += len(e)
			}
			payload := make([]byte, 0, size)
			payload = append(payload, `{"Results":[`...)
			for i, e := range enc {
				if i > 0 {
					payload = append(payload, ',')
				}
				payload = append(payload, e...)
			}
			payload = append(payload, "]}"...)
			return &batchAnswer{payload: payload, audit: evs}, nil
		},
	}
}

// batchOps returns the batch operations of k.
func batchOps(k BatchKMS) map[string]batchOp {
	return map[string]batchOp{
		"BatchEncrypt": newBatchOp("Encrypt", k.BatchEncrypt,
			func(in *service.BatchEncryptInput) int { return len(in.Items) },
			func(in *service.BatchEncryptInput, i int) auditRequestItem {
				it := &in.Items[i]
				return auditRequestItem{KeyId: it.KeyId, EncryptionContext: it.EncryptionContext,
					EncryptionAlgorithm: it.EncryptionAlgorithm, DryRun: in.DryRun}
			},
			func(o *service.EncryptOutput) auditResponseItem {
				return auditResponseItem{KeyId: o.KeyId, EncryptionAlgorithm: o.EncryptionAlgorithm}
			}),
		"BatchDecrypt": newBatchOp("Decrypt", k.BatchDecrypt,
			func(in *service.BatchDecryptInput) int { return len(in.Items) },
			func(in *service.BatchDecryptInput, i int) auditRequestItem {
				it := &in.Items[i]
				return auditRequestItem{KeyId: it.KeyId, EncryptionContext: it.EncryptionContext,
					EncryptionAlgorithm: it.EncryptionAlgorithm, DryRun: in.DryRun}
			},
			func(o *service.DecryptOutput) auditResponseItem {
				return auditResponseItem{KeyId: o.KeyId, EncryptionAlgorithm: o.EncryptionAlgorithm, KeyMaterialId: o.KeyMaterialId}
			}),
		"BatchGenerateDataKey": newBatchOp("GenerateDataKey", k.BatchGenerateDataKey,
			countDataKeyItems, auditDataKeyItem, auditDataKeyOut),
		"BatchGenerateDataKeyWithoutPlaintext": newBatchOp("GenerateDataKeyWithoutPlaintext", k.BatchGenerateDataKeyWithoutPlaintext,
			countDataKeyItems, auditDataKeyItem, auditDataKeyOut),
	}
}

func countDataKeyItems(in *service.BatchGenerateDataKeyInput) int { return len(in.Items) }

func auditDataKeyItem(in *service.BatchGenerateDataKeyInput, i int) auditRequestItem {
	it := &in.Items[i]
	return auditRequestItem{KeyId: it.KeyId, EncryptionContext: it.EncryptionContext,
		NumberOfBytes: it.NumberOfBytes, KeySpec: it.KeySpec, DryRun: in.DryRun}
}

func auditDataKeyOut(o *service.GenerateDataKeyOutput) auditResponseItem {
	return auditResponseItem{KeyId: o.KeyId, KeyMaterialId: o.KeyMaterialId}
}

// auditRequestItem is an item's audit request: its members that are not
// secret. Plaintext, CiphertextBlob and GrantTokens are left out here, not
// only by the Auditor.
type auditRequestItem struct {
	KeyId               *string           `json:"KeyId,omitempty"`
	EncryptionContext   map[string]string `json:"EncryptionContext,omitempty"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm,omitempty"`
	NumberOfBytes       *int32            `json:"NumberOfBytes,omitempty"`
	KeySpec             *string           `json:"KeySpec,omitempty"`
	DryRun              *bool             `json:"DryRun,omitempty"`
}

// auditResponseItem is an item's audit response: its output without
// Plaintext and CiphertextBlob.
type auditResponseItem struct {
	KeyId               string `json:"KeyId,omitempty"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm,omitempty"`
	KeyMaterialId       string `json:"KeyMaterialId,omitempty"`
}

// itemAuditEvent is the audit event of one item.
func itemAuditEvent[Out any](req batchRequest, requestID string, auditReq auditRequestItem, out *Out, auditOut func(*Out) auditResponseItem, we *wireError) AuditEvent {
	ev := AuditEvent{Operation: req.op, Info: req.info, Time: req.start}
	if requestID != "" {
		ev.Info.RequestID = requestID
	}
	if we != nil || out == nil {
		ev.Request = auditReq.appendJSON(make([]byte, 0, auditReq.sizeHint()))
		if we != nil {
			ev.ErrorCode, ev.ErrorMessage = we.name, we.message
		}
		return ev
	}
	// Both bodies in one allocation: the request's, then the response's.
	o := auditOut(out)
	buf := auditReq.appendJSON(make([]byte, 0, auditReq.sizeHint()+o.sizeHint()))
	ev.Request = buf[:len(buf):len(buf)]
	ev.Response = o.appendJSON(buf[len(buf):])
	return ev
}

// clearPlaintext zeroes the plaintext of an encoded output (data keys and
// decrypted plaintexts are then in the response buffer only).
func clearPlaintext(out any) {
	switch o := out.(type) {
	case *service.GenerateDataKeyOutput:
		clear(o.Plaintext)
	case *service.DecryptOutput:
		clear(o.Plaintext)
	}
}

// batchItemError is the Error member of a failed item's result.
type batchItemError struct {
	Type    string `json:"__type"`
	Message string `json:"message"`
}

// encodeBatchItem encodes one item's result: the single operation's
// response, or {"Error": {...}} with the exception the single operation
// would answer. It returns the wire error too (nil on success).
func (h *Handler) encodeBatchItem(ctx context.Context, op, requestID string, i int, out any, err error) ([]byte, *wireError) {
	if err == nil {
		if b, ok := appendBatchOutput(make([]byte, 0, batchOutputSize(out)), out); ok {
			return b, nil
		}
		b, mErr := json.Marshal(out)
		if mErr == nil {
			return b, nil
		}
		err = fmt.Errorf("api: encoding %s item output: %w", op, mErr)
	}
	we := classify(err)
	if we.internal {
		h.log.LogAttrs(ctx, slog.LevelError, "batch item failed", slog.String("op", op),
			slog.String("request_id", requestID), slog.Int("item", i), slog.String("cause", err.Error()))
	}
	b, _ := json.Marshal(struct {
		Error batchItemError `json:"Error"`
	}{batchItemError{we.name, we.message}})
	return b, &we
}

// isBatchTarget reports whether r names a batch operation (known or not).
func isBatchTarget(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get(HeaderTarget), BatchTargetPrefix)
}

// serveBatch runs one batch request and writes its response.
func (h *Handler) serveBatch(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, start time.Time) {
	var opName string
	ans, err := h.runBatchSafely(w, r, info, &opName, start)
	var out any
	if err == nil {
		out = rawJSON(ans.payload)
	}
	if h.audit != nil {
		if err == nil {
			if err = h.auditBatch(r, info, ans.audit); err != nil {
				out = nil
			}
		} else {
			// Failed as a whole: one record for the request. Its body is
			// not kept (the items did not run; their plaintexts need not
			// travel further).
			out, err = h.auditRequest(r, info, start, h.operationLabel(r), nil, nil, err)
		}
	}
	errName := h.finish(w, r, info, opName, start, out, err)
	if h.observe != nil {
		outcome := OutcomeOK
		if errName != "" {
			outcome = errName
		}
		h.observe(h.operationLabel(r), outcome, time.Since(start))
	}
}

// auditBatch records the per-item events of a batch: in one call for a
// BatchAuditor, else with concurrent Record calls. It returns the error to
// answer with (errAuditFailed when a record failed, unless fail-open).
func (h *Handler) auditBatch(r *http.Request, info *service.RequestInfo, evs []AuditEvent) error {
	var aErr error
	if ba, ok := h.audit.(BatchAuditor); ok {
		req := AuditEvent{Info: *info}
		if len(evs) > 0 { // the items' caller, operation and time
			req.Operation, req.Info, req.Time = evs[0].Operation, evs[0].Info, evs[0].Time
			req.Info.RequestID = info.RequestID
		}
		aErr = ba.RecordBatch(r.Context(), req, evs)
	} else {
		var mu sync.Mutex
		var next atomic.Int64
		var wg sync.WaitGroup
		for range min(len(evs), maxAuditRecorders) {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= len(evs) {
						return
					}
					if err := h.audit.Record(r.Context(), evs[i]); err != nil {
						mu.Lock()
						if aErr == nil {
							aErr = err
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
	}
	if aErr == nil {
		return nil
	}
	if h.auditFailOpen {
		h.log.ErrorContext(r.Context(), "audit records of a batch not written; answering anyway (-audit-fail-open)",
			"request_id", info.RequestID, "err", aErr)
		return nil
	}
	h.log.ErrorContext(r.Context(), "audit records of a batch not written; failing the request",
		"request_id", info.RequestID, "op", h.operationLabel(r), "err", aErr)
	return errAuditFailed
}

func (h *Handler) runBatchSafely(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, opName *string, start time.Time) (ans *batchAnswer, err error) {
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.log.ErrorContext(r.Context(), "panic serving batch request",
				"op", *opName, "request_id", info.RequestID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			ans, err = nil, errPanic
		}
	}()
	return h.runBatch(w, r, info, opName, start)
}

// runBatch is the pipeline of a batch request: that of run, with the batch
// body limit, and the quota taken per item once the items are counted.
func (h *Handler) runBatch(w http.ResponseWriter, r *http.Request, info *service.RequestInfo, opName *string, start time.Time) (*batchAnswer, error) {
	if r.ContentLength > h.maxBatchBody {
		w.Header().Set("Connection", "close")
		return nil, tooLarge(h.maxBatchBody)
	}
	body, err := h.readBody(w, r, h.maxBatchBody)
	if err != nil {
		return nil, err
	}
	caller, err := h.auth.Authenticate(r, body)
	if err != nil {
		return nil, err
	}
	info.Caller = caller
	target := r.Header.Get(HeaderTarget)
	name := strings.TrimPrefix(target, BatchTargetPrefix)
	o, known := h.batchOps[name]
	if !known {
		return nil, apiError(ErrUnknownOperation, "Unknown operation "+strconv.Quote(truncate(target, 128)))
	}
	*opName = name
	if h.ready != nil && !h.ready() {
		return nil, &service.Error{Kind: service.ErrDependencyTimeout, Message: "This node is catching up with its cluster; retry the request."}
	}
	if err := checkContentType(r); err != nil {
		return nil, err
	}
	return o.serve(service.WithRequestInfo(r.Context(), *info), h,
		batchRequest{op: name, body: body, caller: caller, info: *info, start: start})
}

// BatchOperations returns the names of the batch operations the handler
// serves (under BatchTargetPrefix).
func (h *Handler) BatchOperations() []string {
	names := make([]string, 0, len(h.batchOps))
	for n := range h.batchOps {
		names = append(names, n)
	}
	return names
}
