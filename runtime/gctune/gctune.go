// Package gctune sets the Go garbage collector up for idrecon's daemon: a
// GC target, bounded by a soft memory limit derived from the machine.
package gctune

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultPercent is the Go GC target serve runs with unless GOGC is set.
// Measured as users run it (the daemon as its own process, an Entra cycle
// from idrecon-load), 400 cost the same CPU per request as 100 and twice
// the resident memory: the collector's share shrank as the request paths
// stopped allocating. The README's "Memory and CPU" gives the figures and
// the command.
const DefaultPercent = 100

// Settings are what Apply chose; zero means left to the environment.
type Settings struct {
	Percent     int
	MemoryLimit int64
}

// Apply sets the GC target to percent unless the GOGC env var is set, and,
// unless GOMEMLIMIT is set, a soft memory limit of three quarters of the
// memory the process may use (its cgroup's limit, else the machine's), so
// that a high target cannot take the heap past what is there: near the
// limit the collector runs as often as it must.
func Apply(getenv func(string) string, percent int) Settings {
	var s Settings
	if getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
		s.Percent = percent
	}
	if getenv("GOMEMLIMIT") == "" {
		if avail := availableMemory(os.ReadFile); avail > 0 {
			s.MemoryLimit = avail / 4 * 3
			debug.SetMemoryLimit(s.MemoryLimit)
		}
	}
	return s
}

// availableMemory returns the cgroup v2 memory limit, else the machine's
// memory from /proc/meminfo, else 0.
func availableMemory(readFile func(string) ([]byte, error)) int64 {
	var total int64
	if b, err := readFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 {
					total = kb << 10
				}
			}
		}
	}
	if b, err := readFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 && (total == 0 || n < total) {
			return n
		}
	}
	return total
}
