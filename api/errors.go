package api

import (
	"errors"
	"net/http"

	"github.com/kmsd/kmsd/service"
)

// Errors raised by the api layer itself. Like the service kinds they are
// returned wrapped in a *service.Error carrying the message for the caller,
// and mapped to a wire name and status by the table below.
var (
	ErrMissingAuthToken    = errors.New("MissingAuthenticationTokenException")
	ErrIncompleteSignature = errors.New("IncompleteSignatureException")
	ErrInvalidSignature    = errors.New("InvalidSignatureException")   // for the SigV4 verifier
	ErrUnrecognizedClient  = errors.New("UnrecognizedClientException") // unknown access key id (verifier)
	ErrUnknownOperation    = errors.New("UnknownOperationException")
	ErrNoRoute             = errors.New("NotFoundRoute") // path/method not served; wire name UnknownOperationException, 404
	ErrSerialization       = errors.New("SerializationException")
	ErrRequestTooLarge     = errors.New("RequestEntityTooLargeException")
	ErrThrottling          = errors.New("ThrottlingException") // request quota exceeded (QuotaLimiter); SDKs retry it
)

// errorMapping is one row of the error table.
type errorMapping struct {
	kind   error
	name   string // __type and X-Amzn-ErrorType
	status int
}

func row(kind error, status int) errorMapping {
	return errorMapping{kind: kind, name: kind.Error(), status: status}
}

// errorTable maps every error kind to its wire name and HTTP status. It is
// the only place where statuses are decided.
var errorTable = []errorMapping{
	// service kinds: their Error() is the AWS name.
	row(service.ErrValidation, http.StatusBadRequest),
	row(service.ErrNotFound, http.StatusBadRequest),
	row(service.ErrInvalidArn, http.StatusBadRequest),
	row(service.ErrAlreadyExists, http.StatusBadRequest),
	row(service.ErrDisabled, http.StatusBadRequest),
	row(service.ErrInvalidState, http.StatusBadRequest),
	row(service.ErrInvalidCiphertext, http.StatusBadRequest),
	row(service.ErrInvalidMac, http.StatusBadRequest),
	row(service.ErrInvalidSignature, http.StatusBadRequest),
	row(service.ErrIncorrectKey, http.StatusBadRequest),
	row(service.ErrInvalidKeyUsage, http.StatusBadRequest),
	row(service.ErrInvalidAliasName, http.StatusBadRequest),
	row(service.ErrInvalidMarker, http.StatusBadRequest),
	row(service.ErrInvalidGrantToken, http.StatusBadRequest),
	row(service.ErrInvalidGrantID, http.StatusBadRequest),
	row(service.ErrLimitExceeded, http.StatusBadRequest),
	row(service.ErrTag, http.StatusBadRequest),
	row(service.ErrUnsupportedOp, http.StatusBadRequest),
	row(service.ErrAccessDenied, http.StatusBadRequest),
	row(service.ErrDryRun, http.StatusPreconditionFailed), // AWS answers DryRun with 412
	row(service.ErrMalformedPolicy, http.StatusBadRequest),
	row(service.ErrCustomKeyStore, http.StatusBadRequest),
	row(service.ErrDependencyTimeout, http.StatusServiceUnavailable),
	row(service.ErrKeyUnavailable, http.StatusInternalServerError),
	row(service.ErrInternal, http.StatusInternalServerError),
	row(service.ErrIncorrectKeyMaterial, http.StatusBadRequest),
	row(service.ErrInvalidImportToken, http.StatusBadRequest),
	row(service.ErrExpiredImportToken, http.StatusBadRequest),
	// api kinds.
	row(ErrMissingAuthToken, http.StatusBadRequest),
	row(ErrIncompleteSignature, http.StatusBadRequest),
	row(ErrInvalidSignature, http.StatusBadRequest),
	row(ErrUnrecognizedClient, http.StatusBadRequest),
	row(ErrUnknownOperation, http.StatusBadRequest),
	{kind: ErrNoRoute, name: "UnknownOperationException", status: http.StatusNotFound},
	row(ErrSerialization, http.StatusBadRequest),
	row(ErrRequestTooLarge, http.StatusRequestEntityTooLarge),
	row(ErrThrottling, http.StatusBadRequest),
}

var errorIndex = func() map[error]errorMapping {
	m := make(map[error]errorMapping, len(errorTable))
	for _, e := range errorTable {
		m[e.kind] = e
	}
	return m
}()

const (
	internalErrorName    = "KMSInternalException"
	internalErrorMessage = "An internal error occurred."
)

// wireError is what the client is told about an error.
type wireError struct {
	name    string
	status  int
	message string
	// internal is set when err was not a known kind: the caller logs err
	// and the client sees only the generic message.
	internal bool
}

// classify maps err to its wire form using errorTable. Only the Message of
// a *service.Error is ever shown to the client; any other error text stays
// server-side.
func classify(err error) wireError {
	var serr *service.Error
	hasMsg := errors.As(err, &serr)
	var m errorMapping
	found := false
	if hasMsg {
		m, found = errorIndex[serr.Kind]
	}
	if !found {
		for _, e := range errorTable {
			if errors.Is(err, e.kind) {
				m, found = e, true
				break
			}
		}
	}
	if !found {
		return wireError{name: internalErrorName, status: http.StatusInternalServerError, message: internalErrorMessage, internal: true}
	}
	we := wireError{name: m.name, status: m.status}
	if hasMsg {
		we.message = serr.Message
	}
	return we
}

// apiError builds an error of an api kind with a message for the caller.
func apiError(kind error, msg string) *service.Error {
	return &service.Error{Kind: kind, Message: msg}
}
