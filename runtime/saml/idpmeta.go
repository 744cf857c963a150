package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// maxMetadataSize bounds IdP metadata; Entra's app metadata is a few KiB.
const maxMetadataSize = 1 << 20

// ErrMetadata is wrapped by every IdP metadata rejection.
var ErrMetadata = errors.New("idp metadata rejected")

// idpMetadata is what idrecon takes from verified IdP metadata.
type idpMetadata struct {
	EntityID string
	SSOURL   string // HTTP-Redirect
	SLOURL   string // HTTP-Redirect
	// Certs are the signing certificates the metadata announces; only those
	// also in the keystore are trusted.
	Certs   []*x509.Certificate
	Signed  bool
	Expires time.Time // validUntil, zero when absent
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

func metadataErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMetadata}, args...)...)
}

// verifyIDPMetadata checks raw against the keystore's IdP signing
// certificates before reading anything from it: the signature must be an
// enveloped one on the EntityDescriptor itself, by a trusted certificate that
// is valid at now within skew, and only the bytes the signature covers are
// parsed.
func verifyIDPMetadata(raw []byte, trusted []*x509.Certificate, requireSigned, allowSHA1 bool, now time.Time, skew time.Duration) (*idpMetadata, error) {
	if len(raw) == 0 {
		return nil, metadataErr("empty document")
	}
	if len(raw) > maxMetadataSize {
		return nil, metadataErr("larger than %d bytes", maxMetadataSize)
	}
	raw = bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF"))
	if err := prescanXML(raw, allowSHA1); err != nil {
		return nil, metadataErr("%v", err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return nil, metadataErr("not XML: %v", err)
	}
	root := doc.Root()
	if root == nil || root.Tag != "EntityDescriptor" || root.NamespaceURI() != nsMetadata {
		return nil, metadataErr("root element is not a SAML metadata EntityDescriptor")
	}
	sig := directSignature(root)
	signed := sig != nil
	verified := root
	switch {
	case !signed && requireSigned:
		return nil, metadataErr("metadata is not signed")
	case signed:
		if len(trusted) == 0 {
			return nil, metadataErr("metadata is signed but no IdP signing certificate is configured to verify it")
		}
		id := root.SelectAttrValue("ID", "")
		refs := sig.FindElements("./SignedInfo/Reference")
		if id == "" || len(refs) != 1 || refs[0].SelectAttrValue("URI", "") != "#"+id {
			return nil, metadataErr("signature must have exactly one reference to the EntityDescriptor's ID")
		}
		ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: skewedCerts(trusted, 0, skew)})
		ctx.Clock = dsig.NewFakeClockAt(now)
		v, err := ctx.Validate(root)
		if err != nil {
			return nil, metadataErr("signature does not verify against the configured IdP signing certificates: %v", err)
		}
		verified = v
	}
	out := etree.NewDocument()
	out.SetRoot(verified)
	b, err := out.WriteToBytes()
	if err != nil {
		return nil, metadataErr("re-serialise: %v", err)
	}
	var ed mdEntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		return nil, metadataErr("parse: %v", err)
	}
	md := &idpMetadata{EntityID: ed.EntityID, Signed: signed}
	if md.EntityID == "" {
		return nil, metadataErr("no entityID")
	}
	if ed.ValidUntil != "" {
		t, err := time.Parse(time.RFC3339, ed.ValidUntil)
		if err != nil {
			return nil, metadataErr("invalid validUntil %q", ed.ValidUntil)
		}
		if !now.Before(t) {
			return nil, metadataErr("expired: validUntil %s is in the past", ed.ValidUntil)
		}
		md.Expires = t
	}
	var found bool
	for _, d := range ed.IDP {
		if !strings.Contains(d.Protocols, "urn:oasis:names:tc:SAML:2.0:protocol") {
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
					return nil, metadataErr("invalid certificate in KeyDescriptor: %v", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, metadataErr("invalid certificate in KeyDescriptor: %v", err)
				}
				md.Certs = append(md.Certs, cert)
			}
		}
	}
	if !found {
		return nil, metadataErr("no SAML 2.0 IDPSSODescriptor")
	}
	if err := checkHTTPURL(md.SSOURL); err != nil {
		return nil, metadataErr("no usable HTTP-Redirect SingleSignOnService: %v", err)
	}
	if md.SLOURL != "" {
		if err := checkHTTPURL(md.SLOURL); err != nil {
			return nil, metadataErr("SingleLogoutService: %v", err)
		}
	}
	return md, nil
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
