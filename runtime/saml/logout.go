package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec/samlmeta"
)

// maxInflated bounds a decompressed HTTP-Redirect message; logout messages
// are a few hundred bytes.
const maxInflated = 64 << 10

// logoutRequestLifetime is how long after its IssueInstant an IdP
// LogoutRequest is obeyed (a NotOnOrAfter may make it shorter, never
// longer; the clock skew is allowed on top, as for assertions). The IdP
// sends it through the browser at once. Its ID is kept in the replay cache
// for as long, so a captured request signs its user out once.
const logoutRequestLifetime = 5 * time.Minute

// The status of a LogoutResponse that could not end every session of the
// user named (SAML core §3.7.3.2): the SP failed, and the logout is partial.
const (
	statusResponder     = "urn:oasis:names:tc:SAML:2.0:status:Responder"
	statusPartialLogout = "urn:oasis:names:tc:SAML:2.0:status:PartialLogout"
)

var redirectAlgs = map[string]struct {
	x509 x509.SignatureAlgorithm
	sha1 bool
}{
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":   {x509: x509.SHA256WithRSA},
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":   {x509: x509.SHA384WithRSA},
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":   {x509: x509.SHA512WithRSA},
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": {x509: x509.ECDSAWithSHA256},
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": {x509: x509.ECDSAWithSHA384},
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": {x509: x509.ECDSAWithSHA512},
	"http://www.w3.org/2000/09/xmldsig#rsa-sha1":          {x509: x509.SHA1WithRSA, sha1: true},
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1":   {x509: x509.ECDSAWithSHA1, sha1: true},
}

// verifyRedirectSignature checks the HTTP-Redirect binding signature: over
// the raw, still URL-encoded "param=…&RelayState=…&SigAlg=…" exactly as
// sent, by one of the trusted IdP certificates valid at now.
func verifyRedirectSignature(rawQuery, param string, certs []*x509.Certificate, allowSHA1 bool, now time.Time, skew time.Duration) error {
	raw := map[string]string{}
	for _, kv := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(kv, "=")
		// The caller reads the message through url.Query(), which decodes
		// names: a "SAML%52equest=forged" ahead of a genuinely signed
		// "SAMLRequest=…" would be the value acted on while this check
		// verified the other. Only the literal names are accepted.
		if uk, err := url.QueryUnescape(k); err == nil && uk != k {
			switch uk {
			case param, "RelayState", "SigAlg", "Signature":
				return fmt.Errorf("parameter name %s is encoded", uk)
			}
		}
		switch k {
		case param, "RelayState", "SigAlg", "Signature":
			if _, dup := raw[k]; dup {
				return fmt.Errorf("parameter %s repeated", k)
			}
			raw[k] = v
		}
	}
	if raw["Signature"] == "" || raw["SigAlg"] == "" {
		return errors.New("message is not signed")
	}
	alg, err := url.QueryUnescape(raw["SigAlg"])
	if err != nil {
		return fmt.Errorf("SigAlg: %w", err)
	}
	a, ok := redirectAlgs[alg]
	if !ok || (a.sha1 && !allowSHA1) {
		return fmt.Errorf("signature algorithm %q not allowed", alg)
	}
	sigText, err := url.QueryUnescape(raw["Signature"])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	signed := param + "=" + raw[param]
	if rs, ok := raw["RelayState"]; ok {
		signed += "&RelayState=" + rs
	}
	signed += "&SigAlg=" + raw["SigAlg"]
	for _, c := range certs {
		if now.Add(skew).Before(c.NotBefore) || now.Add(-skew).After(c.NotAfter) {
			continue
		}
		if c.CheckSignature(a.x509, []byte(signed), sig) == nil {
			return nil
		}
	}
	return errors.New("signature does not verify against the configured IdP signing certificates")
}

// inflate decodes an HTTP-Redirect binding value, refusing output beyond
// maxInflated (a deflate bomb fails after 64 KiB of work).
func inflate(v string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxInflated+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if len(b) > maxInflated {
		return nil, fmt.Errorf("inflates beyond %d bytes", maxInflated)
	}
	return b, nil
}

// deflaters are reused: a flate writer allocates far more than the message
// it compresses (gosaml2's BuildAuthURLRedirect makes one per call), and
// /saml/login is open to anyone.
var deflaters = sync.Pool{New: func() any {
	w, _ := flate.NewWriter(nil, flate.DefaultCompression) // a valid level: cannot fail
	return w
}}

// redirectURL encodes doc for the HTTP-Redirect binding (SAML bindings
// §3.4.4.1) and, when sign is set, signs the query with the SP signing key.
func redirectURL(c *config, dest, param string, doc *etree.Document, relay string, sign bool) (string, error) {
	xmlBytes, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw := deflaters.Get().(*flate.Writer)
	defer deflaters.Put(fw)
	fw.Reset(&buf)
	if _, err := fw.Write(xmlBytes); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	if sign && c.spSign != nil {
		alg := "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
		if _, ok := c.spSign.PrivateKey.Public().(*ecdsa.PublicKey); ok {
			alg = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
		}
		q += "&SigAlg=" + url.QueryEscape(alg)
		h := crypto.SHA256.New()
		h.Write([]byte(q))
		sig, err := c.spSign.PrivateKey.Sign(rand.Reader, h.Sum(nil), crypto.SHA256)
		if err != nil {
			return "", fmt.Errorf("sign redirect: %w", err)
		}
		q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	sep := "?"
	if strings.Contains(dest, "?") {
		sep = "&"
	}
	return dest + sep + q, nil
}

// serveLogout ends the local session and, when the IdP has an SLO endpoint,
// sends the browser there with a LogoutRequest.
//
// The local session ends at once, not when the IdP answers: a user who
// signs out must be signed out here even if the IdP never sends the
// browser back. Only the SP's own pages may ask: another site could
// otherwise sign users out at will (the session cookie's SameSite=Lax
// already keeps it off cross-site POSTs in current browsers; this does not
// depend on it). A request with neither Sec-Fetch-Site nor Origin is let
// through: every browser sends one of them on a cross-origin POST, so such
// a request is not one a foreign page made a browser send.
func (s *Server) serveLogout(c *config, w http.ResponseWriter, r *http.Request) {
	if err := c.csrf.Check(r); err != nil {
		// Clipped: the headers are the client's, up to the listener's
		// header bound, and every refusal is logged.
		s.log.Warn("saml: cross-site sign-out refused", "origin", fmt.Sprintf("%.200q", r.Header.Get("Origin")),
			"secFetchSite", fmt.Sprintf("%.40q", r.Header.Get("Sec-Fetch-Site")))
		s.errorPage(w, c, http.StatusForbidden, "Sign-out refused", "The sign-out request did not come from this site. Use the Sign out button here.")
		return
	}
	id, se, ok := s.sessionOf(r)
	s.clearSession(w, c, r, id)
	if !ok || c.idp.SLOURL == "" {
		s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
		return
	}
	s.log.Info("saml: signed out", "user", se.UserName)
	doc, err := c.requests.BuildLogoutRequestDocumentNoSig(se.NameID, se.SessionIndex)
	if err == nil {
		tidyLogoutRequest(doc)
		var dest string
		if dest, err = redirectURL(c, c.idp.SLOURL, "SAMLRequest", doc, "", true); err == nil {
			reqID := doc.Root().SelectAttrValue("ID", "")
			s.setCookie(w, c, r, &http.Cookie{Name: c.cookies.logout, Value: reqID, MaxAge: int(pendingTTL.Seconds()), SameSite: http.SameSiteLaxMode})
			http.Redirect(w, r, dest, http.StatusSeeOther)
			return
		}
	}
	s.log.Error("saml: build LogoutRequest", "err", err)
	s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
}

// tidyLogoutRequest drops the empty SessionIndex gosaml2 writes into a
// LogoutRequest for a session the IdP named none for: it names no session.
func tidyLogoutRequest(doc *etree.Document) {
	for _, el := range doc.Root().ChildElements() {
		if el.Tag == "SessionIndex" && el.Text() == "" {
			doc.Root().RemoveChild(el)
		}
	}
}

type logoutRequest struct {
	XMLName      xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:protocol LogoutRequest"`
	ID           string   `xml:"ID,attr"`
	Version      string   `xml:"Version,attr"`
	IssueInstant string   `xml:"IssueInstant,attr"`
	NotOnOrAfter string   `xml:"NotOnOrAfter,attr"`
	Destination  string   `xml:"Destination,attr"`
	Issuer       string   `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	NameID       string   `xml:"urn:oasis:names:tc:SAML:2.0:assertion NameID"`
}

type logoutResponseMsg struct {
	XMLName      xml.Name `xml:"urn:oasis:names:tc:SAML:2.0:protocol LogoutResponse"`
	ID           string   `xml:"ID,attr"`
	Version      string   `xml:"Version,attr"`
	Destination  string   `xml:"Destination,attr"`
	InResponseTo string   `xml:"InResponseTo,attr"`
	Issuer       string   `xml:"urn:oasis:names:tc:SAML:2.0:assertion Issuer"`
	Status       struct {
		Code struct {
			Value string `xml:"Value,attr"`
		} `xml:"urn:oasis:names:tc:SAML:2.0:protocol StatusCode"`
	} `xml:"urn:oasis:names:tc:SAML:2.0:protocol Status"`
}

// serveSLO takes the IdP's HTTP-Redirect logout messages. A LogoutRequest
// ends the named user's sessions, and a LogoutResponse the browser's own,
// only when the IdP's redirect signature verifies and the message is for
// this SP (and a LogoutResponse answers this browser's LogoutRequest; a
// LogoutRequest is fresh and seen for the first time).
func (s *Server) serveSLO(c *config, w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("SAMLResponse") {
		s.serveLogoutResponse(c, w, r)
		return
	}
	if !q.Has("SAMLRequest") {
		s.errorPage(w, c, http.StatusBadRequest, "Bad request", "No SAML logout message.")
		return
	}
	req, err := s.checkLogoutRequest(r.Context(), c, r.URL.RawQuery, q.Get("SAMLRequest"), s.now())
	var re *ResponseError
	switch {
	case errors.As(err, &re):
		s.logoutRejected(w, c, "Logout rejected", "The logout request was rejected", err)
		return
	case err != nil:
		// The replay cache could not say whether the request is new (etcd
		// unavailable): not obeyed, as an assertion would not be.
		s.log.Error("saml: idp-initiated logout: replay check", "err", err)
		s.errorPage(w, c, http.StatusServiceUnavailable, "Logout failed", "The logout request could not be checked; try again.")
		return
	}
	recErr := s.rememberLogout(r.Context(), req, c.skew)
	if recErr != nil {
		// Sessions end below all the same; an assertion issued before
		// the logout may still sign the user in (on another daemon), so
		// the IdP is told the logout is partial.
		s.log.Error("saml: idp-initiated logout: record the logout", "err", recErr)
	}
	id, se, own := s.sessionOf(r)
	// Every session of the NameID ends, whatever SessionIndex elements the
	// request names (SAML core §3.7.3.2 requires the named ones to end).
	// Matching on the index would leave a session signed in whenever Entra
	// names it otherwise than the assertion did, or a session was stored
	// without one, while Entra is told the user is signed out; ending the
	// user's other sessions here too only ever reaches that user.
	n, delErr := s.sessions.DeleteNameID(r.Context(), req.NameID)
	if delErr != nil {
		s.log.Error("saml: idp-initiated logout", "err", delErr)
	}
	// The browser's own session ends (its cookie too, and the session
	// again should DeleteNameID have failed) only if it is the named
	// user's: whoever signs out at Entra gets the signed request in their
	// browser and could lead another browser to it, ending that browser's
	// session too.
	if own && strings.EqualFold(se.NameID, req.NameID) {
		s.clearSession(w, c, r, id)
	}
	s.obs("logout")
	s.log.Info("saml: idp-initiated logout", "nameID", req.NameID, "sessions", n)
	if c.idp.SLOURL == "" {
		s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
		return
	}
	// The IdP is told the logout is partial when the user's sessions may
	// live on elsewhere, rather than reporting the user signed out.
	doc := logoutResponse(c, req.ID, s.now(), delErr == nil && recErr == nil)
	dest, err := redirectURL(c, c.idp.SLOURL, "SAMLResponse", doc, q.Get("RelayState"), true)
	if err != nil {
		s.log.Error("saml: build LogoutResponse", "err", err)
		s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
		return
	}
	http.Redirect(w, r, dest, http.StatusFound)
}

// rememberLogout records the instant of req, an accepted LogoutRequest,
// for its NameID (see logoutMemory).
func (s *Server) rememberLogout(ctx context.Context, req *logoutRequest, skew time.Duration) error {
	at, err := time.Parse(time.RFC3339, req.IssueInstant) // checkLogoutRequest parsed it
	if err != nil {
		return err
	}
	return s.logouts.RecordLogout(ctx, store.Fold(req.NameID), at, s.now().Add(logoutMemory+skew))
}

// serveLogoutResponse takes the IdP's answer to serveLogout's
// LogoutRequest. The local session ended already; a verified answer also
// ends any session the browser has gained since, and closes the logout.
func (s *Server) serveLogoutResponse(c *config, w http.ResponseWriter, r *http.Request) {
	pending := ""
	if ck, err := r.Cookie(c.cookies.logout); err == nil {
		pending = ck.Value
	}
	if err := s.checkLogoutResponse(c, r.URL.RawQuery, r.URL.Query().Get("SAMLResponse"), pending); err != nil {
		s.logoutRejected(w, c, "Sign-out not confirmed", "The identity provider's sign-out answer was rejected and changed nothing", err)
		return
	}
	id, _, _ := s.sessionOf(r)
	s.clearSession(w, c, r, id)
	s.setCookie(w, c, r, &http.Cookie{Name: c.cookies.logout, Value: "", MaxAge: -1, SameSite: http.SameSiteLaxMode})
	s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
}

// logoutRejected reports a rejected IdP logout message: its code to the
// Observer and the page, the detail to the log only.
func (s *Server) logoutRejected(w http.ResponseWriter, c *config, title, text string, err error) {
	var re *ResponseError
	if !errors.As(err, &re) {
		re = &ResponseError{Code: CodeLogoutMalformed, Err: err}
	}
	s.obs(re.Code)
	s.log.Warn("saml: idp logout message rejected", "code", re.Code, "err", re.Err)
	status := http.StatusForbidden
	if re.Code == CodeTooManySignIns {
		status = s.tooManyStatus(w, re)
	}
	s.errorPage(w, c, status, title, text+" ("+re.Code+").")
}

// readLogoutMessage verifies the IdP's redirect signature over param's
// message in rawQuery, then decodes value into v.
func (s *Server) readLogoutMessage(c *config, rawQuery, param, value string, v any) error {
	if err := verifyRedirectSignature(rawQuery, param, c.idpCerts, c.sp.AllowSHA1, s.now(), c.skew); err != nil {
		return reject(CodeLogoutSignature, "%v", err)
	}
	b, err := inflate(value)
	if err != nil {
		return reject(CodeLogoutMalformed, "%v", err)
	}
	if err := samlmeta.Prescan(b, c.sp.AllowSHA1); err != nil {
		return reject(CodeLogoutMalformed, "%v", err)
	}
	if err := xml.Unmarshal(b, v); err != nil {
		return reject(CodeLogoutMalformed, "parse %s: %v", param, err)
	}
	return nil
}

// checkLogoutEnvelope checks what IdP logout requests and responses share:
// the IdP's issuer, an ID, SAML 2.0, and this SP's SLO URL as Destination.
//
// A LogoutRequest's Destination is required, not only checked when
// present: the bindings make it mandatory on a signed message, and every
// logout message taken here is signed. The redirect signature covers the
// message, not the URL it was sent to, and Entra signs for every
// application of a tenant under one issuer: without Destination, a
// message signed for another SP sharing the signing certificate would be
// obeyed here.
//
// A LogoutResponse may come without one (optional is true): it is taken
// only as the answer to the LogoutRequest this browser's sealed cookie
// names, which a response meant for another SP cannot be, and Microsoft's
// documented LogoutResponse carries none.
func checkLogoutEnvelope(c *config, issuer, id, version, destination string, optional bool) error {
	issuer = strings.TrimSpace(issuer)
	switch {
	case !slices.Contains(c.logoutIssuers, issuer):
		return reject(CodeIssuer, "logout issuer %q is not the IdP", issuer)
	case id == "" || version != "2.0":
		return reject(CodeLogoutMalformed, "logout message needs an ID and Version 2.0")
	case destination == "" && optional:
	case destination == "":
		return reject(CodeDestination, "logout message has no Destination (required on a signed message)")
	case destination != c.sloURL:
		return reject(CodeDestination, "logout Destination %q is not %q", destination, c.sloURL)
	}
	return nil
}

// checkLogoutRequest accepts the IdP's signed LogoutRequest for this SP
// while it is fresh (see logoutRequestLifetime), once: its ID is recorded
// in the replay cache assertions use, so a replay is refused on every
// daemon sharing it. An error that is no *ResponseError is the replay
// cache's: whether the request is new is unknown.
func (s *Server) checkLogoutRequest(ctx context.Context, c *config, rawQuery, value string, now time.Time) (*logoutRequest, error) {
	var req logoutRequest
	if err := s.readLogoutMessage(c, rawQuery, "SAMLRequest", value, &req); err != nil {
		return nil, err
	}
	if err := checkLogoutEnvelope(c, req.Issuer, req.ID, req.Version, req.Destination, false); err != nil {
		return nil, err
	}
	req.NameID = strings.TrimSpace(req.NameID)
	if req.NameID == "" {
		return nil, reject(CodeLogoutMalformed, "LogoutRequest names no user")
	}
	issued, err := time.Parse(time.RFC3339, req.IssueInstant)
	if err != nil {
		return nil, reject(CodeLogoutMalformed, "LogoutRequest IssueInstant %q: %v", req.IssueInstant, err)
	}
	until := issued.Add(logoutRequestLifetime)
	if req.NotOnOrAfter != "" {
		t, err := time.Parse(time.RFC3339, req.NotOnOrAfter)
		if err != nil {
			return nil, reject(CodeLogoutMalformed, "LogoutRequest NotOnOrAfter %q: %v", req.NotOnOrAfter, err)
		}
		if t.Before(until) { // never later than its own lifetime
			until = t
		}
	}
	if err := checkWindow("LogoutRequest "+req.ID, issued, until, now, c.skew); err != nil {
		return nil, err
	}
	first, err := s.replay.FirstUse(ctx, logoutRequestReplayUser(req.NameID), logoutRequestReplayKey(strings.TrimSpace(req.Issuer), req.ID), staleAt(until, c.skew))
	if err != nil {
		return nil, replayErr(err, "LogoutRequest "+req.ID, req.NameID)
	}
	if !first {
		return nil, reject(CodeReplay, "LogoutRequest %s was already used", req.ID)
	}
	return &req, nil
}

// checkLogoutResponse accepts a LogoutResponse only as the IdP's successful
// answer to pending, the ID of the LogoutRequest this browser carried.
func (s *Server) checkLogoutResponse(c *config, rawQuery, value, pending string) error {
	var resp logoutResponseMsg
	if err := s.readLogoutMessage(c, rawQuery, "SAMLResponse", value, &resp); err != nil {
		return err
	}
	if err := checkLogoutEnvelope(c, resp.Issuer, resp.ID, resp.Version, resp.Destination, true); err != nil {
		return err
	}
	if pending == "" || resp.InResponseTo != pending {
		return reject(CodeInResponseTo, "LogoutResponse answers %q, not this browser's LogoutRequest", resp.InResponseTo)
	}
	if resp.Status.Code.Value != statusSuccess {
		return reject(CodeStatus, "LogoutResponse status %q", resp.Status.Code.Value)
	}
	return nil
}

// logoutResponse answers the IdP's LogoutRequest inResponseTo: Success
// when ended, otherwise Responder with PartialLogout.
func logoutResponse(c *config, inResponseTo string, now time.Time, ended bool) *etree.Document {
	r := etree.NewElement("samlp:LogoutResponse")
	r.CreateAttr("xmlns:samlp", nsProtocol)
	r.CreateAttr("xmlns:saml", nsAssertion)
	r.CreateAttr("ID", "_"+randomToken())
	r.CreateAttr("Version", "2.0")
	r.CreateAttr("IssueInstant", now.UTC().Format(time.RFC3339))
	r.CreateAttr("Destination", c.idp.SLOURL)
	r.CreateAttr("InResponseTo", inResponseTo)
	r.CreateElement("saml:Issuer").SetText(c.sp.EntityID)
	code := r.CreateElement("samlp:Status").CreateElement("samlp:StatusCode")
	if ended {
		code.CreateAttr("Value", statusSuccess)
	} else {
		code.CreateAttr("Value", statusResponder)
		code.CreateElement("samlp:StatusCode").CreateAttr("Value", statusPartialLogout)
	}
	doc := etree.NewDocument()
	doc.SetRoot(r)
	return doc
}
