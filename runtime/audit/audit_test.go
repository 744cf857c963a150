package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestEveryEventIsRecorded: each kind of event is one JSON line with its
// message and fields.
func TestEveryEventIsRecorded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	events := []struct {
		e    Event
		want map[string]any
	}{
		{SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "u1"},
			map[string]any{"msg": "scim write", "actor": "entra", "op": "create", "resourceType": "User", "id": "u1"}},
		{SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "u2", Outcome: "unknown", Error: "timed out"},
			map[string]any{"msg": "scim write", "actor": "entra", "op": "create", "resourceType": "User", "id": "u2", "outcome": "unknown", "error": "timed out"}},
		{Applied{Revision: "r1", Create: 2, Delete: 1},
			map[string]any{"msg": "applied", "revision": "r1", "create": 2.0, "update": 0.0, "delete": 1.0}},
		{AppliedChange{Revision: "r1", Action: "create", Kind: "Role", Name: "Dev", Drift: true},
			map[string]any{"msg": "applied change", "revision": "r1", "action": "create", "kind": "Role", "name": "Dev", "drift": true}},
		{Drift{Kind: "Role", Name: "Dev", Action: "update", Field: "spec.description", Before: "a", After: "b", Corrected: true},
			map[string]any{"msg": "drift", "kind": "Role", "name": "Dev", "field": "spec.description", "before": "a", "after": "b", "corrected": true}},
		{AdminEdit{Op: "put", Kind: "Application", Name: "webgoat"},
			map[string]any{"msg": "admin edit", "op": "put", "kind": "Application", "name": "webgoat"}},
		{GatewayRefusal{Gateway: "appsec", User: "bob@contoso.com", Reason: "disabled"},
			map[string]any{"msg": "gateway refusal", "gateway": "appsec", "user": "bob@contoso.com", "reason": "disabled"}},
		{StateRepaired{Table: "users", ID: "u2", Holder: "u1"},
			map[string]any{"msg": "state repaired", "table": "users", "id": "u2", "holder": "u1"}},
	}
	for _, ev := range events {
		l.Record(ev.e)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != len(events) {
		t.Fatalf("%d lines, want %d: %v", len(lines), len(events), lines)
	}
	for i, ev := range events {
		for k, v := range ev.want {
			if lines[i][k] != v {
				t.Errorf("%s: %s = %v, want %v", ev.e.Message(), k, lines[i][k], v)
			}
		}
		if lines[i]["time"] == nil {
			t.Errorf("%s: no time", ev.e.Message())
		}
	}
}

func TestRotationKeepsEveryLineWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	l, err := Open(path, Options{MaxBytes: 200, Keep: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		l.Record(AppliedChange{Revision: fmt.Sprint(i), Action: "create", Kind: "Role", Name: "r"})
	}
	l.Close()

	total := 0
	for _, p := range []string{path, path + ".1", path + ".2", path + ".3"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("missing %s: %v", p, err)
		}
		total += len(readLines(t, p))
	}
	if _, err := os.Stat(path + ".4"); err == nil {
		t.Error("kept more rotated files than Keep")
	}
	if total == 0 || total >= 40 {
		t.Errorf("kept %d lines; want some, and fewer than all 40 after pruning", total)
	}
}

// One apply of 100,000 changes must not rotate the history before it out of
// the files kept: past MaxApplyRecords its changes become one summary.
func TestLargeApplyKeepsEarlierHistory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// 1 MiB × 3 files hold the history below and a capped apply, not 100,000 lines.
	l, err := Open(path, Options{MaxBytes: 1 << 20, Keep: 2, MaxApplyRecords: 100})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: fmt.Sprint(i)})
	}
	const rev, n = "rev-big", 100_000
	l.Record(Applied{Revision: rev, Create: n - 10, Delete: 10})
	for i := range n - 10 {
		l.Record(AppliedChange{Revision: rev, Action: "create", Kind: "AccessAssignment", Name: fmt.Sprint(i)})
	}
	for i := range 10 {
		l.Record(AppliedChange{Revision: rev, Action: "delete", Kind: "Role", Name: fmt.Sprint(i)})
	}
	l.Record(SCIMWrite{Actor: "entra", Op: "create", ResourceType: "User", ID: "after"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	var lines []map[string]any
	for _, p := range []string{path + ".2", path + ".1", path} {
		if _, err := os.Stat(p); err == nil {
			lines = append(lines, readLines(t, p)...)
		}
	}
	scimWrites, changes := 0, 0
	var summary map[string]any
	for _, m := range lines {
		switch m["msg"] {
		case "scim write":
			scimWrites++
		case "applied change":
			changes++
		case "applied changes summary":
			summary = m
		}
	}
	if scimWrites != 51 {
		t.Errorf("%d scim writes kept, want all 51 (the history before the apply was rotated out)", scimWrites)
	}
	if changes != 100 {
		t.Errorf("%d change records, want MaxApplyRecords = 100", changes)
	}
	if summary == nil {
		t.Fatal("no summary record")
	}
	counts, _ := summary["counts"].(map[string]any)
	if summary["revision"] != rev || summary["omitted"] != float64(n-100) ||
		counts["create AccessAssignment"] != float64(n-10-100) || counts["delete Role"] != float64(10) {
		t.Errorf("summary = %v", summary)
	}
}
