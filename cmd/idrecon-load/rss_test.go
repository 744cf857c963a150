package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRSSReport: the sampler reads a live process's resident memory and
// reports before, peak and after, per user.
func TestRSSReport(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	s, err := startRSS(os.Getpid(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if s.before <= 0 {
		t.Fatalf("before %d", s.before)
	}
	var b strings.Builder
	s.report(&b, 1000, 10, 0)
	if !strings.Contains(b.String(), "daemon RSS  before ") || !strings.Contains(b.String(), "KiB/user") {
		t.Errorf("report %q", b.String())
	}
	if _, err := residentBytes(-1); err == nil {
		t.Error("no error for a process that does not exist")
	}
}

// kB reads a "Name:  N kB" line of this process's /proc status.
func kB(t *testing.T, name string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			var n int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &n); err != nil {
				t.Fatal(err)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s", name)
	return 0
}

// touch maps size bytes and writes every page, making them resident.
func touch(t *testing.T, size int64) []byte {
	t.Helper()
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(b); i += os.Getpagesize() {
		b[i] = 1
	}
	return b
}

// TestRSSPeakBetweenSamples: the peak is the most the process held over
// the run, whether or not a sample fell on it: memory that grew after the
// last sample, or that came and went between two.
func TestRSSPeakBetweenSamples(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	const grow = 64 << 20
	t.Run("grown after the last sample", func(t *testing.T) {
		s, err := startRSS(os.Getpid(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b := touch(t, grow)
		defer syscall.Munmap(b)
		f := s.report(io.Discard, 1, 1, 0)
		if f.peak < f.after || f.peak < f.before+grow/2 {
			t.Errorf("peak %d MiB, before %d MiB, after %d MiB: the peak is below what the process holds", f.peak>>20, f.before>>20, f.after>>20)
		}
	})
	t.Run("come and gone between samples", func(t *testing.T) {
		s, err := startRSS(os.Getpid(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		// Beyond the most this process ever held, so that the kernel's
		// high-water mark moves.
		size := kB(t, "VmHWM") - kB(t, "VmRSS") + grow
		b := touch(t, size)
		if err := syscall.Munmap(b); err != nil {
			t.Fatal(err)
		}
		f := s.report(io.Discard, 1, 1, 0)
		if f.peak < f.before+grow {
			t.Errorf("peak %d MiB, before %d MiB: a %d MiB spike was missed", f.peak>>20, f.before>>20, size>>20)
		}
	})
}

func TestParseCoreTicks(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       coreTicks
		err        bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice:
		// the guest times are in user and nice already.
		{"kernel 5+", "cpu  100 2 30 400 50 0 7 1 9 9\ncpu0 1 2 3 4 5 6 7 8 9 9\n", coreTicks{total: 590, idle: 450}, false},
		{"eight fields", "cpu 1 1 1 1 1 1 1 1\n", coreTicks{total: 8, idle: 2}, false},
		{"short", "cpu 1 2 3 4\n", coreTicks{}, true},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", coreTicks{}, true},
		{"not a number", "cpu 1 2 3 x 5 6 7 8\n", coreTicks{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCoreTicks(tc.stat)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("parseCoreTicks = %+v, %v; want %+v, error %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestIdleShare(t *testing.T) {
	if got := idleShare(coreTicks{100, 40}, coreTicks{300, 90}); got != 0.25 {
		t.Fatalf("idleShare = %v, want 0.25", got)
	}
	if got := idleShare(coreTicks{100, 40}, coreTicks{100, 40}); !math.IsNaN(got) {
		t.Fatalf("idleShare of no time = %v, want NaN", got)
	}
}
