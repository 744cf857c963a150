package daemon

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func removeAll(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

func (r *running) exists(t *testing.T, kind, name string) bool {
	t.Helper()
	code, b := r.call(t, "GET", r.admin+"/v1/resources/"+kind+"/"+name, adminTok, nil)
	if code != http.StatusOK && code != http.StatusNotFound {
		t.Fatalf("get %s/%s: %d %s", kind, name, code, b)
	}
	return code == http.StatusOK
}

func (r *running) scimServes(t *testing.T) bool {
	t.Helper()
	code, _ := r.call(t, "GET", r.base+"/api/scim/v2/Users", scimTok, nil)
	return code == http.StatusOK
}

// TestEmptiedFolderIsRefused: a watched folder emptied (a branch switch, a
// wrong mount) is refused while the last good revision keeps serving and
// status says why; --allow-empty lets it through.
func TestEmptiedFolderIsRefused(t *testing.T) {
	for _, allow := range []bool{false, true} {
		name := "refused"
		if allow {
			name = "allow-empty"
		}
		t.Run(name, func(t *testing.T) {
			specDir := copyDir(t, "../../examples/entra")
			d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), AllowEmpty: allow})
			good := d.status(t)
			if good.LastResult != "ok" || !d.scimServes(t) {
				t.Fatalf("the example did not apply: %+v", good)
			}

			removeAll(t, specDir)
			if allow {
				eventually(t, "the empty folder applied", func() bool {
					return !d.exists(t, "ScimProvisioning", "entra") && d.status(t).LastResult == "ok"
				})
				return
			}
			eventually(t, "the empty folder refused", func() bool {
				st := d.status(t)
				return st.LastResult == "refused" && strings.Contains(st.LastError, "no documents") &&
					strings.Contains(st.LastError, "--allow-empty")
			})
			if st := d.status(t); st.AppliedRevision != good.AppliedRevision {
				t.Errorf("applied revision %s, want the last good %s", st.AppliedRevision, good.AppliedRevision)
			}
			if !d.exists(t, "ScimProvisioning", "entra") || !d.exists(t, "Application", "webgoat") || !d.scimServes(t) {
				t.Error("the refused empty folder took resources away")
			}
		})
	}
}

// TestDeletingWhatEntraUsesTakesTwoCommits: deleting scim.yaml or saml.yaml
// is refused with a message that says how; switching it off first, then
// deleting it, goes through.
func TestDeletingWhatEntraUsesTakesTwoCommits(t *testing.T) {
	for _, tt := range []struct{ file, kind string }{
		{"scim.yaml", "ScimProvisioning"},
		{"saml.yaml", "SamlServiceProvider"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			specDir := copyDir(t, "../../examples/entra")
			path := filepath.Join(specDir, tt.file)
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir()})
			good := appliedFolder(t, d, specDir)

			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the delete refused", func() bool {
				st := d.status(t)
				return st.LastResult == "refused" && strings.Contains(st.LastError, tt.kind+"/entra while it is enabled") &&
					strings.Contains(st.LastError, "enabled: false")
			})
			if !d.exists(t, tt.kind, "entra") || d.status(t).AppliedRevision != good {
				t.Fatalf("the refused delete changed the runtime")
			}

			off := bytes.Replace(body, []byte("enabled: true"), []byte("enabled: false"), 1)
			writeFile(t, path, string(off))
			eventually(t, "switched off", func() bool {
				st := d.status(t)
				return st.LastResult == "ok" && st.AppliedRevision != good
			})
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the delete applied", func() bool { return !d.exists(t, tt.kind, "entra") })
			if st := d.status(t); st.LastResult != "ok" {
				t.Errorf("status after the delete: %+v", st)
			}
		})
	}
}

// TestPushEmptyIsRefused: `idrecon apply` of an empty folder is refused and
// the pushed spec stays the one served, also after a restart; a daemon
// started with --allow-empty takes it.
func TestPushEmptyIsRefused(t *testing.T) {
	dataDir := t.TempDir()
	d := start(t, Config{DataDir: dataDir})
	if code, b := push(t, d, "../../examples/entra"); code != 200 {
		t.Fatalf("push: %d %s", code, b)
	}
	applied := d.status(t).AppliedRevision

	code, b := push(t, d, t.TempDir())
	if code != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("no documents")) {
		t.Fatalf("push of an empty folder: %d %s", code, b)
	}
	if !d.exists(t, "ScimProvisioning", "entra") || !d.scimServes(t) {
		t.Fatal("the refused push took resources away")
	}
	d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}

	d2 := start(t, Config{DataDir: dataDir, AllowEmpty: true})
	if st := d2.status(t); st.AppliedRevision != applied || st.LastResult != "ok" {
		t.Fatalf("after the refused push and a restart, the pushed spec is not the one served: %+v", st)
	}
	if code, b := push(t, d2, t.TempDir()); code != 200 {
		t.Fatalf("push of an empty folder with AllowEmpty: %d %s", code, b)
	}
	if d2.exists(t, "ScimProvisioning", "entra") {
		t.Error("AllowEmpty: the empty push did not apply")
	}
}
