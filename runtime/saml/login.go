package saml

import (
	"net/http"
	"net/url"
	"strings"
)

// serveLogin starts SP-initiated sign-in: it remembers the AuthnRequest ID
// server-side, bound to this browser, and redirects to the IdP.
//
// Binding survives Entra's cross-site POST to the ACS like this: the
// browser gets a random binding cookie marked SameSite=None (plus Secure,
// which browsers demand for SameSite=None and allow on https and loopback
// hosts), because a Lax or Strict cookie is not sent on a cross-site POST.
// The server stores, per request ID, the binding value, the opaque random
// RelayState it sent and the returnTo path. The ACS accepts a response
// only if its signed InResponseTo names a pending request, the request is
// unexpired and unused, and the POST carries the same binding cookie and
// RelayState. The binding cookie carries no authority by itself; the
// session cookie the ACS sets afterwards is SameSite=Lax.
func (s *Server) serveLogin(c *config, w http.ResponseWriter, r *http.Request) {
	returnTo := localReturnTo(r.URL.Query().Get("returnTo"), c.basePath)
	doc, err := c.saml.BuildAuthRequestDocumentNoSig()
	if err != nil {
		s.log.Error("saml: build AuthnRequest", "err", err)
		s.errorPage(w, c, http.StatusInternalServerError, "Sign-in could not start", "The sign-in request could not be built.")
		return
	}
	id := doc.Root().SelectAttrValue("ID", "")
	binding := ""
	if ck, err := r.Cookie(bindingCookie); err == nil && len(ck.Value) == 43 {
		binding = ck.Value
	} else {
		binding = randomToken()
	}
	relay := randomToken()
	now := s.now()
	if _, err := s.pending.add(id, pendingLogin{binding: binding, relayState: relay, returnTo: returnTo}, now.Add(pendingTTL), now); err != nil {
		s.log.Warn("saml: pending sign-in table full")
		s.errorPage(w, c, http.StatusServiceUnavailable, "Sign-in is busy", "Too many sign-ins are in progress; try again shortly.")
		return
	}
	dest, err := c.saml.BuildAuthURLRedirect(relay, doc)
	if err != nil {
		s.pending.del(id)
		s.log.Error("saml: build redirect", "err", err)
		s.errorPage(w, c, http.StatusInternalServerError, "Sign-in could not start", "The sign-in request could not be built.")
		return
	}
	ck := &http.Cookie{Name: bindingCookie, Value: binding, MaxAge: int(pendingTTL.Seconds())}
	if secureRequest(c, r) {
		ck.SameSite = http.SameSiteNoneMode
	}
	s.setCookie(w, c, r, ck)
	http.Redirect(w, r, dest, http.StatusFound)
}

// localReturnTo accepts only a path on this server ("/x"), never a
// scheme-relative ("//evil", "/\evil") or absolute URL; anything else
// becomes the SP's home page.
func localReturnTo(raw, basePath string) string {
	home := basePath + "/"
	if raw == "" || raw[0] != '/' || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\\x00\r\n\t") {
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
