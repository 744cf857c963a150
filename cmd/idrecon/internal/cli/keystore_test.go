package cli

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"maps"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/idrecon/idrecon/spec"
)

// testPKCS12 writes a PKCS#12 keystore, protected by password, holding a
// fresh ECDSA key and a certificate valid around now.
func testPKCS12(t *testing.T, password string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return writePKCS12(t, key, password)
}

// writePKCS12 writes a PKCS#12 keystore, protected by password, holding
// key and a self-signed certificate for it valid around now.
func writePKCS12(t *testing.T, key crypto.Signer, password string) string {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sp"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour)}
	cert := selfSigned(t, tmpl, key)
	p12, err := pkcs12.Modern.Encode(key, cert, nil, password)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "sp.p12", p12)
}

// selfSigned returns the certificate tmpl describes, signed by its own key.
func selfSigned(t *testing.T, tmpl *x509.Certificate, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// TestKeystoreImportKeyPath: the document names the path the daemon reads
// the key from, which need not be where this machine wrote it, and never a
// relative path (that would be read inside the spec repo).
func TestKeystoreImportKeyPath(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	env := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	tests := []struct {
		name    string
		keyPath string
		want    string // the document's privateKeyFrom.file; "" = refused
	}{
		{"default: where it was written", "", "ABS"},
		{"the daemon's path", "/etc/idrecon/sp-signing.key", "/etc/idrecon/sp-signing.key"},
		{"relative", "keys/sp.key", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specDir, keyDir := t.TempDir(), t.TempDir()
			keyOut := filepath.Join(keyDir, "sp.key")
			args := []string{"keystore", "import", p12, "--spec", specDir, "--key-out", keyOut}
			if tt.keyPath != "" {
				args = append(args, "--key-path", tt.keyPath)
			}
			code, stdout, stderr := run(t, env, args...)
			if tt.want == "" {
				if code != 1 || !strings.Contains(stderr, "must be absolute") {
					t.Fatalf("code %d, stderr %q: want a refusal", code, stderr)
				}
				if _, err := os.Stat(keyOut); err == nil {
					t.Error("a refused import wrote the key")
				}
				return
			}
			if code != 0 {
				t.Fatalf("code %d: %s", code, stderr)
			}
			want := tt.want
			if want == "ABS" {
				want = keyOut
			}
			doc, err := os.ReadFile(filepath.Join(specDir, "keystore-sp-signing.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), "file: "+want+"\n") {
				t.Errorf("document does not read the key from %s:\n%s", want, doc)
			}
			if fi, err := os.Stat(keyOut); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("key file: %v, %v", fi, err)
			}
			if !strings.Contains(stdout, keyOut) {
				t.Errorf("stdout does not say where the key went: %q", stdout)
			}
		})
	}
}

// specUsages is the loader's list of certificate usages, as its error for
// a Certificate without one spells it: what keystore import is checked
// against, independently of how the command finds the list.
func specUsages(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	doc := "apiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: c\nspec:\n  usage: \"\"\n  pem: x\n"
	os.WriteFile(filepath.Join(dir, "c.yaml"), []byte(doc), 0o644)
	_, err := spec.Load(t.Context(), dir, spec.LoadOptions{})
	m := regexp.MustCompile(`spec\.usage: required \(one of ([a-z, -]+)\)`).FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("the loader no longer lists the usages in its error: %v", err)
	}
	return strings.Split(m[1], ", ")
}

// TestKeystoreImportUsages: keystore import --help lists every usage the
// spec has, the command refuses any other before it reads the keystore,
// and each kind imports into a document the spec takes: tls-client with
// its key, tls-ca (like saml-idp-signing) from a trust store's trusted
// entries, without a key.
func TestKeystoreImportUsages(t *testing.T) {
	usages := specUsages(t)
	_, help, _ := run(t, nil, "keystore", "--help")
	var usageHelp string
	for _, l := range strings.Split(help, "\n") {
		if strings.Contains(l, "--usage ") {
			usageHelp = l
		}
	}
	for _, u := range usages {
		if !regexp.MustCompile(`(^|[ ,])` + regexp.QuoteMeta(u) + `([ ,;)]|$)`).MatchString(usageHelp) {
			t.Errorf("--usage help lacks %s: %s", u, usageHelp)
		}
	}
	_, complete, _ := run(t, nil, "__complete", "keystore", "import", "x.p12", "--usage", "")
	for _, u := range usages {
		if !strings.Contains(complete, u+"\n") {
			t.Errorf("--usage completion lacks %s:\n%s", u, complete)
		}
	}

	code, out, errs := run(t, nil, "keystore", "import", "/nonexistent.p12", "--usage", "signing", "--key-out", filepath.Join(t.TempDir(), "k"))
	if code != 1 || out != "" || !strings.Contains(errs, `--usage "signing"`) || !strings.Contains(errs, "tls-client") || !strings.Contains(errs, "Run 'idrecon keystore import --help'") {
		t.Errorf("an unknown usage: exit %d, want a usage error listing the usages\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}

	// Each usage imports, from a key pair's keystore or from a trust store,
	// into a document the loader takes: with a key or without, as the
	// usage wants.
	env := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	keyPair, trustStore := testRSAPKCS12(t, "secret"), testTrustStore(t, "secret")
	for _, u := range usages {
		t.Run(u, func(t *testing.T) {
			var took []string
			for _, p12 := range []string{keyPair, trustStore} {
				specDir, keyOut := t.TempDir(), filepath.Join(t.TempDir(), "k.key")
				code, _, _ := run(t, env, "keystore", "import", p12, "--usage", u, "--name", "c", "--spec", specDir, "--key-out", keyOut)
				if code != 0 {
					continue
				}
				_, err := os.Stat(keyOut)
				if code, out, errs := run(t, env, "validate", specDir); code != 0 {
					doc, _ := os.ReadFile(filepath.Join(specDir, "keystore-c.yaml"))
					t.Errorf("from %s (key written: %v), the loader refuses the document: exit %d\n%s%s\n%s", filepath.Base(p12), err == nil, code, out, errs, doc)
				}
				took = append(took, filepath.Base(p12))
			}
			if len(took) != 1 {
				t.Errorf("imported from %q, want one of the key pair's keystore and the trust store", took)
			}
		})
	}
}

// testRSAPKCS12 is testPKCS12 with an RSA key, which every usage with a
// key takes (saml-sp-encryption only that).
func testRSAPKCS12(t *testing.T, password string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return writePKCS12(t, key, password)
}

// testTrustStore writes a PKCS#12 trust store, protected by password,
// holding one trusted certificate valid around now (as keytool -importcert
// writes a CA or the IdP's signing certificate).
func testTrustStore(t *testing.T, password string) string {
	t.Helper()
	return testTrustStoreOf(t, password, 1)
}

// testTrustStoreOf is testTrustStore with n different certificates.
func testTrustStoreOf(t *testing.T, password string, n int) string {
	t.Helper()
	var certs []*x509.Certificate
	for i := range n {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(2 + i)), Subject: pkix.Name{CommonName: fmt.Sprintf("ca %d", i)},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
		certs = append(certs, selfSigned(t, tmpl, key))
	}
	p12, err := pkcs12.Modern.EncodeTrustStore(certs, password)
	if err != nil {
		t.Fatal(err)
	}
	return writeTemp(t, "trust.p12", p12)
}

// TestKeystoreImportRefusesARolloverStore: a trust store holding both of
// Entra's signing certificates (a rollover) is refused, naming the file,
// and nothing is written: keeping the first would drop the other.
func TestKeystoreImportRefusesARolloverStore(t *testing.T) {
	store := testTrustStoreOf(t, "secret", 2)
	specDir := t.TempDir()
	code, out, stderr := run(t, map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"},
		"keystore", "import", store, "--name", "entra", "--usage", "saml-idp-signing", "--spec", specDir)
	if code != 1 || !strings.Contains(stderr, store+": ") || !strings.Contains(stderr, "2 different certificates") {
		t.Errorf("exit %d, want 1 naming %s and its 2 certificates\nstdout:\n%s\nstderr:\n%s", code, store, out, stderr)
	}
	if left, _ := os.ReadDir(specDir); len(left) > 0 {
		t.Errorf("a refused import left %v", left)
	}
}

// writeTemp writes data to a file named name in a new folder and returns
// its path.
func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestKeystoreImportKeyIsPrivateOverAnOldFile: --key-out naming a file that
// exists with looser permissions (a key exported by hand, mode 0644),
// replaced with --force, must still leave the key readable by its owner
// only: os.WriteFile keeps an existing file's mode.
func TestKeystoreImportKeyIsPrivateOverAnOldFile(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	keyOut := filepath.Join(t.TempDir(), "sp.key")
	if err := os.WriteFile(keyOut, []byte("old key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(keyOut, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	code, _, stderr := run(t, map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"},
		"keystore", "import", p12, "--spec", t.TempDir(), "--key-out", keyOut, "--force")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	fi, err := os.Stat(keyOut)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(keyOut); !strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("key file holds %q", b)
	}
}

// TestKeystoreImportRefusesAKeyInTheSpecRepo: --key-out inside --spec
// would put the private key in git; nothing is written.
func TestKeystoreImportRefusesAKeyInTheSpecRepo(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	specDir := t.TempDir()
	for _, keyOut := range []string{filepath.Join(specDir, "sp.key"), filepath.Join(specDir, "keys", "..", "keys", "sp.key")} {
		os.MkdirAll(filepath.Join(specDir, "keys"), 0o755)
		code, _, stderr := run(t, map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"},
			"keystore", "import", p12, "--spec", specDir, "--key-out", keyOut)
		if code != 1 || !strings.Contains(stderr, "inside the spec repo") {
			t.Errorf("--key-out %s: exit %d, want 1 and a refusal: %s", keyOut, code, stderr)
		}
		if _, err := os.Stat(keyOut); err == nil {
			t.Errorf("the key was written into the spec repo at %s", keyOut)
		}
	}
}

// TestKeystoreImportKeepsTheTLSChain: a tls certificate issued by an
// intermediate CA keeps its intermediate, which clients need to verify it;
// the root stays out (clients have it).
func TestKeystoreImportKeepsTheTLSChain(t *testing.T) {
	now := time.Now()
	issue := func(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) *x509.Certificate {
		t.Helper()
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ca := func(serial int64, name string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign}
	}
	rootKey, interKey, leafKey := key(), key(), key()
	root := issue(ca(1, "root"), ca(1, "root"), rootKey.Public(), rootKey)
	inter := issue(ca(2, "intermediate"), root, interKey.Public(), rootKey)
	leaf := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "idrecon.contoso.com"},
		DNSNames: []string{"idrecon.contoso.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, inter, leafKey.Public(), interKey)
	// keytool and openssl list the CAs in no set order.
	p12, err := pkcs12.Modern.Encode(leafKey, leaf, []*x509.Certificate{root, inter}, "secret")
	if err != nil {
		t.Fatal(err)
	}
	file := writeTemp(t, "tls.p12", p12)
	specDir := t.TempDir()
	code, _, stderr := run(t, map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"},
		"keystore", "import", file, "--usage", spec.UsageTLS, "--name", "tls", "--spec", specDir, "--key-out", filepath.Join(t.TempDir(), "tls.key"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	set, err := spec.Load(t.Context(), specDir, spec.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range set.Docs {
		if c, ok := d.Spec.(*spec.Certificate); ok && d.Metadata.Name == "tls" {
			if string(c.DER) != string(leaf.Raw) || len(c.Chain) != 1 || string(c.Chain[0]) != string(inter.Raw) {
				t.Errorf("certificate %x with chain of %d, want the leaf with the intermediate alone", c.DER[:8], len(c.Chain))
			}
			return
		}
	}
	t.Fatal("no Certificate tls loaded")
}

// TestKeystoreImportWrongPassword: a wrong password says where it was
// read from (an unset variable is the usual mistake), never the password.
func TestKeystoreImportWrongPassword(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"IDRECON_KEYSTORE_PASSWORD": "hunter2-guess"}, "env IDRECON_KEYSTORE_PASSWORD"},
		{nil, "env IDRECON_KEYSTORE_PASSWORD, which is not set"},
	} {
		code, out, stderr := run(t, tc.env, "keystore", "import", p12, "--spec", t.TempDir(), "--key-out", filepath.Join(t.TempDir(), "k"))
		if code != 1 || !strings.Contains(stderr, "wrong password") || !strings.Contains(stderr, tc.want) || strings.Contains(out+stderr, "hunter2") {
			t.Errorf("exit %d, want 1 saying wrong password, %q, without the password\nstdout:\n%s\nstderr:\n%s", code, tc.want, out, stderr)
		}
	}
}

// TestKeystoreImportRefusalWritesNothing: an import that fails (a wrong
// password, a --name that is no file name or no document name) leaves the spec repo and the key
// file as they were: no empty keystore folder, no key without its
// document, nothing outside the spec repo.
func TestKeystoreImportRefusalWritesNothing(t *testing.T) {
	p12 := testPKCS12(t, "secret")
	good := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"wrong password", map[string]string{"IDRECON_KEYSTORE_PASSWORD": "guess"}, []string{p12}, "wrong password"},
		{"name with a slash", good, []string{p12, "--name", "a/b"}, "--name"},
		{"name climbing out", good, []string{p12, "--name", "../../outside"}, "--name"},
		{"name with spaces around", good, []string{p12, "--name", " sp "}, "--name"},
		{"empty name", good, []string{p12, "--name", ""}, "--name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			specDir := filepath.Join(root, "spec", "repo")
			if err := os.MkdirAll(specDir, 0o755); err != nil {
				t.Fatal(err)
			}
			keyOut := filepath.Join(root, "sp.key")
			args := append([]string{"keystore", "import"}, tc.args...)
			args = append(args, "--spec", specDir, "--key-out", keyOut)
			code, out, stderr := run(t, tc.env, args...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 1 saying %q\nstdout:\n%s\nstderr:\n%s", code, tc.want, out, stderr)
			}
			var left []string
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if p != root && p != filepath.Dir(specDir) && p != specDir {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("a refused import left %v", left)
			}
		})
	}
}

// TestKeystoreImportRefusesToReplace: an import whose certificate, document
// or key file exists (a second certificate imported under the same --name)
// is refused, naming each file that exists, and writes nothing; --force
// replaces them.
func TestKeystoreImportRefusesToReplace(t *testing.T) {
	env := map[string]string{"IDRECON_KEYSTORE_PASSWORD": "secret"}
	first, second := testPKCS12(t, "secret"), testPKCS12(t, "secret")
	trust := testTrustStore(t, "secret")
	snapshot := func(root string) map[string]string {
		t.Helper()
		files := map[string]string{}
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				b, _ := os.ReadFile(p)
				files[p] = string(b)
			}
			return err
		})
		return files
	}
	for _, tc := range []struct {
		name   string
		args   []string // the second import's, after FILE; the first is without --force
		remove []string // files of the first import removed before the second, relative to root
		exist  []string // what the refusal must name, relative to root
	}{
		{"all three", nil, nil, []string{"spec/keystore/sp.pem", "spec/keystore-sp.yaml", "sp.key"}},
		{"the document alone", nil, []string{"spec/keystore/sp.pem", "sp.key"}, []string{"spec/keystore-sp.yaml"}},
		{"the certificate alone", nil, []string{"spec/keystore-sp.yaml", "sp.key"}, []string{"spec/keystore/sp.pem"}},
		{"the key alone", []string{"--key-out", "other.key"}, []string{"spec/keystore/sp.pem", "spec/keystore-sp.yaml"}, []string{"other.key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			t.Chdir(root)
			if code, _, errs := run(t, env, "keystore", "import", first, "--name", "sp", "--spec", "spec", "--key-out", "sp.key"); code != 0 {
				t.Fatalf("first import: exit %d: %s", code, errs)
			}
			for _, f := range tc.remove {
				os.Remove(f)
			}
			if slices.Contains(tc.args, "other.key") {
				os.WriteFile("other.key", []byte("someone's key\n"), 0o600)
			}
			for _, f := range tc.exist {
				// Marked, so that a replacement shows even where the
				// content would be the same (the document).
				b, _ := os.ReadFile(f)
				os.WriteFile(f, append(b, "# the first import's\n"...), 0o600)
			}
			before := snapshot(root)
			args := append([]string{"keystore", "import", second, "--name", "sp", "--spec", "spec", "--key-out", "sp.key"}, tc.args...)
			code, out, errs := run(t, env, args...)
			if code != 1 || !strings.Contains(errs, "--force") {
				t.Errorf("exit %d, want 1 pointing at --force\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			for _, f := range tc.exist {
				if !strings.Contains(errs, f) {
					t.Errorf("the refusal does not name %s: %s", f, errs)
				}
			}
			if after := snapshot(root); !maps.Equal(before, after) {
				t.Errorf("a refused import changed the files:\nbefore %v\nafter  %v", before, after)
			}

			args = append(args, "--force")
			if code, _, errs := run(t, env, args...); code != 0 {
				t.Fatalf("with --force: exit %d: %s", code, errs)
			}
			after := snapshot(root)
			for _, f := range tc.exist {
				if p := filepath.Join(root, f); after[p] == before[p] {
					t.Errorf("--force did not replace %s", f)
				}
			}
		})
	}

	// A certificate without a key (someone else's) is refused alike.
	specDir := t.TempDir()
	args := []string{"keystore", "import", trust, "--name", "entra", "--usage", spec.UsageSamlIDPSigning, "--spec", specDir}
	if code, _, errs := run(t, env, args...); code != 0 {
		t.Fatalf("first import: exit %d: %s", code, errs)
	}
	if code, _, errs := run(t, env, args...); code != 1 || !strings.Contains(errs, filepath.Join(specDir, "keystore", "entra.pem")) {
		t.Errorf("second keyless import: exit %d, want 1 naming the certificate: %s", code, errs)
	}

	if _, help, _ := run(t, nil, "keystore", "--help"); !strings.Contains(help, "--force") {
		t.Errorf("keystore --help does not document --force:\n%s", help)
	}
}
