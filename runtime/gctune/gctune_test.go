package gctune

import (
	"io/fs"
	"testing"
	"time"
)

func TestAvailableMemory(t *testing.T) {
	const meminfo = "MemTotal:       24684000 kB\nMemFree:        21000000 kB\n"
	tests := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"machine", map[string]string{"/proc/meminfo": meminfo}, 24684000 << 10},
		{"cgroup below the machine", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "2147483648\n"}, 2 << 30},
		{"cgroup without a limit", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "max\n"}, 24684000 << 10},
		{"cgroup above the machine", map[string]string{"/proc/meminfo": meminfo, "/sys/fs/cgroup/memory.max": "99999999999999\n"}, 24684000 << 10},
		{"cgroup alone", map[string]string{"/sys/fs/cgroup/memory.max": "1073741824"}, 1 << 30},
		{"unreadable meminfo", map[string]string{"/proc/meminfo": "MemTotal: lots kB\n"}, 0},
		{"nothing", nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			read := func(name string) ([]byte, error) {
				if s, ok := tt.files[name]; ok {
					return []byte(s), nil
				}
				return nil, fs.ErrNotExist
			}
			if got := availableMemory(read); got != tt.want {
				t.Fatalf("availableMemory = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestApplyLeavesTheEnvironmentsChoice(t *testing.T) {
	env := map[string]string{"GOGC": "100", "GOMEMLIMIT": "1GiB"}
	got := Apply(func(k string) string { return env[k] }, 400)
	if got.Percent != 0 || got.MemoryLimit != 0 || got.Uncapped {
		t.Fatalf("Apply with GOGC and GOMEMLIMIT set chose %+v", got)
	}
	if got.GOGC != "100" || got.GOMEMLIMIT != "1GiB" {
		t.Fatalf("Apply did not keep the environment's values to log: %+v", got)
	}
}

// TestFollowerReturnsMemoryOncePerQuietSpell: free heap, and heap in
// objects dead since the last collection, go back to the operating system
// when the allocation rate drops after a burst, once until the next burst,
// and never on the first reading (no rate yet) or when too little would
// come back to be worth a collection.
func TestFollowerReturnsMemoryOncePerQuietSpell(t *testing.T) {
	const mib = 1 << 20
	const live = 40 * mib
	f := follower{ceiling: 1 << 40, every: time.Second}
	var allocs int64
	steps := []struct {
		name       string
		allocated  int64 // during the step
		free, dead int64
		want       bool
	}{
		{"first reading", 0, 100 * mib, 0, false},
		{"burst", 500 * mib, 100 * mib, 0, false},
		{"burst goes on", 200 * mib, 100 * mib, 0, false},
		{"quiet, much free", Quiet / 2, 100 * mib, 0, true},
		{"still quiet", Quiet / 2, 100 * mib, 0, false},
		{"next burst", 300 * mib, 50 * mib, 0, false},
		{"quiet, little free", 0, Returnable / 2, 0, false},
		{"quiet, more freed", 0, 2 * Returnable, 0, true},
		{"another burst", 300 * mib, 0, 60 * mib, false},
		{"quiet, little free but dead objects not yet collected", 0, Returnable / 4, 2 * Returnable, true},
		{"next burst ends", 300 * mib, 0, 0, false},
		{"quiet, a little of both", 0, Returnable / 4, Returnable / 4, false},
	}
	for _, s := range steps {
		allocs += s.allocated
		if s.name == "first reading" {
			allocs = Quiet / 2 // start-up allocated little so far: still no rate
		}
		limit, got := f.step(reading{live: live, allocs: allocs, free: s.free, objects: live + s.dead})
		if got != s.want {
			t.Errorf("%s: return = %v, want %v", s.name, got, s.want)
		}
		if want := limitFor(live, 1<<40); limit != want {
			t.Errorf("%s: limit = %d, want %d", s.name, limit, want)
		}
	}
}

// TestFollowerWithoutCeiling: with GOMEMLIMIT set, the limit is left alone
// and memory is still returned.
func TestFollowerWithoutCeiling(t *testing.T) {
	f := follower{every: time.Second}
	r := reading{live: 1 << 20, allocs: 1 << 30, free: 1 << 30, objects: 1 << 20}
	f.step(r)
	limit, ret := f.step(r)
	if limit != 0 || !ret {
		t.Fatalf("step = %d, %v; want 0 (leave the limit), true", limit, ret)
	}
}

// TestLimitFor: the soft limit is twice the live heap plus the headroom,
// never above the machine's.
func TestLimitFor(t *testing.T) {
	for _, tc := range []struct{ live, ceiling, want int64 }{
		{0, 1 << 40, Headroom},
		{100 << 20, 1 << 40, 200<<20 + Headroom},
		{100 << 20, 150 << 20, 150 << 20},
	} {
		if got := limitFor(tc.live, tc.ceiling); got != tc.want {
			t.Errorf("limitFor(%d, %d) = %d, want %d", tc.live, tc.ceiling, got, tc.want)
		}
	}
}
