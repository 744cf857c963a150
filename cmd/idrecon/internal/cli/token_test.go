package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// TestTokenNewEntryMeansItsName: the entry token new prints is pasted under
// spec.tokens as it is, so it must read back as the name given, whatever
// YAML makes of that text unquoted (a comment, a mapping, a number, null);
// a name the loader refuses is refused here, before a token is shown.
func TestTokenNewEntryMeansItsName(t *testing.T) {
	for _, name := range []string{"entra", "entra: old", "#2", "123", "null", "- a", "'q'", "a\"b", "yes", " entra ", strings.Repeat("long name ", 25)} {
		code, out, errs := run(t, nil, "token", "new", "--name", name)
		if code != 0 {
			t.Errorf("token new --name %q: exit %d\n%s", name, code, errs)
			continue
		}
		entry := regexp.MustCompile(`(?ms)^  - name: .*\n    sha256: [0-9a-f]{64}\n`).FindString(out)
		var got []struct{ Name, SHA256 string }
		if err := yaml.Unmarshal([]byte(entry), &got); err != nil || len(got) != 1 || got[0].Name != name || len(got[0].SHA256) != 64 {
			t.Errorf("token new --name %q: the entry reads back as %+v (%v):\n%s", name, got, err, entry)
		}
	}
	for _, name := range []string{"", "a\nb", "tab\there"} {
		code, out, errs := run(t, nil, "token", "new", "--name", name)
		if code != 1 || !strings.Contains(errs, "--name") || strings.Contains(out, "sha256") {
			t.Errorf("token new --name %q: exit %d, want 1 naming --name and no token\nstdout:\n%s\nstderr:\n%s", name, code, out, errs)
		}
	}
}

// runAt is run with the command's clock at now.
func runAt(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	return runWith(t, func() time.Time { return now }, nil, args...)
}

// pasteEntry appends the entry token new printed under spec.tokens of the
// scim.yaml in dir, as the rotation advice says, and validates dir.
func pasteEntry(t *testing.T, dir, out string) {
	t.Helper()
	entry := regexp.MustCompile(`(?m)^  - name: .*\n    sha256: [0-9a-f]{64}\n`).FindString(out)
	if entry == "" {
		t.Fatalf("no entry printed:\n%s", out)
	}
	f, err := os.OpenFile(filepath.Join(dir, "scim.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.ReplaceAll("  "+entry, "\n  ", "\n    "))
	f.Close()
	if code, out, errs := run(t, nil, "validate", dir); code != 0 {
		t.Fatalf("validate after pasting the entry: exit %d\n%s%s", code, out, errs)
	}
}

// TestTokenNewNamesARotation: the entry token new prints is pasted next to
// the token in use, so its name must not be that one's. Without a spec it
// is named after the command's date; with a spec, given with --spec or the
// working directory, after the date too, and never a name the spec holds.
// --name still names it, but not with a name the spec already holds.
func TestTokenNewNamesARotation(t *testing.T) {
	now := time.Date(2026, 12, 7, 23, 30, 0, 0, time.UTC)
	name := regexp.MustCompile(`(?m)^  - name: (.*)$`)
	printed := func(t *testing.T, args ...string) string {
		t.Helper()
		code, out, errs := runAt(t, now, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		m := name.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("%v printed no entry:\n%s", args, out)
		}
		return m[1]
	}
	if got := printed(t, "token", "new"); got != "entra-2026-12-07" {
		t.Errorf("token new without a spec: name %q, want entra-2026-12-07", got)
	}
	dir := filepath.Join(t.TempDir(), "spec")
	if code, out, errs := run(t, nil, "init", dir); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errs)
	}
	code, out, errs := runAt(t, now, "token", "new", "--spec", dir)
	if code != 0 || name.FindStringSubmatch(out) == nil || name.FindStringSubmatch(out)[1] != "entra-2026-12-07" {
		t.Fatalf("token new --spec: exit %d, want entra-2026-12-07\n%s%s", code, out, errs)
	}
	pasteEntry(t, dir, out)
	// A second rotation the same day: the date's name is taken.
	code, out, errs = runAt(t, now, "token", "new", "--spec", dir)
	if code != 0 || name.FindStringSubmatch(out)[1] != "entra-2026-12-07-2" {
		t.Fatalf("token new --spec, the date's name taken: exit %d, want entra-2026-12-07-2\n%s%s", code, out, errs)
	}
	pasteEntry(t, dir, out)
	// Run in the spec repo, without --spec.
	t.Chdir(dir)
	if got := printed(t, "token", "new"); got != "entra-2026-12-07-3" {
		t.Errorf("token new in the spec repo: name %q, want entra-2026-12-07-3", got)
	}
	if got := printed(t, "token", "new", "--name", "rotated"); got != "rotated" {
		t.Errorf("token new --name rotated: name %q", got)
	}
	if code, out, errs := runAt(t, now, "token", "new", "--name", "entra"); code != 1 || !strings.Contains(errs, `"entra"`) || strings.Contains(out, "sha256") {
		t.Errorf("token new --name of a token the spec holds: exit %d, want 1 and no token\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// A --spec that does not load is an error, not a guess.
	if code, _, errs := runAt(t, now, "token", "new", "--spec", filepath.Join(dir, "nope")); code != 1 || !strings.Contains(errs, "nope") {
		t.Errorf("token new --spec of no spec: exit %d\n%s", code, errs)
	}
}
