package daemon

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/scim"
)

// TestLimitsHoldAcrossRestart fills a durable daemon to its SCIM bounds and
// restarts it: the counts a bound is checked against are derived again by
// the start-up load, so the restarted daemon refuses what the first one
// would have, and a daemon started with the default bounds takes it.
func TestLimitsHoldAcrossRestart(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	dataDir := t.TempDir()
	limits := scim.Limits{Users: 2, Groups: 1, Memberships: 1}
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir, Limits: limits})
	eventually(t, "readiness", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/readyz", "", nil)
		return code == 200
	})
	// Paths: each daemon listens on a port of its own.
	const users, groups = "/api/scim/v2/Users", "/api/scim/v2/Groups"
	user := func(name string) map[string]any {
		return map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name, "active": true}
	}
	create := func(d *running, path string, body map[string]any, want int) string {
		t.Helper()
		url := d.base + path
		code, b := d.call(t, "POST", url, scimTok, body)
		if code != want {
			t.Fatalf("POST %s: %d %s; want %d", url, code, b, want)
		}
		if want == http.StatusInsufficientStorage && !strings.Contains(string(b), "--max-") {
			t.Fatalf("refusal does not name the flag that raises the bound: %s", b)
		}
		var out struct{ ID string }
		json.Unmarshal(b, &out)
		return out.ID
	}
	alice := create(d, users, user("alice@contoso.com"), http.StatusCreated)
	bob := create(d, users, user("bob@contoso.com"), http.StatusCreated)
	group := create(d, groups, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"},
		"displayName": "Engineering", "members": []map[string]string{{"value": alice}}}, http.StatusCreated)
	addBob := map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []map[string]any{{"op": "Add", "path": "members", "value": []map[string]string{{"value": bob}}}}}
	refusedAll := func(d *running) {
		t.Helper()
		create(d, users, user("carol@contoso.com"), http.StatusInsufficientStorage)
		create(d, groups, map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Sales"}, http.StatusInsufficientStorage)
		if code, b := d.call(t, "PATCH", d.base+groups+"/"+group, scimTok, addBob); code != http.StatusInsufficientStorage {
			t.Fatalf("member past the bound: %d %s", code, b)
		}
	}
	refusedAll(d)
	// What the bounds are checked against is what /metrics shows.
	_, m := d.call(t, "GET", d.admin+"/metrics", "", nil)
	for series, want := range map[string]float64{
		`idrecon_scim_provisioned{kind="users"}`:             2,
		`idrecon_scim_provisioned{kind="groups"}`:            1,
		`idrecon_scim_provisioned{kind="memberships"}`:       1,
		`idrecon_scim_provisioned_limit{kind="users"}`:       2,
		`idrecon_scim_provisioned_limit{kind="memberships"}`: 1,
	} {
		if got := metricValue(string(m), series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = start(t, Config{SpecDir: specDir, DataDir: dataDir, Limits: limits})
	refusedAll(d)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d = start(t, Config{SpecDir: specDir, DataDir: dataDir})
	if code, b := d.call(t, "PATCH", d.base+groups+"/"+group, scimTok, addBob); code != http.StatusNoContent {
		t.Fatalf("member under the default bound: %d %s", code, b)
	}
	create(d, users, user("carol@contoso.com"), http.StatusCreated)
}
