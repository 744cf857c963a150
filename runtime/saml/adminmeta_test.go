package saml

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestAdminMetadata: the admin API's caller holds the admin token and is
// told why there is no SP metadata (disabled in the spec, no
// SamlServiceProvider, not initialised and why), while the public
// /saml/metadata keeps its page that says nothing.
func TestAdminMetadata(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *env)
		status int
		reason string
	}{
		{"ready", func(*env) {}, http.StatusOK, ""},
		{"disabled in the spec", func(e *env) { e.setSpec(func(sp *spec.SamlServiceProvider) { sp.Enabled = false }) },
			http.StatusConflict, "SAML single sign-on is disabled in the spec"},
		{"no SamlServiceProvider", func(e *env) {
			e.update(func(tx *store.Txn) error {
				_, err := tx.DeleteAll(store.TableResources, store.IndexID, spec.KindSamlServiceProvider, "sso")
				return err
			})
		}, http.StatusConflict, "no SamlServiceProvider"},
		{"not initialised", func(e *env) {
			raw := metadataBytes(e.t, testidp.MetadataOptions{Keys: []*testidp.Key{keyA}, SignWith: keyA}, func(d *etree.Document) {
				d.Root().CreateAttr("entityID", "https://sts.windows.net/evil/")
			})
			e.setSpec(func(sp *spec.SamlServiceProvider) { sp.IDP.MetadataXML = raw })
		}, http.StatusServiceUnavailable, "SAML single sign-on is not initialised: idp metadata rejected: signature does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			tc.change(e)
			rec := httptest.NewRecorder()
			e.srv.ServeAdminMetadata(rec, httptest.NewRequest("GET", "/v1/saml/metadata", nil))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if tc.status == http.StatusOK {
				_, public := e.get("/saml/metadata")
				if rec.Body.String() != public || !strings.Contains(public, "EntityDescriptor") {
					t.Fatalf("admin metadata %q differs from the public one %q", rec.Body, public)
				}
				return
			}
			var body struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || !strings.Contains(body.Error, tc.reason) {
				t.Fatalf("body %s (%v), want an admin API error mentioning %q", rec.Body, err, tc.reason)
			}
			checkPublicPagesHide(t, e, body.Error)
		})
	}
	e := newEnv(t)
	rec := httptest.NewRecorder()
	e.srv.ServeAdminMetadata(rec, httptest.NewRequest("POST", "/v1/saml/metadata", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d, want 405", rec.Code)
	}
}
