package source

import (
	"log/slog"
	"strings"
	"testing"
)

// TestWatchWarnsOnNetworkFilesystem: on a network or FUSE filesystem
// inotify sees only this machine's own writes, so the watch stays silent
// on an edit made on the server or another client. The daemon then only
// notices at its periodic reconcile, and the log must say so at start
// rather than leave the operator wondering why saves are ignored.
func TestWatchWarnsOnNetworkFilesystem(t *testing.T) {
	orig := fsOf
	t.Cleanup(func() { fsOf = orig })
	fsOf = func(string) string { return "nfs" }

	var logged syncBuffer
	root := t.TempDir()
	startWatchOn(t, root, slog.New(slog.NewTextHandler(&logged, nil)))
	out := logged.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "filesystem=nfs") ||
		!strings.Contains(out, "periodic reconcile") || !strings.Contains(out, root) {
		t.Fatalf("no warning naming the filesystem and the fallback: %q", out)
	}

	fsOf = func(string) string { return "" }
	var local syncBuffer
	startWatchOn(t, t.TempDir(), slog.New(slog.NewTextHandler(&local, nil)))
	if out := local.String(); strings.Contains(out, "filesystem") {
		t.Fatalf("warning on a local filesystem: %q", out)
	}
}
