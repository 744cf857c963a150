package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec"
)

// Cookie names, before the console URL's port (see cookieNames). Both
// cookies are limited to Path, on the console's host.
const (
	sessionCookie = "idrecon_console"
	stateCookie   = "idrecon_console_state"
)

// cookieNames returns the names of the session and state cookies of the
// console at u. Browsers keep cookies per host, not per port: two
// daemons on one host with their consoles on two ports would share one
// cookie, each sign-in to one ending the browser's session with the other,
// each sign-out ending both. The port (the scheme's default when the URL
// has none) keeps them apart; on one host it names one console.
func cookieNames(u *url.URL) (session, state string) {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return sessionCookie + "_" + port, stateCookie + "_" + port
}

// Bounds of the sign-in state. Codes are minted only for users holding
// the console role and sessions only from codes, so no anonymous client
// fills either; and one user keeps at most maxPerUser of each, their
// oldest going first, so no user crowds out the others' either. A full
// table drops what expires soonest.
const (
	codeTTL  = time.Minute
	stateTTL = 10 * time.Minute
	// maxStates is how many pending sign-ins the state cookie holds:
	// several tabs opened at once each start one, and each must finish.
	maxStates   = 4
	maxCodes    = 1000
	maxSessions = 10000
	maxPerUser  = 16
)

// who is the user a code or session is for: the stored spelling of the
// userName, and the SCIM id. The id is what ends a session whose userName
// was given to another user (deleted and created again with it, a reused
// UPN): the name alone would let it carry on as that user.
type who struct{ name, id string }

// code is a minted, not yet used hand-off code.
type code struct {
	user    who
	saml    string   // the SAML session it was minted in
	state   [32]byte // hash of the state it is bound to
	expires time.Time
}

// session is a console session.
type session struct {
	user    who
	saml    string // the SAML session it came from (Config.SAMLSessionLive)
	expires time.Time
}

// settings is what the console reads of the spec on each request.
type settings struct {
	role     string // consoleRole
	baseURL  string // the SP's baseURL, without a trailing slash
	basePath string // its path, without a trailing slash
	lifetime time.Duration
}

// settings returns the console's settings, or ok false while the spec
// turns it off (no enabled SamlServiceProvider with a consoleRole).
func (s *Server) settings() (settings, bool) {
	res, err := s.cfg.Store.Read().Resources(spec.KindSamlServiceProvider)
	if err != nil {
		s.log.Error("console: read the SAML settings", "err", err)
		return settings{}, false
	}
	for _, r := range res {
		sp, ok := r.Spec.(*spec.SamlServiceProvider)
		if !ok || !sp.Enabled || sp.ConsoleRole == "" {
			continue
		}
		u, err := url.Parse(sp.BaseURL)
		if err != nil {
			continue
		}
		base := strings.TrimRight(sp.BaseURL, "/")
		return settings{role: sp.ConsoleRole, baseURL: base, basePath: strings.TrimRight(u.Path, "/"),
			lifetime: max(sp.SessionLifetime.D(), time.Minute)}, true
	}
	return settings{}, false
}

var errOff = &pageError{Status: http.StatusNotFound, Title: "The console is off",
	Text: "Name the role that may use it in the SamlServiceProvider's consoleRole (and enable the SamlServiceProvider)."}

// decide says whether userName may use the console now: provisioned,
// active, and holding role, from the current state, as the gateway decides.
// It returns the user (the stored spelling of the name, the id) and, when
// refused, why.
func (s *Server) decide(userName, role string) (who, error) {
	e, err := access.ForUser(s.cfg.Store.Read(), userName)
	switch {
	case errors.Is(err, access.ErrUnknownUser):
		return who{name: userName}, refused(userName, "is not provisioned (deleted in Entra?)")
	case err != nil:
		return who{name: userName}, err
	}
	u := who{name: e.UserName, id: e.UserID}
	switch {
	case !e.Active:
		return u, refused(e.UserName, "is disabled")
	case !slices.Contains(e.RoleNames(), role):
		return u, refused(e.UserName, "does not hold the role "+role+", which the console requires")
	}
	return u, nil
}

func refused(user, why string) *pageError {
	return &pageError{Status: http.StatusForbidden, Title: "No access to the console", Text: user + " " + why + "."}
}

// authorize returns the user of the request's console session, re-decided
// now. Without a session it starts the sign-in; a refused user gets the
// 403 page and loses the session. ok false means it answered.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) (string, bool) {
	set, on := s.settings()
	if !on {
		s.fail(w, r, "", errOff)
		return "", false
	}
	user, found := s.sessionOf(r)
	if !found {
		s.startSignIn(w, r, set)
		return "", false
	}
	now, err := s.decide(user.name, set.role)
	if now.id != "" && now.id != user.id {
		// The user the session was for is gone; whoever holds the name
		// now signs in as themselves.
		s.endSession(w, r)
		s.log.Info("console: session ended; its userName now belongs to another user", "user", user.name)
		s.startSignIn(w, r, set)
		return "", false
	}
	if err != nil {
		if _, ok := errors.AsType[*pageError](err); ok {
			s.endSession(w, r)
			s.log.Info("console: session ended; user no longer allowed", "user", now.name, "reason", err)
		}
		s.fail(w, r, "", err)
		return "", false
	}
	return now.name, true
}

// startSignIn sends the browser to the hand-off with a fresh state. A
// browser that reached the console by another name than its URL is sent to
// the URL first: the code comes back there, and the state cookie must too.
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, set settings) {
	if canonicalHost(s.url.Scheme, r.Host) != s.url.Host {
		http.Redirect(w, r, s.url.Scheme+"://"+s.url.Host+r.URL.RequestURI(), http.StatusSeeOther)
		return
	}
	state := random()
	pending := append(s.states(r), state)
	s.setStates(w, r, pending[max(0, len(pending)-maxStates):])
	http.Redirect(w, r, set.baseURL+HandoffPath+"?state="+state, http.StatusSeeOther)
}

// states returns the well-formed states of the browser's pending
// sign-ins, oldest first, from its state cookie.
func (s *Server) states(r *http.Request) []string {
	ck, err := r.Cookie(s.stateName)
	if err != nil {
		return nil
	}
	var out []string
	for v := range strings.SplitSeq(ck.Value, ".") {
		if wellFormed(v) {
			out = append(out, v)
		}
	}
	return out[max(0, len(out)-maxStates):]
}

// setStates sets the state cookie to states, or removes it when none is
// left.
func (s *Server) setStates(w http.ResponseWriter, r *http.Request, states []string) {
	ck := &http.Cookie{Name: s.stateName, Value: strings.Join(states, "."), Path: Path, MaxAge: int(stateTTL.Seconds()),
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteLaxMode}
	if len(states) == 0 {
		ck.Value, ck.MaxAge = "", -1
	}
	http.SetCookie(w, ck)
}

// Handoff serves HandoffPath below the SAML base path on the main
// listener: step 2 of the sign-in (see the package comment).
func (s *Server) Handoff() http.Handler {
	// The main listener is another origin: the pages here link to, and
	// take their style from, the console's URL (read per request: SetURL
	// may come after Handoff).
	return hardened(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		home := s.url.String()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		set, on := s.settings()
		if !on {
			s.failAt(w, r, "", home, errOff)
			return
		}
		state := r.URL.Query().Get("state")
		if !wellFormed(state) {
			s.failAt(w, r, "", home, &pageError{Status: http.StatusBadRequest, Title: "Sign-in link not valid",
				Text: "Open the console (" + s.cfg.URL + ") to sign in."})
			return
		}
		user, samlSession, signedIn := s.cfg.SAMLUser(r)
		if !signedIn {
			// The SP's sign-in comes back here, state and all.
			back := set.basePath + HandoffPath + "?state=" + state
			http.Redirect(w, r, set.basePath+spec.SAMLPath+"/login?returnTo="+url.QueryEscape(back), http.StatusSeeOther)
			return
		}
		u, err := s.decide(user, set.role)
		if err != nil {
			s.failAt(w, r, "", home, err)
			return
		}
		c := s.mint(u, samlSession, state)
		http.Redirect(w, r, s.url.JoinPath("auth").String()+"?code="+c, http.StatusSeeOther)
	}), func() string { return s.url.Scheme + "://" + s.url.Host })
}

// serveAuth is step 3: it exchanges a code for a console session.
func (s *Server) serveAuth(w http.ResponseWriter, r *http.Request) {
	set, on := s.settings()
	if !on {
		s.fail(w, r, "", errOff)
		return
	}
	again := &pageError{Status: http.StatusBadRequest, Title: "Sign-in link not valid",
		Text: "It was used already, has expired, or was opened in another browser. Open the console again to sign in."}
	// The code is used up even when the state is missing: whoever opened
	// it in the wrong browser made it worthless for everyone.
	pending := s.states(r)
	user, samlSession, i, ok := s.redeem(r.URL.Query().Get("code"), pending)
	if !ok {
		s.fail(w, r, "", again)
		return
	}
	u, err := s.decide(user.name, set.role)
	if err == nil && u.id != user.id {
		// The name went to another user during the hand-off.
		err = again
	}
	if err != nil {
		s.fail(w, r, "", err)
		return
	}
	id := random()
	s.mu.Lock()
	// The session the browser held until now, if any, ends: a sign-in
	// replaces it rather than leaving it valid beside the new one.
	if ck, err := r.Cookie(s.sessionName); err == nil {
		delete(s.sessions, sha256.Sum256([]byte(ck.Value)))
	}
	now := s.cfg.Now()
	expires := now.Add(set.lifetime)
	prune(s.sessions, maxSessions, now, func(e session) bool { return e.user == u }, func(e session) time.Time { return e.expires })
	s.sessions[sha256.Sum256([]byte(id))] = session{user: u, saml: samlSession, expires: expires}
	s.mu.Unlock()
	// The sign-ins other tabs started stay pending.
	s.setStates(w, r, slices.Delete(pending, i, i+1))
	http.SetCookie(w, &http.Cookie{Name: s.sessionName, Value: id, Path: Path, Expires: expires,
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
	s.log.Info("console: signed in", "user", u.name)
	// A page, not a redirect: the browser came here at the end of a chain of
	// redirects that began at the IdP, another site, and does not send a
	// SameSite=Strict cookie along such a chain. The page's own navigation
	// to the console is same-site.
	s.render(w, http.StatusOK, "signedin", view{Title: "Signed in", User: u.name, Now: now})
}

// serveSignOut ends the console session (the SAML session stays).
func (s *Server) serveSignOut(w http.ResponseWriter, r *http.Request) {
	s.endSession(w, r)
	s.render(w, http.StatusOK, "signedout", view{Title: "Signed out", Now: s.cfg.Now()})
}

func (s *Server) sessionOf(r *http.Request) (who, bool) {
	ck, err := r.Cookie(s.sessionName)
	if err != nil || !wellFormed(ck.Value) {
		return who{}, false
	}
	key := sha256.Sum256([]byte(ck.Value))
	s.mu.Lock()
	e, ok := s.sessions[key]
	s.mu.Unlock()
	if ok && (!s.cfg.Now().Before(e.expires) || (s.cfg.SAMLSessionLive != nil && !s.cfg.SAMLSessionLive(r.Context(), e.saml))) {
		// Expired, or the SAML session it came from ended (a sign-out
		// at the IdP ends the user's sessions, this one too).
		s.mu.Lock()
		delete(s.sessions, key)
		s.mu.Unlock()
		return who{}, false
	}
	return e.user, ok
}

func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if ck, err := r.Cookie(s.sessionName); err == nil {
		s.mu.Lock()
		delete(s.sessions, sha256.Sum256([]byte(ck.Value)))
		s.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: s.sessionName, Value: "", Path: Path, MaxAge: -1, HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode})
}

// secure says whether the console's cookies are Secure: when browsers
// reach it over https, which the console URL says (behind a TLS proxy the
// admin listener itself sees plain HTTP), or the request came over TLS.
// Else a browser lured to http:// on the same host would send them in clear.
func (s *Server) secure(r *http.Request) bool { return r.TLS != nil || s.url.Scheme == "https" }

// mint returns a new one-time code for user, signed in to the SAML session
// samlSession, bound to state.
func (s *Server) mint(user who, samlSession, state string) string {
	c := random()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	prune(s.codes, maxCodes, now, func(e code) bool { return e.user == user }, func(e code) time.Time { return e.expires })
	s.codes[sha256.Sum256([]byte(c))] = code{user: user, saml: samlSession, state: sha256.Sum256([]byte(state)), expires: now.Add(codeTTL)}
	return c
}

// redeem takes the code once: it is gone whatever the outcome, and valid
// only unexpired and with the state it was bound to, one of states (the
// browser's pending sign-ins); i is that state's index, samlSession the
// SAML session it was minted in.
func (s *Server) redeem(c string, states []string) (user who, samlSession string, i int, ok bool) {
	if !wellFormed(c) {
		return who{}, "", 0, false
	}
	key := sha256.Sum256([]byte(c))
	s.mu.Lock()
	e, found := s.codes[key]
	delete(s.codes, key)
	s.mu.Unlock()
	if !found || !s.cfg.Now().Before(e.expires) {
		return who{}, "", 0, false
	}
	i = -1
	for j, state := range states {
		st := sha256.Sum256([]byte(state))
		if subtle.ConstantTimeCompare(st[:], e.state[:]) == 1 {
			i = j
		}
	}
	if i < 0 {
		return who{}, "", 0, false
	}
	return e.user, e.saml, i, true
}

// prune makes room in m for one more entry of the user that mine
// matches: it drops expired entries, then, while that user holds
// maxPerUser, their entry that expires soonest, and, while m is full, the
// entry that expires soonest; s.mu is held.
func prune[V any](m map[[32]byte]V, limit int, now time.Time, mine func(V) bool, expires func(V) time.Time) {
	held := 0
	for k, v := range m {
		switch {
		case !now.Before(expires(v)):
			delete(m, k)
		case mine(v):
			held++
		}
	}
	dropFirst := func(match func(V) bool) {
		var first [32]byte
		var at time.Time
		for k, v := range m {
			if match(v) && (at.IsZero() || expires(v).Before(at)) {
				first, at = k, expires(v)
			}
		}
		delete(m, first)
	}
	for ; held >= maxPerUser; held-- {
		dropFirst(mine)
	}
	for len(m) >= limit {
		dropFirst(func(V) bool { return true })
	}
}

// random returns 32 random bytes, base64url-encoded (43 characters).
func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// wellFormed reports whether v looks like a value random made.
func wellFormed(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}
