//go:build !unix

package httpload

import "time"

func ProcessCPU() time.Duration { return 0 }
