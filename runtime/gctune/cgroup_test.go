package gctune

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeRoot writes files (absolute paths, as the kernel shows them) under a
// temporary directory and returns a reader of that tree. A value of "/"
// makes a directory where a file is expected: a read that fails.
func fakeRoot(t *testing.T, files map[string]string) func(string) ([]byte, error) {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if content == "/" {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(name string) ([]byte, error) {
		return os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	}
}

// TestAvailableMemoryCgroupLayouts: the limit is the process's own cgroup's
// (from /proc/self/cgroup), the least along its path to the root, under
// cgroup v2 (memory.max and memory.high) and v1 (memory.limit_in_bytes),
// and the mount's root when the path is not there (a container's view).
func TestAvailableMemoryCgroupLayouts(t *testing.T) {
	const meminfo = "MemTotal:       16777216 kB\n" // 16 GiB
	const machine = 16 << 30
	const unit = "/sys/fs/cgroup/system.slice/idrecon.service/"
	tests := []struct {
		name  string
		files map[string]string
		want  int64
	}{
		{"v2 systemd unit with MemoryMax", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "0::/system.slice/idrecon.service\n",
			unit + "memory.max": "4294967296\n",
		}, 4 << 30},
		{"v2 limit on a parent slice", map[string]string{
			"/proc/meminfo":                          meminfo,
			"/proc/self/cgroup":                      "0::/system.slice/idrecon.service\n",
			unit + "memory.max":                      "max\n",
			"/sys/fs/cgroup/system.slice/memory.max": "1073741824\n",
		}, 1 << 30},
		{"v2 nested: the least along the path", map[string]string{
			"/proc/meminfo":                          meminfo,
			"/proc/self/cgroup":                      "0::/system.slice/idrecon.service\n",
			unit + "memory.max":                      "3221225472\n",
			"/sys/fs/cgroup/system.slice/memory.max": "2147483648\n",
		}, 2 << 30},
		{"v2 memory.high below memory.max", map[string]string{
			"/proc/meminfo":      meminfo,
			"/proc/self/cgroup":  "0::/system.slice/idrecon.service\n",
			unit + "memory.max":  "4294967296\n",
			unit + "memory.high": "3221225472\n",
		}, 3 << 30},
		{"v2 container, its own cgroup at the root", map[string]string{
			"/proc/meminfo":             meminfo,
			"/proc/self/cgroup":         "0::/\n",
			"/sys/fs/cgroup/memory.max": "536870912\n",
		}, 512 << 20},
		{"v2 path not under the mount", map[string]string{
			"/proc/meminfo":             meminfo,
			"/proc/self/cgroup":         "0::/kubepods/burstable/pod1/abc\n",
			"/sys/fs/cgroup/memory.max": "536870912\n",
		}, 512 << 20},
		{"v2 unreadable memory.max", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "0::/system.slice/idrecon.service\n",
			unit + "memory.max": "/",
		}, machine},
		{"v2 garbage in memory.max", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "0::/system.slice/idrecon.service\n",
			unit + "memory.max": "lots\n",
		}, machine},
		{"v1 memory controller", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "4:memory:/process_api/abc\n3:cpu,cpuacct:/\n1:name=systemd:/\n",
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "2147483648\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes":                 "9223372036854771712\n",
		}, 2 << 30},
		{"v1 unlimited", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "4:memory:/process_api/abc\n",
			"/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": "9223372036854771712\n",
		}, machine},
		{"v1 unlimited, machine unknown", map[string]string{
			"/proc/self/cgroup":                           "4:memory:/\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
		}, 0},
		{"v1 container, its own cgroup at the mount's root", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "9:memory:/docker/0123abcd\n",
			"/sys/fs/cgroup/memory/memory.limit_in_bytes": "536870912\n",
		}, 512 << 20},
		{"hybrid: memory on v1, the unified tree without it", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "5:memory:/user.slice\n0::/user.slice/session-1.scope\n",
			"/sys/fs/cgroup/memory/user.slice/memory.limit_in_bytes":         "1073741824\n",
			"/sys/fs/cgroup/unified/user.slice/session-1.scope/cgroup.procs": "1\n",
		}, 1 << 30},
		{"no /proc/self/cgroup, a v2 limit at the root", map[string]string{
			"/proc/meminfo":             meminfo,
			"/sys/fs/cgroup/memory.max": "1073741824\n",
		}, 1 << 30},
		{"malformed /proc/self/cgroup", map[string]string{
			"/proc/meminfo":     meminfo,
			"/proc/self/cgroup": "garbage\n::\n",
		}, machine},
		{"MemTotal that overflows bytes", map[string]string{
			"/proc/meminfo": "MemTotal: 18014398509481985 kB\n", // (2^54+1) KiB: 1 KiB after a wrap
		}, 0},
		{"cgroup limit with a MemTotal that overflows bytes", map[string]string{
			"/proc/meminfo":             "MemTotal: 18014398509481985 kB\n",
			"/sys/fs/cgroup/memory.max": "1073741824\n",
		}, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := availableMemory(fakeRoot(t, tt.files)); got != tt.want {
				t.Fatalf("availableMemory = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestFollowWithoutKnownMemory: with GOMEMLIMIT unset but no way to tell
// the memory available (no /proc, as on macOS, which serve is released
// for), the limit still follows the live heap, only with nothing above it.
func TestFollowWithoutKnownMemory(t *testing.T) {
	// GOGC set: apply leaves the test process's GC target alone.
	env := map[string]string{"GOGC": "100"}
	s := apply(func(k string) string { return env[k] }, 400, fakeRoot(t, nil))
	f := newFollower(s, time.Second)
	const live = 100 << 20
	if limit, _ := f.step(reading{live: live, allocs: 1}); limit != 2*live+Headroom {
		t.Fatalf("limit = %d, want twice the live heap plus Headroom (%d)", limit, 2*live+Headroom)
	}

	// GOMEMLIMIT set: the limit stays the environment's.
	env["GOMEMLIMIT"] = "3GiB"
	s = apply(func(k string) string { return env[k] }, 400, fakeRoot(t, nil))
	f = newFollower(s, time.Second)
	if limit, _ := f.step(reading{live: live, allocs: 1}); limit != 0 {
		t.Fatalf("with GOMEMLIMIT set, limit = %d, want 0 (left alone)", limit)
	}
}
