//go:build !unix

package load

import "time"

// ProcessCPU: not available on this platform.
func ProcessCPU() (time.Duration, bool) { return 0, false }
