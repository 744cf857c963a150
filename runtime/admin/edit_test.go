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
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
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
