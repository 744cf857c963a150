package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// waitDeadline bounds every wait of the --wait tests: nothing in them
// takes more than a moment unless the behaviour under test is wrong.
const waitDeadline = 30 * time.Second

// gatedLoad loads a spec folder and, while hold is set, stops each
// reconcile right after its load until release lets it go: a test decides
// when a reconcile that has started ends. Each reconcile held is announced
// on entered.
type gatedLoad struct {
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func newGatedLoad() *gatedLoad {
	return &gatedLoad{entered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedLoad) load(ctx context.Context, dir string) (*spec.Set, error) {
	set, err := spec.Load(ctx, dir, spec.LoadOptions{})
	if !g.hold.Load() {
		return set, err
	}
	select {
	case g.entered <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return set, err
}

// waitFor receives from ch, failing the test at the deadline.
func waitFor[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitDeadline):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

// send sends on ch, failing the test at the deadline.
func send(t *testing.T, what string, ch chan<- struct{}) {
	t.Helper()
	select {
	case ch <- struct{}{}:
	case <-time.After(waitDeadline):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// gatedServer is an admin API over a real reconciler whose reconciles a
// test holds and releases (gatedLoad), served on a real HTTP server that
// tells the test when a request of its has been answered.
type gatedServer struct {
	rec  *reconcile.Reconciler
	gate *gatedLoad
	env  map[string]string
	// ended gets a value after each reconcile of the loop.
	ended chan struct{}
	// answered gets the path of each POST once it has been answered.
	answered chan string
	// epoch is bumped by the test; a GET /v1/status that began after the
	// latest bump is announced on polled once answered.
	epoch  atomic.Int64
	polled chan struct{}
}

func startGatedServer(t *testing.T, dir string) *gatedServer {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	g := newGatedLoad()
	ended := make(chan struct{}, 1)
	rec, err := reconcile.New(reconcile.Config{Store: st, Source: source.Dir{Path: dir}, Load: g.load, Interval: time.Hour,
		OnResult: func(reconcile.Result) {
			select {
			case ended <- struct{}{}:
			default: // one pending wake-up is enough: the waiter reads the status
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admin.New(admin.Config{Store: st, Reconciler: rec, Token: testAdminToken, Source: dir})
	if err != nil {
		t.Fatal(err)
	}
	s := &gatedServer{rec: rec, gate: g, ended: ended, answered: make(chan string, 16), polled: make(chan struct{}, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		epoch := s.epoch.Load()
		adm.ServeHTTP(w, r)
		switch {
		case r.Method == http.MethodPost:
			s.answered <- r.URL.Path
		case r.URL.Path == "/v1/status" && epoch > 0 && epoch == s.epoch.Load():
			select {
			case s.polled <- struct{}{}:
			default:
			}
		}
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rec.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("reconcile loop: %v", err)
		}
	})
	s.env = map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": testAdminToken}
	return s
}

// applied waits until the reconciler applied the spec revision rev.
func (s *gatedServer) applied(t *testing.T, rev string) {
	t.Helper()
	deadline := time.After(waitDeadline)
	for st := s.rec.Status(); st.LastResult != reconcile.OutcomeOK || st.AppliedContent != rev; st = s.rec.Status() {
		select {
		case <-s.ended:
		case <-deadline:
			t.Fatalf("revision %s not applied: %+v", rev, st)
		}
	}
}

// revisionOf is the content revision of the spec in dir, as status names it.
func revisionOf(t *testing.T, dir string) string {
	t.Helper()
	set, err := spec.Load(context.Background(), dir, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return set.Revision
}

// TestWaitReportsTheReconcileItAskedFor: --wait reports the first
// reconcile that began after the request (after the resume, for resume),
// not one that was under way when the request came: a reconcile started
// while the daemon was suspended applied nothing, and one started before
// `reconcile` may have read the spec before the change the user waits for.
// Each case holds such a reconcile until the command has made its request,
// then lets it end, and lets the next one end only once the command has
// read the status the first one left.
func TestWaitReportsTheReconcileItAskedFor(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	tests := []struct {
		name    string
		suspend bool // suspend before the reconcile under way starts
		// changeFirst writes the change before the reconcile under way
		// starts (it then sees it, suspended), else while it is held.
		changeFirst bool
		args        []string
		path        string
	}{
		{name: "resume", suspend: true, changeFirst: true, args: []string{"resume", "--wait", "--timeout", "30s"}, path: "/v1/resume"},
		{name: "reconcile", args: []string{"reconcile", "--wait", "--timeout", "30s"}, path: "/v1/reconcile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(example)); err != nil {
				t.Fatal(err)
			}
			before := revisionOf(t, dir)
			s := startGatedServer(t, dir)
			s.applied(t, before)
			if tt.suspend {
				if code, out, errs := run(t, s.env, "suspend"); code != 0 {
					t.Fatalf("suspend: exit %d\n%s%s", code, out, errs)
				}
				waitFor(t, "the suspend request", s.answered)
			}
			change := func() {
				b, _ := os.ReadFile(filepath.Join(dir, "assignments.yaml"))
				if err := os.WriteFile(filepath.Join(dir, "assignments.yaml"), bytes.ReplaceAll(b, []byte("View Only"), []byte("Developer")), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.changeFirst {
				change()
			}
			s.gate.hold.Store(true)
			s.rec.Trigger()
			waitFor(t, "the reconcile under way to load", s.gate.entered)
			if !tt.changeFirst {
				change()
			}
			after := revisionOf(t, dir)

			type result struct {
				code      int
				out, errs string
			}
			ran := make(chan result, 1)
			go func() {
				code, out, errs := run(t, s.env, tt.args...)
				ran <- result{code, out, errs}
			}()
			if got := waitFor(t, "the command's request", s.answered); got != tt.path {
				t.Fatalf("the command posted %s, want %s", got, tt.path)
			}
			// The reconcile under way ends; the one the request started
			// loads and is held while the command reads the status.
			send(t, "the reconcile under way to go on", s.gate.release)
			var res result
			var ended bool
			select {
			case <-s.gate.entered:
				s.epoch.Add(1)
				select {
				case <-s.polled:
				case res = <-ran:
					ended = true
				case <-time.After(waitDeadline):
					t.Fatal("timed out waiting for the command to read the status")
				}
				s.gate.hold.Store(false)
				send(t, "the requested reconcile to go on", s.gate.release)
			case res = <-ran:
				ended = true
			case <-time.After(waitDeadline):
				t.Fatal("timed out waiting for the requested reconcile")
			}
			if !ended {
				res = waitFor(t, "the command to end", ran)
			}
			want := "applied revision " + short(after)
			if res.code != 0 || strings.TrimSpace(res.out) != want {
				t.Fatalf("idrecon %s: exit %d, stdout %q, stderr %q; want exit 0 and %q (the revision before the change was %s)",
					strings.Join(tt.args, " "), res.code, strings.TrimSpace(res.out), strings.TrimSpace(res.errs), want, short(before))
			}
		})
	}
}

// TestWaitMatchesTheRequestNumber: --wait reports the first status whose
// request number reaches the one the daemon answered the request with,
// whatever LastAttempt says; a daemon that numbers no requests (an older
// one) is waited on as before, for a LastAttempt after the one before the
// request.
func TestWaitMatchesTheRequestNumber(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	type step struct {
		attempt time.Time
		request uint64
		applied string
	}
	tests := []struct {
		name    string
		request uint64 // the number POST /v1/reconcile answers, 0 for none
		// statuses are what GET /v1/status answers in turn, the first
		// before the request; the last one repeats.
		statuses []step
		want     string
	}{
		{"numbered: an attempt under way is not the one", 7, []step{
			{t0, 5, "old"}, {t0.Add(time.Second), 6, "under-way"}, {t0.Add(2 * time.Second), 7, "requested"},
		}, "applied revision requested"},
		{"numbered: a later request answers it too", 7, []step{
			{t0, 5, "old"}, {t0.Add(time.Second), 9, "later"},
		}, "applied revision later"},
		{"not numbered: the next attempt", 0, []step{
			{t0, 0, "old"}, {t0, 0, "old"}, {t0.Add(time.Second), 0, "next"},
		}, "applied revision next"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPost {
					w.WriteHeader(http.StatusAccepted)
					json.NewEncoder(w).Encode(map[string]any{"result": "reconcile triggered", "request": tt.request})
					return
				}
				i := min(int(asked.Add(1))-1, len(tt.statuses)-1)
				st := admin.StatusResponse{Ready: true}
				st.LastAttempt, st.Request, st.AppliedRevision, st.LastResult = tt.statuses[i].attempt, tt.statuses[i].request, tt.statuses[i].applied, reconcile.OutcomeOK
				json.NewEncoder(w).Encode(st)
			}))
			defer srv.Close()
			env := map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"}
			code, out, errs := run(t, env, "reconcile", "--wait", "--timeout", "30s")
			if code != 0 || strings.TrimSpace(out) != tt.want {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit 0 and %q", code, out, errs, tt.want)
			}
		})
	}
}

// TestWaitHelpNamesEveryExitCode: reconcile --wait and resume --wait exit 1
// when the daemon does not answer or --timeout runs out, and 3 for a
// suspended daemon too; their help says so beside 0 and 3.
func TestWaitHelpNamesEveryExitCode(t *testing.T) {
	for _, cmd := range []string{"reconcile", "resume"} {
		code, _, errs := run(t, nil, cmd, "--wait", "--timeout", "5s", "--server", "http://127.0.0.1:1", "--admin-token-file", "/dev/null/none")
		if code != 1 {
			t.Errorf("%s --wait, no token: exit %d, want 1\n%s", cmd, code, errs)
		}
		code, _, errs = run(t, map[string]string{"IDRECON_ADMIN_TOKEN": "x"}, cmd, "--wait", "--timeout", "5s", "--server", "http://127.0.0.1:1")
		if code != 1 {
			t.Errorf("%s --wait, unreachable daemon: exit %d, want 1\n%s", cmd, code, errs)
		}
		_, help, _ := run(t, nil, cmd, "--help")
		long, _, _ := strings.Cut(help, "\nUsage:")
		long = strings.Join(strings.Fields(long), " ")
		for _, w := range []string{"exit 0 when it applied the revision", "3 when it refused it, failed, or applied nothing because the daemon is suspended", "1 when the daemon did not answer or --timeout ran out"} {
			if !strings.Contains(long, w) {
				t.Errorf("%s --help does not say %q:\n%s", cmd, w, long)
			}
		}
	}
}
