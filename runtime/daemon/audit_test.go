package daemon

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestEveryChangeIsAudited: each kind of change a running daemon makes
// lands in DATA_DIR/audit.log as its own record: the applies of the spec,
// SCIM writes, an admin edit, and the drift it causes, corrected. (A state
// repair at load is covered in runtime/store/durable.)
func TestEveryChangeIsAudited(t *testing.T) {
	dataDir := t.TempDir()
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: dataDir})
	scim := d.base + "/api/scim/v2"
	if code, b := d.call(t, "POST", scim+"/Users", scimTok, map[string]any{
		"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User"},
		"userName": "bob@contoso.com", "active": true,
	}); code != 201 {
		t.Fatalf("create user: %d %s", code, b)
	}
	if code, b := d.call(t, "PUT", d.admin+"/v1/resources/Application/webgoat", adminTok, map[string]any{"versions": []string{"1.0", "2.0", "0.1"}}); code != 200 {
		t.Fatalf("admin edit: %d %s", code, b)
	}
	d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)

	want := map[string]func(map[string]any) bool{
		"applied": func(m map[string]any) bool { return m["revision"] != "" && m["create"].(float64) > 0 },
		"applied change": func(m map[string]any) bool {
			return m["kind"] == "Application" && m["name"] == "webgoat" && m["drift"] == true
		},
		"scim write": func(m map[string]any) bool {
			return m["actor"] == "entra" && m["op"] == "create" && m["resourceType"] == "User"
		},
		"admin edit": func(m map[string]any) bool {
			return m["op"] == "put" && m["kind"] == "Application" && m["name"] == "webgoat"
		},
		"drift": func(m map[string]any) bool { return m["kind"] == "Application" && m["corrected"] == true },
	}
	eventually(t, "every kind of change in the audit log", func() bool {
		b, err := os.ReadFile(filepath.Join(dataDir, "audit.log"))
		if err != nil {
			return false
		}
		seen := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Fatalf("audit line %q: %v", sc.Text(), err)
			}
			msg, _ := m["msg"].(string)
			if ok := want[msg]; ok != nil && ok(m) {
				seen[msg] = true
			}
		}
		return len(seen) == len(want)
	})
}
