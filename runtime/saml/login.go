package saml

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
)

// serveLogin starts SP-initiated sign-in: it records the AuthnRequest in
// the browser's pending cookie (see pendingLogin) and redirects to the IdP.
//
// The ACS accepts a response to it only if its signed InResponseTo names a
// sign-in in the POST's pending cookie, unexpired, with the same opaque
// RelayState; the cookie is sealed with a server key, so it can be neither
// forged nor read, and only this browser has it. Using a response twice is
// refused by the replay cache. The session cookie the ACS sets afterwards
// is SameSite=Lax.
func (s *Server) serveLogin(c *config, w http.ResponseWriter, r *http.Request) {
	returnTo := localReturnTo(r.URL.Query().Get("returnTo"), c.basePath)
	doc, err := c.requests.BuildAuthRequestDocumentNoSig()
	if err != nil {
		s.log.Error("saml: build AuthnRequest", "err", err)
		s.errorPage(w, c, http.StatusInternalServerError, "Sign-in could not start", "The sign-in request could not be built.")
		return
	}
	askNameIDFormat(doc, c.requestedNameIDFormat())
	p := pendingLogin{
		ID:       doc.Root().SelectAttrValue("ID", ""),
		Relay:    randomToken(),
		ReturnTo: returnTo,
		Expires:  s.now().Add(pendingTTL).Unix(),
	}
	dest, err := redirectURL(c, c.requests.IdentityProviderSSOURL, "SAMLRequest", doc, p.Relay, c.sp.SignAuthnRequests)
	if err != nil {
		s.log.Error("saml: build redirect", "err", err)
		s.errorPage(w, c, http.StatusInternalServerError, "Sign-in could not start", "The sign-in request could not be built.")
		return
	}
	list, _ := readPending(c, r) // a cookie that does not open is replaced
	s.writePending(w, c, r, addPending(list, p, s.now()))
	http.Redirect(w, r, dest, http.StatusFound)
}

// askNameIDFormat sets the Format of the AuthnRequest's NameIDPolicy, or
// drops the NameIDPolicy for no format: a NameIDPolicy without a Format
// means unspecified (SAML core), which Entra answers with a pairwise
// identifier when asked by name, while without any NameIDPolicy Entra's
// documentation has the application's claim settings decide. Its
// AllowCreate, all gosaml2 adds besides, Entra ignores.
func askNameIDFormat(doc *etree.Document, format string) {
	for _, el := range doc.Root().ChildElements() {
		if el.Tag != "NameIDPolicy" {
			continue
		}
		if format == "" {
			doc.Root().RemoveChild(el)
		} else {
			el.CreateAttr("Format", format)
		}
	}
}

// onThisSite turns a RelayState that is an absolute URL of the SP's own
// origin (what an admin pastes from the browser into Entra's "Relay State"
// for IdP-initiated sign-in) into its path and query; anything else comes
// back as it is, for localReturnTo to judge.
func onThisSite(relay, origin string) string {
	u, err := url.Parse(relay)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" || !strings.EqualFold(u.Scheme+"://"+u.Host, origin) {
		return relay
	}
	return u.RequestURI()
}

// maxReturnTo bounds a returnTo kept in the pending cookie, so that a
// sign-in with it fits in one (maxPendingCookie).
const maxReturnTo = 2048

// localReturnTo accepts only a path on this server ("/x"), never a
// scheme-relative ("//evil", "/\evil") or absolute URL, nor one longer
// than maxReturnTo; anything else becomes the SP's home page.
func localReturnTo(raw, basePath string) string {
	home := basePath + "/"
	if raw == "" || len(raw) > maxReturnTo || raw[0] != '/' || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\\x00\r\n\t") {
		return home
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f {
			return home
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return home
	}
	return raw
}
