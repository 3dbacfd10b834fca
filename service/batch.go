package service

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
)

// Batch operations: kmsd's extension of the AWS KMS API (the KmsdService
// target prefix of the api package), outside AWS's TrentService.
//
// BatchEncrypt, BatchDecrypt, BatchGenerateDataKey and
// BatchGenerateDataKeyWithoutPlaintext take 1 to MaxBatchItems items and
// return one result per item, in input order. An item is exactly one call
// of the single operation (Encrypt, Decrypt, GenerateDataKey,
// GenerateDataKeyWithoutPlaintext) on the same Service method: the same
// validation, key resolution, key-state rules, authorization (key policy,
// grants, identity policy, with the item's own encryption context) and key
// usage metering, so a batch can never allow what the single call would
// refuse. The batch's GrantTokens and DryRun apply to every item. Items run
// concurrently on a pool of runtime.GOMAXPROCS(0) workers; one item's
// failure (even a panic) is that item's error and does not stop the others.
//
// Each item runs under its own request id, the batch's request id followed
// by "#" and the item's position from 0 (e.g. "6f1c...-9a2b#17"), which
// audit records and logs use to name the item.

// MaxBatchItems is the largest number of items one batch request may carry.
const MaxBatchItems = 1000

// BatchEncryptItem is one item of BatchEncrypt: an EncryptRequest without
// GrantTokens and DryRun, which the batch gives once for all its items.
type BatchEncryptItem struct {
	KeyId               *string           `json:"KeyId"`
	Plaintext           []byte            `json:"Plaintext"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
}

// BatchEncryptInput is a BatchEncrypt request. Its items carry no
// validation tags on purpose: each item is validated as a single Encrypt
// request (BatchOptions.Check), so a bad item fails alone.
type BatchEncryptInput struct {
	Items       []BatchEncryptItem `json:"Items" kms:"required,min=1,max=1000"`
	GrantTokens []string           `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun      *bool              `json:"DryRun"`
}

// BatchDecryptItem is one item of BatchDecrypt: a DecryptRequest without
// GrantTokens and DryRun.
type BatchDecryptItem struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	KeyId               *string           `json:"KeyId"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm"`
}

// BatchDecryptInput is a BatchDecrypt request.
type BatchDecryptInput struct {
	Items       []BatchDecryptItem `json:"Items" kms:"required,min=1,max=1000"`
	GrantTokens []string           `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun      *bool              `json:"DryRun"`
}

// BatchGenerateDataKeyItem is one item of BatchGenerateDataKey and
// BatchGenerateDataKeyWithoutPlaintext: a GenerateDataKeyRequest without
// GrantTokens and DryRun.
type BatchGenerateDataKeyItem struct {
	KeyId             *string           `json:"KeyId"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
	NumberOfBytes     *int32            `json:"NumberOfBytes"`
	KeySpec           *string           `json:"KeySpec"`
}

// BatchGenerateDataKeyInput is a BatchGenerateDataKey or
// BatchGenerateDataKeyWithoutPlaintext request.
type BatchGenerateDataKeyInput struct {
	Items       []BatchGenerateDataKeyItem `json:"Items" kms:"required,min=1,max=1000"`
	GrantTokens []string                   `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun      *bool                      `json:"DryRun"`
}

// BatchResult is one item's outcome: Output (the single operation's
// output) or Err (a *Error, as the single operation would return).
type BatchResult[T any] struct {
	// RequestID is the item's request id ("" when the batch's context
	// carries no RequestInfo, i.e. kmsd's own calls).
	RequestID string
	Output    *T
	Err       error
}

// BatchOutput holds one result per item, in input order.
type BatchOutput[T any] struct {
	Results []BatchResult[T]
}

// BatchOptions are the caller's per-item hooks. Both run on the worker
// that handles the item, so they must be safe for concurrent use; the api
// layer does its per-item wire work (validation, quota, encoding) in them
// so that it is spread over the cores too.
type BatchOptions struct {
	// Check, if set, is called before item i runs with the item as a
	// single-operation input (*EncryptInput, *DecryptInput or
	// *GenerateDataKeyInput, GrantTokens and DryRun filled in from the
	// batch). A non-nil error becomes the item's result and the item does
	// not run. The api layer validates the input here exactly as it
	// validates a single request, and refuses items over the caller's
	// request quota.
	Check func(i int, in any) error
	// Done, if set, is called once item i has its result: out is the
	// single operation's output (*EncryptOutput, *DecryptOutput or
	// *GenerateDataKeyOutput) and err is nil, or out is nil and err the
	// item's error. requestID is the item's request id.
	Done func(i int, requestID string, out any, err error)
}

// checkBatchSize applies the item count limits (the api layer checks them
// too, from the kms tags; in-process callers get the same answer).
func checkBatchSize(n int) error {
	if n < 1 {
		return ValidationError("1 validation error detected: Value at 'items' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if n > MaxBatchItems {
		return ValidationError("1 validation error detected: Value at 'items' failed to satisfy constraint: Member must have length less than or equal to %d", MaxBatchItems)
	}
	return nil
}

// missingKeyID is the validation error of an item without a KeyId, worded
// as the api layer words it for a single request. Items reach the service
// methods, which dereference KeyId, only past this check.
func missingKeyID() error {
	return ValidationError("1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
}

// BatchEncrypt runs Encrypt on every item.
func (s *Service) BatchEncrypt(ctx context.Context, in *BatchEncryptInput, opts BatchOptions) (*BatchOutput[EncryptOutput], error) {
	return runBatchOp(ctx, s, len(in.Items), opts, func(i int) *EncryptInput {
		it := &in.Items[i]
		return &EncryptInput{KeyId: it.KeyId, Plaintext: it.Plaintext, EncryptionContext: it.EncryptionContext,
			GrantTokens: in.GrantTokens, EncryptionAlgorithm: it.EncryptionAlgorithm, DryRun: in.DryRun}
	}, func(in *EncryptInput) bool { return in.KeyId != nil }, s.Encrypt)
}

// BatchDecrypt runs Decrypt on every item.
func (s *Service) BatchDecrypt(ctx context.Context, in *BatchDecryptInput, opts BatchOptions) (*BatchOutput[DecryptOutput], error) {
	return runBatchOp(ctx, s, len(in.Items), opts, func(i int) *DecryptInput {
		it := &in.Items[i]
		return &DecryptInput{CiphertextBlob: it.CiphertextBlob, EncryptionContext: it.EncryptionContext,
			GrantTokens: in.GrantTokens, KeyId: it.KeyId, EncryptionAlgorithm: it.EncryptionAlgorithm, DryRun: in.DryRun}
	}, nil, s.Decrypt)
}

// BatchGenerateDataKey runs GenerateDataKey on every item.
func (s *Service) BatchGenerateDataKey(ctx context.Context, in *BatchGenerateDataKeyInput, opts BatchOptions) (*BatchOutput[GenerateDataKeyOutput], error) {
	return runBatchOp(ctx, s, len(in.Items), opts, dataKeyItem(in), hasDataKeyID, s.GenerateDataKey)
}

// BatchGenerateDataKeyWithoutPlaintext runs GenerateDataKeyWithoutPlaintext
// on every item.
func (s *Service) BatchGenerateDataKeyWithoutPlaintext(ctx context.Context, in *BatchGenerateDataKeyInput, opts BatchOptions) (*BatchOutput[GenerateDataKeyOutput], error) {
	return runBatchOp(ctx, s, len(in.Items), opts, dataKeyItem(in), hasDataKeyID, s.GenerateDataKeyWithoutPlaintext)
}

func dataKeyItem(in *BatchGenerateDataKeyInput) func(i int) *GenerateDataKeyInput {
	return func(i int) *GenerateDataKeyInput {
		it := &in.Items[i]
		return &GenerateDataKeyInput{KeyId: it.KeyId, EncryptionContext: it.EncryptionContext,
			NumberOfBytes: it.NumberOfBytes, KeySpec: it.KeySpec, GrantTokens: in.GrantTokens, DryRun: in.DryRun}
	}
}

func hasDataKeyID(in *GenerateDataKeyInput) bool { return in.KeyId != nil }

// runBatchOp runs op on items 0..n-1 (item(i) builds the single-operation
// input of item i) and collects the results. hasKeyID, if set, reports
// whether the input names the key op requires.
func runBatchOp[In, Out any](ctx context.Context, s *Service, n int, opts BatchOptions,
	item func(i int) *In, hasKeyID func(*In) bool, op func(context.Context, *In) (*Out, error)) (*BatchOutput[Out], error) {
	if err := checkBatchSize(n); err != nil {
		return nil, err
	}
	out := &BatchOutput[Out]{Results: make([]BatchResult[Out], n)}
	base, hasInfo := RequestInfoFrom(ctx)
	parallelFor(n, func(i int) {
		r := &out.Results[i]
		var itemCtx *batchItemContext
		if hasInfo {
			itemCtx = &batchItemContext{Context: ctx, info: base}
			itemCtx.info.RequestID = base.RequestID + "#" + strconv.Itoa(i)
			r.RequestID = itemCtx.info.RequestID
		}
		r.Output, r.Err = runBatchItem(ctx, itemCtx, s, r.RequestID, i, opts, item, hasKeyID, op)
		if opts.Done != nil {
			batchDone(s, opts.Done, i, r)
		}
	})
	return out, nil
}

// batchDone calls the caller's Done hook for item i. A panic in it is
// logged and swallowed: it must not take the worker (and the process)
// down; the caller sees that Done did not complete for that item.
func batchDone[T any](s *Service, done func(int, string, any, error), i int, r *BatchResult[T]) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in a batch item's Done hook", "request_id", r.RequestID, "item", i,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	var o any
	if r.Err == nil {
		o = r.Output
	}
	done(i, r.RequestID, o, r.Err)
}

// runBatchItem runs one item; a panic becomes the item's internal error
// (the stack is logged), as a panic in a single request does.
//
// itemCtx, when the batch carries a RequestInfo, holds the item's; the
// item's input is attached to it (or to a new context of ctx without one).
func runBatchItem[In, Out any](ctx context.Context, itemCtx *batchItemContext, s *Service, requestID string, i int, opts BatchOptions,
	item func(i int) *In, hasKeyID func(*In) bool, op func(context.Context, *In) (*Out, error)) (out *Out, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("panic in batch item", "request_id", requestID, "item", i,
				"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			out, err = nil, newError(ErrInternal, "An internal error occurred.")
		}
	}()
	if err := ctx.Err(); err != nil {
		// The client is gone: the remaining items are not run.
		return nil, newError(ErrDependencyTimeout, "The batch request was cancelled before this item ran.")
	}
	in := item(i)
	if opts.Check != nil {
		if err := opts.Check(i, in); err != nil {
			return nil, err
		}
	}
	if hasKeyID != nil && !hasKeyID(in) {
		return nil, missingKeyID()
	}
	// The item's own input supplies the condition keys AWS takes from
	// request parameters (kms:EncryptionAlgorithm, ...), as the api layer
	// attaches a single request's input.
	if itemCtx == nil {
		return op(WithRequestInput(ctx, in), in)
	}
	itemCtx.in = in
	return op(itemCtx, in)
}

// parallelFor calls fn(i) for every i in [0, n) on min(n,
// runtime.GOMAXPROCS(0)) workers, the calling goroutine being one of them,
// and returns when all calls have returned. Workers take the next index
// from a shared counter, so slow items do not hold up a whole share.
func parallelFor(n int, fn func(i int)) {
	workers := min(n, runtime.GOMAXPROCS(0))
	var next atomic.Int64
	work := func() {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(i)
		}
	}
	var wg sync.WaitGroup
	for range workers - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
}
