package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// rssSampler follows a process's resident memory (VmRSS) while a run goes
// on, to report what an operator sees: before, at the peak, after.
type rssSampler struct {
	pid          int
	before, peak int64
	cpuBefore    time.Duration
	mu           sync.Mutex
	stop         context.CancelFunc
	done         chan struct{}
}

// residentBytes reads VmRSS of pid from /proc.
func residentBytes(pid int) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}

// startRSS samples pid every interval until Stop.
func startRSS(pid int, interval time.Duration) (*rssSampler, error) {
	before, err := residentBytes(pid)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &rssSampler{pid: pid, before: before, peak: before, cpuBefore: cpuTime(pid), stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if v, err := residentBytes(pid); err == nil {
				s.mu.Lock()
				s.peak = max(s.peak, v)
				s.mu.Unlock()
			}
		}
	}()
	return s, nil
}

// cpuTime is the user+system CPU time pid used so far, from /proc (0 when
// unreadable). USER_HZ is 100 on every Linux architecture Go supports.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100
}

// rssFigures are what a sampler saw of a process over a run.
type rssFigures struct {
	before, peak, after int64 // resident bytes
	settled             int64 // resident bytes settle after the run (0: not measured)
	settle              time.Duration
	cpu                 time.Duration
}

// perUser is the resident memory a user added: (b - before) / users.
func (f rssFigures) perUser(b int64, users int) float64 {
	return float64(b-f.before) / float64(users)
}

// report stops sampling and writes the daemon's CPU over the run (per
// request) and its resident memory before, at the peak and after (after
// settle, when given), per user too. It returns the figures.
func (s *rssSampler) report(w io.Writer, users, requests int, settle time.Duration) rssFigures {
	s.stop()
	<-s.done
	f := rssFigures{before: s.before, peak: s.peak, cpu: cpuTime(s.pid) - s.cpuBefore}
	f.after, _ = residentBytes(s.pid)
	if f.cpu > 0 && requests > 0 {
		fmt.Fprintf(w, "daemon CPU  %s over the run, %.0f µs/request\n", f.cpu, float64(f.cpu.Microseconds())/float64(requests))
	}
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	perUser := func(b int64) string {
		if users == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f KiB/user", f.perUser(b, users)/1024)
	}
	fmt.Fprintf(w, "daemon RSS  before %s  peak %s (%s)  after %s (%s)\n", mib(f.before), mib(f.peak), perUser(f.peak), mib(f.after), perUser(f.after))
	if settle > 0 {
		time.Sleep(settle)
		f.settled, _ = residentBytes(s.pid)
		f.settle = settle
		fmt.Fprintf(w, "daemon RSS  %s later %s (%s)\n", settle, mib(f.settled), perUser(f.settled))
	}
	return f
}
