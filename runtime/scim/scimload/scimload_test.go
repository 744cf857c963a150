package scimload

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestRunInProcess(t *testing.T) {
	for _, flag := range []bool{false, true} {
		srv, err := StartInProcess(slog.New(slog.DiscardHandler), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		var progress strings.Builder
		res, err := Run(context.Background(), Config{URL: srv.URL, Token: srv.Token, Users: 300, Groups: 5, MembersPerGroup: 150,
			Concurrency: 8, UpdateEvery: 5, DisableEvery: 7, DeleteEvery: 11, Flag: flag, Progress: &progress, ProcessStats: flag})
		if err != nil {
			t.Fatal(err)
		}
		// A line per phase, with the process's figures when asked for.
		for _, phase := range []string{"users", "groups", "members", "incremental", "verify"} {
			line := regexp.MustCompile(`(?m)^phase ` + phase + ` .*$`).FindString(progress.String())
			if line == "" || (flag && phase != "verify" && !regexp.MustCompile(`alloc [0-9.]+ KiB/req, \d+ GCs, GC \d+% of CPU, [0-9.]+ cores, live heap \d+ MiB$`).MatchString(line)) {
				t.Errorf("flag=%v: progress line for %s: %q", flag, phase, line)
			}
		}
		var sb strings.Builder
		res.Print(&sb)
		if res.Errors != 0 || len(res.Problems) != 0 {
			t.Fatalf("flag=%v:\n%s", flag, sb.String())
		}
		want := map[string]int{"user.lookup": 300, "user.create": 300, "group.create": 5, "group.members": 10, "user.delete": 27}
		cycle := 0
		for _, k := range res.Kinds {
			if n, ok := want[k.Kind]; ok && n != k.Count {
				t.Errorf("%s: %d requests, want %d", k.Kind, k.Count, n)
			}
			if !strings.HasPrefix(k.Kind, "verify.") {
				cycle += k.Count
			}
		}
		if res.Cycle.Count != cycle || res.Cycle.P99 < res.Cycle.P50 || res.Cycle.Max == 0 {
			t.Errorf("cycle stats %+v, want %d requests", res.Cycle, cycle)
		}
		if res.CycleElapsed <= 0 || res.CycleElapsed >= res.Elapsed || res.CycleRPS() <= 0 {
			t.Errorf("cycle took %s of %s (%.0f req/s)", res.CycleElapsed, res.Elapsed, res.CycleRPS())
		}
	}
}

func TestRefusesNonLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/api/scim/v2", "https://example.com/scim", "ftp://127.0.0.1/x"} {
		_, err := Run(context.Background(), Config{URL: u, Token: "t", Users: 1, Concurrency: 1})
		if err == nil {
			t.Errorf("%s accepted", u)
		}
		if strings.HasPrefix(u, "http") && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("%s: %v, want ErrNotLoopback", u, err)
		}
	}
}

// BenchmarkInitialCycle runs an initial cycle of 2,000 users against a
// fresh in-process server per iteration.
func BenchmarkInitialCycle(b *testing.B) {
	var rps float64
	for b.Loop() {
		srv, err := StartInProcess(slog.New(slog.DiscardHandler), "")
		if err != nil {
			b.Fatal(err)
		}
		res, err := Run(context.Background(), Config{URL: srv.URL, Token: srv.Token, Users: 2000, Groups: 0, Concurrency: 32})
		srv.Close()
		if err != nil {
			b.Fatal(err)
		}
		rps = res.RPS()
	}
	b.ReportMetric(rps, "req/s")
}

// TestFirstUserAddsABurst: a second run numbering its users after the
// first run's adds them to the filled store instead of colliding with it.
func TestFirstUserAddsABurst(t *testing.T) {
	srv, err := StartInProcess(slog.New(slog.DiscardHandler), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg := Config{URL: srv.URL, Token: srv.Token, Users: 40, Groups: 2, MembersPerGroup: 10, Concurrency: 4, Flag: true}
	for _, first := range []int{0, 40} {
		cfg.FirstUser = first
		if first > 0 {
			cfg.Groups, cfg.MembersPerGroup = 0, 0
		}
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if res.Errors != 0 || len(res.Problems) != 0 {
			var sb strings.Builder
			res.Print(&sb)
			t.Fatalf("first user %d:\n%s", first, sb.String())
		}
	}
	res, err := Run(context.Background(), Config{URL: srv.URL, Token: srv.Token, Users: 1, Concurrency: 1, FirstUser: 79})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) == 0 && res.Errors == 0 {
		t.Fatal("a run over a user that exists reported nothing")
	}
}

// TestNoReadBack: the read-back runs unless asked not to.
func TestNoReadBack(t *testing.T) {
	for _, skip := range []bool{false, true} {
		srv, err := StartInProcess(slog.New(slog.DiscardHandler), "")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		res, err := Run(context.Background(), Config{URL: srv.URL, Token: srv.Token, Users: 10, Concurrency: 2, NoReadBack: skip})
		if err != nil || res.Errors != 0 {
			t.Fatalf("run: %v, %d errors", err, res.Errors)
		}
		read := false
		for _, k := range res.Kinds {
			read = read || strings.HasPrefix(k.Kind, "verify.")
		}
		if read == skip {
			t.Errorf("NoReadBack %v: read back %v", skip, read)
		}
	}
}
