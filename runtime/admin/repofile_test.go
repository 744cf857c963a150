package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/spec"
)

// repoSecretsSpec is a spec repo whose Certificate's key and Gateway's
// shared secret are files relative to the repo.
func repoSecretsSpec(t *testing.T) string {
	t.Helper()
	certPEM, keyPEM := selfSigned(t)
	dir := t.TempDir()
	indent := func(s string) string { return "    " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n    ") }
	files := map[string]string{
		"secrets/sp.key":    keyPEM,
		"secrets/gw-secret": "gateway-shared-secret-value\n",
		"spec.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: sp\nspec:\n  usage: saml-sp-signing\n  pem: |\n" +
			indent(certPEM) + "\n  privateKeyFrom:\n    file: secrets/sp.key\n" +
			"---\napiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n  upstream: http://127.0.0.1:1\n  pathPrefix: /app\n" +
			"  sharedSecret:\n    header: X-Idrecon-Secret\n    valueFrom:\n      file: secrets/gw-secret\n",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// durableAdmin is a daemon's store on the state file at path and the
// admin API over it; closing it is the daemon stopping.
type durableAdmin struct {
	*fixture
	close func()
}

func openDurableAdmin(t *testing.T, path string) *durableAdmin {
	t.Helper()
	db, err := durable.Open(path, durable.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{Journal: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	rec, err := reconcile.New(reconcile.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Reconciler: rec, Token: token, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	closed := false
	d := &durableAdmin{fixture: &fixture{srv: srv, st: st, rec: rec}, close: func() {
		if !closed {
			closed = true
			srv.Close()
			st.Close()
			db.Close()
		}
	}}
	t.Cleanup(d.close)
	return d
}

// getSpec returns the spec of what GET shows at path.
func getSpec(t *testing.T, f *fixture, path string) string {
	t.Helper()
	code, resp := f.do(t, "GET", path, token, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, resp)
	}
	var got struct{ Spec json.RawMessage }
	if err := json.Unmarshal([]byte(resp), &got); err != nil {
		t.Fatal(err)
	}
	return string(got.Spec)
}

// A Certificate whose key, or a Gateway whose shared secret, is a file
// relative to the spec repo cannot be read again for an edit: there is no
// repo behind one. Right after the spec was applied the runtime holds what
// the loader read; after a restart it does not (neither is persisted)
// until the next apply. An edit that keeps the reference uses what the
// runtime holds, and one that cannot is refused with a 400 that names the
// field and says why, at either time.
func TestEditOfRepoFileSecretsAcrossRestart(t *testing.T) {
	repo := repoSecretsSpec(t)
	path := durable.Path(t.TempDir())
	d := openDurableAdmin(t, path)
	set, err := spec.Load(context.Background(), repo, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.rec.Apply(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	paths := []string{"/v1/resources/Certificate/sp", "/v1/resources/Gateway/app"}
	bodies := map[string]string{}
	for _, p := range paths {
		bodies[p] = getSpec(t, d.fixture, p)
		code, resp := d.do(t, "PUT", p, token, strings.NewReader(bodies[p]))
		if code != http.StatusOK {
			t.Errorf("after apply, PUT %s of what GET showed: %d %s, want 200", p, code, resp)
		}
	}
	c, _ := d.st.Read().Resource(spec.KindCertificate, "sp")
	if c == nil || c.Spec.(*spec.Certificate).PrivateKey == nil {
		t.Errorf("after the edit the certificate lost its key")
	}
	g, _ := d.st.Read().Resource(spec.KindGateway, "app")
	if g == nil || g.Spec.(*spec.Gateway).SharedSecret.Value == "" {
		t.Errorf("after the edit the gateway lost its shared secret")
	}
	d.close()

	d = openDurableAdmin(t, path)
	// The Gateway's secret, not resolved since the restart, held up every
	// edit, of anything: Validate tried to read its file again.
	if code, resp := d.do(t, "PUT", "/v1/resources/Application/webgoat", token, strings.NewReader(`{"versions":["1.0"]}`)); code != http.StatusOK {
		t.Errorf("after a restart, PUT of an unrelated Application: %d %s, want 200", code, resp)
	}
	for _, tt := range []struct{ path, field string }{
		{"/v1/resources/Certificate/sp", "spec.privateKeyFrom.file"},
		{"/v1/resources/Gateway/app", "spec.sharedSecret.valueFrom.file"},
	} {
		code, resp := d.do(t, "PUT", tt.path, token, strings.NewReader(bodies[tt.path]))
		if code != http.StatusBadRequest || !strings.Contains(resp, tt.field) || !strings.Contains(resp, "restart") {
			t.Errorf("after a restart, PUT %s: %d %s, want 400 naming %s and saying why", tt.path, code, resp, tt.field)
		}
	}
}

// What the runtime holds of a repo file serves only an edit that keeps the
// reference, and a key only the certificate it matches; every other edit
// of such a reference is refused with a 400 that names the field.
func TestEditOfRepoFileSecretsRefusals(t *testing.T) {
	repo := repoSecretsSpec(t)
	f := newFixtureEnv(t, nil)
	set, err := spec.Load(context.Background(), repo, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.rec.Apply(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	otherPEM, _ := selfSigned(t)
	cert := func(usage, pem, file string) string {
		b, _ := json.Marshal(map[string]any{"usage": usage, "pem": pem, "privateKeyFrom": map[string]string{"file": file}})
		return string(b)
	}
	gw := func(file string) string {
		b, _ := json.Marshal(map[string]any{"upstream": "http://127.0.0.1:1", "pathPrefix": "/app",
			"sharedSecret": map[string]any{"header": "X-Idrecon-Secret", "valueFrom": map[string]string{"file": file}}})
		return string(b)
	}
	held := f.st.Read()
	r, _ := held.Resource(spec.KindCertificate, "sp")
	certPEM := r.Spec.(*spec.Certificate).PEM
	tests := []struct {
		name, path, body, field, why string
	}{
		{"new certificate", "/v1/resources/Certificate/new", cert(spec.UsageSamlSPSigning, certPEM, "secrets/sp.key"),
			"spec.privateKeyFrom.file", "does not reference it"},
		{"other key file", "/v1/resources/Certificate/sp", cert(spec.UsageSamlSPSigning, certPEM, "secrets/other.key"),
			"spec.privateKeyFrom.file", "does not reference it"},
		{"other usage", "/v1/resources/Certificate/sp", cert(spec.UsageTLS, certPEM, "secrets/sp.key"),
			"spec.privateKeyFrom.file", "checked for usage"},
		{"certificate the key does not match", "/v1/resources/Certificate/sp", cert(spec.UsageSamlSPSigning, otherPEM, "secrets/sp.key"),
			"spec.privateKeyFrom.file", "does not match"},
		{"other secret file", "/v1/resources/Gateway/app", gw("secrets/other"),
			"spec.sharedSecret.valueFrom.file", "does not reference it"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := f.do(t, "PUT", tt.path, token, strings.NewReader(tt.body))
			if code != http.StatusBadRequest || !strings.Contains(resp, tt.field) || !strings.Contains(resp, tt.why) {
				t.Errorf("PUT: %d %s, want 400 naming %s and saying %q", code, resp, tt.field, tt.why)
			}
		})
	}
	if now := f.st.Read(); now != held {
		for _, p := range []struct{ kind, name string }{{spec.KindCertificate, "sp"}, {spec.KindCertificate, "new"}, {spec.KindGateway, "app"}} {
			a, _ := held.Resource(p.kind, p.name)
			b, _ := now.Resource(p.kind, p.name)
			if a != b {
				t.Errorf("a refused edit changed %s/%s", p.kind, p.name)
			}
		}
	}
}
