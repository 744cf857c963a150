package admin

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	s   *Server
	st  *store.Store
	rec *reconcile.Reconciler
}

func newFixture(t *testing.T, source string) *fixture {
	t.Helper()
	return newFixtureWith(t, source, nil)
}

// newStateAndReconciler is an in-memory store, closed when the test ends,
// and a reconciler on it: what every admin Server in these tests serves.
func newStateAndReconciler(t testing.TB) (*store.Store, *reconcile.Reconciler) {
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
	return st, rec
}

// newFixtureWith is newFixture with edit, when not nil, adjusting the
// server's Config first.
func newFixtureWith(t *testing.T, source string, edit func(*Config)) *fixture {
	t.Helper()
	st, rec := newStateAndReconciler(t)
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
	return &fixture{srv: srv, s: s, st: st, rec: rec}
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
	missing := filepath.Join(t.TempDir(), "gone")
	f := newFixtureWith(t, "", func(c *Config) { c.UploadDir = missing })
	code, body := f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != http.StatusInternalServerError || !strings.Contains(body, "gone") {
		t.Fatalf("plan with no upload dir: %d %s, want 500 naming the dir", code, body)
	}
}

// The Authorization header as clients spell it: the scheme is
// case-insensitive (RFC 9110 §11.1) and may be followed by more than one
// space (RFC 6750's 1*SP); anything else, and the token anywhere but that
// header, is refused alike with a 401 and a challenge.
func TestAuthHeader(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		name, path, header string
		want               int
	}{
		{"canonical", "/v1/status", "Bearer " + token, 200},
		{"scheme in lower case", "/v1/status", "bearer " + token, 200},
		{"scheme in upper case", "/v1/status", "BEARER " + token, 200},
		{"two spaces", "/v1/status", "Bearer  " + token, 200},
		{"no header", "/v1/status", "", 401},
		{"blank", "/v1/status", "   ", 401},
		{"scheme alone", "/v1/status", "Bearer", 401},
		{"scheme and a space", "/v1/status", "Bearer ", 401},
		{"token without scheme", "/v1/status", token, 401},
		{"other scheme", "/v1/status", "Basic " + token, 401},
		{"token with a tail", "/v1/status", "Bearer " + token + " x", 401},
		{"token's prefix", "/v1/status", "Bearer " + token[:len(token)-1], 401},
		{"token in the query", "/v1/status?access_token=" + token, "", 401},
		{"backup", "/v1/backup", "", 401},
		{"users", "/v1/users", "", 401},
		{"access", "/v1/access/x", "", 401},
		{"pprof trace", "/debug/pprof/trace", "", 401},
		{"pprof symbol", "/debug/pprof/symbol", "", 401},
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "{}") })
	f = newFixtureWith(t, "", func(c *Config) {
		c.Backup = func(w io.Writer) error { _, err := io.WriteString(w, "backup"); return err }
		c.Routes = map[string]http.Handler{"/users": ok, "/access/": ok}
	})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", f.srv.URL+tt.path, nil)
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want {
				t.Fatalf("GET %s with %q: %d, want %d (%s)", tt.path, tt.header, resp.StatusCode, tt.want, b)
			}
			if tt.want == 401 {
				var e Error
				if resp.Header.Get("WWW-Authenticate") == "" || json.Unmarshal(b, &e) != nil || e.Error == "" {
					t.Errorf("401 without a challenge or an error body: %v %s", resp.Header, b)
				}
			}
		})
	}
}

// bigBundle is a bundle of one file of n bytes, stored uncompressed so
// that the upload is as large as the file.
func bigBundle(t *testing.T, n int) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	gz, _ := gzip.NewWriterLevel(&buf, gzip.NoCompression)
	tw := tar.NewWriter(gz)
	if err := tw.WriteHeader(&tar.Header{Name: "big.yaml", Mode: 0o600, Size: int64(n), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(bytes.Repeat([]byte("#"), n)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// A body past the limit is the client's mistake of size, 413, not a
// malformed request (400): the CLI tells the user to split the spec, not to
// fix its syntax.
func TestOversizedBodies(t *testing.T) {
	f := newFixtureWith(t, "", func(c *Config) { c.MaxUnpack = 2 * MaxUpload })
	big := `{"versions":["` + strings.Repeat("x", 1<<20) + `"]}`
	tests := []struct {
		name, method, path string
		body               func() io.Reader
	}{
		{"edit", "PUT", "/v1/resources/Application/x", func() io.Reader { return strings.NewReader(big) }},
		{"plan", "POST", "/v1/plan", func() io.Reader { return bigBundle(t, MaxUpload+1<<20) }},
		{"apply", "POST", "/v1/apply", func() io.Reader { return bigBundle(t, MaxUpload+1<<20) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := f.do(t, tt.method, tt.path, token, tt.body())
			var e Error
			if code != http.StatusRequestEntityTooLarge || json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
				t.Fatalf("%s %s: %d %.200s, want 413 with an error body", tt.method, tt.path, code, body)
			}
		})
	}
}

// Status, which the console shows too, hides the secrets a URL may carry
// (a Gateway upstream's userinfo), as plans do; a resource as stored keeps
// them for the admin who reads it to write it back.
func TestStatusHidesURLSecrets(t *testing.T) {
	const secret = "s3cretURLtoken"
	f := newFixtureWith(t, "", func(c *Config) {
		c.Gateways = func() []GatewayStatus {
			return []GatewayStatus{{Name: "app", Upstream: "https://idrecon:" + secret + "@app.internal", Serving: true}}
		}
	})
	const samlDoc = "apiVersion: idrecon.io/v1alpha1\nkind: SamlServiceProvider\nmetadata:\n  name: entra\nspec:\n  entityID: urn:idrecon\n  baseURL: https://idrecon.example.com\n  idp:\n    metadataURL: https://idp.example.com/metadata?appid=1&token=" + secret + "\n    requireSignedMetadata: false\n"
	if code, body := f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"saml.yaml": samlDoc})); code != 200 {
		t.Fatalf("apply: %d %s", code, body)
	}
	if code, body := f.do(t, "GET", "/v1/status", token, nil); code != 200 || strings.Contains(body, secret) {
		t.Errorf("GET /v1/status: %d, shows the URL's secret: %s", code, body)
	}
	// A resource is read to be written back or exported as the spec: its
	// URLs must stay whole, or the round trip would store "REDACTED".
	if code, body := f.do(t, "GET", "/v1/resources/SamlServiceProvider/entra", token, nil); code != 200 || !strings.Contains(body, secret) {
		t.Errorf("GET /v1/resources/SamlServiceProvider/entra: %d, the metadataURL is not whole: %s", code, body)
	}
	// The stored value is untouched: only its display is redacted.
	r, _ := f.st.Read().Resource(spec.KindSamlServiceProvider, "entra")
	if !strings.Contains(r.Spec.(*spec.SamlServiceProvider).IDP.MetadataURL, secret) {
		t.Error("redacting the answer changed the stored resource")
	}
}

// A backup that fails before it sent anything says so (500); one that
// fails midway breaks the connection, so that no client takes a
// truncated snapshot for a whole one.
func TestBackupFailure(t *testing.T) {
	tests := []struct {
		name   string
		backup func(w io.Writer) error
		want   int // 0: the body must not read to its end
	}{
		{"before any byte", func(io.Writer) error { return errors.New("snapshot: store closed") }, 500},
		{"midway", func(w io.Writer) error {
			io.WriteString(w, "IDRECON-BACKUP part")
			w.(http.Flusher).Flush()
			return errors.New("disk read error")
		}, 0},
		{"whole", func(w io.Writer) error { _, err := io.WriteString(w, "IDRECON-BACKUP"); return err }, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureWith(t, "", func(c *Config) { c.Backup = tt.backup })
			req, _ := http.NewRequest("GET", f.srv.URL+"/v1/backup", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, rerr := io.ReadAll(resp.Body)
			switch tt.want {
			case 0:
				if rerr == nil {
					t.Fatalf("a backup that failed midway read to its end: %d %q", resp.StatusCode, b)
				}
			case 500:
				var e Error
				if resp.StatusCode != 500 || json.Unmarshal(b, &e) != nil || !strings.Contains(e.Error, "store closed") {
					t.Fatalf("%d %q, want 500 with the reason", resp.StatusCode, b)
				}
				if resp.Header.Get("Content-Disposition") != "" {
					t.Errorf("an error offered as a backup file: %v", resp.Header)
				}
			default:
				if resp.StatusCode != tt.want || rerr != nil || string(b) != "IDRECON-BACKUP" {
					t.Fatalf("%d %q %v", resp.StatusCode, b, rerr)
				}
			}
		})
	}
}

// A bundle that unpacks past the spec's size limit is refused as the loader
// refuses such a folder (422, the limit as a problem naming the file), so
// that the CLI reports it as it reports a local load, whatever the source.
func TestUploadPastTheSpecLimit(t *testing.T) {
	f := newFixtureWith(t, "", func(c *Config) { c.MaxUnpack = 1 << 10 })
	for _, path := range []string{"/v1/plan", "/v1/apply"} {
		code, body := f.do(t, "POST", path, token, bigBundle(t, 2<<10))
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || code != http.StatusUnprocessableEntity ||
			len(e.Problems) != 1 || e.Problems[0].File != "big.yaml" {
			t.Errorf("POST %s: %d %s, want 422 with the limit as a problem in big.yaml", path, code, body)
		}
	}
}

// Requests no route takes are answered in the API's error JSON with the
// status the router decided (404, or 405 with Allow), and below /v1 and
// /debug only with the token, so that nobody without it learns which
// routes exist.
func TestUnroutedRequests(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		method, path, tok string
		want              int
		allow             string
	}{
		{"GET", "/v1/nope", token, 404, ""},
		{"GET", "/v1/nope", "", 401, ""},
		{"GET", "/debug/nope", "", 401, ""},
		{"DELETE", "/v1/status", token, 405, "GET, HEAD"},
		{"DELETE", "/v1/status", "", 401, ""},
		{"GET", "/v1/apply", token, 405, "POST"},
		{"GET", "/nope", "", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.tok, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, f.srv.URL+tt.path, nil)
			if tt.tok != "" {
				req.Header.Set("Authorization", "Bearer "+tt.tok)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var e Error
			if resp.StatusCode != tt.want || json.Unmarshal(b, &e) != nil || e.Error == "" {
				t.Fatalf("%d %q, want %d with an error body", resp.StatusCode, b, tt.want)
			}
			if got := resp.Header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}

// A push to a suspended daemon applies nothing: the answer says so with a
// 409, as for any state of the daemon that refuses the request, not a 500.
func TestApplyToASuspendedDaemon(t *testing.T) {
	f := newFixtureWith(t, "", func(c *Config) {
		c.Push = func(context.Context, string) (*reconcile.Plan, error) {
			return nil, fmt.Errorf("push: %w", reconcile.ErrSuspended)
		}
	})
	code, body := f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
	if code != http.StatusConflict || !strings.Contains(body, "suspended") {
		t.Fatalf("apply while suspended: %d %s, want 409 saying suspended", code, body)
	}
}

// A plan against a suspended daemon says that nothing of it is applied
// until the daemon is resumed.
func TestPlanAgainstASuspendedDaemon(t *testing.T) {
	f := newFixture(t, "")
	say := "the daemon is suspended"
	for _, suspended := range []bool{false, true} {
		if suspended {
			f.rec.Suspend()
		}
		code, body := f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
		if code != http.StatusOK || strings.Contains(body, say) != suspended {
			t.Errorf("plan, suspended %t: %d %s; want 200, saying %q only while suspended", suspended, code, body, say)
		}
	}
}

// TestReadyzTellsReasonsOnlyWithTheToken: /readyz needs no token (load
// balancers and probes ask it), so without one it says which component is
// ready and which is not, and no more: the reasons (a reconcile error
// naming a spec file and line, the IdP, the SCIM path) are for a request
// with the token, as in /v1/status.
func TestReadyzTellsReasonsOnlyWithTheToken(t *testing.T) {
	const secretish = "scim.yaml:12: bad token reference"
	f := newFixtureWith(t, "test", func(c *Config) {
		c.Checks = []Check{
			{Name: "reconcile", Ready: func() (bool, string) { return false, secretish }},
			{Name: "scim", Ready: func() (bool, string) { return true, "serving /api/scim/v2" }},
		}
	})
	for _, tc := range []struct {
		tok  string
		want map[string]string
	}{
		{"", map[string]string{"reconcile": "not ready", "scim": "ready"}},
		{"wrong-token", map[string]string{"reconcile": "not ready", "scim": "ready"}},
		{token, map[string]string{"reconcile": "not ready: " + secretish, "scim": "ready (serving /api/scim/v2)"}},
	} {
		code, body := f.do(t, "GET", "/readyz", tc.tok, nil)
		var got map[string]string
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusServiceUnavailable || !maps.Equal(got, tc.want) {
			t.Errorf("token %q: %d %s, want 503 %v", tc.tok, code, body, tc.want)
		}
	}
}

// /readyz answers differently with the token and without, and changes
// from one moment to the next: a cache between a dashboard and the daemon
// must keep neither answer.
func TestReadyzIsNotCached(t *testing.T) {
	f := newFixture(t, "")
	resp, err := f.srv.Client().Get(f.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("/readyz Cache-Control %q, want no-store", got)
	}
}
