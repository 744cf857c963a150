package cli

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
)

// TestStatusAndHistoryUseTheCommandsClock: "how long ago" in status and
// history is measured on Env.Now, the clock every command is given, so that
// it reads as the rest of the command does (and a test can fix it).
func TestStatusAndHistoryUseTheCommandsClock(t *testing.T) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	last := now.Add(-90 * time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/status":
			json.NewEncoder(w).Encode(admin.StatusResponse{Ready: true,
				Status: reconcile.Status{LastAttempt: last, LastResult: reconcile.OutcomeOK}})
		case "/v1/history":
			json.NewEncoder(w).Encode([]reconcile.HistoryEntry{{Last: last, Count: 1, Outcome: reconcile.OutcomeOK}})
		}
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": testAdminToken}
	for _, cmd := range []string{"status", "history"} {
		code, out, errb := runWith(t, func() time.Time { return now }, env, cmd)
		if code != 0 || !strings.Contains(out, "(1m30s ago)") {
			t.Errorf("%s: exit %d, want 0 and \"(1m30s ago)\"\nstdout:\n%s\nstderr:\n%s", cmd, code, out, errb)
		}
	}
}
