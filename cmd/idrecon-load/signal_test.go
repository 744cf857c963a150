package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// loadToolArg, as the first argument, makes the test binary run
// idrecon-load with the arguments after it, as the command does.
const loadToolArg = "load-tool"

// childOf returns the first process whose parent is ppid, or 0.
func childOf(ppid int) int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			return pid
		}
	}
	return 0
}

// alive reports whether pid runs: neither gone nor a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

// TestServerStopsWithTheTool: the server process a run started ends with
// the load tool, however the tool is stopped: ^C and SIGTERM stop the run
// (an error: the exit status is not zero), and the server with it; a
// SIGKILL leaves no time for that, and the server must not outlive it.
func TestServerStopsWithTheTool(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc")
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			// Far more users than the run gets through before the signal.
			tool := exec.Command(os.Args[0], loadToolArg, "-peer", "-users", "1000000", "-groups", "0", "-members-per-group", "0", "-concurrency", "2")
			if err := tool.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { tool.Process.Kill(); tool.Wait() })
			var server int
			for deadline := time.Now().Add(time.Minute); server == 0; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the tool started no server")
				}
				server = childOf(tool.Process.Pid)
			}
			t.Cleanup(func() {
				if alive(server) {
					syscall.Kill(server, syscall.SIGKILL)
				}
			})
			// Once the server answers, the run is under way.
			time.Sleep(200 * time.Millisecond)
			if err := tool.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- tool.Wait() }()
			select {
			case err := <-done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) {
					t.Errorf("the tool ended with %v after %s, want a non-zero exit", err, sig)
				}
			case <-time.After(time.Minute):
				t.Fatalf("the tool still runs a minute after %s", sig)
			}
			for deadline := time.Now().Add(30 * time.Second); alive(server); time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("the server (pid %d) still runs 30 s after the tool ended on %s", server, sig)
				}
			}
		})
	}
}
