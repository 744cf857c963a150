package cli

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec"
)

// evil is a name a SCIM client could have stored before SCIM refused
// control characters: it clears the screen and starts a fake row.
const evil = "evil\x1b[2J\nroot"

// hostile names exercise each kind of rune that must not reach a terminal raw.
var hostile = []string{evil, "tab\tcell", "cr\rover", "c1\u009b31m", "bidi\u202egnp.exe", "iso\u2066late\u2069", "bad\xffutf8"}

// fakeAdmin serves the admin API's read endpoints with hostile names in every field.
func fakeAdmin(t *testing.T) map[string]string {
	t.Helper()
	name := strings.Join(hostile, "|")
	answers := map[string]any{
		"/v1/users": access.Page[access.UserSummary]{Items: []access.UserSummary{{
			UserName: name, ExternalID: evil, Active: true, Groups: []string{evil}, Roles: []string{evil}, Versions: []string{evil},
		}}, Next: evil},
		"/v1/groups": access.Page[access.GroupSummary]{Items: []access.GroupSummary{{
			DisplayName: name, ExternalID: evil, Members: 1, Assignments: []string{evil}, Roles: []string{evil}, Versions: []string{evil},
		}}},
		"/v1/access/users/x": map[string]any{"userName": name, "active": true,
			"roles":    []access.RoleGrant{{Role: evil, Assignment: evil, Group: evil}},
			"versions": []access.VersionGrant{{Application: evil, Version: evil, Assignment: evil, Group: evil, Via: evil}}},
		"/v1/access/applications/a/v": access.Reach{Application: evil, Version: evil, Users: []access.ReachingUser{{
			UserName: name, Paths: []access.Path{{Assignment: evil, Group: evil, Via: evil}, {Assignment: evil, Via: evil}},
		}}},
		"/v1/access/pending": []access.PendingAssignment{{Assignment: evil, Subject: spec.Subject{Group: name}, Reason: evil}},
		"/v1/status": map[string]any{"source": evil, "appliedRevision": evil, "lastError": evil, "lastResult": evil,
			"lastAttempt": "2026-01-02T03:04:05Z", "components": map[string]string{"scim": evil},
			"drift":   []map[string]string{{"kind": evil, "name": evil}},
			"renames": []access.GroupRename{{Assignment: evil, From: evil, To: evil, Suggestion: evil}}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, ok := answers[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(v)
	}))
	t.Cleanup(srv.Close)
	return map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"}
}

// TestTablesEscapeWhatTheyPrint: names from SCIM never reach the terminal
// as control sequences, line breaks, tabs or bidi overrides; each row stays
// one line. JSON output keeps the names as they are (JSON escapes them).
func TestTablesEscapeWhatTheyPrint(t *testing.T) {
	env := fakeAdmin(t)
	tests := []struct {
		args []string
		rows int // lines of output: header and rows
	}{
		{[]string{"users"}, 3},
		{[]string{"groups"}, 2},
		{[]string{"access", "user", "x"}, 7},
		{[]string{"access", "version", "a/v"}, 4},
		{[]string{"access", "pending"}, 2},
		{[]string{"status"}, 16}, // the two-line error again, line by line, below the table
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := run(t, env, tt.args...)
			if code != 0 && !(tt.args[0] == "status" && code == exitNotReady) { // the fake daemon is not ready
				t.Fatalf("exit %d\n%s", code, errs)
			}
			if i := strings.IndexFunc(out, func(r rune) bool {
				return r != '\n' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x202e || r == 0x2066 || r == 0x2069)
			}); i >= 0 {
				t.Errorf("raw %q at %d in:\n%q", out[i:i+1], i, out)
			}
			if strings.Contains(out, "\xff") {
				t.Errorf("invalid UTF-8 printed raw:\n%q", out)
			}
			if n := strings.Count(out, "\n"); n != tt.rows {
				t.Errorf("%d lines, want %d:\n%s", n, tt.rows, out)
			}
			if !strings.Contains(out, `evil\x1b[2J\nroot`) {
				t.Errorf("the escaped name is not shown:\n%s", out)
			}
		})
	}

	code, out, _ := run(t, env, "users", "--output", "json")
	var page access.Page[access.UserSummary]
	if err := json.Unmarshal([]byte(out), &page); code != 0 || err != nil || len(page.Items) != 1 || page.Items[0].ExternalID != evil {
		t.Fatalf("json: exit %d, %v, %+v", code, err, page)
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@contoso.com", "alice@contoso.com"},
		{"Zoë Ångström 山田 محمد", "Zoë Ångström 山田 محمد"},
		{"no\u00a0break", "no\u00a0break"},
		{"zwj 👩\u200d💻 zwnj می\u200cخواهم", "zwj 👩\u200d💻 zwnj می\u200cخواهم"},
		{`back\slash`, `back\slash`},
		{evil, `evil\x1b[2J\nroot`},
		{"a\tb\rc\x00d\x7f", `a\tb\rc\x00d\x7f`},
		{"c1\u0085\u009b", `c1\u0085\u009b`},
		{"\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069", `\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad\xffutf8", `bad\xffutf8`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestImpactEscapesUserNames: plan's blast radius names users Entra provisioned.
func TestImpactEscapesUserNames(t *testing.T) {
	var b strings.Builder
	writeImpact(&b, &access.Impact{Users: 1, Changes: []access.AccessChange{{Kind: "role", Name: evil, Gained: 2, GainedBy: []string{evil}}}})
	out := b.String()
	if strings.Contains(out, "\x1b") || strings.Count(out, "\n") != 3 || !strings.Contains(out, `evil\x1b[2J\nroot`) {
		t.Fatalf("impact not escaped:\n%q", out)
	}
}

// FuzzTableLaysOutAsTabwriter: for cells tabwriter measures right (one
// column a rune), tables come out byte for byte as text/tabwriter lays
// them out, rows of different lengths included.
func FuzzTableLaysOutAsTabwriter(f *testing.F) {
	f.Add("USERNAME|ACTIVE|GROUPS\nalice@contoso.com|true|Eng\nbob|false|")
	f.Add("a|b\nccc\nd|eeeee|f\n|\ng|h|i|j")
	f.Fuzz(func(t *testing.T, text string) {
		var rows [][]string
		for line := range strings.SplitSeq(text, "\n") {
			var row []string
			for c := range strings.SplitSeq(line, "|") {
				// Runes tabwriter counts as a column each: printable ASCII.
				row = append(row, strings.Map(func(r rune) rune {
					if r < ' ' || r > '~' {
						return -1
					}
					return r
				}, c))
			}
			rows = append(rows, row)
		}
		var got, want strings.Builder
		tb := newTable(&got)
		tw := tabwriter.NewWriter(&want, 0, 4, 2, ' ', 0)
		for _, row := range rows {
			tb.row(row...)
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tb.flush()
		tw.Flush()
		if got.String() != want.String() {
			t.Fatalf("rows %q:\ngot\n%s\nwant (tabwriter)\n%s", rows, got.String(), want.String())
		}
	})
}

// TestTableAlignsWideNames: a column after a name in Japanese, Chinese or
// Korean, or with combining marks, starts where the terminal shows the
// others start.
func TestTableAlignsWideNames(t *testing.T) {
	var b strings.Builder
	tb := newTable(&b, "DISPLAY NAME", "MEMBERS")
	tb.row("Engineering", "12")
	tb.row("開発チーム", "3")      // five wide characters: ten columns
	tb.row("영업", "4")         // two wide characters: four columns
	tb.row("Cafe\u0301", "5") // "Café" with a combining accent: four columns
	tb.flush()
	want := "DISPLAY NAME  MEMBERS\n" +
		"Engineering   12\n" +
		"開発チーム    3\n" +
		"영업          4\n" +
		"Cafe\u0301          5\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
