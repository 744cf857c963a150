package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/scim"
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

// TestWriteStatusGateways: each Gateway is a line saying where it forwards
// and whether it serves.
func TestWriteStatusGateways(t *testing.T) {
	st := admin.StatusResponse{Gateways: []admin.GatewayStatus{
		{Name: "appsec", PathPrefix: "/ssc", Upstream: "http://127.0.0.1:8180", Serving: true,
			Requests: map[string]uint64{"proxy": 12}, Refusals: map[string]uint64{"no_session": 2, "disabled": 1}},
		{Name: "auth", PathPrefix: "/", Error: "its shared secret is not resolved yet"},
	}}
	var b strings.Builder
	writeStatus(&b, st, time.Now())
	for _, want := range []string{
		"GATEWAY appsec", "/ssc -> http://127.0.0.1:8180: serving; 12 proxied, 0 verified, 3 refused, 0 upstream errors",
		"GATEWAY auth", "/ -> forward-auth only: not serving: its shared secret is not resolved yet",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWriteStatusReplication: with the state in etcd, status names the
// leader of the reconciler and this replica.
func TestWriteStatusReplication(t *testing.T) {
	for _, tc := range []struct {
		r    admin.ReplicationStatus
		want string
	}{
		{admin.ReplicationStatus{Backend: "etcd", Endpoints: []string{"a", "b", "c"}, Revision: 42, Replica: "r1", Leader: "r2"},
			"STATE             etcd, 3 endpoint(s), revision 42; leader r2, this is r1\n"},
		{admin.ReplicationStatus{Backend: "etcd", Endpoints: []string{"a"}, Revision: 7, Replica: "r1", Leader: "r1"},
			"STATE             etcd, 1 endpoint(s), revision 7; this replica (r1) leads the reconciler\n"},
		{admin.ReplicationStatus{Backend: "etcd", Endpoints: []string{"a"}, Replica: "r1"}, "revision 0; no leader\n"},
	} {
		var b strings.Builder
		writeStatus(&b, admin.StatusResponse{Replication: &tc.r}, time.Now())
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("status lacks %q:\n%s", tc.want, b.String())
		}
	}
}

// TestWriteStatusProvisioned: status counts what SCIM clients provisioned
// against the bounds, and names the flag of a bound nine tenths reached.
func TestWriteStatusProvisioned(t *testing.T) {
	limits := scim.Limits{Users: 100, Groups: 10, Memberships: 1000}
	for _, tc := range []struct {
		p    scim.Provisioned
		want string
	}{
		{scim.Provisioned{Users: 3, Groups: 1, Memberships: 2, Limits: limits},
			"PROVISIONED       3 users of 100, 1 group of 10, 2 memberships of 1000\n"},
		{scim.Provisioned{Users: 90, Groups: 10, Memberships: 899, Limits: limits},
			"PROVISIONED       90 users of 100, 10 groups of 10, 899 memberships of 1000; near the bound: raise --max-users, --max-groups or narrow the provisioning scope\n"},
		{scim.Provisioned{Users: 5}, "PROVISIONED       5 users, 0 groups, 0 memberships\n"},
	} {
		var b strings.Builder
		writeStatus(&b, admin.StatusResponse{Provisioned: &tc.p}, time.Now())
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("status lacks %q:\n%s", tc.want, b.String())
		}
	}
}

// TestStatusReadyFalseOnRefusal: a refused revision makes READY False with a
// one-line reason although the daemon serves the last good one; the whole
// multi-line error goes below the table, and status exits 3.
func TestStatusReadyFalseOnRefusal(t *testing.T) {
	st := admin.StatusResponse{Ready: true}
	st.LastResult = "refused"
	st.LastError = "revision refused: 2 error(s)\nroles.yaml:15:1: kind: duplicate field\nscim.yaml:3:1: spec: required"
	var b strings.Builder
	writeStatus(&b, st, time.Now())
	out := b.String()
	for _, want := range []string{
		"READY             False: latest revision refused: revision refused: 2 error(s) (serving the last good one)\n",
		"LAST ERROR        revision refused: 2 error(s) (and 2 more line(s) below)\n",
		"Last error:\nrevision refused: 2 error(s)\nroles.yaml:15:1: kind: duplicate field\nscim.yaml:3:1: spec: required\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if ok, _ := readiness(st); ok {
		t.Error("a refused revision reads as ready")
	}
	st.LastResult, st.LastError = "ok", ""
	if ok, why := readiness(st); !ok {
		t.Errorf("an applied revision reads as not ready: %s", why)
	}
}

// TestStatusWatch: status --watch prints the status when it changes, once
// per change, and ends cleanly when interrupted.
func TestStatusWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := admin.StatusResponse{Ready: true}
		st.LastResult, st.AppliedRevision = "ok", "aaaaaaaaaaaa"
		n := asked.Add(1)
		if n >= 3 {
			st.AppliedRevision = "bbbbbbbbbbbb"
		}
		if n == 5 {
			cancel() // the user presses ^C
		}
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	var out, errs bytes.Buffer
	vars := map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"}
	code := Main(ctx, Env{
		Args:   []string{"status", "--watch", "--every", "10ms"},
		Getenv: func(k string) string { return vars[k] },
		Stdout: &out, Stderr: &errs,
	})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if n := strings.Count(out.String(), "APPLIED REVISION"); n != 2 {
		t.Fatalf("printed %d times, want twice (once per change):\n%s", n, out.String())
	}
	if a, b := strings.Index(out.String(), "aaaaaaaaaaaa"), strings.Index(out.String(), "bbbbbbbbbbbb"); a < 0 || b < a {
		t.Fatalf("changes not in order:\n%s", out.String())
	}
}

// TestStatusWatchRidesOutARestart: a daemon that cannot be reached for a
// while (restarting) is said once on stderr and the watch goes on, printing
// the status again once it answers; a daemon that answers with an error (a
// wrong token) ends the watch with exit 1.
func TestStatusWatchRidesOutARestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := asked.Add(1)
		switch {
		case n == 2 || n == 3:
			// Down: the connection ends before any answer.
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case n == 6:
			cancel()
		case n > 6:
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(admin.Error{Error: "bad token"})
			return
		}
		st := admin.StatusResponse{Ready: true}
		st.LastResult, st.AppliedRevision = "ok", "aaaaaaaaaaaa"
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	vars := map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"}
	run := func(ctx context.Context) (int, string, string) {
		var out, errs bytes.Buffer
		code := Main(ctx, Env{
			Args:   []string{"status", "--watch", "--every", "10ms"},
			Getenv: func(k string) string { return vars[k] },
			Stdout: &out, Stderr: &errs,
		})
		return code, out.String(), errs.String()
	}
	code, out, errs := run(ctx)
	if code != 0 {
		t.Fatalf("exit %d through a restart: %s", code, errs)
	}
	if n := strings.Count(out, "APPLIED REVISION"); n != 2 {
		t.Errorf("printed %d times, want twice (before and after the daemon was away):\n%s", n, out)
	}
	if !strings.Contains(errs, "asking again every 10ms") {
		t.Errorf("the daemon being away was not said: %q", errs)
	}
	code, _, errs = run(context.Background())
	if code != 1 || !strings.Contains(errs, "bad token") {
		t.Errorf("a daemon refusing the token: exit %d, %q; want exit 1 naming the refusal", code, errs)
	}
}

// TestWriteStatusGitRevisions: from git, applied and seen read as Flux
// shows them, abbreviated to 12 digits with their names kept, and the
// content revision has its own line.
func TestWriteStatusGitRevisions(t *testing.T) {
	var st admin.StatusResponse
	st.AppliedRevision = "main@sha1:" + strings.Repeat("a", 40)
	st.SeenRevision = "main@sha1:" + strings.Repeat("b", 40)
	st.AppliedContent = strings.Repeat("c", 64)
	var b strings.Builder
	writeStatus(&b, st, time.Now())
	for _, want := range []string{
		"APPLIED REVISION  main@sha1:aaaaaaaaaaaa\n", "SEEN REVISION     main@sha1:bbbbbbbbbbbb\n", "APPLIED CONTENT   cccccccccccc\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
}

// TestWriteStatusDrift: DRIFT says what is present now and what was
// corrected, and when.
func TestWriteStatusDrift(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		st   reconcile.Status
		want string
	}{
		{reconcile.Status{DriftMode: reconcile.DriftCorrect}, "DRIFT             none present (mode correct)\n"},
		{reconcile.Status{DriftMode: reconcile.DriftCorrect, Corrected: []reconcile.Change{{}, {}}, CorrectedAt: now.Add(-5 * time.Minute)},
			"DRIFT             none present; 2 corrected at 2026-06-01T11:55:00Z (5m0s ago) (mode correct)\n"},
		{reconcile.Status{DriftMode: reconcile.DriftReport, DriftCount: 3, DriftSince: now.Add(-time.Hour)},
			"DRIFT             3 present since 2026-06-01T11:00:00Z (1h0m0s ago) (mode report)\n"},
	} {
		var b strings.Builder
		writeStatus(&b, admin.StatusResponse{Status: tc.st}, now)
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("status lacks %q:\n%s", tc.want, b.String())
		}
	}
}

// TestWriteStatusPending: the changes a reconcile left unmade are counted
// as plan --server counts them, kept drift apart: after an apply, what a
// --drift=report daemon leaves pending is the drift it keeps, which plan
// shows as "0 to create, 0 to update, 0 to delete, 1 kept"; "1 to update"
// would read as an update about to happen. A reconcile that applied
// nothing (suspended, failed) left every change of its plan pending.
func TestWriteStatusPending(t *testing.T) {
	tests := []struct {
		name string
		st   reconcile.Status
		want string
	}{
		{"kept drift", reconcile.Status{LastResult: reconcile.OutcomeOK, DriftMode: reconcile.DriftReport,
			PendingPlan: reconcile.PlanSummary{Kept: 1, Drift: 1}},
			"PENDING           0 to create, 0 to update, 0 to delete, 1 kept\n"},
		{"kept drift of every kind", reconcile.Status{LastResult: reconcile.OutcomeRefused, DriftMode: reconcile.DriftReport,
			PendingPlan: reconcile.PlanSummary{Kept: 4, Drift: 4}},
			"PENDING           0 to create, 0 to update, 0 to delete, 4 kept\n"},
		{"nothing pending", reconcile.Status{LastResult: reconcile.OutcomeOK},
			"PENDING           0 to create, 0 to update, 0 to delete\n"},
		{"suspended", reconcile.Status{LastResult: reconcile.OutcomeOK, Suspended: true, PendingPlan: reconcile.PlanSummary{Update: 2}},
			"PENDING           0 to create, 2 to update, 0 to delete\n"},
		{"suspended with drift", reconcile.Status{LastResult: reconcile.OutcomeOK, Suspended: true, DriftMode: reconcile.DriftCorrect,
			PendingPlan: reconcile.PlanSummary{Create: 1, Update: 1, Drift: 1}},
			"PENDING           1 to create, 1 to update, 0 to delete (1 of them drift)\n"},
		{"failed apply", reconcile.Status{LastResult: reconcile.OutcomeError, PendingPlan: reconcile.PlanSummary{Create: 3}},
			"PENDING           3 to create, 0 to update, 0 to delete\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			writeStatus(&b, admin.StatusResponse{Status: tt.st}, time.Now())
			if !strings.Contains(b.String(), tt.want) {
				t.Errorf("status output:\n%s\nwant %q", b.String(), tt.want)
			}
		})
	}
}
