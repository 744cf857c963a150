package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestMain serves the library peer when -peer re-executes the test binary
// as it re-executes idrecon-load.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == cpuFakeArg {
		serveCPUFake()
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == loadToolArg {
		if err := run(os.Args[2:], os.Getenv, io.Discard); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	if len(os.Args) > 1 && os.Args[1] == peerServeArg {
		if err := run(os.Args[1:], os.Getenv, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// buildIdrecon builds the idrecon binary from this tree.
func buildIdrecon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "idrecon")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/idrecon/idrecon/cmd/idrecon").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

var small = []string{"-users", "60", "-groups", "3", "-members-per-group", "20", "-concurrency", "4"}

const demoToken = "idrecon-demo-token-for-make-run-only-0123456789"

func TestRunInProcess(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-inprocess", "-users", "60", "-groups", "3", "-members-per-group", "20", "-concurrency", "4"}, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, kind := range []string{"user.lookup", "user.create", "group.members", "user.delete", "verify.groups"} {
		if !strings.Contains(out.String(), kind) {
			t.Errorf("report lacks %s:\n%s", kind, out.String())
		}
	}
}

func TestRunRejectsRemoteTarget(t *testing.T) {
	var out strings.Builder
	err := run([]string{"-url", "http://192.0.2.1/api/scim/v2", "-users", "1"}, func(k string) string { return map[string]string{"IDRECON_SCIM_TOKEN": "x"}[k] }, &out)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("err = %v, want a loopback refusal", err)
	}
}

// TestRunServe: -serve starts the idrecon binary built from this tree as
// its own process on the example spec, loads it, reports its CPU and
// resident memory, and stops it.
func TestRunServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the daemon")
	}
	bin := buildIdrecon(t)
	var out strings.Builder
	err := run([]string{"-serve", bin, "-spec", "../../examples/entra", "-token", "idrecon-demo-token-for-make-run-only-0123456789",
		"-users", "60", "-groups", "3", "-members-per-group", "20", "-concurrency", "4"}, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"user.create", "verify.groups", "daemon CPU", "load tool CPU", "daemon RSS  before"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-serve", bin, "-url", "http://127.0.0.1:1/x"}, func(string) string { return "" }, &out); err == nil {
		t.Error("-serve with -url accepted")
	}
}

// TestRunPeer: -peer starts the library peer as its own process, in both
// request shapes, and reports its CPU and resident memory.
func TestRunPeer(t *testing.T) {
	for _, flag := range []string{"-flag=true", "-flag=false"} {
		t.Run(flag, func(t *testing.T) {
			var out strings.Builder
			if err := run(append([]string{"-peer", flag}, small...), func(string) string { return "" }, &out); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			for _, want := range []string{"user.create", "verify.groups", "daemon CPU", "load tool CPU", "daemon RSS  before"} {
				if !strings.Contains(out.String(), want) {
					t.Errorf("report lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestRunRejectsFlagMixes(t *testing.T) {
	for _, args := range [][]string{
		{"-peer", "-url", "http://127.0.0.1:1/x"},
		{"-peer", "-inprocess"},
		{"-peer", "-serve", "/bin/false"},
		{"-compare"},
		{"-compare", "-peer", "-serve", "/bin/false"},
		{"-serve", "/bin/false", "-pid", "1"},
		{"-serve", "/bin/false", "-serve-data-dir", "/nonexistent", "-runs", "2"},
	} {
		if err := run(args, func(string) string { return "x" }, io.Discard); err == nil || !strings.Contains(err.Error(), "-") {
			t.Errorf("%q: err = %v, want a refusal", args, err)
		}
	}
}

// TestRunCompare: -compare loads the daemon, then the peer (with -runs 2,
// twice, alternating), and prints the two side by side.
func TestRunCompare(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the daemon")
	}
	bin := buildIdrecon(t)
	var out strings.Builder
	err := run(append([]string{"-compare", "-serve", bin, "-spec", "../../examples/entra", "-token", demoToken, "-settle", "200ms", "-runs", "2"}, small...), func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	_, table, ok := strings.Cut(out.String(), "\n\n")
	if !ok {
		t.Fatalf("no table:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if h := strings.Fields(lines[0]); len(h) != 3 || h[0] != "idrecon" || h[1] != "peer" || h[2] != "idrecon/peer" {
		t.Errorf("header %q", lines[0])
	}
	for _, row := range []string{"req/s (cycle)", "p99 user.lookup", "p99 group.members", "p99 (cycle)", "errors", "RSS before", "RSS peak", "RSS after the run", "RSS 200ms later", "per user (minus before)", "server CPU per request", "load tool CPU per request"} {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), row) })
		if i < 0 {
			t.Errorf("no row %q:\n%s", row, table)
			continue
		}
		if f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(lines[i]), row)); len(f) < 2 {
			t.Errorf("row %q lacks a column: %q", row, lines[i])
		}
	}
	for _, run := range []string{"== idrecon, run 1", "== peer, run 1", "== idrecon, run 2", "== peer, run 2"} {
		if !strings.Contains(out.String(), run+"\n") {
			t.Errorf("no %q: each server is loaded twice, alternating", run)
		}
	}
	if !regexp.MustCompile(`errors\s+0\s+0`).MatchString(table) {
		t.Errorf("errors in the table:\n%s", table)
	}
}
