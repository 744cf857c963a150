package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strings"

	"github.com/idrecon/idrecon/runtime/daemon"
)

// version is what `idrecon version` prints: the Version the Makefile sets
// from `git describe`, else what the Go toolchain recorded in the binary.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return versionOf(Version, bi)
}

// versionOf picks the version: a linker-set one; else the main module's
// version, which `go install ...@v1.2.0` records (and `go build` in a
// checkout, as a pseudo-version); else the commit, as builds with VCS
// stamping but no module version record it; else "dev".
func versionOf(linked string, bi *debug.BuildInfo) string {
	if linked != "" && linked != "dev" {
		return linked
	}
	if bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified == "true" {
		rev += "-dirty"
	}
	return rev
}

// adminTokenFiles are where a client looks for the admin token when neither
// --admin-token-file nor IDRECON_ADMIN_TOKEN names it: the data dir of `make
// run` (and, from the image's working directory /, the container's /data
// volume), then the state directory of the systemd unit in
// examples/systemd, where the daemon generates the token on first start.
var adminTokenFiles = []string{
	"data/" + daemon.AdminTokenFile,
	"/var/lib/idrecon/" + daemon.AdminTokenFile,
}

// defaultAdminToken reads the first of files that exists and holds a token,
// and returns it with that file's name. A file that exists but cannot be
// read (the systemd unit's is mode 0600, owned by the idrecon user) is
// named in the error, so the fix is clear.
func defaultAdminToken(files []string) (tok, file string, err error) {
	var unreadable []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			unreadable = append(unreadable, err.Error())
			continue
		}
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, f, nil
		}
	}
	msg := "no admin token: set IDRECON_ADMIN_TOKEN or --admin-token-file (looked in " + strings.Join(files, ", ") + ")"
	if len(unreadable) > 0 {
		msg += "; " + strings.Join(unreadable, "; ") + " (run as root or the daemon's user)"
	}
	return "", "", fmt.Errorf("%s", msg)
}
