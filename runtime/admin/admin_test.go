package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/bundle"
)

const token = "admin-test-token-0123456789abcdef"

type fixture struct {
	srv *httptest.Server
	st  *store.Store
	rec *reconcile.Reconciler
}

func newFixture(t *testing.T, source string) *fixture {
	t.Helper()
	return newFixtureWith(t, source, nil)
}

// newFixtureWith is newFixture with edit, when not nil, adjusting the
// server's Config first.
func newFixtureWith(t *testing.T, source string, edit func(*Config)) *fixture {
	t.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec, err := reconcile.New(reconcile.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Reconciler: rec, Token: token, Source: source}
	if source == "" {
		cfg.Push = func(ctx context.Context, dir string) (*reconcile.Plan, error) {
			set, err := spec.Load(ctx, dir, spec.LoadOptions{})
			if err != nil {
				return nil, err
			}
			return rec.Apply(ctx, set)
		}
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, st: st, rec: rec}
}

func (f *fixture) do(t *testing.T, method, path, tok string, body io.Reader) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func packDir(t *testing.T, files map[string]string) *bytes.Buffer {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := bundle.Pack(&buf, dir); err != nil {
		t.Fatal(err)
	}
	return &buf
}

const appDoc = "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: webgoat\nspec:\n  versions: [\"1.0\", \"2.0\"]\n"

func TestAuth(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		path, tok string
		want      int
	}{
		{"/healthz", "", 200},
		{"/v1/status", "", 401},
		{"/v1/status", "wrong", 401},
		{"/v1/status", token, 200},
		{"/v1/resources", token, 200},
		{"/v1/history", "", 401},
		{"/v1/history", token, 200},
		{"/debug/pprof/", "", 401},
		{"/debug/pprof/heap", "wrong", 401},
		{"/debug/pprof/heap", token, 200},
		{"/debug/pprof/profile?seconds=1", "", 401},
		{"/debug/pprof/cmdline", token, 404}, // the command line may name secret files
	}
	for _, tt := range tests {
		if code, body := f.do(t, "GET", tt.path, tt.tok, nil); code != tt.want {
			t.Errorf("GET %s with %q: %d, want %d (%s)", tt.path, tt.tok, code, tt.want, body)
		}
	}
}

func TestUploadPlanApplyAndConsoleEdits(t *testing.T) {
	f := newFixture(t, "")

	code, body := f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != 200 || !strings.Contains(body, `"webgoat"`) {
		t.Fatalf("plan: %d %s", code, body)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r != nil {
		t.Fatal("plan changed the runtime")
	}

	code, body = f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r == nil {
		t.Fatal("apply did not create webgoat")
	}

	bad := "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n  verions: [a]\n"
	code, body = f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"bad.yaml": bad}))
	if code != http.StatusUnprocessableEntity || !strings.Contains(body, "bad.yaml:6") {
		t.Fatalf("bad spec: %d %s", code, body)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r == nil {
		t.Fatal("a refused spec changed the runtime")
	}

	code, body = f.do(t, "POST", "/v1/plan", token, strings.NewReader("not a tarball"))
	if code != http.StatusBadRequest {
		t.Fatalf("garbage upload: %d %s", code, body)
	}

	// A console edit is stored as out-of-band, and the next plan shows it as drift.
	code, body = f.do(t, "PUT", "/v1/resources/Application/webgoat", token, strings.NewReader(`{"versions":["1.0"]}`))
	if code != 200 {
		t.Fatalf("edit: %d %s", code, body)
	}
	r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat")
	if r.ModifiedBy != "admin" || r.Revision != "" {
		t.Fatalf("edit stored as %+v", r)
	}
	code, body = f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	var pr PlanResponse
	json.Unmarshal([]byte(body), &pr)
	if code != 200 || len(pr.Plan.Updates) != 1 || !pr.Plan.Updates[0].Drift {
		t.Fatalf("plan after a console edit: %d %s", code, body)
	}

	tests := []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/v1/resources/Role/Administrator", `{"permissions":["x"]}`, http.StatusConflict},
		{"PUT", "/v1/resources/Nope/x", `{}`, http.StatusNotFound},
		{"PUT", "/v1/resources/Application/x", `{"versons":[]}`, http.StatusBadRequest},
		{"DELETE", "/v1/resources/Application/missing", ``, http.StatusNotFound},
		{"DELETE", "/v1/resources/Application/webgoat", ``, http.StatusNoContent},
		{"GET", "/v1/resources/Application/webgoat", ``, http.StatusNotFound},
	}
	// Built-in roles exist once a spec was applied.
	for _, tt := range tests {
		code, body := f.do(t, tt.method, tt.path, token, strings.NewReader(tt.body))
		if code != tt.want {
			t.Errorf("%s %s: %d, want %d (%s)", tt.method, tt.path, code, tt.want, body)
		}
	}
}

func TestApplyRefusedWhenFollowingASource(t *testing.T) {
	f := newFixture(t, "https://git.example.com/spec.git")
	code, body := f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != http.StatusConflict || !strings.Contains(body, "git.example.com") {
		t.Fatalf("apply in pull mode: %d %s", code, body)
	}
}

// A console edit goes through the spec's own validation, on the whole set
// it would produce: what a spec document may not say, an edit may not either.
func TestConsoleEditsAreValidatedLikeSpecDocuments(t *testing.T) {
	f := newFixture(t, "")
	const scimDoc = "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: entra\nspec:\n  enabled: true\n  tokens:\n    - name: t\n      sha256: " + spec.DemoTokenSHA256 + "\n"
	const samlDoc = "apiVersion: idrecon.io/v1alpha1\nkind: SamlServiceProvider\nmetadata:\n  name: entra\nspec:\n  entityID: urn:idrecon\n  baseURL: https://idrecon.example.com\n  idp:\n    metadataURL: https://idp.example.com/metadata\n    requireSignedMetadata: false\n"
	code, body := f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"apps.yaml": appDoc, "scim.yaml": scimDoc, "saml.yaml": samlDoc}))
	if code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	const samlSpec = `"entityID":"urn:idrecon","baseURL":"https://idrecon.example.com","idp":{"metadataURL":"https://idp.example.com/metadata","requireSignedMetadata":false}`
	tests := []struct {
		name, path, body string
		want             int
		wantField        string
	}{
		{"clock skew of a year", "/v1/resources/SamlServiceProvider/entra", `{` + samlSpec + `,"allowedClockSkew":"8760h"}`, 400, "spec.allowedClockSkew: 8760h0m0s is more than the maximum"},
		{"sha256 not hex", "/v1/resources/ScimProvisioning/entra", `{"enabled":true,"tokens":[{"name":"t","sha256":"` + strings.Repeat("z", 64) + `"}]}`, 400, "spec.tokens[0].sha256: must be 64 hex characters"},
		{"basePath /", "/v1/resources/ScimProvisioning/entra", `{"enabled":true,"basePath":"/","tokens":[{"name":"t","sha256":"` + spec.DemoTokenSHA256 + `"}]}`, 400, "spec.basePath: must be an absolute URL path"},
		{"reference to a missing application", "/v1/resources/AccessAssignment/devs", `{"subject":{"group":"devs"},"applicationVersions":["nope/1.0"]}`, 400, `spec.applicationVersions[0]: no Application named \"nope\"`},
		{"good edit", "/v1/resources/SamlServiceProvider/entra", `{` + samlSpec + `,"allowedClockSkew":"3m"}`, 200, ""},
		{"good reference", "/v1/resources/AccessAssignment/devs", `{"subject":{"group":"devs"},"applicationVersions":["webgoat/2.0"]}`, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.do(t, "PUT", tt.path, token, strings.NewReader(tt.body))
			if code != tt.want || !strings.Contains(body, tt.wantField) {
				t.Fatalf("PUT %s: %d %s, want %d naming %q", tt.path, code, body, tt.want, tt.wantField)
			}
		})
	}
	r, _ := f.st.Read().Resource(spec.KindSamlServiceProvider, "entra")
	if sp := r.Spec.(*spec.SamlServiceProvider); sp.AllowedClockSkew.D() != 3*time.Minute || sp.NameIDFormat != spec.DefaultNameIDFormat {
		t.Errorf("stored %+v, want the good edit with the loader's defaults", sp)
	}
	r, _ = f.st.Read().Resource(spec.KindScimProvisioning, "entra")
	if sp := r.Spec.(*spec.ScimProvisioning); sp.BasePath != spec.DefaultScimBasePath || sp.Tokens[0].SHA256 != spec.DemoTokenSHA256 {
		t.Errorf("a refused edit changed the runtime: %+v", sp)
	}
}

// An upload the daemon cannot unpack for its own reasons (no room for it)
// is its failure, 500, not the spec's 422.
func TestUploadDirFailureIsServerError(t *testing.T) {
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rec, err := reconcile.New(reconcile.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "gone")
	s, err := New(Config{Store: st, Reconciler: rec, Token: token, UploadDir: missing})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv, st: st, rec: rec}
	code, body := f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != http.StatusInternalServerError || !strings.Contains(body, "gone") {
		t.Fatalf("plan with no upload dir: %d %s, want 500 naming the dir", code, body)
	}
}
