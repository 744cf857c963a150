package durable

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
	"github.com/idrecon/idrecon/spec"
)

// kindSamples holds a spec of each kind as a repo would write it. A kind
// added to spec's table fails TestEveryKindRoundTrips until it has one.
var kindSamples = map[string]string{
	spec.KindScimProvisioning: `
  enabled: true
  tokens:
    - name: demo
      sha256: cefbcfe77053847ab41cda3dcb6b5e063774f1f0a53e51d018c92b58f35caec9
  userAttributes: [active]`,
	spec.KindCertificate: `
  usage: saml-sp-signing
  file: certs/sp.pem
  privateKeyFrom:
    file: certs/sp-key.pem`,
	spec.KindSamlServiceProvider: `
  enabled: true
  entityID: https://idrecon.example.com/saml/metadata
  baseURL: https://idrecon.example.com
  idp:
    metadataFile: idp/metadata.xml
  spSigningCertificate: sp-signing`,
	spec.KindApplication: `
  versions: ["1.0", "2.0"]`,
	spec.KindRole: `
  description: Ships versions.
  permissions: [version.create]`,
	spec.KindAccessAssignment: `
  subject:
    group: Payments Developers
  roles: [Developer]
  applicationVersions: ["payments-api/*"]`,
	spec.KindGateway: `
  upstream: http://127.0.0.1:8180
  pathPrefix: /ssc
  userHeader: username`,
}

// TestEveryKindRoundTrips takes each kind of spec's table through the three
// places that map a kind to its Go type: the YAML decoder, the durable
// record, and the admin API's resource routes.
func TestEveryKindRoundTrips(t *testing.T) {
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newAdmin(t, st)
	if len(spec.Kinds) != len(kindSamples) {
		t.Errorf("spec has %d kinds, kindSamples %d", len(spec.Kinds), len(kindSamples))
	}
	for _, kind := range spec.Kinds {
		t.Run(kind, func(t *testing.T) {
			sample, ok := kindSamples[kind]
			if !ok {
				t.Fatalf("no sample of kind %s in kindSamples", kind)
			}
			doc := parseOne(t, kind, sample)
			zero, known := spec.NewSpec(kind)
			if got, want := reflect.TypeOf(doc.Spec), reflect.TypeOf(zero); !known || got != want {
				t.Fatalf("decoded spec is %v, want %v", got, want)
			}

			res := &store.Resource{Kind: kind, Name: "sample", Spec: doc.Spec, Revision: "rev-1", ModifiedBy: "reconcile", Modified: time.Unix(1700000000, 5).UTC()}
			rec, err := record.Encode(store.TableResources, res)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			back, err := record.Decode(store.TableResources, rec)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(back, res) {
				t.Fatalf("record round trip changed the resource:\n got %#v\nwant %#v", back, res)
			}
			if err := st.Update(t.Context(), func(tx *store.Txn) error {
				return tx.Insert(store.TableResources, back)
			}); err != nil {
				t.Fatal(err)
			}

			status, body := call(t, srv, http.MethodGet, "/v1/resources/"+kind, nil)
			var listed []struct {
				Name string          `json:"name"`
				Spec json.RawMessage `json:"spec"`
			}
			if status != http.StatusOK || json.Unmarshal([]byte(body), &listed) != nil || len(listed) != 1 {
				t.Fatalf("GET /v1/resources/%s = %d %s, want 200 and the one resource", kind, status, body)
			}
			want, _ := json.Marshal(doc.Spec)
			if got := compactJSON(t, listed[0].Spec); got != string(want) {
				t.Errorf("admin shows spec %s, want %s", got, want)
			}
			// An unknown field is refused by the kind's own type: the admin
			// API found the type, not just the name.
			status, body = call(t, srv, http.MethodPut, "/v1/resources/"+kind+"/other", strings.NewReader(`{"noSuchField": 1}`))
			if status != http.StatusBadRequest || !strings.Contains(body, `unknown field \"noSuchField\"`) {
				t.Errorf("PUT with an unknown field = %d %s, want 400 naming the field", status, body)
			}
		})
	}
}

// TestUnknownKindRefusedEverywhere: a kind outside the table is refused by
// the decoder, the record encoder and the admin API alike.
func TestUnknownKindRefusedEverywhere(t *testing.T) {
	const kind = "Gadget"
	if _, err := spec.Parse("gadget.yaml", []byte(document(kind, "\n  a: b"))); err == nil || !strings.Contains(err.Error(), `unknown kind "Gadget"`) {
		t.Errorf("Parse: err %v, want unknown kind", err)
	}
	_, err := record.Encode(store.TableResources, &store.Resource{Kind: kind, Name: "x", Spec: new(spec.Role)})
	if !errors.Is(err, record.ErrUnknownKind) {
		t.Errorf("Encode: err %v, want ErrUnknownKind", err)
	}
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newAdmin(t, st)
	for _, method := range []string{http.MethodGet, http.MethodPut} {
		path := "/v1/resources/" + kind
		if method == http.MethodPut {
			path += "/x"
		}
		if status, body := call(t, srv, method, path, strings.NewReader("{}")); status != http.StatusNotFound {
			t.Errorf("%s %s = %d %s, want 404", method, path, status, body)
		}
	}
}

const adminToken = "kinds-test-token-0123456789abcdef"

func newAdmin(t *testing.T, st *store.Store) *httptest.Server {
	t.Helper()
	rec, err := reconcile.New(reconcile.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s, err := admin.New(admin.Config{Store: st, Reconciler: rec, Token: adminToken, Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func document(kind, specBody string) string {
	return "apiVersion: " + spec.APIVersion + "\nkind: " + kind + "\nmetadata:\n  name: sample\nspec:" + specBody + "\n"
}

func parseOne(t *testing.T, kind, specBody string) *spec.Document {
	t.Helper()
	docs, err := spec.Parse(kind+".yaml", []byte(document(kind, specBody)))
	if err != nil || len(docs) != 1 {
		t.Fatalf("Parse: %d documents, err %v", len(docs), err)
	}
	return docs[0]
}

func compactJSON(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
