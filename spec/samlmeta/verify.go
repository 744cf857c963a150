package samlmeta

import (
	"bytes"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// MaxSize bounds IdP metadata; Entra's app metadata is a few KiB.
const MaxSize = 1 << 20

const (
	nsMetadata      = "urn:oasis:names:tc:SAML:2.0:metadata"
	nsDSig          = "http://www.w3.org/2000/09/xmldsig#"
	nsProtocol      = "urn:oasis:names:tc:SAML:2.0:protocol"
	bindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
)

// ErrRejected is wrapped by every rejection of IdP metadata.
var ErrRejected = errors.New("idp metadata rejected")

// IDP is what idrecon takes from verified IdP metadata.
type IDP struct {
	EntityID string
	SSOURL   string // HTTP-Redirect
	SLOURL   string // HTTP-Redirect
	// Certs are the signing certificates the metadata announces; only those
	// also in the keystore are trusted.
	Certs   []*x509.Certificate
	Signed  bool
	Expires time.Time // validUntil, zero when absent
}

// Options are what metadata is verified against.
type Options struct {
	// Trusted are the keystore's IdP signing certificates.
	Trusted []*x509.Certificate
	// RequireSigned refuses unsigned metadata. A signature that is there is
	// checked either way.
	RequireSigned bool
	AllowSHA1     bool
	// Now is when validUntil and the certificates' validity are judged;
	// a certificate counts as valid within Skew of its validity.
	Now  time.Time
	Skew time.Duration
}

type mdEntityDescriptor struct {
	XMLName    xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:metadata EntityDescriptor"`
	EntityID   string   `xml:"entityID,attr"`
	ValidUntil string   `xml:"validUntil,attr"`
	IDP        []struct {
		Protocols  string `xml:"protocolSupportEnumeration,attr"`
		ValidUntil string `xml:"validUntil,attr"`
		Keys       []struct {
			Use   string   `xml:"use,attr"`
			Certs []string `xml:"http://www.w3.org/2000/09/xmldsig# KeyInfo>X509Data>X509Certificate"`
		} `xml:"KeyDescriptor"`
		SLO []mdEndpoint `xml:"SingleLogoutService"`
		SSO []mdEndpoint `xml:"SingleSignOnService"`
	} `xml:"IDPSSODescriptor"`
}

type mdEndpoint struct {
	Binding  string `xml:"Binding,attr"`
	Location string `xml:"Location,attr"`
}

func rejected(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrRejected}, args...)...)
}

// Verify checks raw against o.Trusted before reading anything from it: the
// signature must be an enveloped one on the EntityDescriptor itself, by a
// trusted certificate that is valid at o.Now within o.Skew, and only the
// bytes the signature covers are parsed. Every error wraps ErrRejected.
func Verify(raw []byte, o Options) (*IDP, error) {
	if len(raw) == 0 {
		return nil, rejected("empty document")
	}
	if len(raw) > MaxSize {
		return nil, rejected("larger than %d bytes", MaxSize)
	}
	raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
	if err := Prescan(raw, o.AllowSHA1); err != nil {
		return nil, rejected("%v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, rejected("not XML: %v", err)
	}
	if err := oneRoot(doc); err != nil {
		return nil, err
	}
	root := doc.Root()
	if root == nil {
		return nil, rejected("no root element")
	}
	if root.Tag != "EntityDescriptor" || root.NamespaceURI() != nsMetadata {
		return nil, rejected("root element is not a SAML metadata EntityDescriptor: it is %s in namespace %q",
			clip(root.Tag), clip(root.NamespaceURI()))
	}
	sig := directSignature(root)
	signed := sig != nil
	verified := root
	switch {
	case !signed && o.RequireSigned:
		return nil, rejected("metadata is not signed")
	case signed:
		if len(o.Trusted) == 0 {
			return nil, rejected("metadata is signed but no IdP signing certificate is configured to verify it")
		}
		id := root.SelectAttrValue("ID", "")
		refs := sig.FindElements("./SignedInfo/Reference")
		if id == "" || len(refs) != 1 || refs[0].SelectAttrValue("URI", "") != "#"+id {
			return nil, rejected("signature must have exactly one reference to the EntityDescriptor's ID")
		}
		v, err := validate(root, sig, o)
		if err != nil {
			return nil, err
		}
		verified = v
	}
	out := etree.NewDocument()
	out.SetRoot(verified)
	b, err := out.WriteToBytes()
	if err != nil {
		return nil, rejected("re-serialise: %v", err)
	}
	var ed mdEntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		return nil, rejected("parse: %v", err)
	}
	md := &IDP{EntityID: ed.EntityID, Signed: signed}
	if md.EntityID == "" {
		return nil, rejected("no entityID")
	}
	if err := md.expiry("", ed.ValidUntil, o.Now); err != nil {
		return nil, err
	}
	var found bool
	for _, d := range ed.IDP {
		if !strings.Contains(d.Protocols, nsProtocol) {
			continue
		}
		// A role's own validUntil ends what it says (its endpoints and
		// keys) as the EntityDescriptor's ends the whole.
		if err := md.expiry("IDPSSODescriptor ", d.ValidUntil, o.Now); err != nil {
			return nil, err
		}
		found = true
		for _, e := range d.SSO {
			if e.Binding == bindingRedirect && md.SSOURL == "" {
				md.SSOURL = e.Location
			}
		}
		for _, e := range d.SLO {
			if e.Binding == bindingRedirect && md.SLOURL == "" {
				md.SLOURL = e.Location
			}
		}
		for _, k := range d.Keys {
			if k.Use != "" && k.Use != "signing" {
				continue
			}
			for _, c := range k.Certs {
				der, err := decodeBase64Loose(c)
				if err != nil {
					return nil, rejected("invalid certificate in KeyDescriptor: %v", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, rejected("invalid certificate in KeyDescriptor: %v", err)
				}
				md.Certs = append(md.Certs, cert)
			}
		}
	}
	if !found {
		return nil, rejected("no SAML 2.0 IDPSSODescriptor")
	}
	if err := checkHTTPURL(md.SSOURL); err != nil {
		return nil, rejected("no usable HTTP-Redirect SingleSignOnService: %v", err)
	}
	if md.SLOURL != "" {
		if err := checkHTTPURL(md.SLOURL); err != nil {
			return nil, rejected("SingleLogoutService: %v", err)
		}
	}
	return md, nil
}

// expiry checks a validUntil of the metadata (where names the element
// when it is not the EntityDescriptor) and keeps the earliest in Expires.
func (md *IDP) expiry(where, validUntil string, now time.Time) error {
	if validUntil == "" {
		return nil
	}
	t, err := parseTime(validUntil)
	if err != nil {
		return rejected("invalid %svalidUntil %q", where, clip(validUntil))
	}
	if !now.Before(t) {
		return rejected("expired: %svalidUntil %s is in the past", where, validUntil)
	}
	if md.Expires.IsZero() || t.Before(md.Expires) {
		md.Expires = t
	}
	return nil
}

// parseTime reads an xs:dateTime. SAML times are UTC; one written without
// a time zone, which the schema allows, is taken as UTC rather than
// refused.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04:05", s)
}

// oneRoot refuses a document that is not one element: a second root
// element (a signed EntityDescriptor next to an unsigned one) or text
// around the root. XML does not allow either, but the parser stops
// at the first root without complaint.
func oneRoot(doc *etree.Document) error {
	seen := false
	for _, tok := range doc.Child {
		switch tok := tok.(type) {
		case *etree.Element:
			if seen {
				return rejected("more than one root element: a second %s", clip(tok.Tag))
			}
			seen = true
		case *etree.CharData:
			if !tok.IsWhitespace() {
				if seen {
					return rejected("text after the root element")
				}
				return rejected("text before the root element")
			}
		}
	}
	return nil
}

// validate checks root's enveloped signature sig against o.Trusted and
// returns the element it covers. The refusal names the certificate the
// signature carries and why it is not accepted, so that an operator in the
// middle of a rollover sees which certificate to import, or which
// configured one has expired.
func validate(root, sig *etree.Element, o Options) (*etree.Element, error) {
	keyCert := signatureCert(sig)
	if keyCert != nil {
		var configured *x509.Certificate
		for _, c := range o.Trusted {
			if bytes.Equal(c.Raw, keyCert.Raw) {
				configured = c
				break
			}
		}
		switch {
		case configured == nil:
			names := make([]string, len(o.Trusted))
			for i, c := range o.Trusted {
				names[i] = Describe(c)
			}
			return nil, rejected("%s: it carries the certificate %s, which is not among them (%s): if the IdP rolled over to it, add it to the keystore",
				notVerified, Describe(keyCert), strings.Join(names, "; "))
		case o.Now.After(configured.NotAfter.Add(o.Skew)):
			return nil, rejected("%s: its certificate %s expired on %s", notVerified, Describe(configured), configured.NotAfter.UTC().Format(time.RFC3339))
		case o.Now.Before(configured.NotBefore.Add(-o.Skew)):
			return nil, rejected("%s: its certificate %s is not valid before %s", notVerified, Describe(configured), configured.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	roots := [][]*x509.Certificate{o.Trusted}
	if keyCert == nil && len(o.Trusted) > 1 {
		// Without a certificate in the signature, goxmldsig can only use a
		// sole trusted one: with the old and the new certificate both
		// configured, as a rollover needs, each is tried alone.
		roots = roots[:0]
		for _, c := range o.Trusted {
			roots = append(roots, []*x509.Certificate{c})
		}
	}
	var err error
	for _, r := range roots {
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: SkewedCerts(r, 0, o.Skew)})
		ctx.Clock = dsig.NewFakeClockAt(o.Now)
		var v *etree.Element
		if v, err = ctx.Validate(root); err == nil {
			return v, nil
		}
	}
	return nil, rejected("%s: %v", notVerified, err)
}

const notVerified = "signature does not verify against the configured IdP signing certificates"

// signatureCert returns the certificate in sig's KeyInfo, or nil when
// there is none or it does not parse (goxmldsig then says why).
func signatureCert(sig *etree.Element) *x509.Certificate {
	el := sig.FindElement("./KeyInfo/X509Data/X509Certificate")
	if el == nil {
		return nil
	}
	der, err := decodeBase64Loose(el.Text())
	if err != nil {
		return nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil
	}
	return c
}

// Describe names a certificate as the operator finds it in Entra's
// portal: subject, SHA-1 thumbprint and end of validity.
func Describe(c *x509.Certificate) string {
	return fmt.Sprintf("%q (thumbprint %X, valid until %s)", clip(c.Subject.String()), sha1.Sum(c.Raw), c.NotAfter.UTC().Format(time.DateOnly))
}

// clip shortens text from the document for an error message.
func clip(s string) string {
	const max = 100
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// SkewedCerts returns copies of certs for goxmldsig, whose only validity
// check is NotBefore <= t <= NotAfter at its clock's t, which runs lag behind
// now. The copies' window is moved so that this check admits exactly the
// certificates valid at now within skew on either side, the rule for every
// signed message and for metadata: a certificate the IdP issued a moment ago
// by its own clock, which may run up to skew ahead of ours, verifies at
// once, and none verifies more than skew outside its validity. Without the
// move, a clock running skew behind refused a new certificate for the first
// skew after its NotBefore, and a check at now allowed no skew at all.
//
// Only NotBefore and NotAfter differ: Raw and the public key are shared, so
// goxmldsig still matches the KeyInfo certificate by its bytes.
func SkewedCerts(certs []*x509.Certificate, lag, skew time.Duration) []*x509.Certificate {
	out := make([]*x509.Certificate, len(certs))
	for i, c := range certs {
		cp := *c
		cp.NotBefore = c.NotBefore.Add(-skew - lag)
		cp.NotAfter = c.NotAfter.Add(skew - lag)
		out[i] = &cp
	}
	return out
}

// directSignature returns root's own Signature child, or nil.
func directSignature(root *etree.Element) *etree.Element {
	for _, c := range root.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == nsDSig {
			return c
		}
	}
	return nil
}

// decodeBase64Loose decodes base64 that may be wrapped over several lines.
func decodeBase64Loose(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	return base64.StdEncoding.DecodeString(s)
}

func checkHTTPURL(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("invalid URL %q", s)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("URL %q is not http(s)", s)
	}
	return nil
}
