package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/spec"
)

const (
	adminTok = "test-admin-token-0123456789"
	// The demo SCIM token whose sha256 examples/entra commits.
	scimTok = "idrecon-demo-token-for-make-run-only-0123456789"
)

type running struct {
	base, admin string
	logs        *logsink.Buffer
	stop        func() error
}

// copyDir copies the example spec so a test can change it.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func start(t testing.TB, cfg Config) *running {
	t.Helper()
	logs := &logsink.Buffer{}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Listen = "127.0.0.1:0"
	cfg.AdminListen = "127.0.0.1:0"
	// Tests that name a TLS certificate get TLS; the others plain HTTP.
	cfg.InsecureHTTP = cfg.TLSCertificate == ""
	cfg.AdminToken = adminTok
	if cfg.Interval == 0 {
		cfg.Interval = time.Hour // reconciles come from triggers in these tests
	}
	addrs := make(chan [2]string, 1)
	started := cfg.Started // the test's own, if any, first
	cfg.Started = func(a, b string) {
		if started != nil {
			started(a, b)
		}
		addrs <- [2]string{a, b}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case a := <-addrs:
		r := &running{base: "http://" + a[0], admin: "http://" + a[1], logs: logs}
		var once sync.Once
		var stopErr error
		r.stop = func() error {
			once.Do(func() { cancel(); stopErr = <-done })
			return stopErr
		}
		t.Cleanup(func() { r.stop() })
		return r
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v\nlogs:\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("daemon did not start in time\nlogs:\n%s", logs)
	}
	return nil
}

func (r *running) call(t testing.TB, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (r *running) status(t *testing.T) admin.StatusResponse {
	t.Helper()
	code, b := r.call(t, "GET", r.admin+"/v1/status", adminTok, nil)
	if code != 200 {
		t.Fatalf("status: %d %s", code, b)
	}
	var st admin.StatusResponse
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// appliedFolder waits until d's status says it applied the spec now in
// dir (its content revision), and returns that revision. Waiting for a
// resource is not enough: a write the folder watch saw half done may have
// been applied just before, and status records an apply a moment after
// its resources are served.
func appliedFolder(t *testing.T, d *running, dir string) string {
	t.Helper()
	set, err := spec.Load(context.Background(), dir, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the folder's revision applied", func() bool {
		st := d.status(t)
		return st.LastResult == "ok" && st.AppliedRevision == set.Revision
	})
	return set.Revision
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resourceJSON(t *testing.T, r *running, kind, name string) admin.Resource {
	t.Helper()
	code, b := r.call(t, "GET", r.admin+"/v1/resources/"+kind+"/"+name, adminTok, nil)
	if code != 200 {
		t.Fatalf("get %s/%s: %d %s", kind, name, code, b)
	}
	var res admin.Resource
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func versionsOf(res admin.Resource) string {
	b, _ := json.Marshal(res.Spec)
	return string(b)
}

// TestExampleServesDriftIsCorrectedAndStateSurvives walks the foundation's
// acceptance path on the real daemon: examples/entra is applied to an empty
// runtime, Entra provisions a user, a console-style edit is reported and
// corrected as drift, a spec change arrives through the folder watch, a bad
// spec is refused while the last good state keeps serving, and a restart on
// the same data dir keeps what SCIM acknowledged.
func TestExampleServesDriftIsCorrectedAndStateSurvives(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	dataDir := t.TempDir()
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir})

	eventually(t, "readiness", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/readyz", "", nil)
		return code == 200
	})
	// The same, for a load balancer, on the main listener.
	if code, body := d.call(t, "GET", d.base+"/readyz", "", nil); code != 200 || string(body) != "ready\n" {
		t.Fatalf("main listener /readyz: %d %q", code, body)
	}
	if st := d.status(t); st.AppliedRevision == "" || st.LastResult != "ok" {
		t.Fatalf("example not applied: %+v", st)
	}

	// Entra's test connection and a first user.
	code, b := d.call(t, "GET", d.base+`/api/scim/v2/Users?aadOptscim062020&filter=userName+eq+"0b4d1c6e-1111-4a6e-9c1d-5f3e1c2a9b77"`, scimTok, nil)
	if code != 200 || !strings.Contains(string(b), `"totalResults":0`) {
		t.Fatalf("test connection: %d %s", code, b)
	}
	code, b = d.call(t, "POST", d.base+"/api/scim/v2/Users?aadOptscim062020", scimTok, map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "alice@contoso.com", "active": true, "externalId": "alice",
	})
	if code != 201 {
		t.Fatalf("create user: %d %s", code, b)
	}
	if code, _ := d.call(t, "GET", d.base+"/api/scim/v2/Users", "wrong-token", nil); code != 401 {
		t.Fatalf("wrong SCIM token: got %d, want 401", code)
	}
	// The write waited for the journal, which /metrics times.
	_, m := d.call(t, "GET", d.admin+"/metrics", "", nil)
	if n := metricValue(string(m), "idrecon_journal_sync_duration_seconds_count"); n < 1 {
		t.Errorf("idrecon_journal_sync_duration_seconds_count %v after a SCIM write, want at least 1", n)
	}
	// An audit record the disk refuses is counted where it can be alerted on.
	if n := metricValue(string(m), "idrecon_audit_records_not_written_total"); n != 0 {
		t.Errorf("idrecon_audit_records_not_written_total %v, want it exposed, at 0", n)
	}

	// A console edit: add a version of webgoat out of band. (Dropping 2.0
	// is refused: an assignment grants webgoat/2.0.)
	want := versionsOf(resourceJSON(t, d, "Application", "webgoat"))
	code, b = d.call(t, "PUT", d.admin+"/v1/resources/Application/webgoat", adminTok, map[string]any{"versions": []string{"1.0", "2.0", "0.1"}})
	if code != 200 {
		t.Fatalf("admin edit: %d %s", code, b)
	}
	if code, _ := d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil); code != 202 {
		t.Fatalf("trigger: %d", code)
	}
	eventually(t, "drift corrected", func() bool {
		return versionsOf(resourceJSON(t, d, "Application", "webgoat")) == want
	})
	if !strings.Contains(d.logs.String(), "Application/webgoat") && !strings.Contains(d.logs.String(), `"name":"webgoat"`) {
		t.Errorf("drift of Application/webgoat not logged:\n%s", d.logs)
	}

	// A spec change through the folder watch.
	appFile := filepath.Join(specDir, "applications.yaml")
	orig, err := os.ReadFile(appFile)
	if err != nil {
		t.Fatal(err)
	}
	extra := "\n---\napiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: added-by-test\nspec:\n  versions: [\"1.0\"]\n"
	if err := os.WriteFile(appFile, append(append([]byte{}, orig...), extra...), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new application applied", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/v1/resources/Application/added-by-test", adminTok, nil)
		return code == 200
	})

	// A bad commit is refused; the last good state keeps serving.
	good := appliedFolder(t, d, specDir)
	if err := os.WriteFile(filepath.Join(specDir, "broken.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: x\nspec:\n  permisions: [a]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bad revision refused", func() bool {
		st := d.status(t)
		return st.LastResult == "refused" && strings.Contains(st.LastError, "broken.yaml:")
	})
	if st := d.status(t); st.AppliedRevision != good {
		t.Fatalf("applied revision changed to %s after a bad spec", st.AppliedRevision)
	}
	if code, _ := d.call(t, "GET", d.base+"/api/scim/v2/Users", scimTok, nil); code != 200 {
		t.Fatalf("SCIM stopped serving after a bad spec: %d", code)
	}

	// Restart on the same data dir: what SCIM acknowledged is still there.
	if err := d.stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	os.Remove(filepath.Join(specDir, "broken.yaml"))
	d2 := start(t, Config{SpecDir: specDir, DataDir: dataDir})
	code, b = d2.call(t, "GET", d2.base+`/api/scim/v2/Users?filter=userName+eq+"ALICE@contoso.com"`, scimTok, nil)
	if code != 200 || !strings.Contains(string(b), `"totalResults":1`) {
		t.Fatalf("user lost across restart: %d %s", code, b)
	}
	fmt.Fprint(io.Discard, d2.logs)
}

// TestGroupRenameKeepsAccessAndIsReported: Entra renames a group that an
// assignment names; access follows the group, and status reports the drift
// with the spec change to make.
func TestGroupRenameKeepsAccessAndIsReported(t *testing.T) {
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir()})
	scim := d.base + "/api/scim/v2"
	code, b := d.call(t, "POST", scim+"/Users", scimTok, map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "bob@contoso.com", "active": true,
	})
	if code != 201 {
		t.Fatalf("create user: %d %s", code, b)
	}
	var user struct{ ID string }
	json.Unmarshal(b, &user)
	code, b = d.call(t, "POST", scim+"/Groups", scimTok, map[string]any{
		"schemas":     []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "AppSec Admins", "externalId": "0f3c-entra-object-id",
		"members": []map[string]string{{"value": user.ID}},
	})
	if code != 201 {
		t.Fatalf("create group: %d %s", code, b)
	}
	var group struct{ ID string }
	json.Unmarshal(b, &group)

	hasAdmin := func() bool {
		code, b := d.call(t, "GET", d.admin+"/v1/access/users/bob@contoso.com", adminTok, nil)
		return code == 200 && regexp.MustCompile(`"role":\s*"Administrator"`).Match(b)
	}
	eventually(t, "access through the group", hasAdmin)
	// The binding of assignment to group is recorded asynchronously, in a
	// meta record that backups carry.
	eventually(t, "binding recorded", func() bool {
		code, b := d.call(t, "GET", d.admin+"/v1/backup", adminTok, nil)
		return code == 200 && bytes.Contains(b, []byte("access/binding/appsec-admins"))
	})

	code, b = d.call(t, "PATCH", scim+"/Groups/"+group.ID, scimTok, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "Replace", "path": "displayName", "value": "AppSec Administrators"}},
	})
	if code/100 != 2 {
		t.Fatalf("rename: %d %s", code, b)
	}
	eventually(t, "rename reported in status", func() bool {
		st := d.status(t)
		return len(st.Renames) == 1 && st.Renames[0].To == "AppSec Administrators" && strings.Contains(st.Renames[0].Suggestion, "AppSec Administrators")
	})
	if !hasAdmin() {
		t.Fatal("access lost when the group was renamed")
	}
	// The drift a reconcile counts in the metric is the drift /v1/drift lists,
	// the rename included.
	d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	var drift []struct{ Kind, Name string }
	eventually(t, "rename listed as drift", func() bool {
		_, b := d.call(t, "GET", d.admin+"/v1/drift", adminTok, nil)
		drift = nil
		json.Unmarshal(b, &drift)
		return len(drift) == 1
	})
	if drift[0].Kind != "AccessAssignment" || drift[0].Name != "appsec-admins" {
		t.Errorf("drift %+v, want the renamed group's assignment", drift)
	}
	// The log line reads as every other drift line and the audit record:
	// before is what the runtime holds, after what the spec says.
	logged := false
	for line := range strings.Lines(d.logs.String()) {
		var rec struct{ Msg, Field, Before, After string }
		if json.Unmarshal([]byte(line), &rec) != nil || rec.Msg != "drift" || rec.Field != "spec.subject.group" {
			continue
		}
		logged = true
		if rec.Before != "AppSec Administrators" || rec.After != "AppSec Admins" {
			t.Errorf("rename logged with before %q, after %q; want the runtime's name before and the spec's after", rec.Before, rec.After)
		}
	}
	if !logged {
		t.Errorf("the rename was not logged as drift:\n%s", d.logs)
	}
	_, metrics := d.call(t, "GET", d.admin+"/metrics", "", nil)
	if want := fmt.Sprintf("idrecon_drift_resources %d\n", len(drift)); !strings.Contains(string(metrics), want) {
		t.Errorf("metrics lack %q", want)
	}
}

// TestSuspendSurvivesRestart: a suspension is in the state, not the
// process: a daemon restarted on its data dir is still suspended.
func TestSuspendSurvivesRestart(t *testing.T) {
	specDir, dataDir := copyDir(t, "../../examples/entra"), t.TempDir()
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir})
	if code, body := d.call(t, "POST", d.admin+"/v1/suspend", adminTok, nil); code != 200 {
		t.Fatalf("suspend: %d %s", code, body)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = start(t, Config{SpecDir: specDir, DataDir: dataDir})
	if !d.status(t).Suspended {
		t.Fatal("the restarted daemon is not suspended")
	}
	if code, body := d.call(t, "POST", d.admin+"/v1/resume", adminTok, nil); code != 200 {
		t.Fatalf("resume: %d %s", code, body)
	}
	if d.status(t).Suspended {
		t.Fatal("still suspended after resume")
	}
}

// TestRequestNumbersGrowAcrossRestart: `reconcile --wait` waits until the
// status's request number reaches the one its request got. A daemon that
// restarts meanwhile must answer it with its first reconcile (which began
// after the request), not number its requests from 1 again, leaving the
// client waiting for requests nobody makes.
func TestRequestNumbersGrowAcrossRestart(t *testing.T) {
	specDir, dataDir := copyDir(t, "../../examples/entra"), t.TempDir()
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir})
	code, body := d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	var req admin.Requested
	if err := json.Unmarshal(body, &req); code != http.StatusAccepted || err != nil || req.Request == 0 {
		t.Fatalf("reconcile: %d %s", code, body)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = start(t, Config{SpecDir: specDir, DataDir: dataDir})
	eventually(t, "the restarted daemon's first reconcile", func() bool { return !d.status(t).LastAttempt.IsZero() })
	if got := d.status(t).Request; got < req.Request {
		t.Fatalf("after the restart the status answers request %d; the request made before it was %d", got, req.Request)
	}
}
