package gctune

import (
	"io/fs"
	"testing"
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
	if got := Apply(func(k string) string { return env[k] }, 400); got != (Settings{}) {
		t.Fatalf("Apply with GOGC and GOMEMLIMIT set chose %+v", got)
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
