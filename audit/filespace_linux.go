package audit

import (
	"os"

	"golang.org/x/sys/unix"
)

// reserveBlocks reserves n bytes of blocks of f from off on without
// changing its size.
func reserveBlocks(f *os.File, off, n int64) error {
	return control(f, func(fd int) error { return unix.Fallocate(fd, unix.FALLOC_FL_KEEP_SIZE, off, n) })
}

// dropPages drops the (clean) pages of f from off for n bytes from the page
// cache.
func dropPages(f *os.File, off, n int64) error {
	return control(f, func(fd int) error { return unix.Fadvise(fd, off, n, unix.FADV_DONTNEED) })
}

// control runs op on f's descriptor, again while it is interrupted.
func control(f *os.File, op func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if opErr = op(int(fd)); opErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return opErr
}
