package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/runtime/saml/keystore"
	"github.com/idrecon/idrecon/spec"
)

// certUsages are the usages of a Certificate document and, of them, those
// of a certificate that is someone else's and has no key.
var certUsages = func() (u struct{ all, keyless []string }) {
	u.all, u.keyless = spec.CertificateUsages()
	return u
}()

func keystoreCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "keystore import FILE.p12",
		Short: "Turn a PKCS#12 keystore into a Certificate document",
		Long: `Import a PKCS#12 keystore: the certificate and a Certificate document go into
the spec repo, the private key into a file outside it (--key-out, mode 0600).
A ` + orList(certUsages.keyless) + ` certificate, someone else's, is read from
the keystore's trusted entries, without a key. The password is read from the
env var --password-env names. A certificate, document or key file that exists
is replaced only with --force (another certificate imported under the same
--name, say). Convert a JKS keystore first:
keytool -importkeystore ... -deststoretype pkcs12.`,
		Example: `  IDRECON_KEYSTORE_PASSWORD=... idrecon keystore import sp.p12 --name sp-signing \
    --usage saml-sp-signing --spec . --key-out /etc/idrecon/sp-signing.key`,
	}
	withVerbs(c, verb{"import", []string{"FILE.p12"}})
	fs := c.Flags()
	name := fs.String("name", "sp-signing", "name of the Certificate document")
	usage := fs.String("usage", spec.UsageSamlSPSigning, "the certificate's usage: "+orList(certUsages.all)+" ("+orList(certUsages.keyless)+": trusted entries, no key)")
	c.RegisterFlagCompletionFunc("usage", cobra.FixedCompletions(certUsages.all, cobra.ShellCompDirectiveNoFileComp))
	specDir := fs.String("spec", ".", "spec repo to write the certificate and document into")
	c.MarkFlagDirname("spec")
	keyOut := fs.String("key-out", "", "where to write the private key (mode 0600; keep it out of git)")
	keyPath := fs.String("key-path", "", "absolute path the daemon reads the key from, written into the document (default --key-out made absolute); set it when importing on another machine than the daemon's")
	passEnv := fs.String("password-env", "IDRECON_KEYSTORE_PASSWORD", "env var holding the keystore password")
	force := fs.Bool("force", false, "replace the certificate, document and key files if they exist")
	c.RunE = func(_ *cobra.Command, pos []string) error {
		if !slices.Contains(certUsages.all, *usage) {
			return usageErrorf("--usage %q: want %s", *usage, orList(certUsages.all))
		}
		return runKeystore(env, pos[1], keystoreOptions{*name, *usage, *specDir, *keyOut, *keyPath, *passEnv, *force})
	}
	return c
}

// keystoreOptions are keystore import's flags, parsed.
type keystoreOptions struct {
	name, usage, specDir, keyOut, keyPath, passEnv string
	force                                          bool
}

// runKeystore imports a PKCS#12 keystore: the certificate and a Certificate
// document go into the spec repo, the private key into a file outside it.
func runKeystore(env Env, file string, o keystoreOptions) error {
	if err := checkCertName(o.name); err != nil {
		return err
	}
	if o.keyPath != "" && !filepath.IsAbs(o.keyPath) {
		// A relative privateKeyFrom.file is read inside the spec repo, where
		// a key must never be.
		return fmt.Errorf("--key-path %s: must be absolute (a relative path is read inside the spec repo)", o.keyPath)
	}
	if o.keyOut != "" && !slices.Contains(certUsages.keyless, o.usage) {
		inside, err := within(o.specDir, o.keyOut)
		if err != nil {
			return err
		}
		if inside {
			return fmt.Errorf("--key-out %s is inside the spec repo %s: the private key would go into git; write it outside", o.keyOut, o.specDir)
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	password := env.Getenv(o.passEnv)
	// passwordErr says where a wrong password came from: most often a
	// variable not set in this shell. Never the password itself.
	passwordErr := func(err error) error {
		if !errors.Is(err, keystore.ErrPassword) {
			return fmt.Errorf("%s: %w", file, err)
		}
		from := "env " + o.passEnv
		if password == "" {
			from += ", which is not set"
		}
		return fmt.Errorf("%s: %w (read from %s; --password-env names another variable)", file, err, from)
	}
	certRel := filepath.Join("keystore", o.name+".pem")
	certPath := filepath.Join(o.specDir, certRel)

	// Everything that can be refused (the password, the keystore's
	// content, the document) is, before the first file is written: a
	// refusal used to leave an empty keystore folder, or a key and a
	// certificate without their document.
	var keyRef string
	var certPEM, keyPEM []byte
	if slices.Contains(certUsages.keyless, o.usage) {
		certs, err := keystore.TrustedCertificates(data, password)
		if err != nil {
			return passwordErr(err)
		}
		if len(certs) == 0 {
			return errors.New("the keystore holds no trusted certificate")
		}
		certPEM = certs[0]
	} else {
		if o.keyOut == "" {
			return errors.New("--key-out is required: the private key goes to a file outside the spec repo")
		}
		var chainPEM []byte
		certPEM, chainPEM, keyPEM, err = keystore.ImportPKCS12(data, password)
		if err != nil {
			return passwordErr(err)
		}
		if o.usage == spec.UsageTLS || o.usage == spec.UsageTLSClient {
			// Only these carry their chain (the loader refuses one on the
			// others), and clients verifying a certificate an intermediate
			// CA issued need it.
			certPEM = append(certPEM, chainPEM...)
		}
		if keyRef = o.keyPath; keyRef == "" {
			if keyRef, err = filepath.Abs(o.keyOut); err != nil {
				return err
			}
		}
	}
	doc, err := keystore.Document(o.name, o.usage, filepath.ToSlash(certRel), keyRef)
	if err != nil {
		return err
	}
	docPath := filepath.Join(o.specDir, "keystore-"+o.name+".yaml")

	type output struct {
		path string
		perm os.FileMode
		data []byte
	}
	outs := []output{{certPath, 0o644, certPEM}, {docPath, 0o644, doc}}
	if keyPEM != nil {
		// Written whole and mode 0600 even over an existing file, whose
		// mode os.WriteFile would keep (a key exported by hand, 0644).
		outs = append([]output{{o.keyOut, 0o600, keyPEM}}, outs...)
	}
	for _, f := range outs {
		if err := notAFolder(f.path); err != nil {
			return err
		}
	}
	if !o.force {
		// A file that exists is most often another certificate's, imported
		// under the same --name: replacing a committed certificate by
		// accident is easy, and a review of the diff may not catch it.
		var exist []string
		for _, f := range outs {
			if _, err := os.Lstat(f.path); err == nil {
				exist = append(exist, f.path)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		switch len(exist) {
		case 0:
		case 1:
			return existsError(exist[0])
		default:
			return fmt.Errorf("%s exist: give --force to replace them", strings.Join(exist, ", "))
		}
	}
	// Each file is written whole (a temporary file renamed into place). A
	// failure midway removes, without --force, what this import wrote: none
	// of it existed before.
	keystoreDir := filepath.Dir(certPath)
	_, statErr := os.Lstat(keystoreDir)
	madeDir := errors.Is(statErr, fs.ErrNotExist)
	if err := os.MkdirAll(keystoreDir, 0o755); err != nil {
		return err
	}
	var wrote []string
	for _, f := range outs {
		if err := writeFile(f.path, f.perm, true, func(w io.Writer) error { _, err := w.Write(f.data); return err }); err != nil {
			if !o.force {
				for _, p := range wrote {
					os.Remove(p)
				}
			}
			if madeDir {
				os.Remove(keystoreDir) // only when empty
			}
			return err
		}
		wrote = append(wrote, f.path)
	}
	fmt.Fprintf(env.Stdout, "wrote %s and %s", certPath, docPath)
	if keyRef != "" {
		fmt.Fprintf(env.Stdout, "; private key in %s (mode 0600, not in git)", o.keyOut)
		if keyRef != o.keyOut {
			fmt.Fprintf(env.Stdout, ", read by the daemon from %s", keyRef)
		}
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

// checkCertName refuses a --name the loader would refuse as a document's
// metadata.name, or that is no plain file name: the name also names the
// certificate's file below keystore/ and the document's file, and a '/' or
// ".." put them elsewhere, outside the spec repo even.
func checkCertName(name string) error {
	bad := func(why string) error { return usageErrorf("--name %q: %s", name, why) }
	switch {
	case name == "":
		return bad("empty")
	case strings.TrimSpace(name) != name:
		return bad("starts or ends with spaces")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return bad("holds control characters")
	case len(name) > 200:
		// The loader allows 256; the file names add to it and most file
		// systems stop at 255 bytes.
		return bad("longer than 200 characters")
	case strings.ContainsAny(name, `/\`) || name == "." || name == "..":
		return bad("it names the certificate's files (keystore/NAME.pem, keystore-NAME.yaml): want a name without '/' or '\\'")
	}
	return nil
}

// within reports whether path lies in dir or below it.
func within(dir, path string) (bool, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return false, err
	}
	p, err := filepath.Abs(path)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(d, p)
	if err != nil {
		return false, nil
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)), nil
}
