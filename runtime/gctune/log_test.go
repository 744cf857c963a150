package gctune

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestLogSaysTheEnvironmentWon: an operator who set GOGC or GOMEMLIMIT must
// be able to see in the log that the daemon kept them, and which values it
// runs with; and be warned when GOMEMLIMIT is above the memory the cgroup
// allows, where the kernel kills the process before the collector reacts.
func TestLogSaysTheEnvironmentWon(t *testing.T) {
	cgroup := fakeRoot(t, map[string]string{
		"/proc/meminfo":             "MemTotal:       16777216 kB\n",
		"/sys/fs/cgroup/memory.max": "1073741824\n",
	})
	for _, tc := range []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"both set", map[string]string{"GOGC": "100", "GOMEMLIMIT": "512MiB"},
			[]string{"level=INFO", "GOGC=100", `gogc_from="the environment"`, "GOMEMLIMIT=512MiB", `gomemlimit_from="the environment`}},
		{"GOMEMLIMIT above the cgroup", map[string]string{"GOGC": "100", "GOMEMLIMIT": "4GiB"},
			[]string{"level=WARN", "GOMEMLIMIT=4GiB", "available=1073741824"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := apply(func(k string) string { return tc.env[k] }, 400, cgroup)
			var buf bytes.Buffer
			s.Log(slog.New(slog.NewTextHandler(&buf, nil)))
			got := buf.String()
			if strings.Count(got, "\n") != 1 {
				t.Errorf("logged %q, want one line", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("logged %q, want %q in it", got, w)
				}
			}
		})
	}
}
