package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// fuzzEnv is the environment the fuzzed edits' secrets resolve from.
var fuzzEnv = map[string]string{"SCIM_TOKEN": "scim-token-value-0123456789abcdefghij", "GW_SECRET": "gateway-shared-secret-value"}

func fuzzValidate(docs []*spec.Document) (*spec.Set, error) {
	return spec.Validate(docs, spec.LoadOptions{Getenv: func(k string) string { return fuzzEnv[k] }})
}

// newFuzzServer is a Server on a fresh store holding an Application the
// fuzzed assignments may refer to. Fresh for each input, so that a crasher
// reproduces on its own.
func newFuzzServer(t testing.TB) (*Server, *store.Store) {
	t.Helper()
	st, rec := newStateAndReconciler(t)
	err := st.Update(context.Background(), func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: "webgoat",
			Spec: &spec.Application{Versions: []string{"1.0", "2.0"}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Reconciler: rec, Token: token, Validate: fuzzValidate})
	if err != nil {
		t.Fatal(err)
	}
	return s, st
}

// serve sends one request straight to s, as the server would parse its
// target; ok is false for a target no server would hand on.
func serve(s http.Handler, method, target, auth string, body string) (rec *httptest.ResponseRecorder, ok bool) {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, false
	}
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	req.URL, req.RequestURI = u, target
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec, true
}

// apiError reports whether body is the API's error JSON.
func apiError(body []byte) bool {
	var e Error
	return json.Unmarshal(body, &e) == nil && e.Error != ""
}

// FuzzPutResource edits a resource with any kind, name and body: the
// answer is a 2xx, or a 4xx in the API's error JSON, and what a 2xx stored
// is answered by GET and accepted by the spec's validation, with the rest
// of the runtime, as the loader would accept it.
func FuzzPutResource(f *testing.F) {
	kinds := append(append([]string{}, spec.Kinds...), "application", "Bogus", "", "Application ", "..", "%")
	certPEM, _ := selfSigned(f)
	seeds := []struct {
		kind       uint8
		name, body string
	}{
		{3, "payments-api", `{"versions":["2025.1","2025.2"]}`},
		{3, "webgoat", `{"versions":["1.0"]}`},
		{3, "x", `{"versions":["1.0"]} {"versions":["2.0"]}`},
		{3, "x", `{"versions":["1.0"],"Versions":["2.0"]}`},
		{3, "x", ``},
		{3, "..", `{"versions":["1.0"]}`},
		{3, "a/b", `{"versions":["1.0"]}`},
		{4, "Release Manager", `{"description":"Creates versions.","permissions":["version.create","version.view","report.view"]}`},
		{4, "Administrator", `{"permissions":["version.view"]}`},
		{4, "custom", `{"builtin":true,"permissions":["version.view"]}`},
		{5, "appsec-admins", `{"subject":{"group":"AppSec Admins"},"roles":["Administrator"]}`},
		{5, "alice", `{"subject":{"user":"alice@contoso.com"},"roles":["View Only"],"applicationVersions":["webgoat/2.0"]}`},
		{5, "devs", `{"subject":{"group":"devs"},"applicationVersions":["webgoat/*"]}`},
		{6, "appsec", `{"upstream":"http://127.0.0.1:8180","pathPrefix":"/ssc","userHeader":"username","rolesHeader":"X-Idrecon-Roles","versionsHeader":"X-Idrecon-Versions"}`},
		{6, "app", `{"upstream":"http://127.0.0.1:1","pathPrefix":"/app","sharedSecret":{"header":"X-Idrecon-Secret","valueFrom":{"env":"GW_SECRET"}}}`},
		{6, "app", `{"upstream":"http://127.0.0.1:1","pathPrefix":"/app","sharedSecret":{"header":"X-Idrecon-Secret","valueFrom":{"file":"secret"}}}`},
		{0, "scim", `{"enabled":true,"tokens":[{"name":"entra","valueFrom":{"env":"SCIM_TOKEN"}}]}`},
		{0, "scim", `{"enabled":true,"tokens":[{"name":"entra","valueFrom":{"env":"SCIM_TOKEN"},"sha256":"` + strings.Repeat("0", 64) + `"}]}`},
		{1, "entra-signing", `{"usage":"saml-idp-signing","file":"idp/entra-signing.cer"}`},
		{1, "ca", mustJSON(f, map[string]any{"usage": spec.UsageSamlIDPSigning, "pem": certPEM})},
		{2, "entra", `{"enabled":true,"entityID":"http://localhost:8080/saml/metadata","baseURL":"http://localhost:8080","idp":{"metadataFile":"idp/federationmetadata.xml","signingCertificates":["entra-signing"]},"nameIDFormat":"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"}`},
		{2, "sp", `{"enabled":false,"entityID":"https://app.example.com/saml","baseURL":"https://app.example.com","idp":{"metadataURL":"https://login.example.com/metadata.xml","requireSignedMetadata":false}}`},
		{7, "x", `{"versions":["1.0"]}`},
		{9, "x", `{}`},
		{3, "x", `[` + strings.Repeat(`[`, 100) + strings.Repeat(`]`, 100) + `]`},
		{3, "x", `null`},
	}
	for _, s := range seeds {
		f.Add(s.kind, s.name, s.body)
	}
	f.Fuzz(func(t *testing.T, kindSel uint8, name, body string) {
		kind := kinds[int(kindSel)%len(kinds)]
		s, st := newFuzzServer(t)
		target := "/v1/resources/" + url.PathEscape(kind) + "/" + url.PathEscape(name)
		rec, ok := serve(s, "PUT", target, "Bearer "+token, body)
		if !ok {
			return
		}
		code := rec.Code
		switch {
		case code >= 500:
			t.Fatalf("PUT %s %q: %d %s", target, body, code, rec.Body)
		case code/100 == 4:
			if !apiError(rec.Body.Bytes()) {
				t.Fatalf("PUT %s %q: %d without the API's error JSON: %s", target, body, code, rec.Body)
			}
			return
		case code/100 != 2:
			t.Fatalf("PUT %s %q: %d %s, want a 2xx or 4xx", target, body, code, rec.Body)
		}
		get, _ := serve(s, "GET", target, "Bearer "+token, "")
		var got Resource
		if get.Code != http.StatusOK || json.Unmarshal(get.Body.Bytes(), &got) != nil || got.Kind != kind || got.Name != name {
			t.Fatalf("PUT %s %q stored (%d), then GET: %d %s", target, body, code, get.Code, get.Body)
		}
		res, err := st.Read().Resources("")
		if err != nil {
			t.Fatal(err)
		}
		var docs []*spec.Document
		for _, r := range res {
			if !utf8.ValidString(r.Name) {
				t.Errorf("stored %s/%q: a spec file, YAML, holds no name that is not UTF-8", r.Kind, r.Name)
			}
			docs = append(docs, &spec.Document{APIVersion: spec.APIVersion, Kind: r.Kind, Metadata: spec.Metadata{Name: r.Name},
				Spec: standIn(r).Spec, Pos: spec.Position{File: r.Kind + "/" + r.Name}})
		}
		if _, err := fuzzValidate(docs); err != nil {
			t.Errorf("PUT %s %q stored a runtime the spec's validation refuses: %v", target, body, err)
		}
	})
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// FuzzPrivatePathsNeedToken sends any method, path and Authorization
// header but the admin token's: below /v1 or /debug, as sent or as the
// router would clean it, the answer is a 401, or a 400 for a dot segment,
// and never a redirect that would tell which routes exist.
func FuzzPrivatePathsNeedToken(f *testing.F) {
	s, _ := newFuzzServer(f)
	for _, p := range []string{"/v1/status", "/v1//status", "/debug/pprof", "/debug//pprof/heap", "/v1/users/../status",
		"/./v1/status", "/x/../v1/status", "/x/..//v1/backup", "/./debug/pprof/", "/v1/resources/Application/%2E%2E",
		"/v1/resources/Application/a%2Fb", "/V1/status", "/v1", "/v1/", "/debug", "/v1%2Fstatus", "/%761/status",
		"/healthz", "//healthz", "/v1/resources/Application/..", "/v1/./resources", "/v1/resources?x=/../"} {
		for _, auth := range []string{"", "Bearer wrong", "bearer  " + token + "x", "Basic " + token, "Bearer", "Bearer " + token[:len(token)-1], "Bearer\t" + token} {
			f.Add("GET", p, auth)
		}
		f.Add("DELETE", p, "")
		f.Add("OPTIONS", p, "")
		f.Add("PUT", p, "Bearer x")
	}
	f.Fuzz(func(t *testing.T, method, target, auth string) {
		if tok, ok := bearer(auth); ok && tok == token {
			return
		}
		// A server hands on only a method that is a token and a target
		// in origin form; httptest.NewRequest needs a clean header value.
		if method == "" || strings.ContainsFunc(method, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune("()<>@,;:\\\"/[]?={}", r) }) ||
			!strings.HasPrefix(target, "/") || strings.ContainsAny(auth, "\r\n\x00") {
			return
		}
		rec, ok := serve(s, method, target, auth, "")
		if !ok {
			return
		}
		u, _ := url.ParseRequestURI(target)
		p := u.Path
		if !under(p, "/v1") && !under(p, "/debug") && !under(path.Clean(p), "/v1") && !under(path.Clean(p), "/debug") {
			if rec.Code/100 == 3 && rec.Header().Get("Location") == "" {
				t.Errorf("%s %s: %d without a Location", method, target, rec.Code)
			}
			return
		}
		switch rec.Code {
		case http.StatusUnauthorized:
		case http.StatusBadRequest:
			if !dotSegment(u.EscapedPath()) && !strings.Contains(u.EscapedPath(), "//") {
				t.Errorf("%s %s with %q: 400 %s, without a dot or empty segment", method, target, auth, rec.Body)
			}
		default:
			t.Errorf("%s %s with %q: %d (Location %q) %s, want 401", method, target, auth, rec.Code, rec.Header().Get("Location"), rec.Body)
		}
	})
}
