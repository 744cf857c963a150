// Package gctune sets the Go garbage collector up for idrecon's daemon: a
// GC target, bounded by a soft memory limit derived from the machine.
package gctune

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// DefaultPercent is the Go GC target serve runs with unless GOGC is set.
// Measured as users run it (the daemon as its own process): the front door
// allocates heavily per request and costs 1.4x the CPU per proxied request
// at 100 what it costs at 400; the SCIM paths cost the same at both, but
// at 400 alone a large state stays resident at about five times its live
// heap. Follow bounds that. The README's "Memory and CPU" gives the
// figures and the commands.
const DefaultPercent = 400

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

// Headroom is the soft memory limit Follow keeps above twice the live
// heap, and the least limit it sets: a small heap (a daemon mostly serving
// sign-ins and its front door) collects rarely, a large state (many users)
// keeps no more than about twice its live heap resident.
const Headroom = 64 << 20

// Follow keeps the soft memory limit at twice the live heap plus Headroom,
// never above the limit Apply derived from the machine, until ctx ends. It
// does nothing when GOMEMLIMIT is set (s.MemoryLimit is 0). With a high GC
// target, this gives a small heap few collections and a large one a
// resident size near twice what it holds, where a fixed target has to
// choose one.
func Follow(ctx context.Context, s Settings, every time.Duration) {
	if s.MemoryLimit == 0 {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			debug.SetMemoryLimit(limitFor(int64(sample[0].Value.Uint64()), s.MemoryLimit))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// limitFor is the soft memory limit for a live heap of live bytes, capped
// at ceiling.
func limitFor(live, ceiling int64) int64 {
	return min(2*live+Headroom, ceiling)
}
