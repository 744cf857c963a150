package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/idrecon/idrecon/runtime/saml/keystore"
	"github.com/idrecon/idrecon/spec"
)

// runKeystore imports a PKCS#12 keystore: the certificate and a Certificate
// document go into the spec repo, the private key into a file outside it.
func runKeystore(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "keystore", "import FILE.p12 --name NAME --usage USAGE --spec DIR --key-out FILE")
	name := fs.String("name", "sp-signing", "name of the Certificate document")
	usage := fs.String("usage", spec.UsageSamlSPSigning, "saml-sp-signing, saml-sp-encryption, tls, or saml-idp-signing (trusted entries only)")
	specDir := fs.String("spec", ".", "spec repo to write the certificate and document into")
	keyOut := fs.String("key-out", "", "where to write the private key (mode 0600; keep it out of git)")
	passEnv := fs.String("password-env", "IDRECON_KEYSTORE_PASSWORD", "env var holding the keystore password")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := subcommand(fs, pos, "import"); err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "import", "FILE.p12"); err != nil {
		return err
	}
	data, err := os.ReadFile(pos[1])
	if err != nil {
		return err
	}
	password := env.Getenv(*passEnv)
	certRel := filepath.Join("keystore", *name+".pem")
	certPath := filepath.Join(*specDir, certRel)
	if err := os.MkdirAll(filepath.Dir(certPath), 0o755); err != nil {
		return err
	}

	var keyRef string
	if *usage == spec.UsageSamlIDPSigning {
		certs, err := keystore.TrustedCertificates(data, password)
		if err != nil {
			return err
		}
		if len(certs) == 0 {
			return errors.New("the keystore holds no trusted certificate")
		}
		if err := os.WriteFile(certPath, certs[0], 0o644); err != nil {
			return err
		}
	} else {
		if *keyOut == "" {
			return errors.New("--key-out is required: the private key goes to a file outside the spec repo")
		}
		certPEM, keyPEM, err := keystore.ImportPKCS12(data, password)
		if err != nil {
			return err
		}
		if err := os.WriteFile(*keyOut, keyPEM, 0o600); err != nil {
			return err
		}
		if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
			return err
		}
		if keyRef, err = filepath.Abs(*keyOut); err != nil {
			return err
		}
	}
	doc, err := keystore.Document(*name, *usage, filepath.ToSlash(certRel), keyRef)
	if err != nil {
		return err
	}
	docPath := filepath.Join(*specDir, "keystore-"+*name+".yaml")
	if err := os.WriteFile(docPath, doc, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "wrote %s and %s", certPath, docPath)
	if keyRef != "" {
		fmt.Fprintf(env.Stdout, "; private key in %s (mode 0600, not in git)", keyRef)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}
