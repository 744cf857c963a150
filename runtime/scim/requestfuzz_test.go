package scim

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// FuzzRequest sends whatever a holder of a SCIM token can: any method,
// path below the base, query, If-Match and body. The server must answer
// each with a SCIM status, never a panic (which ServeHTTP turns into a
// logged 500).
func FuzzRequest(f *testing.F) {
	st, err := store.New(store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), func(txn *store.Txn) error {
		return txn.Insert(store.TableResources, &store.Resource{Kind: spec.KindScimProvisioning, Name: "scim", Spec: defaultConfig()})
	}); err != nil {
		f.Fatal(err)
	}
	logs := &logsink.Buffer{}
	srv := NewServer(st, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), MaxBodyBytes: 64 << 10})
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	do := func(m uint8, path, query, ifMatch string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(methods[int(m)%len(methods)], "/", bytes.NewReader(body))
		r.URL.Path = spec.DefaultScimBasePath + path
		r.URL.RawQuery = query
		r.Header.Set("Authorization", "Bearer "+testToken)
		r.Header.Set("Content-Type", "application/scim+json")
		if ifMatch != "" {
			r.Header.Set("If-Match", ifMatch)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	user := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x","externalId":"a","active":true,"emails":[{"type":"work","value":"a@x","primary":true}],"name":{"givenName":"A"},"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}}}`
	group := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"G","externalId":"g"}`
	idOf := func(w *httptest.ResponseRecorder) string {
		var m map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
			f.Fatalf("%d %s", w.Code, w.Body)
		}
		return m["id"].(string)
	}
	uid := idOf(do(1, "/Users", "", "", []byte(user)))
	gid := idOf(do(1, "/Groups", "", "", []byte(group)))
	f.Add(uint8(2), "/Users/"+uid, "", `W/"1"`, []byte(user))
	f.Add(uint8(3), "/Users/"+uid, "", "", []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"c@x"},{"op":"add","value":{"name.familyName":"F","active":"False"}}]}`))
	f.Add(uint8(3), "/Groups/"+gid, "", "", []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]},{"op":"replace","path":"displayName","value":"H"}]}`))
	f.Add(uint8(0), "/Groups/"+gid, "attributes=members", "", []byte(nil))
	f.Add(uint8(2), "/Groups/"+gid, "", "", []byte(group))
	f.Add(uint8(1), "/Users", "", "", []byte(strings.Replace(user, "a@x", "b@x", 2)))
	f.Add(uint8(2), "/Users/x", "aadOptscim062020", `W/"1"`, []byte(user))
	f.Add(uint8(0), "/Users", `filter=userName+eq+"a@x"&attributes=emails.value,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager&startIndex=2&count=1`, "", []byte(nil))
	f.Add(uint8(0), "/Groups", `excludedAttributes=members&filter=displayName eq "G"`, "", []byte(nil))
	f.Add(uint8(3), "/Groups/x", "", "*", []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"x"}]}]}`))
	f.Add(uint8(1), "/Groups", "", "", []byte(group))
	f.Add(uint8(0), "/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, m uint8, path, query, ifMatch string, body []byte) {
		w := do(m, path, query, ifMatch, body)
		if strings.Contains(logs.String(), "panicked") {
			t.Fatalf("panic on %s %q?%q If-Match %q body %q: %s", methods[int(m)%len(methods)], path, query, ifMatch, body, logs.String())
		}
		if w.Code >= 500 {
			t.Fatalf("status %d on %q?%q body %q: %s", w.Code, path, query, body, w.Body)
		}
	})
}
