package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminTokenFromEnvIsTrimmed: IDRECON_ADMIN_TOKEN filled from a file or
// a CI secret often ends in a newline. The token file's is trimmed; the
// variable's must be too, rather than failing every request with net/http's
// "invalid header field value". A token that still holds a control
// character is refused naming where it came from, never showing it.
func TestAdminTokenFromEnvIsTrimmed(t *testing.T) {
	const token = "the-admin-token-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[]`))
	}))
	t.Cleanup(srv.Close)
	t.Chdir(t.TempDir()) // no ./data/admin-token to fall back on

	code, out, errs := run(t, map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": token + "\n"}, "history")
	if code != 0 || !strings.Contains(out, "No reconcile yet.") {
		t.Errorf("token with a trailing newline: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	code, out, errs = run(t, map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "s3cret\x00token"}, "history")
	if code != 1 || !strings.Contains(errs, "IDRECON_ADMIN_TOKEN") || strings.Contains(out+errs, "s3cret") {
		t.Errorf("token with a control character: exit %d, want 1 naming IDRECON_ADMIN_TOKEN, not the token\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}
