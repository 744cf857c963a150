package spec

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/idrecon/idrecon/spec/samlmeta"
)

// DemoTokenSHA256 is the SHA-256 of the published demo token of
// examples/entra ("idrecon-demo-token-for-make-run-only-0123456789"). A spec
// that accepts it loads, with a warning.
const DemoTokenSHA256 = "cefbcfe77053847ab41cda3dcb6b5e063774f1f0a53e51d018c92b58f35caec9"

// Token rule: what a generated bearer token looks like. Short or odd tokens
// are refused so a placeholder never goes live.
const (
	minTokenLen = 32
	maxTokenLen = 512
)

func validToken(s string) bool {
	if len(s) < minTokenLen || len(s) > maxTokenLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Paths the daemon's main listener serves besides SCIM. The daemon
// registers its handlers with these constants, and a SCIM basePath may not
// take any of them over (the SCIM route is matched first). Metrics are
// served on the admin listener, but are reserved as well so that one proxy
// can front both listeners. SAML's routes lie below the path of its baseURL.
const (
	HealthzPath = "/healthz"
	// ReadyzPath answers a load balancer whether this daemon should get
	// traffic (200 or 503, no detail; the admin API's /readyz says why).
	ReadyzPath  = "/readyz"
	WebhookPath = "/hooks/git"
	MetricsPath = "/metrics"
	SAMLPath    = "/saml"
	// SAMLUserPath is the signed-in user's page, below the SAML base path.
	SAMLUserPath = "/me"
	// VerifyPath is the Gateways' forward-auth endpoint.
	VerifyPath = "/auth/verify"
)

// ReservedPaths are the paths a SCIM basePath or a Gateway's pathPrefix
// must stay off.
var ReservedPaths = []string{HealthzPath, ReadyzPath, WebhookPath, MetricsPath, SAMLPath, VerifyPath}

func (l *loader) resolveScim(p *parsedDoc, s *ScimProvisioning) {
	basePathOK := false
	switch {
	case s.BasePath == "":
		s.BasePath = DefaultScimBasePath
		basePathOK = true
	case !strings.HasPrefix(s.BasePath, "/") || strings.HasSuffix(s.BasePath, "/") || strings.ContainsAny(s.BasePath, "?# \t") || strings.Contains(s.BasePath, "//"):
		l.fail(p, "spec.basePath", "must be an absolute URL path like /api/scim/v2 (leading /, no trailing /, no query)")
	case slices.ContainsFunc(strings.Split(s.BasePath, "/"), func(seg string) bool { return seg == "." || seg == ".." }):
		l.fail(p, "spec.basePath", "must not contain . or .. segments")
	default:
		basePathOK = true
	}
	if s.BaseURL != "" {
		l.checkScimBaseURL(p, s, basePathOK)
	}
	if s.Enabled && len(s.Tokens) == 0 {
		l.fail(p, "spec.tokens", "at least one token is required when SCIM is enabled")
	}
	names := make(map[string]int, len(s.Tokens))
	for i := range s.Tokens {
		t := &s.Tokens[i]
		f := fmt.Sprintf("spec.tokens[%d]", i)
		switch {
		case t.Name == "":
			l.fail(p, f+".name", "required")
		default:
			if j, dup := names[t.Name]; dup {
				l.fail(p, f+".name", "duplicate token name %q (first at spec.tokens[%d])", t.Name, j)
			} else {
				names[t.Name] = i
			}
		}
		switch {
		case t.SHA256 != "" && t.ValueFrom != nil && !l.resolved:
			l.fail(p, f, "set exactly one of sha256 and valueFrom, not both")
		case t.SHA256 != "":
			if !isHex64(t.SHA256) {
				l.fail(p, f+".sha256", "must be 64 hex characters (the SHA-256 of the token)")
				continue
			}
			t.SHA256 = strings.ToLower(t.SHA256)
			if t.SHA256 == DemoTokenSHA256 {
				l.warnings = append(l.warnings, fmt.Sprintf("%s: %s: token %q is the published demo token; replace it before connecting a real tenant", p.at(f+".sha256"), p.doc.Ref(), t.Name))
			}
		case t.ValueFrom != nil:
			value, ok := l.secret(p, f+".valueFrom", t.ValueFrom)
			if !ok {
				continue
			}
			value = strings.TrimSpace(value)
			if !validToken(value) {
				l.fail(p, f+".valueFrom", "the token from %s must be %d–%d characters of A-Z, a-z, 0-9, _ and -", t.ValueFrom.describe(), minTokenLen, maxTokenLen)
				continue
			}
			sum := sha256.Sum256([]byte(value))
			t.SHA256 = hex.EncodeToString(sum[:])
		default:
			l.fail(p, f, "set exactly one of sha256 and valueFrom")
		}
	}
	l.checkUserAttributes(p, s)
}

// checkScimBaseURL holds baseURL to the URL of the endpoints themselves,
// the one Entra's Tenant URL names: its path must be the basePath (a
// trailing slash aside), so that the URLs the server builds from it lead
// back to the endpoints. A proxy that moves the endpoints to another path is
// not supported: an origin written alone, the likelier mistake, would
// otherwise pass and break every meta.location. The query is refused
// because SCIM appends paths to the URL.
func (l *loader) checkScimBaseURL(p *parsedDoc, s *ScimProvisioning, basePathOK bool) {
	if !isHTTPURL(s.BaseURL) {
		hint := ""
		if strings.Contains(s.BaseURL, "aadOptscim062020") {
			hint = " (aadOptscim062020 belongs in Entra's Tenant URL, not here)"
		}
		l.fail(p, "spec.baseURL", "must be an absolute http(s) URL without credentials, query or fragment%s", hint)
		return
	}
	// The path as written, not decoded: the server emits the text, so
	// "%2F" for "/" would name another path to a strict client.
	_, rest, _ := strings.Cut(s.BaseURL, "://")
	path := ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		path = rest[i:]
	}
	if basePathOK && strings.TrimSuffix(path, "/") != s.BasePath {
		l.fail(p, "spec.baseURL", "its path must be the basePath %s, found %q: baseURL is the URL of the endpoints (Entra's Tenant URL), not of the host", s.BasePath, path)
	}
}

// checkScimPaths keeps the SCIM basePath off the other routes of the main
// listener, the SAML ones included. It runs after resolveSAML.
func (l *loader) checkScimPaths() {
	var scim, saml *parsedDoc
	for _, p := range l.docs {
		switch p.doc.Spec.(type) {
		case *ScimProvisioning:
			scim = p
		case *SamlServiceProvider:
			saml = p
		}
	}
	if scim == nil || scim.failed["spec.basePath"] {
		return
	}
	base := scim.doc.Spec.(*ScimProvisioning).BasePath
	// Without a SamlServiceProvider the SAML server still answers at the root.
	var home string
	if saml != nil {
		if u, err := url.Parse(saml.doc.Spec.(*SamlServiceProvider).BaseURL); err == nil {
			home = strings.TrimRight(u.Path, "/")
		}
	}
	if home != "" && base == home {
		l.fail(scim, "spec.basePath", "%s collides with %s, the SAML home page (the path of the SamlServiceProvider baseURL)", base, home)
		return
	}
	reserved := append(slices.Clone(ReservedPaths), home+SAMLPath, home+SAMLUserPath)
	for _, r := range reserved {
		if overlaps(base, r) {
			l.fail(scim, "spec.basePath", "%s collides with %s, which the daemon serves (reserved: %s and the SAML paths below the baseURL)",
				base, r, strings.Join(ReservedPaths, ", "))
			return
		}
	}
}

// overlaps reports whether a handler of path a would serve some request of
// path b, or the other way round.
func overlaps(a, b string) bool {
	return a == b || strings.HasPrefix(a, b+"/") || strings.HasPrefix(b, a+"/")
}

func (v *ValueFrom) describe() string {
	if v.Env != "" {
		return "environment variable " + v.Env
	}
	return "file " + v.File
}

// secret reads what a ValueFrom points at. The value is never put into an
// error message.
func (l *loader) secret(p *parsedDoc, field string, v *ValueFrom) (string, bool) {
	switch {
	case v.Env != "" && v.File != "":
		l.fail(p, field, "set exactly one of env and file, not both")
	case v.Env != "" && !IsEnvName(v.Env):
		// Quoting it would show the secret pasted in its place.
		l.fail(p, field+".env", "is no environment variable's name (letters, digits and _): does it hold the secret itself? Give the variable's name")
	case v.File != "" && !IsFileReference(v.File):
		l.fail(p, field+".file", "is no file's path (it holds a line break or PEM armour): does it hold the secret itself? Give the file's path")
	case v.Env != "":
		value := l.opts.Getenv(v.Env)
		l.inputs.addValue("env", v.Env, value)
		if value == "" {
			l.fail(p, field+".env", "environment variable %s is not set or empty", v.Env)
			return "", false
		}
		return value, true
	case v.File != "":
		data, err := l.readSecretFile(v.File)
		if err != nil {
			l.fail(p, field+".file", "%v", err)
			return "", false
		}
		// No secret idrecon takes (a token, a header value, a PEM key)
		// starts with the mark, so only an editor can have put it there.
		return string(trimBOM(data)), true
	default:
		l.fail(p, field, "set exactly one of env and file")
	}
	return "", false
}

// IsEnvName reports whether s is written as a shell names an environment
// variable. A reference that is not is taken for the secret pasted in its
// place, and never shown (neither in an error nor in a plan).
func IsEnvName(s string) bool {
	for i, c := range s {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return s != ""
}

// IsFileReference reports whether s can be a file's path rather than the
// file's content pasted in its place (a line break, PEM armour), which is
// never shown.
func IsFileReference(s string) bool {
	return !strings.ContainsFunc(s, unicode.IsControl) && !strings.Contains(s, "-----") &&
		!strings.Contains(strings.ToUpper(s), "PRIVATE KEY")
}

// readSecretFile reads a secret file: an absolute path as is (secrets usually
// live outside the repo, e.g. /run/secrets), a relative one inside the root.
func (l *loader) readSecretFile(name string) ([]byte, error) {
	if filepath.IsAbs(name) {
		data, err := l.files.abs(name, maxSecretFileSize)
		l.inputs.addValue("abs", name, string(data))
		if err != nil {
			return nil, describeFileErr(name, err)
		}
		return data, nil
	}
	return l.readRepoFile(name, maxSecretFileSize)
}

// readRepoFile reads a file named relative to the spec root; it must stay
// inside the root, symlinks included.
func (l *loader) readRepoFile(name string, limit int64) ([]byte, error) {
	if !IsFileReference(name) {
		// Quoting it would show the content pasted in its place.
		return nil, errors.New("is no file's path (it holds a line break or PEM armour): does it hold the file's content? Give its path")
	}
	if !filepath.IsLocal(filepath.FromSlash(name)) {
		return nil, fmt.Errorf("path %q must be relative and stay inside the spec repo", name)
	}
	data, err := l.files.repo(filepath.FromSlash(name), limit)
	l.inputs.addValue("repo", name, string(data))
	if err != nil {
		return nil, describeFileErr(name, err)
	}
	return data, nil
}

func describeFileErr(name string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("file %q not found", name)
	case errors.Is(err, errTooLarge), errors.Is(err, errNotRegular), errors.Is(err, errInDataDir):
		return fmt.Errorf("file %q is %v", name, err)
	default:
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return fmt.Errorf("cannot read file %q: %v", name, pe.Err)
		}
		return fmt.Errorf("cannot read file %q: %v", name, err)
	}
}

var usages = []string{UsageSamlIDPSigning, UsageSamlSPSigning, UsageSamlSPEncryption, UsageTLS, UsageTLSCA, UsageTLSClient}

// keylessUsages are the usages of certificates that belong to someone else: idrecon
// only verifies with them and must never hold their key.
var keylessUsages = []string{UsageSamlIDPSigning, UsageTLSCA}

// CertificateUsages returns every usage a Certificate may have, and of them
// those of a certificate that is someone else's, without a key.
func CertificateUsages() (all, keyless []string) {
	return slices.Clone(usages), slices.Clone(keylessUsages)
}

// errInlineKey is the message for a private key written into git.
const errInlineKey = "private keys must not be written inline; reference them with privateKeyFrom (file or env)"

func (l *loader) resolveCertificate(p *parsedDoc, c *Certificate) {
	ownKey := !slices.Contains(keylessUsages, c.Usage)
	switch {
	case c.Usage == "":
		l.fail(p, "spec.usage", "required (one of %s)", strings.Join(usages, ", "))
		ownKey = false
	case !slices.Contains(usages, c.Usage):
		l.fail(p, "spec.usage", "unknown usage %q (want one of %s)", c.Usage, strings.Join(usages, ", "))
		ownKey = false
	}

	var data []byte
	field := "spec.pem"
	switch {
	case c.PEM != "" && c.File != "":
		l.fail(p, "spec", "set exactly one of pem and file, not both")
	case c.PEM != "":
		data = []byte(c.PEM)
	case c.File != "" && l.resolved && c.DER != nil:
		field, data = "spec.file", c.DER
	case c.File != "":
		field = "spec.file"
		d, err := l.readRepoFile(c.File, maxReferencedFile)
		if err != nil {
			l.fail(p, field, "%v", err)
		}
		data = d
	default:
		l.fail(p, "spec", "set exactly one of pem and file")
	}
	var cert *x509.Certificate
	if data != nil {
		var (
			chain [][]byte
			err   error
		)
		cert, chain, err = parseCertificate(data)
		switch {
		case err != nil:
			l.fail(p, field, "%v", err)
		case len(chain) > 0 && c.Usage != UsageTLS && c.Usage != UsageTLSClient:
			l.fail(p, field, "holds %d certificates; only a %s or %s certificate carries its chain (the others use one)", len(chain)+1, UsageTLS, UsageTLSClient)
		case len(chain) > 0 || !(l.resolved && c.DER != nil && field == "spec.file"):
			// A resolved file certificate is read again from its DER,
			// which holds the leaf only: its chain stays as resolved.
			c.Chain = chain
		}
	}
	if cert = l.resolveKey(p, c, cert, ownKey); cert != nil {
		sum := sha256.Sum256(cert.Raw)
		c.Fingerprint = hex.EncodeToString(sum[:])
		c.Subject = cert.Subject.String()
		c.NotBefore = cert.NotBefore.UTC()
		c.NotAfter = cert.NotAfter.UTC()
		c.DER = cert.Raw
		l.expiryWarning(p, c)
	}
}

// resolveKey checks and resolves c's private key, and returns the
// certificate c is: cert, the first of its file, or, when the file holds
// a chain, the one of the key, with c.Chain the others as a server
// presents them (see leafFirst).
func (l *loader) resolveKey(p *parsedDoc, c *Certificate, cert *x509.Certificate, ownKey bool) *x509.Certificate {
	switch {
	case c.PrivateKeyFrom != nil && slices.Contains(keylessUsages, c.Usage):
		l.fail(p, "spec.privateKeyFrom", "a %s certificate must not have a private key (only %s, %s, %s and %s do)", c.Usage, UsageSamlSPSigning, UsageSamlSPEncryption, UsageTLS, UsageTLSClient)
	case c.PrivateKeyFrom == nil && ownKey:
		l.fail(p, "spec", "privateKeyFrom is required for usage %s", c.Usage)
	case c.PrivateKeyFrom != nil && l.resolved && c.KeyFingerprint != "":
		// Resolved when the runtime took it; the runtime keeps the key
		// itself only in memory and resolves it again after a restart.
		// The certificate it resolved to is the one of the key.
		if stored, err := x509.ParseCertificate(c.DER); err == nil {
			return l.leafOf(p, c, cert, stored.PublicKey)
		}
	case c.PrivateKeyFrom != nil:
		raw, ok := l.secret(p, "spec.privateKeyFrom", c.PrivateKeyFrom)
		if !ok {
			return cert
		}
		key, err := parsePrivateKey([]byte(raw))
		if err != nil {
			l.fail(p, "spec.privateKeyFrom", "private key from %s: %v", c.PrivateKeyFrom.describe(), err)
			return cert
		}
		if _, isRSA := key.(*rsa.PrivateKey); c.Usage == UsageSamlSPEncryption && !isRSA {
			// The SAML server decrypts assertions with RSA keys only and
			// refuses to start with any other.
			l.fail(p, "spec.privateKeyFrom", "a %s certificate needs an RSA private key (the one from %s is not): assertions are encrypted to RSA keys", c.Usage, c.PrivateKeyFrom.describe())
			return cert
		}
		pkix, err := x509.MarshalPKIXPublicKey(key.Public())
		if err != nil {
			l.fail(p, "spec.privateKeyFrom", "private key from %s: unsupported key type", c.PrivateKeyFrom.describe())
			return cert
		}
		if cert = l.leafOf(p, c, cert, key.Public()); cert != nil {
			pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
			if !ok || !pub.Equal(key.Public()) {
				l.fail(p, "spec.privateKeyFrom", "the private key from %s does not match the certificate", c.PrivateKeyFrom.describe())
				return cert
			}
		}
		sum := sha256.Sum256(pkix)
		c.KeyFingerprint = hex.EncodeToString(sum[:])
		c.PrivateKey = key
	}
	return cert
}

// leafOf returns the certificate of c's file that is key's, and puts the
// others in c.Chain as a server presents them (see leafFirst); cert, the
// file's first, when none is key's.
func (l *loader) leafOf(p *parsedDoc, c *Certificate, cert *x509.Certificate, key crypto.PublicKey) *x509.Certificate {
	if cert == nil || len(c.Chain) == 0 {
		return cert
	}
	leaf, ordered, note := leafFirst(slices.Concat([][]byte{cert.Raw}, c.Chain), key)
	if leaf == nil {
		return cert
	}
	if note != "" {
		l.warnings = append(l.warnings, fmt.Sprintf("%s: %s: %s", p.doc.Pos, p.doc.Ref(), note))
	}
	c.Chain = ordered[1:]
	return leaf
}

func (l *loader) expiryWarning(p *parsedDoc, c *Certificate) {
	now := l.opts.Now
	where := fmt.Sprintf("%s: %s", p.doc.Pos, p.doc.Ref())
	switch {
	case !now.Before(c.NotAfter):
		l.warnings = append(l.warnings, fmt.Sprintf("%s: certificate expired on %s", where, c.NotAfter.Format(time.RFC3339)))
	case c.NotAfter.Sub(now) < expiryWarningWindow:
		l.warnings = append(l.warnings, fmt.Sprintf("%s: certificate expires on %s (in %d days)", where, c.NotAfter.Format(time.RFC3339), int(c.NotAfter.Sub(now).Hours()/24)))
	}
}

// TLSCertificate returns a resolved certificate with its private key as
// crypto/tls serves or presents it: the leaf, then its chain.
func (c *Certificate) TLSCertificate() (*tls.Certificate, error) {
	if c.PrivateKey == nil {
		return nil, errors.New("its private key is not resolved")
	}
	leaf, err := x509.ParseCertificate(c.DER)
	if err != nil {
		return nil, err
	}
	// crypto/tls would serve a key that does not match, and every
	// handshake fail at the client. The loader refuses such a pair; this
	// holds for a Certificate that reached the store another way too.
	pub, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(c.PrivateKey.Public()) {
		return nil, errors.New("its private key does not match it")
	}
	return &tls.Certificate{Certificate: slices.Concat([][]byte{c.DER}, c.Chain), PrivateKey: c.PrivateKey, Leaf: leaf}, nil
}

// parseCertificate reads PEM, Base64 DER (the .cer Entra downloads, line
// breaks allowed) or raw DER. A PEM may go on with more CERTIFICATE blocks (a chain): their DER is returned
// in chain, each checked to be a certificate.
func parseCertificate(data []byte) (cert *x509.Certificate, chain [][]byte, err error) {
	if bytes.Contains(data, []byte("PRIVATE KEY-----")) {
		return nil, nil, errors.New(errInlineKey)
	}
	trimmed := bytes.TrimSpace(trimBOM(data))
	var der []byte
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		block, rest := pem.Decode(trimmed)
		if block == nil {
			return nil, nil, errors.New("malformed PEM")
		}
		if block.Type != "CERTIFICATE" {
			return nil, nil, fmt.Errorf("PEM block is %q, want CERTIFICATE", block.Type)
		}
		der = block.Bytes
		for n := 2; ; n++ {
			var next *pem.Block
			if next, rest = pem.Decode(rest); next == nil {
				break
			}
			if next.Type != "CERTIFICATE" {
				return nil, nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", n, next.Type)
			}
			if _, err := x509.ParseCertificate(next.Bytes); err != nil {
				return nil, nil, fmt.Errorf("PEM block %d: not a certificate: %v", n, err)
			}
			chain = append(chain, next.Bytes)
		}
	default:
		stripped := bytes.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, trimmed)
		b := make([]byte, base64.StdEncoding.DecodedLen(len(stripped)))
		if n, err := base64.StdEncoding.Decode(b, stripped); err == nil {
			der = b[:n]
		} else {
			der = data
		}
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("not a certificate (want PEM, Base64 DER or DER): %v", err)
	}
	return cert, chain, nil
}

// parsePrivateKey reads a PEM PKCS#1, PKCS#8 or SEC 1 (EC) private key.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported")
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("malformed %s", block.Type)
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, errors.New("unsupported key type")
		}
		switch signer.(type) {
		case *rsa.PrivateKey, *ecdsa.PrivateKey:
		default:
			// Ed25519 and others are valid keys, but XML signatures in SAML use RSA or ECDSA.
			return nil, fmt.Errorf("unsupported key type %T (want RSA or ECDSA)", signer)
		}
		return signer, nil
	}
}

// nameIDFormats are the formats Entra honours in an AuthnRequest.
var nameIDFormats = []string{
	"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
	"urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
	"urn:oasis:names:tc:SAML:2.0:nameid-format:transient",
}

func (l *loader) resolveSAML(p *parsedDoc, s *SamlServiceProvider) {
	if s.EntityID == "" {
		l.fail(p, "spec.entityID", "required")
	}
	if s.BaseURL == "" {
		l.fail(p, "spec.baseURL", "required")
	} else if !isHTTPURL(s.BaseURL) {
		l.fail(p, "spec.baseURL", "must be an absolute http(s) URL without query or fragment")
	}
	idp := &s.IDP
	switch {
	case idp.MetadataFile != "" && idp.MetadataURL != "":
		l.fail(p, "spec.idp", "set exactly one of metadataFile and metadataURL, not both")
	case idp.MetadataFile != "" && l.resolved && idp.MetadataXML != nil:
	case idp.MetadataFile != "":
		data, err := l.readRepoFile(idp.MetadataFile, maxReferencedFile)
		if err != nil {
			l.fail(p, "spec.idp.metadataFile", "%v", err)
		} else {
			idp.MetadataXML = data
		}
	case idp.MetadataURL != "":
		l.checkMetadataURL(p, idp)
	default:
		l.fail(p, "spec.idp", "set exactly one of metadataFile and metadataURL")
	}
	// Zero, or the key left out, keeps the runtime's default interval.
	switch {
	case idp.MetadataRefresh < 0:
		l.fail(p, "spec.idp.metadataRefresh", "must not be negative")
	case idp.MetadataRefresh > 0 && idp.MetadataRefresh.D() < MinMetadataRefresh:
		l.fail(p, "spec.idp.metadataRefresh", "%s is less than the minimum of %s", idp.MetadataRefresh, Duration(MinMetadataRefresh))
	}
	switch {
	case len(idp.SigningCertificates) > 0:
	case s.Enabled:
		// The SAML server verifies every assertion against them, and
		// refuses to start without one: loaded, the revision would take
		// sign-in down.
		l.fail(p, "spec.idp.signingCertificates", "required while SAML is enabled: the IdP's assertions are verified against them")
	case idp.SignedMetadataRequired():
		l.fail(p, "spec.idp.signingCertificates", "required while requireSignedMetadata is true (the default)")
	}
	seen := make(map[string]bool, len(idp.SigningCertificates))
	for i, name := range idp.SigningCertificates {
		f := fmt.Sprintf("spec.idp.signingCertificates[%d]", i)
		if seen[name] {
			l.fail(p, f, "duplicate certificate %q", name)
			continue
		}
		seen[name] = true
		l.checkCertRef(p, f, name, UsageSamlIDPSigning)
	}
	if s.SPSigningCertificate != "" {
		l.checkCertRef(p, "spec.spSigningCertificate", s.SPSigningCertificate, UsageSamlSPSigning)
	} else if s.SignAuthnRequests {
		l.fail(p, "spec.spSigningCertificate", "required when signAuthnRequests is true")
	}
	if s.SPEncryptionCertificate != "" {
		l.checkCertRef(p, "spec.spEncryptionCertificate", s.SPEncryptionCertificate, UsageSamlSPEncryption)
	}
	switch {
	case s.NameIDFormat == "":
		s.NameIDFormat = DefaultNameIDFormat
	case !slices.Contains(nameIDFormats, s.NameIDFormat):
		l.fail(p, "spec.nameIDFormat", "unsupported format %q (want one of %s)", s.NameIDFormat, strings.Join(nameIDFormats, ", "))
	case s.NameIDFormat != DefaultNameIDFormat && s.Attributes.Username == "":
		// Users are found by their NameID, which Entra, asked for one of
		// the others, fills with an identifier that is no user's name.
		l.warnings = append(l.warnings, fmt.Sprintf("%s: %s: nameIDFormat %s with no attributes.username: users are found by their NameID, which Entra fills with an identifier that is no userName for this format unless its claim settings name one; set attributes.username to the claim that carries the userName",
			p.at("spec.nameIDFormat"), p.doc.Ref(), s.NameIDFormat))
	}
	switch {
	case s.AllowedClockSkew == 0:
		s.AllowedClockSkew = Duration(DefaultClockSkew)
	case s.AllowedClockSkew < 0:
		l.fail(p, "spec.allowedClockSkew", "must not be negative")
	case s.AllowedClockSkew.D() > MaxClockSkew:
		l.fail(p, "spec.allowedClockSkew", "%s is more than the maximum of %s", s.AllowedClockSkew, Duration(MaxClockSkew))
	}
	switch {
	case s.SessionLifetime == 0:
		s.SessionLifetime = Duration(DefaultSessionLifetime)
	case s.SessionLifetime < 0:
		l.fail(p, "spec.sessionLifetime", "must be positive")
	case s.SessionLifetime.D() > MaxSessionLifetime:
		l.fail(p, "spec.sessionLifetime", "%s is more than the maximum of %s", s.SessionLifetime, Duration(MaxSessionLifetime))
	}
	if s.ConsoleRole != "" && !l.roleExists(s.ConsoleRole) {
		l.fail(p, "spec.consoleRole", "no Role named %q (builtin roles: %s)", s.ConsoleRole, strings.Join(sortedKeys(BuiltinRoles), ", "))
	}
	if idp.MetadataFile != "" && idp.MetadataURL == "" && len(idp.MetadataXML) > 0 {
		l.verifyIDPMetadata(p, s)
	}
}

// verifyIDPMetadata checks a metadataFile as the SAML server checks it
// before use, so that a revision whose metadata the server would refuse is
// refused whole instead of replacing a working sign-in with a broken one.
// A disabled provider's metadata is not used, and not checked: disabling
// SAML must stay a way to apply a spec while the IdP's metadata is being
// replaced. A metadataURL is fetched, and checked, by the server alone.
func (l *loader) verifyIDPMetadata(p *parsedDoc, s *SamlServiceProvider) {
	if !s.Enabled || s.IDP.SignedMetadataRequired() && len(s.IDP.SigningCertificates) == 0 {
		return // the latter reported at signingCertificates
	}
	var trusted []*x509.Certificate
	for _, name := range s.IDP.SigningCertificates {
		ref, ok := l.byRef[Ref{Kind: KindCertificate, Name: name}]
		if !ok {
			return // reported at the reference
		}
		c := ref.doc.Spec.(*Certificate)
		if c.Usage != UsageSamlIDPSigning || c.DER == nil {
			return // reported at the reference or the certificate
		}
		cert, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return
		}
		trusted = append(trusted, cert)
	}
	skew := s.AllowedClockSkew.D()
	if skew < 0 || skew > MaxClockSkew {
		return // reported at allowedClockSkew
	}
	now := l.opts.Now
	md, err := samlmeta.Verify(s.IDP.MetadataXML, samlmeta.Options{
		Trusted: trusted, RequireSigned: s.IDP.SignedMetadataRequired(), AllowSHA1: s.AllowSHA1, Now: now, Skew: skew,
	})
	// The verdict holds until a certificate enters or leaves its validity,
	// or the metadata expires: a cached load must not outlive it.
	for _, c := range trusted {
		l.verdictUntil(c.NotBefore.Add(-skew))
		l.verdictUntil(c.NotAfter.Add(skew))
	}
	if err != nil {
		l.fail(p, "spec.idp.metadataFile", "file %q: %v", s.IDP.MetadataFile, err)
		return
	}
	l.verdictUntil(md.Expires)
}

// verdictUntil notes a moment after now at which the load's result may
// change though no input did.
func (l *loader) verdictUntil(t time.Time) {
	if t.After(l.opts.Now) && (l.until.IsZero() || t.Before(l.until)) {
		l.until = t
	}
}

func (l *loader) checkCertRef(p *parsedDoc, field, name, usage string) {
	ref, ok := l.byRef[Ref{Kind: KindCertificate, Name: name}]
	if !ok {
		l.fail(p, field, "no Certificate named %q", name)
		return
	}
	if c := ref.doc.Spec.(*Certificate); c.Usage != usage {
		l.fail(p, field, "Certificate %q has usage %q, want %q", name, c.Usage, usage)
	}
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	// A bare '?' or '#' is an empty query or fragment to url.Parse, but
	// one written all the same: refused as the schema refuses it.
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && !strings.ContainsAny(s, "?#") && u.User == nil
}
