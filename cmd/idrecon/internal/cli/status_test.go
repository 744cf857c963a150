package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
)

// TestWriteStatusStalled: a stalled loop says so, with the reason, in one
// line; a healthy one prints no such line.
func TestWriteStatusStalled(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		stalled string
		want    string // "" when no STALLED line is expected
	}{
		{name: "stalled", stalled: "AuthenticationFailed", want: "STALLED           AuthenticationFailed: not retried with backoff"},
		{name: "healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeStatus(&b, admin.StatusResponse{Status: reconcile.Status{
				LastAttempt: now, LastResult: reconcile.OutcomeStalled, Stalled: tt.stalled,
			}}, now)
			out := b.String()
			if tt.want == "" && strings.Contains(out, "STALLED") || tt.want != "" && !strings.Contains(out, tt.want) {
				t.Errorf("status output:\n%s\nwant a line %q", out, tt.want)
			}
		})
	}
}

// TestWriteStatusRename: a renamed group is listed as drift once, by its
// rename line, which says what to change.
func TestWriteStatusRename(t *testing.T) {
	var b strings.Builder
	writeStatus(&b, admin.StatusResponse{
		Status: reconcile.Status{Drift: []reconcile.Change{
			{Kind: "AccessAssignment", Name: "appsec-admins", Drift: true, Kept: true},
			{Kind: "Application", Name: "webgoat", Drift: true},
		}},
		Renames: []access.GroupRename{{Assignment: "appsec-admins", From: "AppSec Admins", To: "AppSec Administrators", Suggestion: "set it"}},
	}, time.Now())
	out := b.String()
	if n := strings.Count(out, "appsec-admins"); n != 1 || !strings.Contains(out, "drift: Application/webgoat") {
		t.Errorf("status output names the renamed assignment %d times, want once:\n%s", n, out)
	}
}
