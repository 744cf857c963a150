package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

// hung is a server whose every request waits until the test ends.
func hung(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv.URL
}

// standIn starts a process that announces a at once and lives until the
// test ends.
func standIn(ctx context.Context, t *testing.T, a announcement) (*daemon, error) {
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { pw.Close() })
	cmd := exec.Command("sh", "-c", "echo announce >&2; exec cat")
	cmd.Stdin = pr
	d, err := startProcess(ctx, "the stand-in", cmd, func(b []byte) (announcement, bool) { return a, string(b) == "announce" }, io.Discard)
	pr.Close()
	return d, err
}

// within runs f and fails the test when it has not returned 10 s after
// its context ended.
func within(t *testing.T, what string, f func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("%s: no error", what)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("%s still waits 10 s after its context ended", what)
	}
}

// TestHungServerEndsWithTheContext: a server that accepts a request and
// never answers it stops the run when its context ends (-timeout), not
// never: while the tool waits for it to be ready, and when it reads the
// daemon's journal metrics.
func TestHungServerEndsWithTheContext(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	ready, metrics := hung(t)+"/readyz", hung(t)+"/metrics"
	within(t, "waiting for readiness", func(ctx context.Context) error {
		d, err := standIn(ctx, t, announcement{scim: "http://127.0.0.1:1/scim", ready: ready})
		if d != nil {
			d.stop()
		}
		return err
	})
	within(t, "reading the journal metrics", func(ctx context.Context) error {
		tg := target{"stand-in", func(ctx context.Context) (*daemon, error) {
			return standIn(ctx, t, announcement{scim: "http://127.0.0.1:1/scim", metrics: metrics})
		}}
		_, err := load(ctx, tg, scimload.Config{Token: "t", Users: 1, Concurrency: 1}, 0, io.Discard)
		return err
	})
}
