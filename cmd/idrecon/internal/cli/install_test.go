package cli

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionOf(t *testing.T) {
	vcs := func(module string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/idrecon/idrecon", Version: module}}
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const commit = "45af250abcdef0123456789abcdef0123456789a"
	for _, tc := range []struct {
		name   string
		linked string
		bi     *debug.BuildInfo
		want   string
	}{
		{"make build: git describe wins", "v0.3.0-4-g45af250", vcs("v0.2.0"), "v0.3.0-4-g45af250"},
		{"go install @version", "dev", vcs("v0.3.0"), "v0.3.0"},
		{"go build in a checkout: a pseudo-version", "dev", vcs("v0.0.0-20260101120000-45af250abcde+dirty"), "v0.0.0-20260101120000-45af250abcde+dirty"},
		{"vcs stamp only", "dev", vcs("(devel)", "vcs.revision", commit, "vcs.modified", "false"), "45af250abcde"},
		{"vcs stamp, modified tree", "dev", vcs("(devel)", "vcs.revision", commit, "vcs.modified", "true"), "45af250abcde-dirty"},
		{"nothing recorded", "dev", vcs("(devel)"), "dev"},
		{"no build info", "", nil, "dev"},
	} {
		if got := versionOf(tc.linked, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestVersionCommand: the command prints what versionOf picks for this
// binary (a test binary has build info, but no module version).
func TestVersionCommand(t *testing.T) {
	var out strings.Builder
	if code := Main(t.Context(), Env{Args: []string{"version"}, Stdout: &out, Stderr: &out}); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	if got, want := out.String(), "idrecon "+version()+"\n"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v9.8.7"
	out.Reset()
	Main(t.Context(), Env{Args: []string{"--version"}, Stdout: &out, Stderr: &out})
	if got := out.String(); got != "idrecon v9.8.7\n" {
		t.Errorf("with the linker's version: %q", got)
	}
}

func TestDefaultAdminToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing")
	empty := write("empty", "\n", 0o600)
	good := write("good", "tok-from-host\n", 0o600)
	other := write("other", "second\n", 0o600)
	notAFile := t.TempDir() // reading a directory fails, as an unreadable file does for a user

	for _, tc := range []struct {
		name    string
		files   []string
		want    string
		wantErr []string
	}{
		{"the first existing wins", []string{missing, good, other}, "tok-from-host", nil},
		{"an empty file is skipped", []string{empty, other}, "second", nil},
		{"none: the places are named", []string{missing}, "", []string{"no admin token", "IDRECON_ADMIN_TOKEN", missing}},
		{"unreadable: why is said", []string{notAFile}, "", []string{notAFile, "is a directory", "run as root"}},
	} {
		got, file, err := defaultAdminToken(tc.files)
		if got != tc.want {
			t.Errorf("%s: token %q, want %q", tc.name, got, tc.want)
		}
		if got != "" {
			if b, _ := os.ReadFile(file); strings.TrimSpace(string(b)) != got {
				t.Errorf("%s: the token is said to come from %q, which does not hold it", tc.name, file)
			}
		}
		for _, w := range tc.wantErr {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to say %q", tc.name, err, w)
			}
		}
		if tc.wantErr == nil && err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}

// TestAdminTokenFilesIncludeTheSystemdHost: the unit in examples/systemd
// keeps its data in the state directory the CLI looks in.
func TestAdminTokenFilesIncludeTheSystemdHost(t *testing.T) {
	unit, err := os.ReadFile("../../../../examples/systemd/idrecon.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "StateDirectory=idrecon\n") || !strings.Contains(string(unit), "--data-dir /var/lib/idrecon") {
		t.Fatal("the systemd unit no longer keeps its data in /var/lib/idrecon")
	}
	want := "/var/lib/idrecon/admin-token"
	for _, f := range adminTokenFiles {
		if f == want {
			return
		}
	}
	t.Errorf("adminTokenFiles %v lack %s", adminTokenFiles, want)
}

// TestSystemdExamplesParse: the command line each systemd example runs is
// one serve accepts, flag for flag.
func TestSystemdExamplesParse(t *testing.T) {
	for _, name := range []string{"idrecon.service", "etcd.conf"} {
		t.Run(name, func(t *testing.T) {
			unit, err := os.ReadFile("../../../../examples/systemd/" + name)
			if err != nil {
				t.Fatal(err)
			}
			var args []string
			for _, line := range strings.Split(strings.ReplaceAll(string(unit), "\\\n", " "), "\n") {
				if v, ok := strings.CutPrefix(line, "ExecStart="); ok && strings.TrimSpace(v) != "" {
					args = strings.Fields(v)
				}
			}
			if len(args) < 2 || args[0] != "/usr/local/bin/idrecon" || args[1] != "serve" {
				t.Fatalf("ExecStart runs %q, want /usr/local/bin/idrecon serve", args)
			}
			c := serveCmd(Env{Getenv: func(string) string { return "" }})
			if err := c.ParseFlags(args[2:]); err != nil {
				t.Fatalf("serve refuses the example's flags: %v", err)
			}
			if rest := c.Flags().Args(); len(rest) != 0 {
				t.Errorf("arguments serve does not take: %q", rest)
			}
			if name == "etcd.conf" && c.Flags().Lookup("etcd").Value.String() == "" {
				t.Error("the etcd drop-in sets no --etcd")
			}
		})
	}
}
