//go:build unix

package httpload

import (
	"syscall"
	"time"
)

// ProcessCPU is the user+system CPU time this process used so far; on a
// shared machine it is a steadier measure than wall time.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
