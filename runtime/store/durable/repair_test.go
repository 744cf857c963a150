package durable

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// writeFoldClashes writes, through the journal and below the store's
// checks, the state an idrecon that folded names with strings.ToLower could
// leave: groups and users whose names fold equal. g2 is what its rename
// check let through (a group renamed from "Team ς" to "Team σ" beside g1),
// g3 and u2 what its indexes let in (ToLower keeps ς and σ apart).
func writeFoldClashes(t *testing.T, path string) {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Minute) }
	objs := []struct {
		table string
		obj   any
	}{
		{store.TableGroups, &store.Group{ID: "g1", DisplayName: "Team σ", Created: at(1), Modified: at(1), Version: 1}},
		{store.TableGroups, &store.Group{ID: "g2", DisplayName: "Team σ", Created: at(2), Modified: at(4), Version: 2}},
		{store.TableGroups, &store.Group{ID: "g0", DisplayName: "TEAM ς", Created: at(3), Modified: at(3), Version: 1}},
		{store.TableGroups, &store.Group{ID: "g4", DisplayName: "Ops", Created: at(0), Modified: at(0), Version: 1}},
		{store.TableUsers, user("u1", "σam@contoso.com")},
		{store.TableUsers, user("u2", "ςam@contoso.com")},
		{store.TableMembers, &store.Members{GroupID: "g2", IDs: idset.Of("u1", "u2"), Version: 1, Modified: at(4)}},
	}
	var changes memdb.Changes
	for _, o := range objs {
		changes = append(changes, memdb.Change{Table: o.table, After: o.obj})
	}
	if err := db.Commit(changes); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLoadRepairsNamesThatFoldEqual: a data dir with names that fold equal
// loads; every object is kept, the earliest created keeps the name, the
// others get a suffix, and the repair is logged (for the audit trail),
// returned, and persisted, so the next start has nothing to repair.
func TestLoadRepairsNamesThatFoldEqual(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeFoldClashes(t, path)

	trailPath := filepath.Join(t.TempDir(), "audit.log")
	trail, err := audit.Open(trailPath, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer trail.Close()
	var logs logsink.Buffer
	db, err := Open(path, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil)), Audit: trail})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, db)
	stats, err := db.LoadInto(st)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := []Repair{
		{Table: store.TableGroups, ID: "g2", From: "Team σ", To: "Team σ (duplicate g2)", Holder: "g1"},
		{Table: store.TableGroups, ID: "g0", From: "TEAM ς", To: "TEAM ς (duplicate g0)", Holder: "g1"},
		{Table: store.TableUsers, ID: "u2", From: "ςam@contoso.com", To: "ςam@contoso.com (duplicate u2)", Holder: "u1"},
	}
	if js(stats.Repairs) != js(want) {
		t.Errorf("repairs:\n%s\nwant\n%s", js(stats.Repairs), js(want))
	}
	checkNames := func(st *store.Store) {
		t.Helper()
		txn := st.Read()
		for name, id := range map[string]string{
			"team Σ": "g1", "Team σ (duplicate g2)": "g2", "TEAM ς (duplicate g0)": "g0", "ops": "g4",
		} {
			g, err := txn.GroupByName(name)
			if err != nil || g == nil || g.ID != id {
				t.Errorf("GroupByName(%q) = %+v, %v; want %s", name, g, err, id)
			}
		}
		for name, id := range map[string]string{"ΣAM@contoso.com": "u1", "ςam@contoso.com (duplicate u2)": "u2"} {
			u, err := txn.UserByName(name)
			if err != nil || u == nil || u.ID != id {
				t.Errorf("UserByName(%q) = %+v, %v; want %s", name, u, err, id)
				continue
			}
			var attrs map[string]any
			if err := json.Unmarshal(u.Attributes, &attrs); err != nil || attrs["userName"] != u.UserName {
				t.Errorf("user %s: attributes %s, want userName %q", id, u.Attributes, u.UserName)
			}
		}
		if m, err := txn.MembersOf("g2"); err != nil || m == nil || m.IDs.Len() != 2 {
			t.Errorf("members of g2: %+v, %v", m, err)
		}
	}
	checkNames(st)
	trail.Close()
	audited, err := os.ReadFile(trailPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		line := `"msg":"state repaired","table":"` + r.Table + `","id":"` + r.ID + `","holder":"` + r.Holder + `"`
		if !strings.Contains(logs.String(), line) {
			t.Errorf("no repair of %s %s logged:\n%s", r.Table, r.ID, logs.String())
		}
		if !strings.Contains(string(audited), line) {
			t.Errorf("no repair of %s %s in the audit trail:\n%s", r.Table, r.ID, audited)
		}
	}

	// The repair is persisted: the next start loads the repaired names.
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openDB(t, path)
	st2 := newStore(t, db2)
	stats, err = db2.LoadInto(st2)
	if err != nil || len(stats.Repairs) != 0 {
		t.Fatalf("second load: %v, repairs %v", err, stats.Repairs)
	}
	checkNames(st2)
}
