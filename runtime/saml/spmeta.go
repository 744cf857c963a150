package saml

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"net/http"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/adminjson"
)

// SP metadata validity: Entra reads it once at upload, other consumers
// should re-fetch daily and must not cache a stale copy for long.
const (
	spMetadataValidity = 7 * 24 * time.Hour
	spMetadataCache    = "PT24H"
)

type spEntityDescriptor struct {
	XMLName       xml.Name        `xml:"urn:oasis:names:tc:SAML:2.0:metadata EntityDescriptor"`
	EntityID      string          `xml:"entityID,attr"`
	ValidUntil    string          `xml:"validUntil,attr"`
	CacheDuration string          `xml:"cacheDuration,attr"`
	SP            spSSODescriptor `xml:"SPSSODescriptor"`
}

type spSSODescriptor struct {
	AuthnRequestsSigned        bool              `xml:"AuthnRequestsSigned,attr"`
	WantAssertionsSigned       bool              `xml:"WantAssertionsSigned,attr"`
	ProtocolSupportEnumeration string            `xml:"protocolSupportEnumeration,attr"`
	Keys                       []spKeyDescriptor `xml:"KeyDescriptor"`
	SLO                        []spEndpoint      `xml:"SingleLogoutService"`
	NameIDFormat               string            `xml:"NameIDFormat,omitempty"`
	ACS                        []spEndpoint      `xml:"AssertionConsumerService"`
}

type spKeyDescriptor struct {
	Use     string `xml:"use,attr"`
	KeyInfo struct {
		XMLName xml.Name `xml:"http://www.w3.org/2000/09/xmldsig# KeyInfo"`
		Cert    string   `xml:"X509Data>X509Certificate"`
	}
	Methods []spMethod `xml:"EncryptionMethod,omitempty"`
}

type spMethod struct {
	Algorithm string `xml:"Algorithm,attr"`
}

type spEndpoint struct {
	Binding   string `xml:"Binding,attr"`
	Location  string `xml:"Location,attr"`
	Index     string `xml:"index,attr,omitempty"`
	IsDefault string `xml:"isDefault,attr,omitempty"`
}

// spMetadata renders the SP's metadata: what Entra reads on upload
// (entityID and the ACS), plus the SLO endpoint, keys and NameID format.
func spMetadata(c *config, now time.Time) ([]byte, error) {
	ed := spEntityDescriptor{
		EntityID:      c.sp.EntityID,
		ValidUntil:    now.Add(spMetadataValidity).UTC().Format(time.RFC3339),
		CacheDuration: spMetadataCache,
		SP: spSSODescriptor{
			AuthnRequestsSigned:        c.sp.SignAuthnRequests,
			WantAssertionsSigned:       true,
			ProtocolSupportEnumeration: nsProtocol,
			SLO:                        []spEndpoint{{Binding: bindingRedirect, Location: c.sloURL}},
			ACS:                        []spEndpoint{{Binding: bindingPOST, Location: c.acsURL, Index: "0", IsDefault: "true"}},
		},
	}
	ed.SP.NameIDFormat = c.nameIDFormat()
	if c.spSign != nil {
		k := spKeyDescriptor{Use: "signing"}
		k.KeyInfo.Cert = base64.StdEncoding.EncodeToString(c.spSign.DER)
		ed.SP.Keys = append(ed.SP.Keys, k)
	}
	if c.spEncrypt != nil {
		k := spKeyDescriptor{Use: "encryption", Methods: []spMethod{
			{Algorithm: "http://www.w3.org/2009/xmlenc11#aes256-gcm"},
			{Algorithm: "http://www.w3.org/2001/04/xmlenc#aes256-cbc"},
			{Algorithm: "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"},
		}}
		k.KeyInfo.Cert = base64.StdEncoding.EncodeToString(c.spEncrypt.DER)
		ed.SP.Keys = append(ed.SP.Keys, k)
	}
	b, err := xml.MarshalIndent(ed, "", "  ")
	if err != nil {
		return nil, err
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func (s *Server) serveMetadata(c *config, w http.ResponseWriter, _ *http.Request) {
	b, err := spMetadata(c, s.now())
	if err != nil {
		s.log.Error("saml: render sp metadata", "err", err)
		http.Error(w, "metadata could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	w.Header().Set("Content-Disposition", `attachment; filename="sp-metadata.xml"`)
	w.Write(b)
}

// ServeAdminMetadata serves the SP metadata on the admin API
// (/v1/saml/metadata). Its caller holds the admin token, so when there is
// no metadata it is told why, as Ready tells status, in the admin API's
// error body; the public /saml/metadata says only that sign-on is
// unavailable.
func (s *Server) ServeAdminMetadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", http.MethodGet)
		adminjson.WriteError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c, err := s.current(r.Context())
	switch {
	case errors.Is(err, ErrDisabled):
		adminjson.WriteError(w, http.StatusConflict, "SAML single sign-on is disabled in the spec (SamlServiceProvider enabled: false): there is no SP metadata to serve")
	case errors.Is(err, ErrNotConfigured):
		adminjson.WriteError(w, http.StatusConflict, err.Error()+": there is no SP metadata to serve")
	case err != nil:
		adminjson.WriteError(w, http.StatusServiceUnavailable, "SAML single sign-on is not initialised: "+err.Error())
	default:
		s.serveMetadata(c, w, r)
	}
}
