package audit

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenTightensPermissions: the audit log names users (personal data).
// A file left readable by others (copied in by hand, restored from a
// backup) is made owner-only when opened, not appended to as it is.
func TestOpenTightensPermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"msg":"old"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	l, err := Open(path, Options{Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	l.Record(GatewayRefusal{Gateway: "appsec", User: "bob@contoso.com", Reason: "disabled"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("audit log mode %v, want no access for group or others", perm)
	}
}
