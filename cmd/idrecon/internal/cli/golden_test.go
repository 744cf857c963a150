package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenCase is one command line whose exit code, stdout and stderr are
// pinned by testdata/golden/NAME.golden.
type goldenCase struct {
	name string
	args []string
}

// normalizer replaces what must vary between runs, and nothing else:
//
//   - the literal strings in replace (the daemon's addresses, temporary
//     folders, the example spec's absolute path), longest first;
//   - RFC 3339 times by TIME, and the "(1m2s ago)" after them by (AGO ago);
//   - the revisions of the specs the case loads by REVISION, whole and
//     abbreviated, REVISION2 for the second (they change with every edit of examples/), and hashes
//     after "sha256:" and "sha1:" (file digests in a plan) by HASH;
//   - the SCIM ids the daemon assigns ("id", "userId") by ID;
//   - a token made by the command (token new, init) and its SHA-256, by
//     TOKEN and TOKENSHA, and the date token new names it after by DATE.
type normalizer struct {
	replace map[string]string
}

// revisions adds the revision of each spec folder, whole and as short
// prints it, to the replacements.
func (n normalizer) revisions(t *testing.T, dirs ...string) normalizer {
	t.Helper()
	for i, dir := range dirs {
		set, err := spec.Load(context.Background(), dir, spec.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		name := "REVISION"
		if i > 0 {
			name += fmt.Sprint(i + 1)
		}
		n.replace[set.Revision] = name
		n.replace[short(set.Revision)] = name
	}
	return n
}

var (
	reTime = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reAgo  = regexp.MustCompile(`\([0-9hmsµn.]+ ago\)`)
	reHash = regexp.MustCompile(`(sha256:|sha1:)[0-9a-f]{12,64}`)
	reID   = regexp.MustCompile(`"(id|userId)": "[a-z0-9]+"`)
	// A daemon numbers reconcile requests from the time it started.
	reRequest = regexp.MustCompile(`"request": \d+`)
	// reToken is a SCIM token as newToken makes it, alone on its line or
	// as a JSON string.
	reToken = regexp.MustCompile(`(?m)(^  |"token": ")([A-Za-z0-9_-]{64})($|")`)
	// reTokenDate is the date in the name token new gives a token.
	reTokenDate = regexp.MustCompile(`(name: |"name": ")entra-\d{4}-\d\d-\d\d\b`)
)

func (n normalizer) apply(s string) string {
	olds := make([]string, 0, len(n.replace))
	for o := range n.replace {
		olds = append(olds, o)
	}
	sort.Slice(olds, func(i, j int) bool { return len(olds[i]) > len(olds[j]) })
	for _, o := range olds {
		s = strings.ReplaceAll(s, o, n.replace[o])
	}
	if m := reToken.FindStringSubmatch(s); m != nil {
		sum := sha256.Sum256([]byte(m[2]))
		s = strings.ReplaceAll(s, m[2], "TOKEN")
		s = strings.ReplaceAll(s, hex.EncodeToString(sum[:]), "TOKENSHA")
	}
	s = reTime.ReplaceAllString(s, "TIME")
	s = reTokenDate.ReplaceAllString(s, "${1}entra-DATE")
	s = reAgo.ReplaceAllString(s, "(AGO ago)")
	s = reHash.ReplaceAllString(s, "${1}HASH")
	s = reID.ReplaceAllString(s, `"$1": "ID"`)
	s = reRequest.ReplaceAllString(s, `"request": N`)
	return s
}

// runGolden runs each case and compares its normalized result with its
// golden file; with -update it writes the file instead.
func runGolden(t *testing.T, env map[string]string, n normalizer, tests []goldenCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Main may rewrite its arguments (--version); the header shows them as given.
			code, out, errs := run(t, env, slices.Clone(tt.args)...)
			got := n.apply(formatGolden(tt.args, code, out, errs))
			checkGolden(t, tt.name, got)
		})
	}
}

func formatGolden(args []string, code int, stdout, stderr string) string {
	var b strings.Builder
	b.WriteString("$ idrecon " + strings.Join(args, " ") + "\n")
	fmt.Fprintf(&b, "exit %d\n", code)
	b.WriteString("-- stdout --\n" + stdout)
	b.WriteString("-- stderr --\n" + stderr)
	return b.String()
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(want, []byte(got)) {
		t.Errorf("%s differs (go test -update rewrites it; review the diff):\n%s", file, lineDiff(string(want), got))
	}
}

// lineDiff shows the lines of want and got from the first that differs.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	i := 0
	for i < len(w) && i < len(g) && w[i] == g[i] {
		i++
	}
	end := func(l []string) []string { return l[i:min(len(l), i+8)] }
	return fmt.Sprintf("from line %d:\n--- want\n%s\n+++ got\n%s", i+1, strings.Join(end(w), "\n"), strings.Join(end(g), "\n"))
}

// goldenCommands are the commands whose --help is pinned.
var goldenCommands = []string{
	"access", "apply", "backup", "export", "groups", "history", "init", "keystore", "migrate", "plan", "reconcile",
	"restore", "resume", "saml", "serve", "status", "suspend", "token", "users", "validate", "version",
}

// TestGoldenHelp pins the help of idrecon and of each command.
func TestGoldenHelp(t *testing.T) {
	tests := []goldenCase{{"help/idrecon", []string{"--help"}}}
	for _, c := range goldenCommands {
		tests = append(tests, goldenCase{"help/" + c, []string{c, "--help"}})
	}
	runGolden(t, nil, normalizer{}, tests)
}

// TestGoldenOffline pins the commands that need no daemon, their text and
// JSON output, and their errors.
func TestGoldenOffline(t *testing.T) {
	const example = "../../../../examples/entra"
	tmp := t.TempDir()
	n := normalizer{replace: map[string]string{tmp: "$TMP"}}.revisions(t, example)
	token := filepath.Join(tmp, "token")
	os.WriteFile(token, []byte("not-the-admin-token\n"), 0o600)
	runGolden(t, nil, n, []goldenCase{
		{"version", []string{"version"}},
		{"version-flag", []string{"--version"}},
		{"validate", []string{"validate", example}},
		{"validate-json", []string{"validate", example, "--output", "json"}},
		{"validate-github", []string{"validate", example, "--output", "github"}},
		{"validate-bad", []string{"validate", "testdata/badspec"}},
		{"validate-bad-json", []string{"validate", "testdata/badspec", "--output", "json"}},
		{"validate-bad-github", []string{"validate", "testdata/badspec", "--output", "github"}},
		{"validate-limit", []string{"validate", example, "--max-spec-bytes", "1000"}},
		{"validate-limit-json", []string{"validate", example, "--max-spec-bytes", "1000", "--output", "json"}},
		{"validate-limit-github", []string{"validate", example, "--max-spec-bytes", "1000", "--output", "github"}},
		{"plan", []string{"plan", example}},
		{"plan-json", []string{"plan", example, "--output", "json"}},
		{"plan-bad", []string{"plan", "testdata/badspec"}},
		{"plan-bad-json", []string{"plan", "testdata/badspec", "--output", "json"}},
		{"token-new", []string{"token", "new", "--name", "entra-2026"}},
		{"token-new-json", []string{"token", "new", "--output", "json"}},
		{"init", []string{"init", filepath.Join(tmp, "spec"), "--host", "https://sso.contoso.com"}},
		{"init-not-empty", []string{"init", filepath.Join(tmp, "spec")}},
		{"keystore-missing-file", []string{"keystore", "import", filepath.Join(tmp, "none.p12"), "--key-out", filepath.Join(tmp, "key")}},
		{"restore-missing-file", []string{"restore", filepath.Join(tmp, "none"), "--data-dir", filepath.Join(tmp, "data")}},
		{"status-unreachable", []string{"status", "--server", "http://127.0.0.1:1", "--admin-token-file", token}},
		{"status-unreachable-json", []string{"status", "--server", "http://127.0.0.1:1", "--admin-token-file", token, "--output", "json"}},
		// Command-line mistakes.
		{"usage/no-command", nil},
		{"usage/unknown-command", []string{"frobnicate"}},
		{"usage/unknown-flag", []string{"status", "--no-such-flag"}},
		{"usage/bad-output", []string{"plan", example, "--output", "yaml"}},
		{"usage/missing-arg", []string{"access", "user"}},
		{"usage/missing-subcommand", []string{"token"}},
		{"usage/unknown-subcommand", []string{"saml", "nope"}},
		{"usage/extra-arg", []string{"version", "extra"}},
		{"usage/two-dirs", []string{"validate", "a", "b"}},
		{"usage/dir-and-git", []string{"plan", ".", "--git", "file:///nowhere"}},
		{"usage/server-and-base-ref", []string{"plan", ".", "--server", "http://127.0.0.1:1", "--base-ref", "main"}},
		{"usage/access-version-no-slash", []string{"access", "version", "webgoat", "--server", "http://127.0.0.1:1", "--admin-token-file", token}},
		{"usage/server-and-spec-limit", []string{"plan", ".", "--server", "http://127.0.0.1:1", "--max-spec-bytes", "1000"}},
		{"usage/spec-limit-zero", []string{"validate", ".", "--max-spec-nodes", "0"}},
		{"usage/keystore-unknown-usage", []string{"keystore", "import", filepath.Join(tmp, "none.p12"), "--usage", "signing"}},
		{"usage/serve-extra-arg", []string{"serve", "extra"}},
		{"usage/export-without-o", []string{"export"}},
		{"usage/migrate-without-flags", []string{"migrate"}},
		{"usage/backup-force-without-o", []string{"backup", "--force"}},
		{"usage/status-every", []string{"status", "--watch", "--every", "0s", "--server", "http://127.0.0.1:1", "--admin-token-file", token}},
	})
}

// TestGoldenDaemon pins the commands that talk to a daemon, against a real
// one serving the example spec with one provisioned user. The cases run in
// order: suspend, resume and apply change the daemon.
func TestGoldenDaemon(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	env, base := startDaemon(t, example)
	scimPost(t, base+"/api/scim/v2/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"alice@contoso.com","active":true,"externalId":"alice"}`)
	tmp := t.TempDir()
	changed := filepath.Join(tmp, "changed")
	if err := os.CopyFS(changed, os.DirFS(example)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(changed, "assignments.yaml"))
	os.WriteFile(filepath.Join(changed, "assignments.yaml"), bytes.ReplaceAll(b, []byte("View Only"), []byte("Developer")), 0o644)
	// refused is changed without scim.yaml: the guard refuses deleting the
	// enabled ScimProvisioning, and alice's new role is no blast radius.
	refused := filepath.Join(tmp, "refused")
	if err := os.CopyFS(refused, os.DirFS(changed)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(refused, "scim.yaml")); err != nil {
		t.Fatal(err)
	}
	server := env["IDRECON_SERVER"]
	n := normalizer{replace: map[string]string{
		server: "http://127.0.0.1:ADMINPORT", base: "http://127.0.0.1:PORT",
		example: "$EXAMPLES", tmp: "$TMP",
	}}.revisions(t, example, changed, refused)
	token := filepath.Join(tmp, "token")
	os.WriteFile(token, []byte("not-the-admin-token\n"), 0o600)
	runGolden(t, env, n, []goldenCase{
		{"daemon/status", []string{"status"}},
		{"daemon/status-json", []string{"status", "--output", "json"}},
		{"daemon/history", []string{"history"}},
		{"daemon/users", []string{"users"}},
		{"daemon/users-json", []string{"users", "--output", "json"}},
		{"daemon/users-none-json", []string{"users", "--filter", "nobody", "--output", "json"}},
		{"daemon/users-none", []string{"users", "--filter", "nobody"}},
		{"daemon/users-page", []string{"users", "--limit", "1", "--active", "true"}},
		{"daemon/groups", []string{"groups"}},
		{"daemon/groups-json", []string{"groups", "--output", "json"}},
		{"daemon/access-user", []string{"access", "user", "alice@contoso.com"}},
		{"daemon/access-user-json", []string{"access", "user", "alice@contoso.com", "--output", "json"}},
		{"daemon/access-user-unknown", []string{"access", "user", "nobody@contoso.com"}},
		{"daemon/access-user-unknown-json", []string{"access", "user", "nobody@contoso.com", "--output", "json"}},
		{"daemon/access-version", []string{"access", "version", "webgoat/2.0"}},
		{"daemon/access-version-json", []string{"access", "version", "webgoat/2.0", "--output", "json"}},
		{"daemon/access-pending", []string{"access", "pending"}},
		{"daemon/access-pending-json", []string{"access", "pending", "--output", "json"}},
		{"daemon/plan-unchanged", []string{"plan", example, "--server", server}},
		{"daemon/plan-changed", []string{"plan", changed, "--server", server}},
		{"daemon/plan-changed-json", []string{"plan", changed, "--server", server, "--output", "json"}},
		{"daemon/plan-refused", []string{"plan", refused, "--server", server}},
		{"daemon/plan-refused-json", []string{"plan", refused, "--server", server, "--output", "json"}},
		// A spec the daemon refuses: its problems, where they are, as the
		// local plan gives them (plan-bad, plan-bad-json).
		{"daemon/plan-bad", []string{"plan", "testdata/badspec", "--server", server}},
		{"daemon/plan-bad-json", []string{"plan", "testdata/badspec", "--server", server, "--output", "json"}},
		{"daemon/apply-pull-mode", []string{"apply", changed}},
		{"daemon/apply-pull-mode-json", []string{"apply", changed, "--output", "json"}},
		{"daemon/saml-metadata", []string{"saml", "metadata"}},
		{"daemon/saml-metadata-file", []string{"saml", "metadata", "-o", filepath.Join(tmp, "sp.xml")}},
		{"daemon/suspend", []string{"suspend"}},
		{"daemon/status-suspended", []string{"status"}},
		{"daemon/resume", []string{"resume"}},
		{"daemon/reconcile", []string{"reconcile"}},
		{"daemon/reconcile-wait", []string{"reconcile", "--wait", "--timeout", "30s"}},
		{"daemon/export", []string{"export", "-o", filepath.Join(tmp, "exported")}},
		{"daemon/backup-file", []string{"backup", "-o", filepath.Join(tmp, "backup")}},
		{"daemon/backup-exists", []string{"backup", "-o", filepath.Join(tmp, "backup")}},
		{"daemon/restore", []string{"restore", filepath.Join(tmp, "backup"), "--data-dir", filepath.Join(tmp, "data")}},
		{"daemon/wrong-token", []string{"status", "--admin-token-file", token}},
		{"daemon/wrong-token-json", []string{"users", "--admin-token-file", token, "--output", "json"}},
	})
}
