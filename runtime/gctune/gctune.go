// Package gctune sets the Go garbage collector up for idrecon's daemon: a
// GC target, bounded by a soft memory limit derived from the machine.
package gctune

import (
	"context"
	"log/slog"
	"math"
	"os"
	"path"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
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
	// Uncapped is set when GOMEMLIMIT is unset but the memory the process
	// may use is unknown (no /proc/meminfo, as on macOS): MemoryLimit is
	// then 0 and Follow keeps the limit with nothing above it.
	Uncapped bool
	// GOGC and GOMEMLIMIT are the environment's values when set: they
	// won over idrecon's, and Log says so.
	GOGC, GOMEMLIMIT string
	// Available is the memory the process may use as Apply found it (its
	// cgroup's limit, else the machine's), 0 if unknown.
	Available int64
}

// Log says in one line what the collector runs with and who chose it, so
// that an operator who set GOGC or GOMEMLIMIT sees they were kept. A
// GOMEMLIMIT above the memory available is a warning: the kernel would kill
// the process before the collector reached it.
func (s Settings) Log(l *slog.Logger) {
	level, msg := slog.LevelInfo, "gc settings"
	var attrs []any
	if s.GOGC != "" {
		attrs = append(attrs, "GOGC", s.GOGC, "gogc_from", "the environment")
	} else {
		attrs = append(attrs, "GOGC", s.Percent, "gogc_from", "idrecon (--gc-percent)")
	}
	switch {
	case s.GOMEMLIMIT != "":
		attrs = append(attrs, "GOMEMLIMIT", s.GOMEMLIMIT, "gomemlimit_from", "the environment (the limit is not adjusted to the live heap)")
		if n, ok := parseMemLimit(s.GOMEMLIMIT); ok && s.Available > 0 && n > s.Available {
			level, msg = slog.LevelWarn, "gc settings: GOMEMLIMIT from the environment is above the memory available"
		}
	case s.Uncapped:
		attrs = append(attrs, "gomemlimit_from", "idrecon: twice the live heap plus headroom, the memory available unknown")
	default:
		attrs = append(attrs, "memory_limit_ceiling", s.MemoryLimit, "gomemlimit_from", "idrecon: twice the live heap plus headroom, at most 3/4 of the memory available")
	}
	attrs = append(attrs, "available", s.Available)
	l.Log(context.Background(), level, msg, attrs...)
}

// parseMemLimit reads a GOMEMLIMIT value: bytes, with an optional B, KiB,
// MiB, GiB or TiB suffix; false for "off" or anything else.
func parseMemLimit(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	shift := 0
	for i, suffix := range []string{"TiB", "GiB", "MiB", "KiB", "B"} {
		if rest, ok := strings.CutSuffix(v, suffix); ok {
			v, shift = rest, []int{40, 30, 20, 10, 0}[i]
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64>>shift {
		return 0, false
	}
	return n << shift, true
}

// Apply sets the GC target to percent unless the GOGC env var is set, and,
// unless GOMEMLIMIT is set, a soft memory limit of three quarters of the
// memory the process may use (its cgroup's limit, else the machine's), so
// that a high target cannot take the heap past what is there: near the
// limit the collector runs as often as it must.
func Apply(getenv func(string) string, percent int) Settings {
	return apply(getenv, percent, os.ReadFile)
}

// apply is Apply with the kernel's files read through readFile: a fake
// tree in tests.
func apply(getenv func(string) string, percent int, readFile func(string) ([]byte, error)) Settings {
	s := Settings{GOGC: getenv("GOGC"), GOMEMLIMIT: getenv("GOMEMLIMIT"), Available: availableMemory(readFile)}
	if s.GOGC == "" {
		debug.SetGCPercent(percent)
		s.Percent = percent
	}
	if s.GOMEMLIMIT == "" {
		if s.Available > 0 {
			s.MemoryLimit = s.Available / 4 * 3
			debug.SetMemoryLimit(s.MemoryLimit)
		} else {
			s.Uncapped = true
		}
	}
	return s
}

// availableMemory returns the memory the process may use: the least
// cgroup limit on it, else the machine's memory from /proc/meminfo, else 0.
func availableMemory(readFile func(string) ([]byte, error)) int64 {
	var total int64
	if b, err := readFile("/proc/meminfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "MemTotal:" && f[2] == "kB" {
				// Past MaxInt64>>10 the shift would wrap, possibly to a
				// few bytes, and the limit with it.
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil && kb > 0 && kb <= math.MaxInt64>>10 {
					total = kb << 10
				}
			}
		}
	}
	if n := cgroupLimit(readFile); n > 0 && (total == 0 || n < total) {
		return n
	}
	return total
}

// cgroupLimit returns the least memory limit on the process's cgroup and
// its ancestors, 0 if none: a limit on a parent slice binds its children
// as much as their own. Under cgroup v2 that is memory.max and also
// memory.high (the kernel throttles the cgroup above it); under v1,
// memory.limit_in_bytes. A systemd unit's MemoryMax= is on the unit's own
// cgroup, not the root of the hierarchy.
func cgroupLimit(readFile func(string) ([]byte, error)) int64 {
	// Without /proc/self/cgroup, look at the hierarchies' roots: in a
	// container that is its own cgroup.
	v2, v1 := "/", "/"
	if b, err := readFile("/proc/self/cgroup"); err == nil {
		for line := range strings.Lines(string(b)) {
			// hierarchy-ID:controller-list:cgroup-path
			f := strings.SplitN(strings.TrimSpace(line), ":", 3)
			switch {
			case len(f) != 3 || !strings.HasPrefix(f[2], "/"):
			case f[0] == "0" && f[1] == "":
				v2 = f[2]
			case slices.Contains(strings.Split(f[1], ","), "memory"):
				v1 = f[2]
			}
		}
	}
	least := min(
		leastAlong(readFile, "/sys/fs/cgroup", v2, "memory.max", "memory.high"),
		leastAlong(readFile, "/sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"),
	)
	if least == math.MaxInt64 {
		return 0
	}
	return least
}

// leastAlong returns the least limit in the files named by files in the
// cgroup at dir under the hierarchy mounted at mount and in each of its
// ancestors, math.MaxInt64 if none. Without a cgroup namespace a container
// sees its host's path in /proc/self/cgroup while its own cgroup is
// mounted at the root; the path's missing directories are then skipped.
func leastAlong(readFile func(string) ([]byte, error), mount, dir string, files ...string) int64 {
	least := int64(math.MaxInt64)
	for dir = path.Clean(dir); ; dir = path.Dir(dir) {
		for _, name := range files {
			if b, err := readFile(path.Join(mount, dir, name)); err == nil {
				if n, ok := parseLimit(b); ok {
					least = min(least, n)
				}
			}
		}
		if dir == "/" {
			return least
		}
	}
}

// parseLimit parses a cgroup memory limit, false for none: v2's "max",
// and v1's "unlimited", the largest page-aligned int64 (which depends on
// the page size, hence the bound rather than the value).
func parseLimit(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n <= 0 || n >= 1<<62 {
		return 0, false
	}
	return n, true
}

// Headroom is the room Follow leaves above twice the live heap, and the
// least limit it sets: a small heap (a daemon mostly serving sign-ins and
// its front door) collects rarely. Measured with 50,000 users (README,
// "Memory and CPU"): one and a half times the live heap cost a quarter more
// CPU per SCIM request than twice, for a sixth less memory under load.
const Headroom = 32 << 20

// Quiet is the allocation, in bytes per second, below which Follow takes a
// burst of writes to have ended, and Returnable the memory it must be able
// to hand back to the operating system for that to be worth a collection:
// free heap, and heap in objects that died since the last collection. Go
// keeps freed heap memory resident until its background scavenger returns
// it, which near a memory limit it does slowly, and it collects only when
// something allocates; a daemon that has just applied a large batch would
// otherwise hold its peak, garbage and all, until the next burst.
const (
	Quiet      = 4 << 20
	Returnable = 8 << 20
)

// Follow keeps the soft memory limit at twice the live heap plus Headroom,
// never above the limit Apply derived from the machine unless the live heap
// itself outgrew it (then the live heap plus Headroom), until ctx ends: at
// every tick, and after every collection, since a heap growing fast (a
// large apply, a burst of writes) outgrows in a second the limit taken
// from the last tick and is then collected back to back. With
// a high GC target, a small heap then collects rarely and a large one stays
// near twice what it holds while it is written to. And once the allocation
// rate falls below Quiet with more than Returnable of free heap held, Follow
// returns that memory to the operating system (debug.FreeOSMemory: one
// collection), once per quiet spell, so the daemon shrinks to about what it
// holds when a burst ends. When GOMEMLIMIT is set (s.MemoryLimit is 0, and
// s.Uncapped false) the limit is left alone and only the memory is returned.
func Follow(ctx context.Context, s Settings, every time.Duration) {
	f := newFollower(s, every)
	sample := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}
	collected := make(chan struct{}, 1)
	notifyCollections(ctx, collected)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if v, ok := uint64s(sample); ok {
			limit, ret := f.step(reading{at: time.Now(), live: v[0], allocs: v[1], free: v[2], objects: v[3]})
			if limit > 0 {
				debug.SetMemoryLimit(limit)
			}
			if ret {
				debug.FreeOSMemory()
			}
		}
		for ticked := false; !ticked; {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				ticked = true
			case <-collected:
				// Only the limit: quiet spells are judged over the
				// ticks, not over the time between two collections.
				metrics.Read(sample[:1])
				if v := sample[0].Value; v.Kind() == metrics.KindUint64 && f.ceiling > 0 && v.Uint64() > 0 {
					debug.SetMemoryLimit(limitFor(int64(v.Uint64()), f.ceiling))
				}
			}
		}
	}
}

// notifyCollections sends on ch, unless a send is pending, after each
// collection until ctx ends. The runtime has no hook at the end of a
// cycle, but it runs an unreachable object's finalizer after the cycle
// that found it: the finalizer sends, and makes its object a finalizer's
// again, for the next cycle.
func notifyCollections(ctx context.Context, ch chan<- struct{}) {
	// A pointer keeps the object out of the tiny allocator, whose blocks
	// may be kept alive by a neighbour, never finalized.
	type sentinel struct{ _ *byte }
	var rearm func(*sentinel)
	rearm = func(o *sentinel) {
		if ctx.Err() != nil {
			return
		}
		select {
		case ch <- struct{}{}:
		default:
		}
		runtime.SetFinalizer(o, rearm)
	}
	runtime.SetFinalizer(&sentinel{}, rearm)
}

func uint64s(sample []metrics.Sample) ([4]int64, bool) {
	var v [4]int64
	for i, s := range sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return v, false
		}
		v[i] = int64(s.Value.Uint64())
	}
	return v, true
}

// newFollower follows the limit up to the ceiling Apply chose, none if it
// could not tell the memory, and not at all if GOMEMLIMIT set it.
func newFollower(s Settings, every time.Duration) follower {
	ceiling := s.MemoryLimit
	if ceiling == 0 && s.Uncapped {
		ceiling = math.MaxInt64
	}
	return follower{ceiling: ceiling, every: every}
}

// follower decides, from one reading of the runtime's counters after
// another, the memory limit and when to return free memory.
type follower struct {
	ceiling  int64
	every    time.Duration
	allocs   int64     // the cumulative allocation at the last step
	at       time.Time // when the last step's reading was taken
	returned bool      // memory was returned in the current quiet spell
}

// reading is one sample of the runtime's counters, in bytes.
type reading struct {
	// at is when it was taken (monotonic); zero takes it to be every
	// after the last one.
	at      time.Time
	live    int64 // the heap the last collection found reachable
	allocs  int64 // allocated since the start
	free    int64 // heap spans free and not yet returned to the system
	objects int64 // heap in objects: the live ones and those dead since
}

// reclaimable is what a collection that returns free memory would hand
// back: the free spans, and the objects that died since the last one.
func (r reading) reclaimable() int64 { return r.free + max(r.objects-r.live, 0) }

// step takes a reading and returns the memory limit (0: leave it) and
// whether to collect and return the free heap.
func (f *follower) step(r reading) (limit int64, ret bool) {
	// The rate is over the time that really passed: a reading delayed
	// by a busy machine (its tick then comes soon after) would otherwise
	// count a burst's allocation over a fraction of a second as a quiet
	// second, and collect in the middle of the burst.
	elapsed := f.every
	if !r.at.IsZero() && !f.at.IsZero() && r.at.After(f.at) {
		elapsed = r.at.Sub(f.at)
	}
	f.at = r.at
	rate := float64(r.allocs-f.allocs) / elapsed.Seconds()
	first := f.allocs == 0
	f.allocs = r.allocs
	quiet := !first && rate < Quiet
	if !quiet {
		f.returned = false
	}
	ret = quiet && !f.returned && r.reclaimable() > Returnable
	if ret {
		f.returned = true
	}
	// The live heap reads 0 until a collection has measured it, and serve
	// starts following before it loads its state: a limit of Headroom alone
	// would hold until the next reading, and a state loading past it would
	// be collected back to back. Apply's ceiling stays until then.
	if f.ceiling > 0 && r.live > 0 {
		limit = limitFor(r.live, f.ceiling)
	}
	return limit, ret
}

// limitFor is the soft memory limit for a live heap of live bytes, capped
// at ceiling, but never below the live heap plus Headroom: a limit below
// what is live cannot be met by collecting, so the collector would run back
// to back (up to half the CPU, by its limiter) and free nothing.
func limitFor(live, ceiling int64) int64 {
	return max(min(2*live+Headroom, ceiling), live+Headroom)
}
