package main

import (
	"os"
	"runtime"
	"strings"
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
