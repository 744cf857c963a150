package admin

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// A key written twice in one object of an edit's body kept the last value
// and dropped the other without a word (encoding/json matches keys to
// fields ignoring case, so "versions" and "Versions" are the same key). A
// spec file with a key written twice is refused by the loader; so is such
// an edit, naming the key.
func TestEditRefusesDuplicateKeys(t *testing.T) {
	f := newFixtureEnv(t, nil)
	for _, body := range []string{
		`{"versions":["1.0"],"versions":["2.0"]}`,
		`{"versions":["1.0"],"Versions":["2.0"]}`,
		`{"versions":["1.0"], "description":"a", "VERSIONS":["2.0"]}`,
	} {
		code, resp := f.do(t, "PUT", "/v1/resources/Application/webgoat", token, strings.NewReader(body))
		if code != http.StatusBadRequest || !strings.Contains(strings.ToLower(resp), `"versions\" twice`) {
			t.Errorf("PUT %s: %d %s, want 400 naming the key written twice", body, code, resp)
		}
		if r, _ := f.st.Read().Resource(spec.KindApplication, "webgoat"); r != nil {
			t.Fatalf("a refused edit was stored: %+v", r.Spec)
		}
	}
	// Each object of a list has its own keys, and a key's name as a value
	// is no key.
	sum := strings.Repeat("ab", 32)
	ok := `{"enabled":true,"tokens":[{"name":"a","sha256":"` + sum + `"},{"name":"b","sha256":"` + strings.Repeat("cd", 32) + `"}],` +
		`"basePath":"/scim/{\"name\":1,\"name\":2}"}`
	if code, resp := f.do(t, "PUT", "/v1/resources/ScimProvisioning/entra", token, strings.NewReader(ok)); code != http.StatusOK {
		t.Errorf("PUT %s: %d %s, want 200", ok, code, resp)
	}
}
