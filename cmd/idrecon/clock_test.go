package main

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestClockAhead proves that make test-clock-ahead moved the clock: without
// it, a suite that passes there says nothing about the years ahead.
func TestClockAhead(t *testing.T) {
	ahead, real := os.Getenv("IDRECON_TEST_CLOCK_AHEAD"), os.Getenv("IDRECON_TEST_REAL_NOW")
	if ahead == "" {
		t.Skip("runs under make test-clock-ahead")
	}
	d, err := time.ParseDuration(ahead)
	if err != nil {
		t.Fatalf("IDRECON_TEST_CLOCK_AHEAD: %v", err)
	}
	sec, err := strconv.ParseInt(real, 10, 64)
	if err != nil {
		t.Fatalf("IDRECON_TEST_REAL_NOW: %v", err)
	}
	started := time.Unix(sec, 0)
	if got := time.Since(started); got < d-time.Hour {
		t.Fatalf("the clock is %v ahead of when make started, want about %v: the overlay did not take", got.Round(time.Hour), d)
	}
}
