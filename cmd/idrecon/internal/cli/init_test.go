package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/schemas"
)

// TestInit: init writes a spec repository that validates as written,
// whose SCIM token is printed once and committed only as its SHA-256,
// whose files' $schema lines resolve inside it, and it refuses a
// directory that is not empty.
func TestInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spec")
	code, out, errs := run(t, nil, "init", dir, "--host", "https://sso.contoso.com")
	if code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errs)
	}
	tok := regexp.MustCompile(`(?m)^  ([A-Za-z0-9_-]{64})$`).FindStringSubmatch(out)
	if tok == nil {
		t.Fatalf("no token printed:\n%s", out)
	}
	scim, err := os.ReadFile(filepath.Join(dir, "scim.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok[1]))
	if !strings.Contains(string(scim), "sha256: "+hex.EncodeToString(sum[:])) || strings.Contains(string(scim), tok[1]) {
		t.Errorf("scim.yaml does not hold the token's SHA-256 alone:\n%s", scim)
	}
	if !strings.Contains(string(scim), "Tenant URL:   https://sso.contoso.com/api/scim/v2?aadOptscim062020") {
		t.Errorf("scim.yaml does not name the tenant URL for --host:\n%s", scim)
	}
	if code, out, errs := run(t, nil, "validate", dir); code != 0 || !strings.Contains(out, "valid") {
		t.Errorf("validate the new repository: %d %s %s", code, out, errs)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) != len(scaffold) {
		t.Errorf("%d files, want %d", len(files), len(scaffold))
	}
	modeline := regexp.MustCompile(`^# yaml-language-server: \$schema=(\S+)\n`)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		m := modeline.FindSubmatch(b)
		if m == nil {
			t.Errorf("%s has no $schema line", f)
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, string(m[1]))); err != nil {
			t.Errorf("%s: $schema %s does not resolve: %v", f, m[1], err)
		}
	}
	if code, _, errs := run(t, nil, "init", dir); code != 1 || !strings.Contains(errs, "not empty") {
		t.Errorf("init into a non-empty directory: %d %s", code, errs)
	}
}

// TestInitAndTokenNewAuthenticate: the tokens init and token new print
// authenticate SCIM requests to a daemon serving the repository with the
// hash lines they wrote, and nothing else does.
func TestInitAndTokenNewAuthenticate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spec")
	code, out, errs := run(t, nil, "init", dir)
	if code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errs)
	}
	tokenLine := regexp.MustCompile(`(?m)^  ([A-Za-z0-9_-]{64})$`)
	initTok := tokenLine.FindStringSubmatch(out)
	code, out, errs = run(t, nil, "token", "new", "--name", "rotated")
	if code != 0 || initTok == nil {
		t.Fatalf("token new: %d %s %s", code, out, errs)
	}
	newTok := tokenLine.FindStringSubmatch(out)
	entry := regexp.MustCompile(`(?m)^  - name: rotated\n    sha256: [0-9a-f]{64}\n`).FindString(out)
	if newTok == nil || entry == "" {
		t.Fatalf("token new printed no token and entry:\n%s", out)
	}
	f, err := os.OpenFile(filepath.Join(dir, "scim.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Printed at two spaces for reading; under spec.tokens it goes at four.
	f.WriteString(strings.ReplaceAll("  "+entry, "\n  ", "\n    "))
	f.Close()
	if code, out, errs := run(t, nil, "validate", dir); code != 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "scim.yaml"))
		t.Fatalf("validate: %d %s %s\n%s", code, out, errs, b)
	}
	_, base := startDaemon(t, dir)
	for _, tc := range []struct {
		token string
		want  int
	}{{initTok[1], 200}, {newTok[1], 200}, {newTok[1][1:], 401}} {
		req, _ := http.NewRequest("GET", base+"/api/scim/v2/Users", nil)
		req.Header.Set("Authorization", "Bearer "+tc.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("SCIM request with a token: %d, want %d", resp.StatusCode, tc.want)
		}
	}
}

// TestInitRefusesBadHost: --host is where users and Entra reach idrecon,
// pasted into the Tenant URL, the Reply URL and the SAML baseURL. A value
// the loader's baseURL rule refuses, or that would make those URLs wrong,
// is refused before anything is written, and a password in it is not
// echoed.
func TestInitRefusesBadHost(t *testing.T) {
	for _, host := range []string{
		"idp.example.com/x?y",
		"idp.example.com",
		"ftp://idp.example.com",
		"https://idp.example.com/x",
		"https://idp.example.com?x=y",
		"https://idp.example.com/?x",
		"https://idp.example.com?",
		"https://idp.example.com#f",
		"https://idp.example.com/#",
		"https://alice:s3cret@idp.example.com",
		"https://@idp.example.com",
		"https://idp.example.com:99999",
		"https://idp.example.com:0",
		"https://idp.example.com:",
		"https://idp.example.com;x",
		"https://idp example.com",
		"https:idp.example.com",
		"",
	} {
		t.Run(host, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spec")
			code, out, errs := run(t, nil, "init", dir, "--host", host)
			if code != 1 || !strings.Contains(errs, "--host") {
				t.Errorf("init --host %q: exit %d, want 1 naming --host\nstdout:\n%s\nstderr:\n%s", host, code, out, errs)
			}
			if strings.Contains(errs+out, "s3cret") {
				t.Errorf("the password is echoed:\n%s", errs)
			}
			if _, err := os.Lstat(dir); !os.IsNotExist(err) {
				t.Errorf("init --host %q wrote %s (%v)", host, dir, err)
			}
		})
	}
	for host, want := range map[string]string{
		"https://sso.contoso.com/":      "https://sso.contoso.com",
		"HTTPS://SSO.contoso.com":       "https://SSO.contoso.com",
		"http://127.0.0.1:8080":         "http://127.0.0.1:8080",
		"https://[2001:db8::1]:8443/":   "https://[2001:db8::1]:8443",
		"https://idrecon-1.contoso.com": "https://idrecon-1.contoso.com",
	} {
		dir := filepath.Join(t.TempDir(), "spec")
		if code, out, errs := run(t, nil, "init", dir, "--host", host); code != 0 {
			t.Errorf("init --host %q: exit %d\n%s%s", host, code, out, errs)
			continue
		}
		b, _ := os.ReadFile(filepath.Join(dir, "saml.yaml"))
		if !strings.Contains(string(b), "#   baseURL: "+want+"\n") {
			t.Errorf("init --host %q: saml.yaml does not name baseURL %s:\n%s", host, want, b)
		}
	}
}

// nearPathMax returns a folder, made, and the path rel below it of a spec
// repository (not made) so long that writing the JSON Schemas into the repository
// fails midway with "file name too long", which root cannot bypass as it
// does a permission: the schemas with shorter names fit in a path Linux
// takes, the one with the longest does not. Linux only.
func nearPathMax(t *testing.T, rel string) (parent, dir string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("relies on Linux's longest path")
	}
	const pathMax = 4095 // PATH_MAX less the terminating NUL
	entries, err := fs.ReadDir(schemas.FS, ".")
	if err != nil || len(entries) < 2 {
		t.Fatalf("schemas: %v, %d", err, len(entries))
	}
	shortest, longest := len(entries[0].Name()), 0
	for _, e := range entries {
		shortest, longest = min(shortest, len(e.Name())), max(longest, len(e.Name()))
	}
	inRepo := len("/" + schemaDir + "/")
	dirLen := pathMax - inRepo - longest + 1
	if dirLen+inRepo+shortest > pathMax {
		t.Fatal("the schemas' names are all as long")
	}
	parent = t.TempDir()
	for r := dirLen - len("/"+rel) - len(parent); r > 0; r = dirLen - len("/"+rel) - len(parent) {
		n := r - 1 // the last component
		if r > 201 {
			n = 200
			if r-201 == 1 { // no component is one '/' alone
				n = 199
			}
		}
		parent += "/" + strings.Repeat("d", n)
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	return parent, parent + "/" + rel
}

// leftIn lists what is in dir, for a test that wants nothing left.
func leftIn(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestInitFailureLeavesNothing: init that fails midway (a full disk, a
// permission; here a path too long) leaves no half-written repository: not
// a new folder, nor files in the empty one it was given, nor a temporary
// folder.
func TestInitFailureLeavesNothing(t *testing.T) {
	t.Run("new folder", func(t *testing.T) {
		parent, dir := nearPathMax(t, "spec")
		code, out, errs := run(t, nil, "init", dir)
		if code != 1 || !strings.Contains(errs, "file name too long") || out != "" {
			t.Fatalf("exit %d, want 1 saying why\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		if left := leftIn(t, parent); len(left) > 0 {
			t.Errorf("a failed init left %v", left)
		}
	})
	t.Run("empty folder", func(t *testing.T) {
		parent, dir := nearPathMax(t, "spec")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		code, out, errs := run(t, nil, "init", dir)
		if code != 1 || !strings.Contains(errs, "file name too long") || out != "" {
			t.Fatalf("exit %d, want 1 saying why\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		if left := leftIn(t, dir); len(left) > 0 {
			t.Errorf("a failed init left %v in the empty folder", left)
		}
		if left := leftIn(t, parent); len(left) != 1 {
			t.Errorf("a failed init left %v beside the folder", left)
		}
	})
	t.Run("new parents", func(t *testing.T) {
		parent, dir := nearPathMax(t, "x/y/spec")
		code, _, errs := run(t, nil, "init", dir)
		if code != 1 || !strings.Contains(errs, "file name too long") {
			t.Fatalf("exit %d, want 1 saying why: %s", code, errs)
		}
		if left := leftIn(t, parent); len(left) > 0 {
			t.Errorf("a failed init left %v, the folders it made above the repository", left)
		}
	})
}

// TestInitIntoAnEmptyFolder: init fills an empty folder it is given (a
// fresh clone, a mounted volume) and leaves no temporary folder in it.
func TestInitIntoAnEmptyFolder(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := run(t, nil, "init", dir); code != 0 {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	want := []string{schemaDir}
	for _, f := range scaffold {
		want = append(want, f.name)
	}
	slices.Sort(want)
	if left := leftIn(t, dir); !slices.Equal(left, want) {
		t.Errorf("init wrote %v, want %v", left, want)
	}
	if code, out, errs := run(t, nil, "validate", dir); code != 0 {
		t.Errorf("validate: exit %d\n%s%s", code, out, errs)
	}

	if code, _, errs := run(t, nil, "init", ""); code != 1 || !strings.Contains(errs, "DIR is empty") {
		t.Errorf("init \"\": exit %d, want a usage error: %s", code, errs)
	}

	// A new folder named with a trailing '/', as shells complete it.
	parent := t.TempDir()
	if code, out, errs := run(t, nil, "init", filepath.Join(parent, "spec")+"/"); code != 0 {
		t.Fatalf("init DIR/: exit %d\n%s%s", code, out, errs)
	}
	if left := leftIn(t, parent); !slices.Equal(left, []string{"spec"}) {
		t.Errorf("init DIR/ left %v", left)
	}
}

// TestInitNamesAStoppedRunsLeftovers: an init or export killed midway
// leaves its temporary folder in the folder it was filling. The next run
// must say what that folder is and what to do, not only that the folder is
// not empty (the user sees an empty listing without ls -a).
func TestInitNamesAStoppedRunsLeftovers(t *testing.T) {
	for _, left := range []string{".idrecon-init.tmp-123", ".idrecon-export.tmp-9"} {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, left, "schemas"), 0o755); err != nil {
			t.Fatal(err)
		}
		code, _, errs := run(t, nil, "init", dir)
		if code != 1 || !strings.Contains(errs, left) || !strings.Contains(errs, "stopped midway") {
			t.Errorf("%s: exit %d: %s", left, code, errs)
		}
	}
	// A folder of the user's own is named as before: not ours to explain.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ".keep"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(t, nil, "init", dir); code != 1 || !strings.Contains(errs, "not empty") || strings.Contains(errs, "midway") {
		t.Errorf(".keep: exit %d: %s", code, errs)
	}
}

// TestInitChecklistNumbersAreTheREADMEs: each file init writes says which
// step of the Entra checklist it is, numbered as README.md's table "From the
// Entra checklist to the spec" numbers them (the reference, which follows
// the seed checklist): a file's "Checklist N" names the steps whose row
// names that file, and the steps it leaves to Entra are rows done in Entra.
func TestInitChecklistNumbersAreTheREADMEs(t *testing.T) {
	readme, err := os.ReadFile("../../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "## From the Entra checklist to the spec")
	if !ok {
		t.Fatal("README.md has no section mapping the checklist to the spec")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	row := regexp.MustCompile(`(?m)^\| (\d+)\. [^|]*\| ([^\n]*)\|$`)
	steps := map[string][]string{} // file → the steps whose row names it
	inEntra := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(table, -1) {
		if strings.HasPrefix(m[2], "in Entra") {
			inEntra[m[1]] = true
		}
		for _, f := range scaffold {
			if strings.Contains(m[2], "`"+f.name+"`") {
				steps[f.name] = append(steps[f.name], m[1])
			}
		}
	}
	if len(steps) != len(scaffold) {
		t.Fatalf("the README's table names %d of init's %d files: %v", len(steps), len(scaffold), steps)
	}
	header := regexp.MustCompile(`^# Checklist ([\d, ]+):`)
	entras := regexp.MustCompile(`steps (\d+)-(\d+) are done in Entra`)
	for _, f := range scaffold {
		m := header.FindStringSubmatch(f.body)
		if m == nil {
			t.Errorf("%s does not start with its checklist step:\n%s", f.name, f.body)
			continue
		}
		if want := strings.Join(steps[f.name], ", "); m[1] != want {
			t.Errorf("%s says Checklist %s; the README's table has it at %s", f.name, m[1], want)
		}
		for _, r := range entras.FindAllStringSubmatch(f.body, -1) {
			from, _ := strconv.Atoi(r[1])
			to, _ := strconv.Atoi(r[2])
			for s := from; s <= to; s++ {
				if !inEntra[strconv.Itoa(s)] {
					t.Errorf("%s says step %d is done in Entra; the README's table does not", f.name, s)
				}
			}
		}
	}
}
