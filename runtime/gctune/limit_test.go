package gctune

import (
	"context"
	"math"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

// TestFollowerRateIsOverTheTimeThatPassed: the ticker's readings are not
// every apart on a busy machine. A reading delayed by 0.9 s is followed by
// one 0.1 s later; 3 MiB allocated in that 0.1 s is 30 MiB/s, a burst going
// on, not a quiet spell to collect in. And 9 MiB over a 3 s stall is quiet.
// The times are made up: nothing here waits.
func TestFollowerRateIsOverTheTimeThatPassed(t *testing.T) {
	const mib = 1 << 20
	const live = 40 * mib
	t0 := time.Unix(1000, 0)
	f := follower{ceiling: 1 << 40, every: time.Second}
	var allocs int64 = mib
	at := func(d time.Duration, allocated int64) reading {
		allocs += allocated
		return reading{at: t0.Add(d), live: live, allocs: allocs, free: 100 * mib, objects: live}
	}
	f.step(at(0, 0))
	if _, ret := f.step(at(1900*time.Millisecond, 900*mib)); ret {
		t.Fatal("collected during a burst")
	}
	if _, ret := f.step(at(2*time.Second, 3*mib)); ret {
		t.Error("collected 0.1 s into a burst of 30 MiB/s, taking it for a quiet second")
	}
	if _, ret := f.step(at(5*time.Second, 9*mib)); !ret {
		t.Error("3 MiB/s over a 3 s stall is quiet, with 100 MiB free: want memory returned")
	}
}

// TestLimitNeverBelowTheLiveHeap: a live heap past the machine's ceiling
// (3/4 of the memory) must not get a soft limit below it, which no
// collection can meet: the collector would run back to back.
func TestLimitNeverBelowTheLiveHeap(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ live, ceiling int64 }{
		{200 * mib, 150 * mib},
		{150 * mib, 150 * mib},
		{140 * mib, 150 * mib},
	} {
		if got := limitFor(tc.live, tc.ceiling); got < tc.live+Headroom {
			t.Errorf("limitFor(%d MiB, ceiling %d MiB) = %d MiB, below the live heap plus Headroom", tc.live/mib, tc.ceiling/mib, got/mib)
		}
	}
	f := follower{ceiling: 150 * mib, every: time.Second}
	if limit, _ := f.step(reading{live: 200 * mib, allocs: 1}); limit <= 200*mib {
		t.Errorf("step set a limit of %d MiB for a live heap of 200 MiB", limit/mib)
	}
}

// TestNoLimitBeforeTheFirstCollection: the live heap reads 0 until a
// collection has measured it, and serve starts following before it loads
// its state. A limit taken from that reading (Headroom alone) held for the
// first second: a large state loading past it was collected back to back.
// Until a collection has run, Apply's ceiling stays.
func TestNoLimitBeforeTheFirstCollection(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    follower
	}{
		{"ceiling from the machine", follower{ceiling: 12 << 30, every: time.Second}},
		{"memory unknown", newFollower(Settings{Uncapped: true}, time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f
			if limit, _ := f.step(reading{live: 0, allocs: 2 << 20, objects: 2 << 20}); limit != 0 {
				t.Fatalf("before any collection, limit = %d MiB, want 0 (leave Apply's)", limit>>20)
			}
			const live = 100 << 20
			if limit, _ := f.step(reading{live: live, allocs: 300 << 20, objects: 250 << 20}); limit != 2*live+Headroom {
				t.Fatalf("after a collection, limit = %d, want twice the live heap plus Headroom (%d)", limit, 2*live+Headroom)
			}
		})
	}
}

// TestLimitFollowsACollection: a heap that grows fast (a large apply)
// outgrows the limit of the last tick within the second, and would be
// collected back to back until the next: the limit must follow each
// collection. The ticks here are an hour apart, so only a collection can
// move it.
func TestLimitFollowsACollection(t *testing.T) {
	old := debug.SetMemoryLimit(math.MaxInt64)
	defer debug.SetMemoryLimit(old)
	runtime.GC() // so the first tick reads a live heap
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Follow(ctx, Settings{Uncapped: true}, time.Hour) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, cond func(limit int64) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond(debug.SetMemoryLimit(-1)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: limit %d MiB after 10 s", what, debug.SetMemoryLimit(-1)>>20)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("the first tick", func(limit int64) bool { return limit != math.MaxInt64 })
	const grown = 256 << 20
	var hold [][]byte
	for range grown >> 20 {
		hold = append(hold, make([]byte, 1<<20))
	}
	runtime.GC()
	waitFor("the limit after the heap grew", func(limit int64) bool { return limit >= 2*grown+Headroom })
	runtime.KeepAlive(hold)
}
