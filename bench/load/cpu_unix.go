//go:build unix

package load

import (
	"syscall"
	"time"
)

// ProcessCPU is this process's user+system CPU time so far (getrusage);
// false where it cannot be read.
func ProcessCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
