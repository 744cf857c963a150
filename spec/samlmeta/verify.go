package samlmeta

import (
	"bytes"
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
		Protocols string `xml:"protocolSupportEnumeration,attr"`
		Keys      []struct {
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
	root := doc.Root()
	if root == nil || root.Tag != "EntityDescriptor" || root.NamespaceURI() != nsMetadata {
		return nil, rejected("root element is not a SAML metadata EntityDescriptor")
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
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: SkewedCerts(o.Trusted, 0, o.Skew)})
		ctx.Clock = dsig.NewFakeClockAt(o.Now)
		v, err := ctx.Validate(root)
		if err != nil {
			return nil, rejected("signature does not verify against the configured IdP signing certificates: %v", err)
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
	if ed.ValidUntil != "" {
		t, err := time.Parse(time.RFC3339, ed.ValidUntil)
		if err != nil {
			return nil, rejected("invalid validUntil %q", ed.ValidUntil)
		}
		if !o.Now.Before(t) {
			return nil, rejected("expired: validUntil %s is in the past", ed.ValidUntil)
		}
		md.Expires = t
	}
	var found bool
	for _, d := range ed.IDP {
		if !strings.Contains(d.Protocols, nsProtocol) {
			continue
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
