package service

import (
	"errors"
	"fmt"
)

// Error kinds of KMS operations. Each is an AWS KMS exception; the api package
// maps them to wire names in one table (api/errors.go). Service methods return
// an *Error wrapping one of these, with the message AWS would give.
var (
	ErrValidation        = errors.New("ValidationException")
	ErrNotFound          = errors.New("NotFoundException")
	ErrInvalidArn        = errors.New("InvalidArnException")
	ErrAlreadyExists     = errors.New("AlreadyExistsException")
	ErrDisabled          = errors.New("DisabledException")
	ErrInvalidState      = errors.New("KMSInvalidStateException")
	ErrInvalidCiphertext = errors.New("InvalidCiphertextException")
	ErrInvalidMac        = errors.New("KMSInvalidMacException")
	ErrInvalidSignature  = errors.New("KMSInvalidSignatureException")
	ErrIncorrectKey      = errors.New("IncorrectKeyException")
	ErrInvalidKeyUsage   = errors.New("InvalidKeyUsageException")
	ErrInvalidAliasName  = errors.New("InvalidAliasNameException")
	ErrInvalidMarker     = errors.New("InvalidMarkerException")
	ErrInvalidGrantToken = errors.New("InvalidGrantTokenException")
	ErrInvalidGrantID    = errors.New("InvalidGrantIdException")
	ErrLimitExceeded     = errors.New("LimitExceededException")
	ErrTag               = errors.New("TagException")
	ErrUnsupportedOp     = errors.New("UnsupportedOperationException")
	ErrAccessDenied      = errors.New("AccessDeniedException")
	ErrDryRun            = errors.New("DryRunOperationException")
	ErrMalformedPolicy   = errors.New("MalformedPolicyDocumentException")
	ErrCustomKeyStore    = errors.New("CustomKeyStoreNotFoundException")
	ErrDependencyTimeout = errors.New("DependencyTimeoutException") // outcome unknown: the client retries
	ErrKeyUnavailable    = errors.New("KeyUnavailableException")
	ErrInternal          = errors.New("KMSInternalException")
	// Imported key material (imports.go).
	ErrIncorrectKeyMaterial = errors.New("IncorrectKeyMaterialException")
	ErrInvalidImportToken   = errors.New("InvalidImportTokenException")
	ErrExpiredImportToken   = errors.New("ExpiredImportTokenException")
)

// Error is a KMS error: a kind from the var block above and the message shown
// to the caller. Messages never contain plaintext, key material or secrets.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }

// Unwrap lets errors.Is match the kind.
func (e *Error) Unwrap() error { return e.Kind }

// newError builds an *Error with a formatted message.
func newError(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// ValidationError reports a shape violation in AWS's wording. The api package
// uses it for constraint checks; service uses it for semantic checks.
func ValidationError(format string, args ...any) *Error {
	return newError(ErrValidation, format, args...)
}
