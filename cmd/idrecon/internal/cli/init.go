package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/schemas"
)

// schemaDir is where init copies the JSON Schemas, relative to the spec
// root; every file's $schema line points there, so editors resolve them
// without network access.
const schemaDir = ".schemas"

// scaffold is the Entra checklist as spec files: SCIM provisioning works as
// written (with the token init makes); the steps that need files from Entra
// (its signing certificate and federation metadata) are commented out with
// what to download and where to put it. HOST is replaced with --host.
var scaffold = []struct{ name, schema, body string }{
	{"scim.yaml", "scimprovisioning", `# Checklist 1: SCIM provisioning from Microsoft Entra ID (steps 2-5 are done in Entra).
#
# Step 4, in the Entra enterprise application, Provisioning > Admin Credentials:
#   Tenant URL:   HOST/api/scim/v2?aadOptscim062020
#   Secret Token: the token idrecon init printed (shown once; git holds its SHA-256).
# Rotate with ` + "`idrecon token new`" + `: add the new entry, switch Entra, remove the old one.
apiVersion: idrecon.io/v1alpha1
kind: ScimProvisioning
metadata:
  name: entra
spec:
  enabled: true
  basePath: /api/scim/v2
  tokens:
    - name: entra
      sha256: TOKENSHA
`},
	{"keystore.yaml", "certificate", `# Checklist 6: Entra's SAML signing certificate in the keystore.
#
# In the Entra enterprise application, Single sign-on > SAML Certificates, download
# "Certificate (Base64)" into idp/entra-signing.cer, then uncomment:
#
# apiVersion: idrecon.io/v1alpha1
# kind: Certificate
# metadata:
#   name: entra-signing
# spec:
#   usage: saml-idp-signing
#   file: idp/entra-signing.cer
`},
	{"saml.yaml", "samlserviceprovider", `# Checklist 7: SAML 2.0 single sign-on with Entra as the identity provider.
#
# In the Entra enterprise application, Single sign-on > SAML:
#   Identifier (Entity ID):  HOST/saml/metadata
#   Reply URL (ACS URL):     HOST/saml/acs
# (or steps 8-9: upload the SP metadata, from idrecon saml metadata). Download "Federation Metadata XML" into
# idp/federationmetadata.xml, uncomment keystore.yaml, then uncomment:
#
# apiVersion: idrecon.io/v1alpha1
# kind: SamlServiceProvider
# metadata:
#   name: entra
# spec:
#   enabled: true
#   entityID: HOST/saml/metadata
#   baseURL: HOST
#   idp:
#     metadataFile: idp/federationmetadata.xml
#     signingCertificates:
#       - entra-signing
`},
	{"applications.yaml", "application", `# Checklist 10: the applications and versions users may be given.
#
# apiVersion: idrecon.io/v1alpha1
# kind: Application
# metadata:
#   name: webgoat
# spec:
#   versions: ["1.0", "2.0"]
`},
	{"assignments.yaml", "accessassignment", `# Checklist 10: roles and application versions for the groups (or users) Entra provisions.
# The built-in roles (Administrator, Security Lead, Developer, View Only, ...) need no document.
#
# apiVersion: idrecon.io/v1alpha1
# kind: AccessAssignment
# metadata:
#   name: appsec-developers
# spec:
#   subject:
#     group: AppSec Developers
#   roles: [Developer]
#   applicationVersions: [webgoat/2.0]
`},
}

func initCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "init DIR",
		Short: "Start a spec repository (the Entra checklist as commented YAML, a fresh SCIM token)",
		Long: `Start a spec repository in DIR (new or empty): the Entra checklist as commented
YAML (SCIM works as written; the sign-in steps say what to download from
Entra), a fresh SCIM token printed once with only its SHA-256 in the files,
and the JSON Schemas in DIR/.schemas for the files' $schema lines.`,
		Example:           `  idrecon init spec --host https://idrecon.contoso.com`,
		Args:              exactArgs("DIR"),
		ValidArgsFunction: completeDirs,
	}
	host := c.Flags().String("host", "https://idrecon.example.com", "the address users and Entra reach idrecon at, for the URLs in the files")
	c.RunE = func(_ *cobra.Command, pos []string) error { return runInit(env, pos[0], *host) }
	return c
}

func runInit(env Env, dir, host string) error {
	if dir == "" {
		// Not the working directory, which need not be empty.
		return usageErrorf("DIR is empty")
	}
	base, err := hostURL(host)
	if err != nil {
		return err
	}
	tok, err := newToken()
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(tok))
	fill := strings.NewReplacer("HOST", base, "TOKENSHA", hex.EncodeToString(sum[:]))
	err = writeRepo(dir, "init", func(dir string) error {
		if err := copySchemas(dir); err != nil {
			return err
		}
		for _, f := range scaffold {
			body := "# yaml-language-server: $schema=" + schemaDir + "/" + f.schema + ".schema.json\n" + fill.Replace(f.body)
			if err := os.WriteFile(filepath.Join(dir, f.name), []byte(body), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, `Wrote a spec repository in %s (validate it with: idrecon validate %s).

SCIM token (shown once; paste it into Entra as the Secret Token; scim.yaml holds only its SHA-256):

  %s

Next: the comments in keystore.yaml and saml.yaml say what to download from Entra for sign-in.
`, dir, dir, tok)
	return nil
}

// hostURL checks --host and returns it as the files name it: scheme and
// host alone. The value becomes the SamlServiceProvider baseURL (which the
// loader refuses with a query, fragment or user information) and the
// prefix of the Tenant and Reply URLs pasted into Entra, where a query
// would swallow the path after it and a path would be taken for part of
// every endpoint's; so anything but a scheme, a host and a port is
// refused here, before anything is written, rather than in a file later.
// The value is echoed redacted, as it may hold a password.
func hostURL(raw string) (string, error) {
	bad := func(why string) error {
		return usageErrorf("--host %q: %s; want the http(s) address users and Entra reach idrecon at, such as https://idrecon.contoso.com", redactURL(raw), why)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", bad("not a URL")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", bad("no http:// or https:// scheme")
	case u.Opaque != "" || u.Host == "":
		return "", bad("no host")
	case u.User != nil || strings.Contains(u.Host, "@"):
		return "", bad("it holds a user name or password, which Entra and browsers must not be given")
	case strings.ContainsAny(raw, "?#"):
		return "", bad("it has a query or fragment")
	case u.Path != "" && u.Path != "/" || u.RawPath != "":
		return "", bad("it has a path (the endpoints' paths are fixed below the host)")
	}
	if strings.HasSuffix(u.Host, ":") {
		return "", bad("empty port")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", bad("port out of range")
		}
	}
	if name := u.Hostname(); net.ParseIP(name) == nil && !hostnameRE.MatchString(name) {
		return "", bad("not a host name (letters, digits, '-' and '.'; an IDN in its xn-- form)")
	}
	return u.Scheme + "://" + u.Host, nil
}

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$`)

// newRepoDir checks that cmd may write a new spec repository into dir: it
// does not exist yet, or is empty (exists says which).
func newRepoDir(dir, cmd string) (exists bool, err error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case len(entries) > 0:
		if left := leftovers(entries); len(left) == len(entries) {
			return true, fmt.Errorf("%s holds only %s, the temporary folder of an init or export stopped midway: remove it and run %s again", dir, strings.Join(left, ", "), cmd)
		}
		return true, fmt.Errorf("%s is not empty: %s writes a new spec repository", dir, cmd)
	}
	return true, nil
}

// leftovers returns the names of the temporary folders fillEmptyDir makes
// (init's or export's) among entries.
func leftovers(entries []fs.DirEntry) []string {
	var names []string
	for _, e := range entries {
		for _, cmd := range []string{"init", "export"} {
			if e.IsDir() && strings.HasPrefix(e.Name(), fillPrefix(cmd)) {
				names = append(names, e.Name())
			}
		}
	}
	return names
}

// fillPrefix starts the name of fillEmptyDir's temporary folder for cmd.
func fillPrefix(cmd string) string { return ".idrecon-" + cmd + ".tmp-" }

// writeRepo has write fill a temporary folder with a new spec repository
// and moves it into dir, which must not exist or be empty: a write that
// fails midway (a full disk, a permission) used to leave a repository
// half-written, which a second try refused as not empty and which might
// have validated with files missing.
func writeRepo(dir, cmd string, write func(tmp string) error) error {
	exists, err := newRepoDir(dir, cmd)
	if err != nil {
		return err
	}
	if exists {
		err = fillEmptyDir(dir, cmd, write)
	} else {
		err = makeRepoDir(dir, write)
	}
	if err != nil {
		return fmt.Errorf("%w (nothing written to %s)", err, dir)
	}
	return nil
}

// makeRepoDir writes a repository that is new, folder included: into a
// temporary folder beside dir, renamed to dir once whole. Folders above dir
// that it makes are removed again on a failure.
func makeRepoDir(dir string, write func(tmp string) error) error {
	dir = filepath.Clean(dir) // "spec/" is no child of "spec"
	parent := filepath.Dir(dir)
	undo, err := mkdirAllUndo(parent, 0o755)
	if err != nil {
		return err
	}
	tmp, err := tempDir(parent, "."+filepath.Base(dir)+".tmp-")
	if err == nil {
		if err = write(tmp); err == nil {
			// An empty folder made at dir since the check is replaced; one
			// with anything in it, or a file, makes the rename fail.
			err = os.Rename(tmp, dir)
		}
		if err != nil {
			os.RemoveAll(tmp)
		}
	}
	if err != nil {
		undo()
	}
	return err
}

// fillEmptyDir writes a repository into dir, an empty folder that exists:
// into a temporary folder inside it, whose entries are moved up once it is
// whole. Renaming a folder beside it over dir would be atomic, but needs
// write access to dir's parent, fails if dir is a mount point (a container's
// volume) and would drop dir's own owner, mode and attributes.
func fillEmptyDir(dir, cmd string, write func(tmp string) error) error {
	tmp, err := tempDir(dir, fillPrefix(cmd))
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // after the moves, an empty folder
	if err := write(tmp); err != nil {
		return err
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	if others, err := os.ReadDir(dir); err != nil {
		return err
	} else if len(others) != 1 {
		return fmt.Errorf("%s is not empty any more: %s writes a new spec repository", dir, cmd)
	}
	for i, e := range entries {
		if err := os.Rename(filepath.Join(tmp, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			for _, moved := range entries[:i] {
				os.RemoveAll(filepath.Join(dir, moved.Name()))
			}
			return err
		}
	}
	return nil
}

// mkdirAllUndo makes dir and the folders above it that are missing, with
// perm, and returns what removes those it made (a failed command leaves
// none).
func mkdirAllUndo(dir string, perm fs.FileMode) (undo func(), err error) {
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	undo = func() {
		for _, d := range missing {
			os.Remove(d) // only when empty: anything another put there stays
		}
	}
	if err := os.MkdirAll(dir, perm); err != nil {
		undo()
		return nil, err
	}
	return undo, nil
}

// tempDir makes a new folder in dir whose name starts with prefix. Unlike
// os.MkdirTemp's (0700), its mode is that of a folder os.MkdirAll makes,
// as the repository's folder has to be once renamed.
func tempDir(dir, prefix string) (string, error) {
	for range 100 {
		b := make([]byte, 6)
		rand.Read(b)
		p := filepath.Join(dir, prefix+hex.EncodeToString(b))
		err := os.Mkdir(p, 0o755)
		if !errors.Is(err, fs.ErrExist) {
			return p, err
		}
	}
	return "", fmt.Errorf("no new temporary folder in %s", dir)
}

// copySchemas writes the embedded JSON Schemas into dir/.schemas.
func copySchemas(dir string) error {
	entries, err := fs.ReadDir(schemas.FS, ".")
	if err != nil {
		return err
	}
	dir = filepath.Join(dir, schemaDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, e := range entries {
		b, err := fs.ReadFile(schemas.FS, e.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
