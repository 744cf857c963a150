package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
	bin := filepath.Join(t.TempDir(), "idrecon")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/idrecon/idrecon/cmd/idrecon").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var out strings.Builder
	err := run([]string{"-serve", bin, "-spec", "../../examples/entra", "-token", "idrecon-demo-token-for-make-run-only-0123456789",
		"-users", "60", "-groups", "3", "-members-per-group", "20", "-concurrency", "4"}, func(string) string { return "" }, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"user.create", "verify.groups", "daemon CPU", "daemon RSS  before"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if err := run([]string{"-serve", bin, "-url", "http://127.0.0.1:1/x"}, func(string) string { return "" }, &out); err == nil {
		t.Error("-serve with -url accepted")
	}
}
