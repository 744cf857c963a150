package scim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const (
	testToken  = "tok-entra-0123456789abcdef0123456789abcdef"
	testToken2 = "tok-rotated-fedcba9876543210fedcba9876543210"
	flagQuery  = "aadOptscim062020"
)

// modes are Entra's two request shapes: without and with the flag in the
// tenant URL.
var modes = []struct {
	name string
	flag bool
}{{"noflag", false}, {"flag", true}}

// forModes runs test once per flag mode.
func forModes(t *testing.T, test func(t *testing.T, flag bool)) {
	t.Helper()
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { test(t, m.flag) })
	}
}

func hashHex(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

type env struct {
	t     *testing.T
	st    *store.Store
	srv   *httptest.Server
	logs  *logsink.Buffer
	audit audit.Memory
	flag  bool
	base  string
}

func defaultConfig() *spec.ScimProvisioning {
	return &spec.ScimProvisioning{
		Enabled: true,
		Tokens:  []spec.ScimToken{{Name: "entra", SHA256: hashHex(testToken)}, {Name: "entra-next", SHA256: hashHex(testToken2)}},
	}
}

func newEnv(t *testing.T, flag bool, cfg *spec.ScimProvisioning) *env {
	t.Helper()
	return newEnvWith(t, flag, cfg, store.Options{}, Options{})
}

// newEnvWith is newEnv on a store made with stOpts and a server with opts
// (its Logger, Audit and MaxBodyBytes are the env's).
func newEnvWith(t *testing.T, flag bool, cfg *spec.ScimProvisioning, stOpts store.Options, opts Options) *env {
	t.Helper()
	st, err := store.New(stOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{t: t, st: st, logs: &logsink.Buffer{}, flag: flag, base: spec.DefaultScimBasePath}
	if cfg != nil {
		e.setConfig(cfg)
		if cfg.BasePath != "" {
			e.base = cfg.BasePath
		}
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	opts.Logger, opts.Audit, opts.MaxBodyBytes = logger, &e.audit, 64<<10
	e.srv = httptest.NewServer(NewServer(st, opts))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) setConfig(cfg *spec.ScimProvisioning) {
	e.t.Helper()
	err := e.st.Update(context.Background(), func(txn *store.Txn) error {
		return txn.Insert(store.TableResources, &store.Resource{Kind: spec.KindScimProvisioning, Name: "scim", Spec: cfg})
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// url returns the request URL for path below the base path, with the flag
// query parameter when the env runs in flag mode (Entra keeps the tenant
// URL's query on every request).
func (e *env) url(path string) string {
	u := e.srv.URL + e.base + path
	if e.flag {
		if strings.Contains(u, "?") {
			u = strings.Replace(u, "?", "?"+flagQuery+"&", 1)
		} else {
			u += "?" + flagQuery
		}
	}
	return u
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("status %d body %q: %v", r.status, r.body, err)
	}
	return m
}

// doAs sends a request with token (none when ""), body as JSON text.
func (e *env) doAs(token, method, path, body string, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.url(path), rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) do(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	return e.doAs(testToken, method, path, body, hdr...)
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path, body string, hdr ...string) resp {
	e.t.Helper()
	r := e.do(method, path, body, hdr...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.status, want, r.body)
	}
	if ct := r.header.Get("Content-Type"); len(r.body) > 0 && ct != ContentType {
		e.t.Fatalf("%s %s: content type %q", method, path, ct)
	}
	return r
}

// createUser posts an Entra-shaped user and returns its id.
func (e *env) createUser(userName, externalID, email string) string {
	e.t.Helper()
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	"externalId":` + q(externalID) + `,"userName":` + q(userName) + `,"active":true,"displayName":"Someone",
	"emails":[{"primary":true,"type":"work","value":` + q(email) + `}],
	"meta":{"resourceType":"User"},"name":{"formatted":"Some One","familyName":"One","givenName":"Some"},"roles":[]}`
	r := e.must(http.StatusCreated, "POST", "/Users", body)
	return r.json(e.t)["id"].(string)
}

func (e *env) createGroup(name, externalID string) string {
	e.t.Helper()
	body := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group","http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
	"externalId":` + q(externalID) + `,"displayName":` + q(name) + `,"meta":{"resourceType":"Group"}}`
	r := e.must(http.StatusCreated, "POST", "/Groups", body)
	return r.json(e.t)["id"].(string)
}

func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// dig walks a decoded document: keys for objects, ints for list indexes.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}
