// Package testidp plays Microsoft Entra ID in tests and in the demo
// generator: it makes throwaway signing keys, Entra-shaped signed federation
// metadata, and SAML responses signed (and optionally encrypted) the way Entra
// sends them, with knobs to get every detail wrong on purpose.
package testidp

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/url"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// Namespaces and well-known values.
const (
	NSMetadata  = "urn:oasis:names:tc:SAML:2.0:metadata"
	NSAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	NSProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	NSDSig      = "http://www.w3.org/2000/09/xmldsig#"
	NSXEnc      = "http://www.w3.org/2001/04/xmlenc#"

	StatusSuccess   = "urn:oasis:names:tc:SAML:2.0:status:Success"
	StatusRequester = "urn:oasis:names:tc:SAML:2.0:status:Requester"
	BindingRedirect = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
	BindingPOST     = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
	Bearer          = "urn:oasis:names:tc:SAML:2.0:cm:bearer"
	EmailFormat     = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
)

// Entra's claim URIs.
const (
	ClaimName        = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
	ClaimEmail       = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress"
	ClaimGivenName   = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname"
	ClaimSurname     = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname"
	ClaimObjectID    = "http://schemas.microsoft.com/identity/claims/objectidentifier"
	ClaimTenantID    = "http://schemas.microsoft.com/identity/claims/tenantid"
	ClaimDisplayName = "http://schemas.microsoft.com/identity/claims/displayname"
	ClaimGroups      = "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups"
)

// Key is a throwaway RSA signing key with its self-signed certificate.
type Key struct {
	Private *rsa.PrivateKey
	Cert    *x509.Certificate
}

// NewKey makes a 2048-bit RSA key and a self-signed certificate valid in
// [notBefore, notAfter], with the subject Entra gives its per-app certificates.
func NewKey(notBefore, notAfter time.Time) (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return NewKeyFrom(priv, notBefore, notAfter)
}

// NewKeyFrom self-signs a certificate for priv.
func NewKeyFrom(priv *rsa.PrivateKey, notBefore, notAfter time.Time) (*Key, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "Microsoft Azure Federated SSO Certificate"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, fmt.Errorf("create certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return &Key{Private: priv, Cert: cert}, nil
}

// CertBase64 is the certificate as Entra's "Certificate (Base64)" body.
func (k *Key) CertBase64() string { return base64.StdEncoding.EncodeToString(k.Cert.Raw) }

// EntityID is Entra's issuer for tenant.
func EntityID(tenant string) string { return "https://sts.windows.net/" + tenant + "/" }

// SSOURL is Entra's SAML endpoint for tenant (SSO and SLO share it).
func SSOURL(tenant string) string { return "https://login.microsoftonline.com/" + tenant + "/saml2" }

// Sign signs el enveloped with key (RSA-SHA256 and SHA-256 digests, or
// RSA-SHA1/SHA-1 with sha1) using exclusive c14n, and places the Signature
// right after the Issuer as Entra does. el must carry an ID attribute and its
// own namespace declarations.
func Sign(el *etree.Element, key *Key, sha1 bool) (*etree.Element, error) {
	ctx, err := dsig.NewSigningContext(key.Private, [][]byte{key.Cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if sha1 {
		ctx.Hash = crypto.SHA1
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig := signed.Child[len(signed.Child)-1]
	signed.RemoveChildAt(len(signed.Child) - 1)
	at := 0
	for _, c := range signed.ChildElements() {
		if c.Tag == "Issuer" {
			at = c.Index() + 1
			break
		}
	}
	signed.InsertChildAt(at, sig)
	return signed, nil
}

// MetadataOptions shape an Entra-style federation metadata document.
type MetadataOptions struct {
	Tenant string
	// Keys are announced as signing KeyDescriptors.
	Keys []*Key
	// SignWith signs the document; nil leaves it unsigned.
	SignWith *Key
	SHA1     bool
	// ValidUntil, when set, is written as validUntil.
	ValidUntil time.Time
	// ID is the EntityDescriptor ID; empty makes one.
	ID string
	// SSOURL overrides Entra's SSO and SLO endpoint (for an IdP served in a test).
	SSOURL string
}

// Metadata builds federation metadata as Entra publishes it for an app.
func Metadata(o MetadataOptions) (*etree.Document, error) {
	id := o.ID
	if id == "" {
		id = "_" + NewID()
	}
	ed := etree.NewElement("EntityDescriptor")
	ed.CreateAttr("xmlns", NSMetadata)
	ed.CreateAttr("ID", id)
	ed.CreateAttr("entityID", EntityID(o.Tenant))
	if !o.ValidUntil.IsZero() {
		ed.CreateAttr("validUntil", o.ValidUntil.UTC().Format(time.RFC3339))
	}
	endpoint := o.SSOURL
	if endpoint == "" {
		endpoint = SSOURL(o.Tenant)
	}
	idp := ed.CreateElement("IDPSSODescriptor")
	idp.CreateAttr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
	for _, k := range o.Keys {
		kd := idp.CreateElement("KeyDescriptor")
		kd.CreateAttr("use", "signing")
		ki := kd.CreateElement("KeyInfo")
		ki.CreateAttr("xmlns", NSDSig)
		ki.CreateElement("X509Data").CreateElement("X509Certificate").SetText(k.CertBase64())
	}
	slo := idp.CreateElement("SingleLogoutService")
	slo.CreateAttr("Binding", BindingRedirect)
	slo.CreateAttr("Location", endpoint)
	for _, b := range []string{BindingRedirect, BindingPOST} {
		sso := idp.CreateElement("SingleSignOnService")
		sso.CreateAttr("Binding", b)
		sso.CreateAttr("Location", endpoint)
	}
	if o.SignWith != nil {
		signed, err := Sign(ed, o.SignWith, o.SHA1)
		if err != nil {
			return nil, err
		}
		ed = signed
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	doc.SetRoot(ed)
	return doc, nil
}

// Attr is one SAML attribute with its values.
type Attr struct {
	Name   string
	Values []string
}

// ResponseOptions shape one SAML Response. Zero values take Entra's defaults
// relative to Now.
type ResponseOptions struct {
	Now          time.Time
	Tenant       string
	Issuer       string // assertion and response issuer; default EntityID(Tenant)
	Destination  string // Response/@Destination; "-" leaves it out
	Recipient    string // SubjectConfirmationData/@Recipient
	Audiences    []string
	NoAudience   bool
	InResponseTo string
	NameID       string
	Attributes   []Attr
	// Conditions window: default NotBefore = Now, NotOnOrAfter = Now+1h.
	NotBefore, NotOnOrAfter time.Time
	// SCDNotOnOrAfter defaults to Now+5m.
	SCDNotOnOrAfter time.Time
	AssertionID     string
	ResponseID      string
	Status          string

	Key           *Key
	SignAssertion bool
	SignResponse  bool
	SHA1          bool
	// EncryptTo, when set, wraps the (signed) assertion in an
	// EncryptedAssertion for that certificate (AES-256-CBC, RSA-OAEP).
	EncryptTo *x509.Certificate
	// MutateAssertion and MutateResponse change the elements just before
	// they are signed, to make a validly signed but wrong message.
	MutateAssertion func(*etree.Element)
	MutateResponse  func(*etree.Element)
}

func (o *ResponseOptions) defaults() {
	if o.Issuer == "" {
		o.Issuer = EntityID(o.Tenant)
	}
	if o.NotBefore.IsZero() {
		o.NotBefore = o.Now
	}
	if o.NotOnOrAfter.IsZero() {
		o.NotOnOrAfter = o.Now.Add(time.Hour)
	}
	if o.SCDNotOnOrAfter.IsZero() {
		o.SCDNotOnOrAfter = o.Now.Add(5 * time.Minute)
	}
	if o.AssertionID == "" {
		o.AssertionID = "_" + NewID()
	}
	if o.ResponseID == "" {
		o.ResponseID = "_" + NewID()
	}
	if o.Status == "" {
		o.Status = StatusSuccess
	}
	if o.Destination == "" {
		o.Destination = o.Recipient
	}
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// Assertion builds the (signed, when asked) Assertion element on its own.
func Assertion(o ResponseOptions) (*etree.Element, error) {
	o.defaults()
	a := etree.NewElement("Assertion")
	a.CreateAttr("xmlns", NSAssertion)
	a.CreateAttr("ID", o.AssertionID)
	a.CreateAttr("IssueInstant", ts(o.Now))
	a.CreateAttr("Version", "2.0")
	a.CreateElement("Issuer").SetText(o.Issuer)
	subj := a.CreateElement("Subject")
	nid := subj.CreateElement("NameID")
	nid.CreateAttr("Format", EmailFormat)
	nid.SetText(o.NameID)
	sc := subj.CreateElement("SubjectConfirmation")
	sc.CreateAttr("Method", Bearer)
	scd := sc.CreateElement("SubjectConfirmationData")
	if o.InResponseTo != "" {
		scd.CreateAttr("InResponseTo", o.InResponseTo)
	}
	scd.CreateAttr("NotOnOrAfter", ts(o.SCDNotOnOrAfter))
	scd.CreateAttr("Recipient", o.Recipient)
	cond := a.CreateElement("Conditions")
	cond.CreateAttr("NotBefore", ts(o.NotBefore))
	cond.CreateAttr("NotOnOrAfter", ts(o.NotOnOrAfter))
	if !o.NoAudience {
		ar := cond.CreateElement("AudienceRestriction")
		for _, aud := range o.Audiences {
			ar.CreateElement("Audience").SetText(aud)
		}
	}
	if len(o.Attributes) > 0 {
		as := a.CreateElement("AttributeStatement")
		for _, at := range o.Attributes {
			ae := as.CreateElement("Attribute")
			ae.CreateAttr("Name", at.Name)
			for _, v := range at.Values {
				ae.CreateElement("AttributeValue").SetText(v)
			}
		}
	}
	authn := a.CreateElement("AuthnStatement")
	authn.CreateAttr("AuthnInstant", ts(o.Now))
	authn.CreateAttr("SessionIndex", o.AssertionID)
	authn.CreateElement("AuthnContext").CreateElement("AuthnContextClassRef").
		SetText("urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport")
	if o.MutateAssertion != nil {
		o.MutateAssertion(a)
	}
	if o.SignAssertion {
		return Sign(a, o.Key, o.SHA1)
	}
	return a, nil
}

// Response builds a complete Response document.
func Response(o ResponseOptions) (*etree.Document, error) {
	o.defaults()
	r := etree.NewElement("samlp:Response")
	r.CreateAttr("xmlns:samlp", NSProtocol)
	r.CreateAttr("ID", o.ResponseID)
	r.CreateAttr("Version", "2.0")
	r.CreateAttr("IssueInstant", ts(o.Now))
	if o.Destination != "-" {
		r.CreateAttr("Destination", o.Destination)
	}
	if o.InResponseTo != "" {
		r.CreateAttr("InResponseTo", o.InResponseTo)
	}
	iss := r.CreateElement("Issuer")
	iss.CreateAttr("xmlns", NSAssertion)
	iss.SetText(o.Issuer)
	st := r.CreateElement("samlp:Status")
	st.CreateElement("samlp:StatusCode").CreateAttr("Value", o.Status)
	if o.Status == StatusSuccess {
		a, err := Assertion(o)
		if err != nil {
			return nil, err
		}
		if o.EncryptTo != nil {
			ea, err := Encrypt(a, o.EncryptTo)
			if err != nil {
				return nil, err
			}
			r.AddChild(ea)
		} else {
			r.AddChild(a)
		}
	}
	if o.MutateResponse != nil {
		o.MutateResponse(r)
	}
	if o.SignResponse {
		signed, err := Sign(r, o.Key, o.SHA1)
		if err != nil {
			return nil, err
		}
		r = signed
	}
	doc := etree.NewDocument()
	doc.SetRoot(r)
	return doc, nil
}

// Encode is the HTTP-POST binding form value of doc.
func Encode(doc *etree.Document) (string, error) {
	b, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// Encrypt wraps el into an EncryptedAssertion the way Entra does:
// AES-256-CBC content, key transported with RSA-OAEP (MGF1/SHA-1).
func Encrypt(el *etree.Element, to *x509.Certificate) (*etree.Element, error) {
	pub, ok := to.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("encrypt: certificate has no RSA key")
	}
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	plain, err := doc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
	out := make([]byte, aes.BlockSize+len(plain))
	if _, err := rand.Read(out[:aes.BlockSize]); err != nil {
		return nil, err
	}
	cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], plain)
	wrapped, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, key, nil)
	if err != nil {
		return nil, err
	}

	ea := etree.NewElement("EncryptedAssertion")
	ea.CreateAttr("xmlns", NSAssertion)
	ed := ea.CreateElement("xenc:EncryptedData")
	ed.CreateAttr("xmlns:xenc", NSXEnc)
	ed.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ed.CreateElement("xenc:EncryptionMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#aes256-cbc")
	ki := ed.CreateElement("KeyInfo")
	ki.CreateAttr("xmlns", NSDSig)
	ek := ki.CreateElement("xenc:EncryptedKey")
	em := ek.CreateElement("xenc:EncryptionMethod")
	em.CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p")
	em.CreateElement("DigestMethod").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#sha1")
	ek.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(wrapped))
	ed.CreateElement("xenc:CipherData").CreateElement("xenc:CipherValue").SetText(base64.StdEncoding.EncodeToString(out))
	return ea, nil
}

// NewID returns a random hex identifier.
func NewID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return fmt.Sprintf("%x", b)
}

// LogoutRequest builds an IdP-initiated LogoutRequest.
func LogoutRequest(tenant, destination, nameID string, now time.Time) *etree.Document {
	r := etree.NewElement("samlp:LogoutRequest")
	r.CreateAttr("xmlns:samlp", NSProtocol)
	r.CreateAttr("ID", "_"+NewID())
	r.CreateAttr("Version", "2.0")
	r.CreateAttr("IssueInstant", ts(now))
	r.CreateAttr("Destination", destination)
	iss := r.CreateElement("Issuer")
	iss.CreateAttr("xmlns", NSAssertion)
	iss.SetText("https://login.microsoftonline.com/" + tenant + "/")
	nid := r.CreateElement("NameID")
	nid.CreateAttr("xmlns", NSAssertion)
	nid.SetText(nameID)
	doc := etree.NewDocument()
	doc.SetRoot(r)
	return doc
}

// LogoutResponse builds Entra's answer to the LogoutRequest inResponseTo,
// with the given status (StatusSuccess when empty), as Entra sends it to
// the SP's logout URL destination.
func LogoutResponse(tenant, destination, inResponseTo, status string, now time.Time) *etree.Document {
	if status == "" {
		status = StatusSuccess
	}
	lr := etree.NewElement("samlp:LogoutResponse")
	lr.CreateAttr("xmlns:samlp", NSProtocol)
	lr.CreateAttr("ID", "_"+NewID())
	lr.CreateAttr("Version", "2.0")
	lr.CreateAttr("IssueInstant", ts(now))
	lr.CreateAttr("Destination", destination)
	lr.CreateAttr("InResponseTo", inResponseTo)
	iss := lr.CreateElement("Issuer")
	iss.CreateAttr("xmlns", NSAssertion)
	iss.SetText("https://login.microsoftonline.com/" + tenant + "/")
	lr.CreateElement("samlp:Status").CreateElement("samlp:StatusCode").CreateAttr("Value", status)
	doc := etree.NewDocument()
	doc.SetRoot(lr)
	return doc
}

// RedirectQuery encodes doc for the HTTP-Redirect binding under param
// ("SAMLRequest" or "SAMLResponse") and, when key is set, signs the query
// (RSA-SHA256, or RSA-SHA1 with sha1) as the binding specifies.
func RedirectQuery(param string, doc *etree.Document, relayState string, key *Key, sha1 bool) (string, error) {
	raw, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(raw); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if key == nil {
		return q, nil
	}
	alg, h := dsig.RSASHA256SignatureMethod, crypto.SHA256
	if sha1 {
		alg, h = dsig.RSASHA1SignatureMethod, crypto.SHA1
	}
	q += "&SigAlg=" + url.QueryEscape(alg)
	hh := h.New()
	io.WriteString(hh, q)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key.Private, h, hh.Sum(nil))
	if err != nil {
		return "", err
	}
	return q + "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig)), nil
}

// Inflate decodes an HTTP-Redirect binding value.
func Inflate(v string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), 1<<20))
}
