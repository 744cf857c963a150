package testidp

import (
	"html/template"
	"net/http"
	"time"

	"github.com/beevik/etree"
)

// Server is an in-process IdP answering HTTP-Redirect AuthnRequests the way
// Entra does: it signs in NameID without asking and posts the signed
// response to the request's ACS URL through an auto-submitting form.
type Server struct {
	Tenant string
	Key    *Key
	Now    func() time.Time
	// NameID names the signed-in user.
	NameID     string
	Attributes []Attr
	// SPLogoutURL is where a LogoutRequest is answered (the SP's /saml/slo).
	SPLogoutURL string
}

var postForm = template.Must(template.New("").Parse(`<!DOCTYPE html>
<html><head><title>Working...</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{{.ACS}}">
<input type="hidden" name="SAMLResponse" value="{{.Response}}">
<input type="hidden" name="RelayState" value="{{.Relay}}">
<noscript><button type="submit">Continue</button></noscript>
</form></body></html>`))

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := Inflate(r.URL.Query().Get("SAMLRequest"))
	if err != nil {
		http.Error(w, "bad SAMLRequest", http.StatusBadRequest)
		return
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		http.Error(w, "not XML", http.StatusBadRequest)
		return
	}
	switch doc.Root().Tag {
	case "AuthnRequest":
	case "LogoutRequest":
		s.logout(w, r, doc.Root())
		return
	default:
		http.Error(w, "not an AuthnRequest or LogoutRequest", http.StatusBadRequest)
		return
	}
	req := doc.Root()
	acs := req.SelectAttrValue("AssertionConsumerServiceURL", "")
	issuer := req.FindElement("./Issuer")
	if acs == "" || issuer == nil {
		http.Error(w, "AuthnRequest lacks ACS URL or Issuer", http.StatusBadRequest)
		return
	}
	resp, err := Response(ResponseOptions{
		Now:           s.Now(),
		Tenant:        s.Tenant,
		Recipient:     acs,
		Audiences:     []string{issuer.Text()},
		InResponseTo:  req.SelectAttrValue("ID", ""),
		NameID:        s.NameID,
		Attributes:    s.Attributes,
		Key:           s.Key,
		SignAssertion: true,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	enc, err := Encode(resp)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	postForm.Execute(w, struct{ ACS, Response, Relay string }{acs, enc, r.URL.Query().Get("RelayState")})
}

// logout answers a LogoutRequest with a signed LogoutResponse over
// HTTP-Redirect, as Entra does.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, req *etree.Element) {
	doc := LogoutResponse(s.Tenant, s.SPLogoutURL, req.SelectAttrValue("ID", ""), StatusSuccess, s.Now())
	q, err := RedirectQuery("SAMLResponse", doc, r.URL.Query().Get("RelayState"), s.Key, false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, s.SPLogoutURL+"?"+q, http.StatusFound)
}
