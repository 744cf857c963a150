package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
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
	// hwm is the kernel's high-water mark of the process's resident
	// memory (VmHWM) when sampling began: when it is higher at the end,
	// the process held that much during the run, between samples or not.
	hwm       int64
	cpuBefore time.Duration
	// cpuCycle is the CPU time at the end of the cycle (cycleEnd), when
	// that was marked.
	cpuCycle time.Duration
	cycle    bool
	mu       sync.Mutex
	stop     context.CancelFunc
	done     chan struct{}
}

// residentBytes reads VmRSS of pid from /proc.
func residentBytes(pid int) (int64, error) { return statusBytes(pid, "VmRSS") }

// statusBytes reads the field name (in kB) of pid's /proc status.
func statusBytes(pid int, name string) (int64, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	b, err := parseStatus(f, name)
	if err != nil {
		return 0, fmt.Errorf("process %d: %w", pid, err)
	}
	return b, nil
}

// parseStatus reads the field name, in kB, of a /proc status file, in
// bytes.
func parseStatus(r io.Reader, name string) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s", name)
}

// startRSS samples pid every interval until Stop.
func startRSS(pid int, interval time.Duration) (*rssSampler, error) {
	before, err := residentBytes(pid)
	if err != nil {
		return nil, err
	}
	hwm, _ := statusBytes(pid, "VmHWM")
	ctx, cancel := context.WithCancel(context.Background())
	s := &rssSampler{pid: pid, before: before, peak: before, hwm: hwm, cpuBefore: cpuTime(pid), stop: cancel, done: make(chan struct{})}
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

// cycleEnd marks the end of the provisioning cycle: the CPU time reported
// is then the cycle's, as its request rate is, without the read-back.
func (s *rssSampler) cycleEnd() { s.cpuCycle, s.cycle = cpuTime(s.pid), true }

// cpuTime is the user+system CPU time pid used so far, from /proc (0 when
// unreadable). USER_HZ is 100 on every Linux architecture Go supports.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	d, _ := parseCPUTime(string(b))
	return d
}

// parseCPUTime reads utime+stime (fields 14 and 15, in USER_HZ ticks) of
// a /proc stat line. The command name before them is in parentheses and
// may hold any byte, ") " too: the fields start after the last ")".
func parseCPUTime(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no command in the stat line")
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, errors.New("short stat line")
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * time.Second / 100, nil
}

// rssFigures are what a sampler saw of a process over a run.
type rssFigures struct {
	before, peak, after int64 // resident bytes
	settled             int64 // resident bytes settle after the run (0: not measured)
	settle              time.Duration
	cpu                 time.Duration // over the cycle when cycle, else the run
	cycle               bool
}

// perUser is the resident memory a user added: (b - before) / users.
func (f rssFigures) perUser(b int64, users int) float64 {
	return float64(b-f.before) / float64(users)
}

// report stops sampling and writes the daemon's CPU over the cycle when
// cycleEnd marked it, else over the run, per request (of that interval:
// requests), and its resident memory before, at the peak and after (after
// settle, when given), per user too. It returns the figures.
func (s *rssSampler) report(w io.Writer, users, requests int, settle time.Duration) rssFigures {
	s.stop()
	<-s.done
	f := rssFigures{before: s.before, peak: s.peak, cpu: cpuTime(s.pid) - s.cpuBefore}
	if s.cycle {
		f.cpu, f.cycle = s.cpuCycle-s.cpuBefore, true
	}
	f.after, _ = residentBytes(s.pid)
	// The samples see the peak only when one falls on it: the last
	// reading and a high-water mark that rose over the run count too.
	f.peak = max(f.peak, f.after)
	if hwm, err := statusBytes(s.pid, "VmHWM"); err == nil && s.hwm > 0 && hwm > s.hwm {
		f.peak = max(f.peak, hwm)
	}
	if f.cpu > 0 && requests > 0 {
		fmt.Fprintf(w, "daemon CPU  %s over the %s, %.0f µs/request\n", f.cpu, interval(f.cycle), float64(f.cpu.Microseconds())/float64(requests))
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

// interval names what a CPU time was measured over.
func interval(cycle bool) string {
	if cycle {
		return "cycle"
	}
	return "run"
}

// coreTicks is the machine's CPU time as /proc/stat's first line counts it:
// all of it, and the part no task ran (idle, and idle while waiting for
// I/O, as fdatasync leaves a core).
type coreTicks struct{ total, idle int64 }

// machineTicks reads /proc/stat; ok false where there is none.
func machineTicks() (coreTicks, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return coreTicks{}, false
	}
	t, err := parseCoreTicks(string(b))
	return t, err == nil
}

// parseCoreTicks reads the "cpu" line: user nice system idle iowait irq
// softirq steal, then guest times that user and nice already include.
func parseCoreTicks(stat string) (coreTicks, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return coreTicks{}, errors.New("no cpu line in /proc/stat")
	}
	var t coreTicks
	for i, s := range f[1:9] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return coreTicks{}, fmt.Errorf("/proc/stat cpu field %d: %w", i+1, err)
		}
		t.total += v
		if i == 3 || i == 4 {
			t.idle += v
		}
	}
	return t, nil
}

// idleShare is the share of the cores idle from a to b, NaN when unknown.
func idleShare(a, b coreTicks) float64 {
	if b.total <= a.total {
		return math.NaN()
	}
	return float64(b.idle-a.idle) / float64(b.total-a.total)
}
