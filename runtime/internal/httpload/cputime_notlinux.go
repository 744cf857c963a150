//go:build !linux

package httpload

import "time"

// ChildCPU reads /proc, so it knows nothing off Linux.
func ChildCPU(pid int) time.Duration { return 0 }

// ChildRSS is 0 where /proc is missing.
func ChildRSS(pid int) int64 { return 0 }
