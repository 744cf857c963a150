package spec

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTree writes files (name → content) into a fresh directory.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, data := range files {
		writeFile(t, filepath.Join(root, name), []byte(data))
	}
	return root
}

func load(t *testing.T, root string, env map[string]string) (*Set, error) {
	t.Helper()
	return Load(context.Background(), root, LoadOptions{Getenv: getenvFrom(env), Now: testNow})
}

func certDoc(name, usage, body string) string {
	return "apiVersion: idrecon.io/v1alpha1\nkind: Certificate\nmetadata:\n  name: " + name + "\nspec:\n  usage: " + usage + "\n" + body
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return prefix + strings.Join(lines, "\n"+prefix) + "\n"
}

func TestCertificateFormats(t *testing.T) {
	k := fixtures(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecCert, err := selfSigned(ecKey, "ec", testNow.AddDate(-1, 0, 0), testNow.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encKey := k["enc"].key.(*rsa.PrivateKey)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1, 2, 3}})

	tests := []struct {
		name    string
		files   map[string]string
		env     map[string]string
		wantErr string // substring; "" means success
		wantKey bool
	}{
		{
			name:  "inline PEM",
			files: map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  pem: |\n"+indent(string(certPEM(k["idp"].cert)), "    "))},
		},
		{
			name:  "Base64 DER file with CRLF",
			files: map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  file: c.cer\n"), "c.cer": string(certBase64(k["idp"].cert))},
		},
		{
			name:  "raw DER file",
			files: map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  file: c.der\n"), "c.der": string(k["idp"].cert.Raw)},
		},
		{
			name:    "PKCS#1 RSA key from a file",
			files:   map[string]string{"c.yaml": certDoc("c", "saml-sp-encryption", "  file: c.pem\n  privateKeyFrom:\n    file: k.pem\n"), "c.pem": string(certPEM(k["enc"].cert)), "k.pem": string(pkcs1PEM(encKey))},
			wantKey: true,
		},
		{
			name:    "SEC 1 EC key from the environment",
			files:   map[string]string{"c.yaml": certDoc("c", "tls", "  file: c.pem\n  privateKeyFrom:\n    env: KEY\n"), "c.pem": string(certPEM(ecCert))},
			env:     map[string]string{"KEY": string(ecPEM(t, ecKey))},
			wantKey: true,
		},
		{
			name:    "key from an absolute path outside the repo",
			files:   map[string]string{"c.yaml": certDoc("c", "saml-sp-signing", "  file: c.pem\n  privateKeyFrom:\n    file: ABS\n"), "c.pem": string(certPEM(k["sp"].cert))},
			wantKey: true,
		},
		{
			name:    "encrypted key",
			files:   map[string]string{"c.yaml": certDoc("c", "tls", "  file: c.pem\n  privateKeyFrom:\n    file: k.pem\n"), "c.pem": string(certPEM(ecCert)), "k.pem": string(encrypted)},
			wantErr: "encrypted private keys are not supported",
		},
		{
			name:    "Ed25519 key",
			files:   map[string]string{"c.yaml": certDoc("c", "tls", "  file: c.pem\n  privateKeyFrom:\n    file: k.pem\n"), "c.pem": string(certPEM(ecCert)), "k.pem": string(pkcs8PEM(t, edKey))},
			wantErr: "unsupported key type",
		},
		{
			name:    "key file is not PEM",
			files:   map[string]string{"c.yaml": certDoc("c", "tls", "  file: c.pem\n  privateKeyFrom:\n    file: k.pem\n"), "c.pem": string(certPEM(ecCert)), "k.pem": "garbage"},
			wantErr: "no PEM private key found",
		},
		{
			name:    "public key block instead of a certificate",
			files:   map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  pem: |\n    -----BEGIN PUBLIC KEY-----\n    AAAA\n    -----END PUBLIC KEY-----\n")},
			wantErr: `PEM block is "PUBLIC KEY", want CERTIFICATE`,
		},
		{
			name:    "both pem and file",
			files:   map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  file: c.cer\n  pem: x\n"), "c.cer": string(certBase64(k["idp"].cert))},
			wantErr: "set exactly one of pem and file, not both",
		},
		{
			name:    "private key in the certificate file",
			files:   map[string]string{"c.yaml": certDoc("c", "tls", "  file: c.pem\n  privateKeyFrom:\n    file: c.pem\n"), "c.pem": string(certPEM(ecCert)) + string(ecPEM(t, ecKey))},
			wantErr: "private keys must not be written inline",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tt.files
			if strings.Contains(files["c.yaml"], "file: ABS") {
				abs := filepath.Join(t.TempDir(), "key.pem")
				writeFile(t, abs, pkcs8PEM(t, k["sp"].key))
				files = map[string]string{"c.yaml": strings.Replace(files["c.yaml"], "ABS", abs, 1), "c.pem": files["c.pem"]}
			}
			set, err := load(t, writeTree(t, files), tt.env)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "BEGIN") {
					t.Errorf("error shows key or certificate material: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := set.Certificate("c")
			if c == nil || len(c.DER) == 0 || len(c.Fingerprint) != 64 || c.Subject == "" {
				t.Fatalf("certificate not resolved: %+v", c)
			}
			if got := c.PrivateKey != nil; got != tt.wantKey {
				t.Errorf("private key loaded = %v, want %v", got, tt.wantKey)
			}
			if tt.wantKey {
				pkix, err := x509.MarshalPKIXPublicKey(c.PrivateKey.Public())
				if err != nil {
					t.Fatal(err)
				}
				if c.KeyFingerprint != sum256(string(pkix)) {
					t.Errorf("key fingerprint %s is not the SHA-256 of the public key", c.KeyFingerprint)
				}
			}
		})
	}
}

func TestCertificateSymlinkEscape(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "outside.cer")
	writeFile(t, outside, certBase64(fixtures(t)["idp"].cert))
	root := writeTree(t, map[string]string{"c.yaml": certDoc("c", "saml-idp-signing", "  file: link.cer\n")})
	if err := os.Symlink(outside, filepath.Join(root, "link.cer")); err != nil {
		t.Skipf("symlinks unavailable: %v", err)
	}
	_, err := load(t, root, nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `c.yaml:7:9: spec.file: cannot read file "link.cer"`) {
		t.Fatalf("err = %v, want the symlink out of the repo refused", err)
	}
}

func TestExpiryWarnings(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(notAfter time.Time) string {
		c, err := selfSigned(key, "x", testNow.AddDate(-2, 0, 0), notAfter)
		if err != nil {
			t.Fatal(err)
		}
		return string(certPEM(c))
	}
	root := writeTree(t, map[string]string{
		"expired.yaml":  certDoc("expired", "saml-idp-signing", "  file: expired.pem\n"),
		"expired.pem":   mk(testNow.AddDate(0, 0, -1)),
		"expiring.yaml": certDoc("expiring", "saml-idp-signing", "  file: expiring.pem\n"),
		"expiring.pem":  mk(testNow.AddDate(0, 0, 10)),
		"fine.yaml":     certDoc("fine", "saml-idp-signing", "  file: fine.pem\n"),
		"fine.pem":      mk(testNow.AddDate(0, 0, 31)),
	})
	set, err := load(t, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"expired.yaml:1:1: Certificate/expired: certificate expired on " + testNow.AddDate(0, 0, -1).Format(time.RFC3339),
		"expiring.yaml:1:1: Certificate/expiring: certificate expires on " + testNow.AddDate(0, 0, 10).Format(time.RFC3339) + " (in 10 days)",
	}
	if strings.Join(set.Warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(set.Warnings, "\n"), strings.Join(want, "\n"))
	}
}

const scimEnvDoc = `apiVersion: idrecon.io/v1alpha1
kind: ScimProvisioning
metadata:
  name: entra
spec:
  enabled: true
  tokens:
    - name: entra
      valueFrom:
        env: TOKEN
`

const appDoc = `apiVersion: idrecon.io/v1alpha1
kind: Application
metadata:
  name: webgoat
spec:
  versions: ["1.0"]
`

func TestRevision(t *testing.T) {
	const tokenA = "token-a-0123456789-abcdefghijklmnopqrstuvwxyz"
	const tokenB = "token-b-0123456789-abcdefghijklmnopqrstuvwxyz"
	split := writeTree(t, map[string]string{"scim.yaml": scimEnvDoc, "apps.yaml": appDoc})
	joined := writeTree(t, map[string]string{"all/in/one.yaml": appDoc + "---\n" + scimEnvDoc})

	rev := func(root, token string) string {
		t.Helper()
		set, err := load(t, root, map[string]string{"TOKEN": token})
		if err != nil {
			t.Fatal(err)
		}
		rendered, err := json.Marshal(set.Docs)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(rendered), token) {
			t.Fatalf("the rendered set contains the plaintext token")
		}
		return set.Revision
	}
	a := rev(split, tokenA)
	if again := rev(split, tokenA); again != a {
		t.Errorf("revision not stable: %s then %s", a, again)
	}
	if moved := rev(joined, tokenA); moved != a {
		t.Errorf("moving documents between files changed the revision: %s vs %s", moved, a)
	}
	if rotated := rev(split, tokenB); rotated == a {
		t.Error("rotating the token in the environment did not change the revision")
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const secret = "s3cr3t with spaces that is long enough to be a token"
	root := writeTree(t, map[string]string{"scim.yaml": scimEnvDoc})
	_, err := load(t, root, map[string]string{"TOKEN": secret})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want a rejected token", err)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error shows the token: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	root := writeTree(t, map[string]string{
		"scim.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: false\n",
		"saml.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: SamlServiceProvider\nmetadata:\n  name: s\nspec:\n  entityID: urn:x\n  baseURL: https://x.example\n  idp:\n    metadataURL: https://idp.example/md\n    requireSignedMetadata: false\n",
	})
	set, err := load(t, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	scim, saml := set.Scim(), set.SAML()
	if scim.BasePath != DefaultScimBasePath || strings.Join(scim.UserAttributes, ",") != strings.Join(DefaultUserAttributes, ",") {
		t.Errorf("scim defaults: %+v", scim)
	}
	if saml.AllowedClockSkew.D() != DefaultClockSkew || saml.SessionLifetime.D() != DefaultSessionLifetime || saml.NameIDFormat != DefaultNameIDFormat {
		t.Errorf("saml defaults: %+v", saml)
	}
	// The defaults are copies: changing one Set must not change the next.
	scim.UserAttributes[0] = "changed"
	if DefaultUserAttributes[0] == "changed" {
		t.Error("the Set shares DefaultUserAttributes")
	}
}

func TestLoadNonSpecErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	root := writeTree(t, map[string]string{"apps.yaml": appDoc})
	tests := []struct {
		name string
		ctx  context.Context
		root string
		want error
	}{
		{"cancelled", ctx, root, context.Canceled},
		{"missing root", context.Background(), filepath.Join(root, "nope"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.ctx, tt.root, LoadOptions{})
			if !errors.Is(err, tt.want) || errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want %v and not ErrInvalid", err, tt.want)
			}
		})
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    []string // refs
		wantErr string
	}{
		{"empty file", "", nil, ""},
		{"comments only", "# nothing\n", nil, ""},
		{"two documents and empty ones", "---\n" + appDoc + "---\n---\n" + strings.Replace(appDoc, "webgoat", "other", 1) + "---\n", []string{"Application/webgoat", "Application/other"}, ""},
		{"not a mapping", "- a\n- b\n", nil, "f.yaml:1:1: a document must be a mapping"},
		{"aliases", strings.Replace(appDoc, `["1.0"]`, `[&v "1.0", *v]`, 1), nil, "f.yaml:6:24: spec.versions[1]: YAML aliases are not supported"},
		{"duplicate key", appDoc + "kind: Role\n", nil, "f.yaml:7:1: kind: duplicate field"},
		{"non-string key", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n  1: y\n", nil, "spec: mapping keys must be strings"},
		{"wrong shapes", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata: x\nspec:\n  versions: \"1.0\"\n", nil, "metadata: must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Parse("f.yaml", []byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range docs {
				got = append(got, d.Ref().String())
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("docs = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTokenSources(t *testing.T) {
	const good = "tok_0123456789_abcdefghijklmnopqrstuvwxyz-ABCDEF"
	outside := filepath.Join(t.TempDir(), "token")
	writeFile(t, outside, []byte(good+"\n"))
	big := filepath.Join(t.TempDir(), "big")
	writeFile(t, big, []byte(strings.Repeat("a", maxSecretFileSize+1)))
	doc := func(valueFrom string) string {
		return strings.Replace(scimEnvDoc, "env: TOKEN", valueFrom, 1)
	}
	tests := []struct {
		name    string
		doc     string
		env     map[string]string
		files   map[string]string
		wantErr string
	}{
		{name: "env", doc: doc("env: TOKEN"), env: map[string]string{"TOKEN": good}},
		{name: "relative file with newline", doc: doc("file: secrets/t"), files: map[string]string{"secrets/t": good + "\n"}},
		{name: "absolute file outside the repo", doc: doc("file: " + outside)},
		{name: "relative file escaping the repo", doc: doc("file: ../t"), wantErr: `scim.yaml:10:15: spec.tokens[0].valueFrom.file: path "../t" must be relative and stay inside the spec repo`},
		{name: "missing file", doc: doc("file: nope"), wantErr: `spec.tokens[0].valueFrom.file: file "nope" not found`},
		{name: "file too large", doc: doc("file: " + big), wantErr: "is too large"},
		{name: "too long", doc: doc("env: TOKEN"), env: map[string]string{"TOKEN": strings.Repeat("a", 513)}, wantErr: "must be 32–512 characters"},
		{name: "bad characters", doc: doc("env: TOKEN"), env: map[string]string{"TOKEN": strings.Repeat("a", 40) + "+/="}, wantErr: "must be 32–512 characters"},
		{name: "env and file", doc: doc("env: TOKEN\n        file: x"), env: map[string]string{"TOKEN": good}, wantErr: "spec.tokens[0].valueFrom: set exactly one of env and file, not both"},
		{name: "sha256 and valueFrom", doc: doc("env: TOKEN\n      sha256: " + DemoTokenSHA256), env: map[string]string{"TOKEN": good}, wantErr: "spec.tokens[0]: set exactly one of sha256 and valueFrom, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"scim.yaml": tt.doc}
			for k, v := range tt.files {
				files[k] = v
			}
			set, err := load(t, writeTree(t, files), tt.env)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "aaaaaaaa") || strings.Contains(err.Error(), good) {
					t.Errorf("error shows the token: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := set.Scim().Tokens[0].SHA256; got != sum256(good) {
				t.Errorf("sha256 = %s, want the hash of the trimmed token", got)
			}
		})
	}
}
