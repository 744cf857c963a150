package admin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// newFixtureEnv is newFixture with the environment the spec's secrets are
// resolved from under the test's control.
func newFixtureEnv(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	return newFixtureWith(t, "test", func(c *Config) {
		c.Validate = func(docs []*spec.Document) (*spec.Set, error) {
			return spec.Validate(docs, spec.LoadOptions{Getenv: func(k string) string { return env[k] }})
		}
	})
}

// selfSigned returns a certificate and its key, both PEM.
func selfSigned(t testing.TB) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Far-apart fixed dates: nothing depends on today.
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sp"},
		NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}))
}

// An edit may not carry what only the loader fills in: a keyFingerprint
// in the body made Validate take the private key as resolved, so a key
// that does not match the certificate (or does not exist) was accepted,
// and an honest GET-then-PUT (GET shows keyFingerprint) dropped the key
// from the runtime.
func TestCertificateEditCannotSkipTheKeyCheck(t *testing.T) {
	certPEM, keyPEM := selfSigned(t)
	_, otherKey := selfSigned(t)
	f := newFixtureEnv(t, map[string]string{"SP_KEY": keyPEM, "OTHER_KEY": otherKey})
	body := func(env string) string {
		b, _ := json.Marshal(map[string]any{"usage": spec.UsageSamlSPSigning, "pem": certPEM,
			"privateKeyFrom": map[string]string{"env": env}, "keyFingerprint": strings.Repeat("0", 64)})
		return string(b)
	}
	tests := []struct {
		name, env string
		want      int
	}{
		{"key that does not match", "OTHER_KEY", http.StatusBadRequest},
		{"key that is not there", "MISSING", http.StatusBadRequest},
		{"the certificate's key", "SP_KEY", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := f.do(t, "PUT", "/v1/resources/Certificate/sp", token, strings.NewReader(body(tt.env)))
			if code != tt.want {
				t.Fatalf("PUT: %d %s, want %d", code, resp, tt.want)
			}
		})
	}
	r, _ := f.st.Read().Resource(spec.KindCertificate, "sp")
	if r == nil {
		t.Fatal("the good edit was not stored")
	}
	if c := r.Spec.(*spec.Certificate); c.PrivateKey == nil || c.KeyFingerprint == strings.Repeat("0", 64) {
		t.Errorf("stored key %v, fingerprint %s: want the resolved key and its fingerprint", c.PrivateKey, c.KeyFingerprint)
	}
}

// Validating an edit must not write into the resources the runtime holds:
// they are shared with every reader of the store. A Gateway whose shared
// secret is not resolved yet (after a restart) had it resolved in place by
// an edit of anything else.
func TestEditDoesNotMutateStoredResources(t *testing.T) {
	const secret = "gateway-shared-secret-value"
	f := newFixtureEnv(t, map[string]string{"GW_SECRET": secret})
	sum := sha256.Sum256([]byte(secret))
	gw := &spec.Gateway{Upstream: "http://127.0.0.1:1", PathPrefix: "/app",
		SharedSecret: &spec.GatewaySecret{Header: "X-Idrecon-Secret", ValueFrom: &spec.ValueFrom{Env: "GW_SECRET"}, SHA256: hex.EncodeToString(sum[:])}}
	err := f.st.Update(context.Background(), func(tx *store.Txn) error {
		return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindGateway, Name: "app", Spec: gw})
	})
	if err != nil {
		t.Fatal(err)
	}
	before := f.st.Read()
	r, _ := before.Resource(spec.KindGateway, "app")
	held := r.Spec.(*spec.Gateway)

	code, resp := f.do(t, "PUT", "/v1/resources/Application/webgoat", token, strings.NewReader(`{"versions":["1.0"]}`))
	if code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, resp)
	}
	if held.SharedSecret.Value != "" {
		t.Errorf("an edit of Application/webgoat wrote the shared secret into the stored Gateway")
	}
}

// A body is one JSON value: what follows it is a mistake, not ignored.
func TestEditRefusesTrailingData(t *testing.T) {
	f := newFixtureEnv(t, nil)
	code, resp := f.do(t, "PUT", "/v1/resources/Application/webgoat", token, strings.NewReader(`{"versions":["1.0"]} {"versions":["2.0"]}`))
	if code != http.StatusBadRequest {
		t.Fatalf("PUT with trailing data: %d %s, want 400", code, resp)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r != nil {
		t.Errorf("a refused edit was stored: %+v", r.Spec)
	}
}

// A delete is an edit like a put: one that leaves the runtime with a
// reference the loader refuses is refused, and it was not, after which
// every later edit was refused for the dangling reference.
func TestDeleteIsValidatedLikeAnEdit(t *testing.T) {
	f := newFixtureEnv(t, nil)
	for _, e := range []struct{ path, body string }{
		{"/v1/resources/Application/webgoat", `{"versions":["1.0"]}`},
		{"/v1/resources/AccessAssignment/devs", `{"subject":{"group":"devs"},"applicationVersions":["webgoat/1.0"]}`},
	} {
		if code, resp := f.do(t, "PUT", e.path, token, strings.NewReader(e.body)); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", e.path, code, resp)
		}
	}
	code, resp := f.do(t, "DELETE", "/v1/resources/Application/webgoat", token, nil)
	if code != http.StatusConflict || !strings.Contains(resp, `no Application named \"webgoat\"`) {
		t.Errorf("DELETE of a referenced Application: %d %s, want 409 naming the reference", code, resp)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r == nil {
		t.Error("the refused delete removed Application/webgoat")
	}
	if code, resp := f.do(t, "PUT", "/v1/resources/Application/other", token, strings.NewReader(`{"versions":["1.0"]}`)); code != http.StatusOK {
		t.Errorf("an unrelated edit after it: %d %s", code, resp)
	}
	// Without the reference the delete goes through.
	if code, resp := f.do(t, "DELETE", "/v1/resources/AccessAssignment/devs", token, nil); code != http.StatusNoContent {
		t.Fatalf("DELETE of the assignment: %d %s", code, resp)
	}
	if code, resp := f.do(t, "DELETE", "/v1/resources/Application/webgoat", token, nil); code != http.StatusNoContent {
		t.Errorf("DELETE of the unreferenced Application: %d %s", code, resp)
	}
}

// What the loader reads from a file (a certificate's DER, the IdP's
// metadata) is no field of a spec document, and Validate takes it as read:
// from a body it stood in for a file nobody read, or for the metadataURL
// the SAML server then never fetched. GET never shows these fields, so no
// honest round trip carries them: they are refused, by name.
func TestEditRefusesResolvedFields(t *testing.T) {
	certPEM, _ := selfSigned(t)
	block, _ := pem.Decode([]byte(certPEM))
	f := newFixtureEnv(t, nil)
	sp := func(idp map[string]any) map[string]any {
		idp["requireSignedMetadata"] = false
		return map[string]any{"enabled": true, "entityID": "https://app.example.com/saml", "baseURL": "https://app.example.com", "idp": idp}
	}
	metadata := []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://evil.example.com"/>`)
	tests := []struct {
		name, path, field string
		body              map[string]any
	}{
		{"certificate der next to file", "/v1/resources/Certificate/idp", "der",
			map[string]any{"usage": spec.UsageSamlIDPSigning, "file": "certs/idp.pem", "der": block.Bytes}},
		{"metadataXML next to metadataURL", "/v1/resources/SamlServiceProvider/sp", "metadataXML",
			sp(map[string]any{"metadataURL": "https://login.example.com/metadata.xml", "metadataXML": metadata})},
		{"metadataXML next to metadataFile", "/v1/resources/SamlServiceProvider/sp", "metadataXML",
			sp(map[string]any{"metadataFile": "idp.xml", "metadataXML": metadata})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.body)
			if err != nil {
				t.Fatal(err)
			}
			code, resp := f.do(t, "PUT", tt.path, token, strings.NewReader(string(b)))
			if code != http.StatusBadRequest || !strings.Contains(resp, tt.field) {
				t.Fatalf("PUT: %d %s, want 400 naming %s", code, resp, tt.field)
			}
			kind, name, _ := strings.Cut(strings.TrimPrefix(tt.path, "/v1/resources/"), "/")
			if r, _ := f.st.Read().Resource(kind, name); r != nil {
				t.Errorf("a refused edit was stored: %+v", r.Spec)
			}
		})
	}
}

// A token's sha256 next to its valueFrom is what the loader resolved, and
// GET shows it, so a GET-then-PUT sends it back. Validate took it as read,
// so a body could set the hash of a token the daemon never read (or one
// whose env is not set at all); the edit's token is resolved again instead.
func TestEditResolvesTokenFromValueFrom(t *testing.T) {
	const value = "scim-token-value-0123456789abcdefghij"
	sum := sha256.Sum256([]byte(value))
	want := hex.EncodeToString(sum[:])
	f := newFixtureEnv(t, map[string]string{"SCIM_TOKEN": value})
	body := func(env string) string {
		b, _ := json.Marshal(map[string]any{"enabled": true, "tokens": []map[string]any{
			{"name": "entra", "valueFrom": map[string]string{"env": env}, "sha256": strings.Repeat("0", 64)}}})
		return string(b)
	}
	if code, resp := f.do(t, "PUT", "/v1/resources/ScimProvisioning/scim", token, strings.NewReader(body("MISSING"))); code != http.StatusBadRequest {
		t.Errorf("PUT with a token from an unset env: %d %s, want 400", code, resp)
	}
	if code, resp := f.do(t, "PUT", "/v1/resources/ScimProvisioning/scim", token, strings.NewReader(body("SCIM_TOKEN"))); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, resp)
	}
	r, _ := f.st.Read().Resource(spec.KindScimProvisioning, "scim")
	if r == nil {
		t.Fatal("the edit was not stored")
	}
	if got := r.Spec.(*spec.ScimProvisioning).Tokens[0].SHA256; got != want {
		t.Errorf("stored sha256 %s, want the hash of the env's token %s", got, want)
	}
}

// A resource read with GET is written back with PUT (a console's edit,
// idrecon export): the round trip must hold. A PEM certificate lost its
// pem on the way out, and a certificate or IdP metadata from a file could
// not be validated again (there is no spec repo to read the file from),
// though the runtime holds what the loader read from it.
func TestEditRoundTrip(t *testing.T) {
	certPEM, _ := selfSigned(t)
	block, _ := pem.Decode([]byte(certPEM))
	// Unsigned (the SP says so) but otherwise metadata the SAML server
	// takes: Validate checks it as the server would.
	metadata := []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example.com">` +
		`<IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">` +
		`<SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/>` +
		`</IDPSSODescriptor></EntityDescriptor>`)
	no := false
	const tokenSum = "46aa4f0d740dd4018ea29bc2391a9cd73684214c874395faa45756218f5a1e03"
	tests := []struct {
		name, kind, resName string
		held                any
		check               func(t *testing.T, stored any)
	}{
		{"pem certificate", spec.KindCertificate, "ca",
			&spec.Certificate{Usage: spec.UsageSamlIDPSigning, PEM: certPEM},
			func(t *testing.T, stored any) {
				if c := stored.(*spec.Certificate); c.PEM != certPEM {
					t.Errorf("stored pem %q, want the certificate's", c.PEM)
				}
			}},
		{"file certificate", spec.KindCertificate, "idp",
			&spec.Certificate{Usage: spec.UsageSamlIDPSigning, File: "certs/idp.pem", DER: block.Bytes},
			func(t *testing.T, stored any) {
				if c := stored.(*spec.Certificate); string(c.DER) != string(block.Bytes) {
					t.Error("the certificate read from its file was lost")
				}
			}},
		{"token from a repo file", spec.KindScimProvisioning, "scim",
			&spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "entra", ValueFrom: &spec.ValueFrom{File: "secrets/scim-token"}, SHA256: tokenSum}}},
			func(t *testing.T, stored any) {
				if got := stored.(*spec.ScimProvisioning).Tokens[0].SHA256; got != tokenSum {
					t.Errorf("stored sha256 %s, want the one resolved from the file %s", got, tokenSum)
				}
			}},
		{"metadata file", spec.KindSamlServiceProvider, "sp",
			// Disabled: enabled, it would need signing certificates, and the
			// round trip of the metadata read from its file is the point.
			&spec.SamlServiceProvider{Enabled: false, EntityID: "https://app.example.com/saml", BaseURL: "https://app.example.com",
				IDP: spec.SamlIDP{MetadataFile: "idp.xml", MetadataXML: metadata, RequireSignedMetadata: &no}},
			func(t *testing.T, stored any) {
				if sp := stored.(*spec.SamlServiceProvider); string(sp.IDP.MetadataXML) != string(metadata) {
					t.Error("the IdP metadata read from its file was lost")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureEnv(t, nil)
			// Held as the runtime holds it: resolved by the loader.
			err := f.st.Update(context.Background(), func(tx *store.Txn) error {
				return tx.Insert(store.TableResources, &store.Resource{Kind: tt.kind, Name: tt.resName, Spec: tt.held})
			})
			if err != nil {
				t.Fatal(err)
			}
			path := "/v1/resources/" + tt.kind + "/" + tt.resName
			code, resp := f.do(t, "GET", path, token, nil)
			if code != http.StatusOK {
				t.Fatalf("GET: %d %s", code, resp)
			}
			var got struct{ Spec json.RawMessage }
			if err := json.Unmarshal([]byte(resp), &got); err != nil {
				t.Fatal(err)
			}
			if code, resp := f.do(t, "PUT", path, token, strings.NewReader(string(got.Spec))); code != http.StatusOK {
				t.Fatalf("PUT of what GET answered: %d %s", code, resp)
			}
			r, _ := f.st.Read().Resource(tt.kind, tt.resName)
			tt.check(t, r.Spec)
		})
	}
}

// A kind misspelled ("application") in a GET or DELETE was answered
// "application/x not found", as if the resource were missing, where a PUT
// of the same path says the kind is unknown; an empty edit body was "EOF".
// Each error says what is wrong with the request.
func TestRequestErrorsSayWhatIsWrong(t *testing.T) {
	f := newFixtureEnv(t, nil)
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/v1/resources/application/x", "", `unknown kind "application"`},
		{"DELETE", "/v1/resources/application/x", "", `unknown kind "application"`},
		{"PUT", "/v1/resources/application/x", `{"versions":["1.0"]}`, `unknown kind "application"`},
		{"GET", "/v1/resources/application", "", `unknown kind "application"`},
		{"PUT", "/v1/resources/Application/x", "", "empty"},
		{"POST", "/v1/plan", "", "empty"},
	} {
		code, body := f.do(t, tc.method, tc.path, token, strings.NewReader(tc.body))
		var e Error
		if err := json.Unmarshal([]byte(body), &e); err != nil || code/100 != 4 || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s %s: %d %s, want a 4xx saying %q", tc.method, tc.path, code, body, tc.want)
		}
	}
}

// A name that is not UTF-8 (a %FF in the path) was stored: no spec file,
// YAML, can declare it, and GET and an export showed it with U+FFFD in
// place of the byte, the name of another resource.
func TestEditRefusesNameNotUTF8(t *testing.T) {
	f := newFixtureEnv(t, nil)
	code, resp := f.do(t, "PUT", "/v1/resources/Application/a%FF", token, strings.NewReader(`{"versions":["1.0"]}`))
	if code != http.StatusBadRequest || !strings.Contains(resp, "UTF-8") {
		t.Errorf("PUT of a name not UTF-8: %d %s, want 400 saying so", code, resp)
	}
	if res, _ := f.st.Read().Resources(spec.KindApplication); len(res) != 0 {
		t.Errorf("a refused edit was stored: %q", res[0].Name)
	}
}
