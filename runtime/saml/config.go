package saml

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"
	saml2 "github.com/russellhaering/gosaml2"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/samlmeta"
)

// Claim URIs Entra uses; the defaults for SamlAttributes.
const (
	ClaimName        = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	ClaimEmail       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	ClaimGivenName   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	ClaimSurname     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	ClaimGroups      = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
	ClaimObjectID    = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	ClaimDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
)

const (
	defaultMetadataRefresh = 24 * time.Hour
	metadataRetry          = time.Minute
	metadataFetchTimeout   = 15 * time.Second
)

// Readiness reasons that are not errors of the configuration.
var (
	ErrNotConfigured = errors.New("SAML single sign-on is not configured (no SamlServiceProvider)")
	ErrDisabled      = errors.New("SAML single sign-on is disabled")
)

// ErrMetadata is wrapped by every IdP metadata rejection.
var ErrMetadata = samlmeta.ErrRejected

// config is one initialisation: the spec it was built from and everything
// derived from it. It is immutable once built.
type config struct {
	key []*store.Resource
	sp  *spec.SamlServiceProvider

	// saml validates responses; its clock runs skew behind now (see
	// skewClock). requests builds the AuthnRequests and LogoutRequests the
	// SP sends, which must carry the real now: stamped with saml's clock
	// they claimed to be skew old.
	saml      *saml2.SAMLServiceProvider
	requests  *saml2.SAMLServiceProvider
	idp       *samlmeta.IDP
	idpCerts  []*x509.Certificate
	spSign    *spec.Certificate
	spEncrypt *spec.Certificate
	decrypt   *tls.Certificate

	basePath string // BaseURL's path without trailing slash
	origin   string // BaseURL's scheme://host
	acsURL   string
	sloURL   string
	secure   bool // BaseURL is https or loopback: cookies get Secure
	cookies  cookieNames
	// pending seals the cookie of the browser's pending sign-ins.
	pending *sealer
	// csrf admits state-changing requests from the SP's own pages only.
	csrf     *http.CrossOriginProtection
	skew     time.Duration
	lifetime time.Duration
	// logoutIssuers are the issuers accepted on IdP logout messages; Entra
	// signs those as login.microsoftonline.com, not sts.windows.net.
	logoutIssuers []string

	// untrusted describes the signing certificates the metadata announces
	// that the keystore lacks, for Ready.
	untrusted []string

	metadataRaw     []byte
	metadataFetched time.Time // zero for metadataFile
}

func (c *config) usernameOf(nameID string, values saml2.Values) string {
	if a := c.sp.Attributes.Username; a != "" {
		return values.Get(a)
	}
	return nameID
}

// nameIDFormat is the NameID format the SP metadata publishes and the
// LogoutRequests name the user in.
func (c *config) nameIDFormat() string {
	if c.sp.NameIDFormat == "" {
		return spec.DefaultNameIDFormat
	}
	return c.sp.NameIDFormat
}

// requestedNameIDFormat is the Format an AuthnRequest's NameIDPolicy asks
// of Entra, or "" to send no NameIDPolicy. Entra issues the format a
// request asks for, whatever its application's claim settings say; but
// asked for persistent or unspecified it issues a pairwise identifier, and
// for transient a value new at every sign-in, never the user's name. Those
// are asked for only when a claim names the user (see usernameOf);
// otherwise the application's claim settings decide, as for an
// IdP-initiated sign-in.
func (c *config) requestedNameIDFormat() string {
	f := c.nameIDFormat()
	if f == spec.DefaultNameIDFormat || c.sp.Attributes.Username != "" {
		return f
	}
	return ""
}

// skewClock lets gosaml2's own expiry check of SubjectConfirmationData
// tolerate the configured clock skew: it reports a time skew earlier than
// now. goxmldsig judges certificate validity at this clock too, which only
// widens the end of the validity; see samlmeta.SkewedCerts for the start. It is for
// checking what the IdP sends only: gosaml2 also stamps the requests it
// builds with its clock, so those are built by config.requests, on now.
type skewClock struct {
	clockwork.Clock
	now  func() time.Time
	skew time.Duration
}

func (c skewClock) Now() time.Time { return c.now().Add(-c.skew) }

// resolveKey reads the resources a configuration is built from. The pointers
// identify the configuration: stored resources are immutable, so the same
// pointers mean the same content.
func resolveKey(txn *store.Txn) (*spec.SamlServiceProvider, []*store.Resource, error) {
	res, err := txn.Resources(spec.KindSamlServiceProvider)
	if err != nil {
		return nil, nil, fmt.Errorf("read SamlServiceProvider: %w", err)
	}
	if len(res) == 0 {
		return nil, nil, ErrNotConfigured
	}
	if len(res) > 1 {
		return nil, nil, fmt.Errorf("%d SamlServiceProvider documents; at most one is allowed", len(res))
	}
	sp, ok := res[0].Spec.(*spec.SamlServiceProvider)
	if !ok || sp == nil {
		return nil, nil, errors.New("SamlServiceProvider resource holds no SamlServiceProvider spec")
	}
	if !sp.Enabled {
		return sp, nil, ErrDisabled
	}
	key := []*store.Resource{res[0]}
	names := append([]string{sp.SPSigningCertificate, sp.SPEncryptionCertificate}, sp.IDP.SigningCertificates...)
	for _, n := range names {
		if n == "" {
			key = append(key, nil)
			continue
		}
		r, err := txn.Resource(spec.KindCertificate, n)
		if err != nil {
			return nil, nil, fmt.Errorf("read Certificate %s: %w", n, err)
		}
		key = append(key, r)
	}
	return sp, key, nil
}

// resolvedKey is what resolveKey returned, until changed closes, and the
// names of the cookies of sp's baseURL (ok false without a usable one).
type resolvedKey struct {
	sp        *spec.SamlServiceProvider
	key       []*store.Resource
	err       error
	changed   <-chan struct{}
	cookies   cookieNames
	cookiesOK bool
}

// resolve returns resolveKey's answer on the store's current state, read
// again only after a resource changed: every request through the daemon's
// router asks for the SAML base path.
func (s *Server) resolve() (*spec.SamlServiceProvider, []*store.Resource, error) {
	if r := s.resolved.Load(); r != nil {
		select {
		case <-r.changed:
		default:
			return r.sp, r.key, r.err
		}
	}
	// Taken before the read, so a commit that the read misses closes it.
	changed := s.st.ResourcesChanged()
	sp, key, err := resolveKey(s.st.Read())
	r := &resolvedKey{sp: sp, key: key, err: err, changed: changed}
	if sp != nil {
		base, perr := url.Parse(strings.TrimRight(sp.BaseURL, "/"))
		if perr == nil && (base.Scheme == "https" || base.Scheme == "http") && base.Host != "" {
			r.cookies, r.cookiesOK = cookieNamesOf(base), true
		}
	}
	s.resolved.Store(r)
	return sp, key, err
}

// cookieNames returns the names of the SP's cookies, from the baseURL in
// the store whether or not sign-in is initialised (a session outlives an
// IdP metadata outage); ok is false without a SamlServiceProvider whose
// baseURL names them.
func (s *Server) cookieNames() (cookieNames, bool) {
	s.resolve()
	r := s.resolved.Load()
	return r.cookies, r.cookiesOK
}

func sameKey(a, b []*store.Resource) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func certOf(r *store.Resource, name, usage string) (*spec.Certificate, error) {
	if r == nil {
		return nil, fmt.Errorf("certificate %q not found in the keystore", name)
	}
	c, ok := r.Spec.(*spec.Certificate)
	if !ok || c == nil {
		return nil, fmt.Errorf("certificate %q holds no certificate", name)
	}
	if c.Usage != usage {
		return nil, fmt.Errorf("certificate %q has usage %q, want %q", name, c.Usage, usage)
	}
	if len(c.DER) == 0 {
		return nil, fmt.Errorf("certificate %q has no certificate data", name)
	}
	return c, nil
}

// build initialises a configuration from key. raw is the IdP metadata
// (MetadataXML or the fetched MetadataURL document).
func (s *Server) build(sp *spec.SamlServiceProvider, key []*store.Resource, raw []byte, fetched time.Time) (*config, error) {
	now := s.now()
	c := &config{key: key, sp: sp, metadataRaw: raw, metadataFetched: fetched}
	base, err := url.Parse(strings.TrimRight(sp.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("baseURL %q is not an absolute http(s) URL", sp.BaseURL)
	}
	if sp.EntityID == "" {
		return nil, errors.New("entityID is empty")
	}
	c.basePath = base.Path
	c.origin = base.Scheme + "://" + base.Host
	c.cookies = cookieNamesOf(base)
	switch base.Hostname() {
	case "localhost", "127.0.0.1", "::1":
		c.secure = true
	default:
		c.secure = base.Scheme == "https"
	}
	c.csrf = http.NewCrossOriginProtection()
	// Behind a proxy that rewrites Host, an older browser's Origin still
	// names the baseURL.
	if err := c.csrf.AddTrustedOrigin(base.Scheme + "://" + base.Host); err != nil {
		return nil, fmt.Errorf("baseURL %q: %w", sp.BaseURL, err)
	}
	c.acsURL = base.String() + "/saml/acs"
	c.sloURL = base.String() + "/saml/slo"
	c.skew = sp.AllowedClockSkew.D()
	if c.skew <= 0 {
		c.skew = spec.DefaultClockSkew
	}
	if c.skew > spec.MaxClockSkew {
		return nil, fmt.Errorf("allowedClockSkew %s exceeds the maximum %s", c.skew, spec.MaxClockSkew)
	}
	c.lifetime = sp.SessionLifetime.D()
	if c.lifetime <= 0 {
		c.lifetime = spec.DefaultSessionLifetime
	}

	// key is [sp, spSigning, spEncryption, idp signing...].
	if sp.SPSigningCertificate != "" {
		if c.spSign, err = certOf(key[1], sp.SPSigningCertificate, spec.UsageSamlSPSigning); err != nil {
			return nil, err
		}
		if c.spSign.PrivateKey == nil {
			return nil, fmt.Errorf("certificate %q has no private key", sp.SPSigningCertificate)
		}
	}
	if sp.SPEncryptionCertificate != "" {
		if c.spEncrypt, err = certOf(key[2], sp.SPEncryptionCertificate, spec.UsageSamlSPEncryption); err != nil {
			return nil, err
		}
		rk, ok := c.spEncrypt.PrivateKey.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("certificate %q needs an RSA private key to decrypt assertions", sp.SPEncryptionCertificate)
		}
		c.decrypt = &tls.Certificate{Certificate: [][]byte{c.spEncrypt.DER}, PrivateKey: rk}
	}
	if sp.SignAuthnRequests && c.spSign == nil {
		return nil, errors.New("signAuthnRequests needs spSigningCertificate")
	}
	for i, n := range sp.IDP.SigningCertificates {
		cert, err := certOf(key[3+i], n, spec.UsageSamlIDPSigning)
		if err != nil {
			return nil, err
		}
		x, err := x509.ParseCertificate(cert.DER)
		if err != nil {
			return nil, fmt.Errorf("certificate %q: %w", n, err)
		}
		c.idpCerts = append(c.idpCerts, x)
	}
	if len(c.idpCerts) == 0 {
		return nil, errors.New("no IdP signing certificate configured (idp.signingCertificates)")
	}

	md, err := samlmeta.Verify(raw, samlmeta.Options{
		Trusted: c.idpCerts, RequireSigned: sp.IDP.SignedMetadataRequired(), AllowSHA1: sp.AllowSHA1, Now: now, Skew: c.skew,
	})
	if err != nil {
		return nil, err
	}
	c.idp = md
	for _, mc := range md.Certs {
		if !containsCert(c.idpCerts, mc) {
			// Named as Entra's portal names it, by its thumbprint.
			s.log.Warn("saml: idp metadata announces a signing certificate that is not in the keystore; it is not trusted",
				"certificate", samlmeta.Describe(mc))
			c.untrusted = append(c.untrusted, samlmeta.Describe(mc))
		}
	}
	for _, kc := range c.idpCerts {
		if kc.NotAfter.Sub(now) < 30*24*time.Hour {
			s.log.Warn("saml: idp signing certificate expires soon", "subject", kc.Subject.String(), "notAfter", kc.NotAfter)
		}
	}
	c.logoutIssuers = []string{md.EntityID}
	if tenant, ok := strings.CutPrefix(md.EntityID, "https://sts.windows.net/"); ok {
		c.logoutIssuers = append(c.logoutIssuers, "https://login.microsoftonline.com/"+tenant)
	}

	newSP := func(clock *dsig.Clock) *saml2.SAMLServiceProvider {
		return &saml2.SAMLServiceProvider{
			IdentityProviderSSOURL:      md.SSOURL,
			IdentityProviderSSOBinding:  bindingRedirect,
			IdentityProviderSLOURL:      md.SLOURL,
			IdentityProviderSLOBinding:  bindingRedirect,
			IdentityProviderIssuer:      md.EntityID,
			AssertionConsumerServiceURL: c.acsURL,
			ServiceProviderSLOURL:       c.sloURL,
			ServiceProviderIssuer:       sp.EntityID,
			NameIdFormat:                c.nameIDFormat(),
			AudienceURI:                 sp.EntityID,
			// The response checker's clock runs c.skew behind now.
			IDPCertificateStore:        &dsig.MemoryX509CertificateStore{Roots: samlmeta.SkewedCerts(c.idpCerts, c.skew, c.skew)},
			SignAuthnRequests:          sp.SignAuthnRequests,
			SignAuthnRequestsAlgorithm: dsig.RSASHA256SignatureMethod,
			AllowMissingAttributes:     true,
			Clock:                      clock,
			// gosaml2 inflates whatever does not parse as XML; the POST
			// binding is never deflated, and the pre-checks (scanXML,
			// scanEncrypted) read only the bytes as posted, so a body that
			// inflates to a response would reach gosaml2 unchecked. Allowing
			// one inflated byte makes every inflation fail; plain XML, which
			// is parsed first, is not affected.
			MaximumDecompressedBodySize: 1,
		}
	}
	// Responses are checked on a clock c.skew behind now; requests are
	// stamped with now itself (a skewClock without skew).
	ssp := newSP(dsig.NewFakeClock(skewClock{Clock: clockwork.NewRealClock(), now: s.now, skew: c.skew}))
	c.requests = newSP(dsig.NewFakeClock(skewClock{Clock: clockwork.NewRealClock(), now: s.now}))
	if c.spSign != nil {
		if err := ssp.SetSPSigningKeyStore(&saml2.KeyStore{Signer: c.spSign.PrivateKey, Cert: c.spSign.DER}); err != nil {
			return nil, fmt.Errorf("sp signing key: %w", err)
		}
	}
	if c.decrypt != nil {
		// gosaml2 v0.12.0 decrypts only with the deprecated SPKeyStore field.
		ssp.SPKeyStore = dsig.TLSCertKeyStore(*c.decrypt)
	}
	c.saml = ssp
	sealKey, err := pendingKey(c, s.pendingKey)
	if err != nil {
		return nil, err
	}
	if c.pending, err = newSealer(sealKey); err != nil {
		return nil, fmt.Errorf("pending sign-in cookie: %w", err)
	}
	return c, nil
}

func containsCert(list []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range list {
		if x.Equal(c) {
			return true
		}
	}
	return false
}
