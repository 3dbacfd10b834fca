package fsm

import (
	"errors"
	"fmt"
)

// Business errors Apply reports in a Result. The service package maps them
// to AWS exceptions.
var (
	// ErrNotFound: the key or alias named by the command does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: the key id or alias name is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrInvalidState: the key's state does not allow the command.
	ErrInvalidState = errors.New("invalid state")
	// ErrDisabled: the key is disabled and the command needs it enabled.
	ErrDisabled = errors.New("disabled")
	// ErrLimitExceeded: a per-key limit (tags, on-demand rotations) would be
	// exceeded.
	ErrLimitExceeded = errors.New("limit exceeded")
	// ErrPrecondition: a time-driven command whose condition no longer
	// holds (for example a deletion that was cancelled meanwhile).
	ErrPrecondition = errors.New("precondition failed")
	// ErrIncorrectKeyMaterial: imported material differs from the material
	// the key had before.
	ErrIncorrectKeyMaterial = errors.New("incorrect key material")
	// ErrInvalidImportToken: the import token is unknown or for another key.
	ErrInvalidImportToken = errors.New("invalid import token")
	// ErrExpiredImportToken: the import token's validity has ended.
	ErrExpiredImportToken = errors.New("expired import token")
)

// errorCodes gives each business error a stable code for snapshots of the
// request-id deduplication table.
var errorCodes = map[error]string{
	ErrNotFound:      "NotFound",
	ErrAlreadyExists: "AlreadyExists",
	ErrInvalidState:  "InvalidState",
	ErrDisabled:      "Disabled",
	ErrLimitExceeded: "LimitExceeded",
	ErrPrecondition:  "Precondition",

	ErrIncorrectKeyMaterial: "IncorrectKeyMaterial",
	ErrInvalidImportToken:   "InvalidImportToken",
	ErrExpiredImportToken:   "ExpiredImportToken",
}

// Error is a business error with the message shown to the caller.
type Error struct {
	Kind    error
	Message string
}

func (e *Error) Error() string { return e.Kind.Error() + ": " + e.Message }

// Unwrap lets errors.Is match Kind.
func (e *Error) Unwrap() error { return e.Kind }

func fail(kind error, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

func kindFromCode(code string) error {
	for k, c := range errorCodes {
		if c == code {
			return k
		}
	}
	return nil
}
