// Package api is the HTTP front end of kmsd: it speaks the AWS JSON 1.1
// protocol of AWS KMS ("TrentService").
//
// It owns routing by X-Amz-Target, JSON decoding and encoding of the
// service's shapes, shape validation from the `kms` struct tags in package
// service, AWS error shapes (one table in errors.go), SigV4 Authorization
// header parsing and authentication, request body limits, and request ids
// (x-amzn-RequestId). It knows nothing about Raft: every operation is handed to
// a KMS implementation (in production *service.Service).
//
// Request pipeline for POST / (in order): body size limit, body read,
// authentication, operation lookup, Content-Type check, JSON decode,
// validation, service call, JSON encode. A request that fails a step never
// reaches the service. Request and response bodies are never logged.
// Config.Observe, when set, is told the operation, outcome and latency of
// every KMS request (for metrics; see package metrics).
//
// The handler also serves kmsd's Batch API, operations outside AWS KMS on
// the same protocol under X-Amz-Target KmsdService.* (BatchEncrypt,
// BatchDecrypt, BatchGenerateDataKey, BatchGenerateDataKeyWithoutPlaintext):
// up to 1,000 items per request, each validated, authorized, audited and
// run exactly as the single operation, with one result per item. batch.go
// documents the shapes; package kmsdclient is a Go client.
package api
