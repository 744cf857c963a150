package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
)

// fakeDaemonEnv serves h as a daemon's admin API and returns the env the CLI
// needs to reach it.
func fakeDaemonEnv(t *testing.T, h http.HandlerFunc) map[string]string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"}
}

// runCtx is run with a context: a bound on a test whose daemon never answers.
func runCtx(t *testing.T, ctx context.Context, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(ctx, Env{
		Args:   args,
		Getenv: func(k string) string { return env[k] },
		Stdout: &out,
		Stderr: &errb,
	})
	return code, out.String(), errb.String()
}

// TestReviewReconcileWaitTimeoutBoundsEveryRequest: with --wait, --timeout
// bounds the whole command, the status read and the trigger included, so a
// daemon that accepts connections but never answers does not hold a CI job
// for the HTTP client's five minutes.
func TestReconcileWaitTimeoutBoundsEveryRequest(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a hung daemon
	})
	// bounded runs the command with a bound for the test only: the command
	// must give up long before it.
	bounded := func(args ...string) (int, string, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return runCtx(t, ctx, env, args...)
	}
	for _, cmd := range []string{"reconcile", "resume"} {
		code, out, errs := bounded(cmd, "--wait", "--timeout", "50ms")
		if code != 1 || !strings.Contains(errs, "within 50ms") || out != "" {
			t.Errorf("%s --wait --timeout 50ms against a hung daemon: exit %d\nstdout:\n%s\nstderr:\n%s", cmd, code, out, errs)
		}
	}
	// A timeout that cannot be met is a mistake in the command line, found
	// before the daemon is asked anything.
	if code, _, errs := bounded("reconcile", "--wait", "--timeout", "0s"); code != 1 || !strings.Contains(errs, "--timeout must be positive") {
		t.Errorf("reconcile --wait --timeout 0s: exit %d\n%s", code, errs)
	}
}

// TestReviewReconcileWaitOnASuspendedDaemon: a suspended daemon's reconcile
// plans and applies nothing, and ends "ok". reconcile --wait must not say
// it applied the revision, nor exit 0 ("applied") for it.
func TestReconcileWaitOnASuspendedDaemon(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	var asked atomic.Int32
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/reconcile":
			w.WriteHeader(http.StatusAccepted)
			json.NewEncoder(w).Encode(map[string]string{"result": "reconcile triggered"})
		case "/v1/status":
			st := admin.StatusResponse{Ready: true}
			st.Suspended = true
			st.LastResult, st.AppliedRevision, st.SeenRevision = reconcile.OutcomeOK, "sha256:0ld0ld0ld0ld0ld0", "sha256:0ld0ld0ld0ld0ld0"
			st.LastAttempt = t0
			if asked.Add(1) > 1 {
				// The triggered reconcile: a new revision planned, one
				// update left pending, nothing applied.
				st.LastAttempt = t0.Add(time.Second)
				st.SeenRevision = "sha256:11ee11ee11ee11ee"
				st.PendingPlan = reconcile.PlanSummary{Update: 1}
			}
			json.NewEncoder(w).Encode(st)
		default:
			http.NotFound(w, r)
		}
	})
	code, out, errs := run(t, env, "reconcile", "--wait", "--timeout", "30s")
	if code != exitNotReady || strings.Contains(out, "applied revision") || !strings.Contains(errs, "suspended") {
		t.Fatalf("reconcile --wait on a suspended daemon: exit %d, want %d saying it is suspended\nstdout:\n%s\nstderr:\n%s",
			code, exitNotReady, out, errs)
	}
}

// TestReviewExportCountsWhatItWrites: export leaves the builtin roles out,
// so its count must too.
func TestExportCountsWhatItWrites(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/resources" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode([]admin.Resource{
			{Kind: "Role", Name: "Developer", Spec: map[string]any{"builtin": true,
				"description": "Works on assigned versions.", "permissions": []string{"version.view", "issue.audit", "report.view", "artifact.upload"}}},
			{Kind: "Application", Name: "webgoat", Spec: map[string]any{"versions": []string{"1.0"}}},
		})
	})
	dir := t.TempDir() + "/out"
	code, out, errs := run(t, env, "export", "-o", dir)
	if code != 0 || !strings.Contains(out, "exported 1 document(s)") {
		t.Fatalf("export of a builtin role and an application: exit %d, want 1 document exported\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestReviewApplyCountsOnlyWhatItChanged: with --drift report, apply keeps
// drift in place; "Apply complete" must not count the kept changes as made.
func TestApplyCountsOnlyWhatItChanged(t *testing.T) {
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/apply" {
			http.NotFound(w, r)
			return
		}
		p := &reconcile.Plan{Revision: "sha256:abc",
			Creates: []reconcile.Change{{Kind: "Application", Name: "new", Fields: []reconcile.FieldChange{{Path: "spec.versions", After: `["1.0"]`}}}},
			Updates: []reconcile.Change{{Kind: "Application", Name: "webgoat", Drift: true, Kept: true,
				Fields: []reconcile.FieldChange{{Path: "spec.versions", Before: `["1.0"]`, After: `["1.0","2.0"]`}}}},
			Summary: reconcile.PlanSummary{Create: 1, Update: 1, Drift: 1},
		}
		json.NewEncoder(w).Encode(admin.PlanResponse{Plan: p})
	})
	code, out, errs := run(t, env, "apply", "../../../../examples/entra")
	if code != 0 || !strings.Contains(out, "Apply complete: 1 created, 0 updated, 0 deleted") {
		t.Fatalf("apply with a kept drift: exit %d, want 1 created and 0 updated\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestPlanCountsOnlyWhatApplyChanges: a daemon in drift mode report keeps
// drift in place, so plan must count, and exit by, the changes apply would
// make: a plan whose every change is kept changes nothing (exit 0, as
// apply then says 0 created, 0 updated), though it lists the drift. The
// JSON summary, which CI bots read, counts the same, the kept drift apart,
// whatever summary the daemon sent (an older one counts kept drift in it).
func TestPlanCountsOnlyWhatApplyChanges(t *testing.T) {
	kept := reconcile.Change{Kind: "Application", Name: "webgoat", Drift: true, Kept: true,
		Fields: []reconcile.FieldChange{{Path: "spec.versions", Before: `["1.0","9.9"]`, After: `["1.0"]`}}}
	made := reconcile.Change{Kind: "Application", Name: "new", Fields: []reconcile.FieldChange{{Path: "spec.versions", After: `["1.0"]`}}}
	for _, tt := range []struct {
		name    string
		plan    string // the daemon's JSON, as an older daemon summarised it
		code    int
		summary string
		json    map[string]int
	}{
		{"only kept drift", planJSON(t, &reconcile.Plan{Revision: "sha256:abc", Updates: []reconcile.Change{kept}}, `{"create":0,"update":1,"delete":0,"drift":1}`),
			0, "Plan: 0 to create, 0 to update, 0 to delete, 1 kept.",
			map[string]int{"create": 0, "update": 0, "delete": 0, "kept": 1, "drift": 1}},
		{"kept drift and a create", planJSON(t, &reconcile.Plan{Revision: "sha256:abc", Creates: []reconcile.Change{made}, Updates: []reconcile.Change{kept}}, `{"create":1,"update":1,"delete":0,"drift":1}`),
			2, "Plan: 1 to create, 0 to update, 0 to delete, 1 kept.",
			map[string]int{"create": 1, "update": 0, "delete": 0, "kept": 1, "drift": 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/plan" {
					http.NotFound(w, r)
					return
				}
				fmt.Fprintf(w, `{"plan":%s}`, tt.plan)
			})
			code, out, errs := run(t, env, "plan", "../../../../examples/entra")
			if code != tt.code || !strings.Contains(out, tt.summary) || !strings.Contains(out, "~ Application/webgoat  # drift: changed outside git, kept") {
				t.Fatalf("exit %d, want %d with %q and the kept drift listed\nstdout:\n%s\nstderr:\n%s", code, tt.code, tt.summary, out, errs)
			}
			code, out, errs = run(t, env, "plan", "../../../../examples/entra", "--output", "json")
			var got struct {
				Item struct {
					Summary map[string]int `json:"summary"`
				} `json:"item"`
			}
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("plan --output json: %v\nstdout:\n%s\nstderr:\n%s", err, out, errs)
			}
			if code != tt.code || !reflect.DeepEqual(got.Item.Summary, tt.json) {
				t.Fatalf("plan --output json: exit %d, summary %v; want exit %d, summary %v\nstdout:\n%s", code, got.Item.Summary, tt.code, tt.json, out)
			}
		})
	}
}

// planJSON is p as a daemon sends it, with summary as the daemon wrote it.
func planJSON(t *testing.T, p *reconcile.Plan, summary string) string {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["summary"] = json.RawMessage(summary)
	if b, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReviewServeRefusesAnUnknownLogFormat: --log-format takes json or
// text; anything else is a mistake in the command line, not JSON logs.
func TestServeRefusesAnUnknownLogFormat(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Off loopback without --admin-insecure-http: the daemon refuses to
	// start, so the current code ends instead of serving.
	code, out, errs := runCtx(t, ctx, map[string]string{"IDRECON_ADMIN_TOKEN": testAdminToken},
		"serve", "--log-format", "yaml", "--admin-listen", "0.0.0.0:0", "--listen", "127.0.0.1:0", "--insecure-http", "--data-dir", "")
	if code != 1 || !strings.Contains(errs, "--log-format") || !strings.Contains(errs, "Run 'idrecon serve --help'") {
		t.Fatalf("serve --log-format yaml: exit %d, want a usage error\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestReviewServerURLIsCheckedAndNeverEchoesAPassword: a --server that is not
// an http(s) URL is a usage error found before any request, and the error
// never repeats a password the URL holds (CI logs keep stderr).
func TestServerURLIsCheckedAndNeverEchoesAPassword(t *testing.T) {
	for _, server := range []string{
		"http://admin:s3cret@127.0.0.1:9090 ", // a trailing space, pasted
		"http://admin:s3cret@127.0.0.1:9090/%",
		"localhost:9090",
		"127.0.0.1:9090",
	} {
		code, out, errs := run(t, map[string]string{"IDRECON_ADMIN_TOKEN": "x"}, "status", "--server", server)
		if code != 1 || out != "" || strings.Contains(errs, "s3cret") || !strings.Contains(errs, "--server") ||
			!strings.Contains(errs, "Run 'idrecon status --help'") {
			t.Errorf("status --server %q: exit %d, want a usage error without the password\nstdout:\n%s\nstderr:\n%s", server, code, out, errs)
		}
	}
}

// TestReviewAccessVersionWantsBothHalves: "/2.0" and "webgoat/" name no
// version; they are usage errors, not requests for odd paths.
func TestAccessVersionWantsBothHalves(t *testing.T) {
	var asked atomic.Int32
	env := fakeDaemonEnv(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		http.NotFound(w, r)
	})
	for _, arg := range []string{"/2.0", "webgoat/", "/"} {
		code, _, errs := run(t, env, "access", "version", arg)
		if code != 1 || !strings.Contains(errs, "want APP/VERSION") {
			t.Errorf("access version %q: exit %d, want a usage error\n%s", arg, code, errs)
		}
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the daemon was asked %d time(s)", n)
	}
}
