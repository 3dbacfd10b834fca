//go:build !linux

package audit

import (
	"errors"
	"os"
)

// reserveBlocks is not available here: files grow as they are written.
func reserveBlocks(*os.File, int64, int64) error {
	return errors.ErrUnsupported
}

// dropPages is not available here: the system keeps pages as it likes.
func dropPages(*os.File, int64, int64) error {
	return errors.ErrUnsupported
}
