package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
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
