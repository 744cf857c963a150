package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// Bounds on state. A full table drops the entry that expires soonest rather
// than refuse a sign-in; the replay cache alone refuses, since what it
// drops could be presented again: a user's own sign-ins past
// MaxSignInsPerUser, and, once it overflowed, messages expiring no later
// than one it dropped (see maxReplay).
const (
	pendingTTL = 10 * time.Minute
	// maxSessionsPerUser is how many browsers one user may be signed in
	// from; a new sign-in past it ends that user's oldest session.
	maxSessionsPerUser = MaxSessionsPerUser
	maxSessions        = 100000
	// maxReplay bounds each table of the replay cache (assertions, IdP
	// LogoutRequests), whose entries last as long as the message they
	// record could be presented; only messages whose signature verified
	// are recorded. A message expiring no later than one dropped for room
	// is refused as a possible replay (see ttlMap.refuseDropped).
	maxReplay      = 200000
	maxBody        = 512 << 10 // form POST to the ACS
	maxResponseXML = 1 << 20   // decoded SAMLResponse
)

// An IdP LogoutRequest applies to the assertions for its user issued
// before it, even those arriving after it (SAML core §3.7.3.2). Each
// user's latest logout instant is kept for logoutMemory, longer than Entra
// lets a SAML token live, in Options.Logouts: by default in this process,
// for at most maxLoggedOut users.
const (
	logoutMemory = 24 * time.Hour
	maxLoggedOut = 100000
)

// MaxSessionsPerUser is how many sessions one user keeps in a
// SessionStore: a new one past it ends that user's soonest-expiring. The
// users are told apart by store.Fold of their UserName.
const MaxSessionsPerUser = 16

// MaxSignInsPerUser is how many unexpired records one user may hold in a
// ReplayCache: the assertions that signed the user in, each kept until it
// could no longer be presented (and, apart from them, the IdP's
// LogoutRequests naming the user). Every record is an assertion the IdP
// signed, but anyone entitled to sign in can have it sign one after
// another (a script replaying the IdP round trip), and in etcd nothing
// else bounds them: without this, one user fills the cluster up to its
// space quota, where every write of every daemon fails. Past it the user's
// own sign-in is refused until their soonest record lapses, rather than a
// record dropped, which would let a captured assertion be replayed. It is
// far above what a person signs in within an assertion's lifetime, on any
// number of browsers and devices, or a monitoring probe signing in on a
// schedule; only a loop reaches it. Users are told apart as for
// MaxSessionsPerUser.
const MaxSignInsPerUser = 256

// Cookie names, before the baseURL's port (see cookieNamesOf).
const (
	sessionCookie = "idrecon_session"
	pendingCookie = "idrecon_saml_pending"
	// logoutCookie carries the ID of the LogoutRequest this browser was
	// sent to the IdP with, so only the IdP's answer to it is taken. Lax:
	// the answer comes back as a top-level GET navigation from the IdP.
	logoutCookie = "idrecon_saml_logout"
)

// cookieNames are the names of one SP's cookies.
type cookieNames struct{ session, pending, logout string }

// cookieNamesOf returns the names of the cookies of the SP at base.
// Browsers keep cookies per host, not per port: two daemons on one host on
// two ports would share each cookie, a sign-in to one ending the browser's
// session with the other, a sign-in or sign-out started on one losing the
// other's pending one. A port other than the scheme's own is added to the
// names, which keeps them apart. Upgrading a daemon on such a port signs
// its users out once: the cookies it set are no longer read.
func cookieNamesOf(base *url.URL) cookieNames {
	port := base.Port()
	if port == "" || port == map[string]string{"http": "80", "https": "443"}[base.Scheme] {
		// The names a daemon on the scheme's own port always had: an
		// upgrade signs no one out there, and a proxy set up to strip
		// idrecon_session before the application (the README's nginx
		// recipe) still strips it. Two daemons on one host can only
		// both use the default port on different schemes.
		return cookieNames{session: sessionCookie, pending: pendingCookie, logout: logoutCookie}
	}
	return cookieNames{session: sessionCookie + "_" + port, pending: pendingCookie + "_" + port, logout: logoutCookie + "_" + port}
}

// Options configure a Server. Every field is optional.
type Options struct {
	Logger *slog.Logger
	// Sessions and Replay keep the signed-in sessions and the consumed
	// assertions (default: in this process, bounded).
	Sessions SessionStore
	Replay   ReplayCache
	// Logouts keeps the IdP's logouts (default: in this process, bounded);
	// daemons that share Sessions share it too.
	Logouts LogoutLog
	// PendingKey (32 bytes) seals the pending sign-in cookie when the SP has
	// no signing key to derive one from. Daemons that share it open each
	// other's cookies; default: random, so a sign-in ends where it started.
	PendingKey []byte
	// UntaggedSessionsUntil is until when a session cookie minted before
	// cookies carried a tag (see sessionIDs) is still read from Sessions:
	// the latest expiry of the sessions such daemons stored (samletcd's
	// UntaggedSessionsUntil). Zero: never, as in a store that starts empty.
	UntaggedSessionsUntil time.Time
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Authorizer decides sign-ins; required (AccessAuthorizer in the
	// daemon).
	Authorizer Authorizer
	// Observer is told the outcome of every ACS post and IdP logout
	// message, for metrics: "success", "denied" (a valid response for a user
	// the Authorizer refuses), "logout" (an IdP LogoutRequest obeyed), or a
	// rejection Code.
	Observer func(result string)
}

// Server is the SAML 2.0 service provider. It reads its configuration from
// the store at request time and serves, under the path of the configured
// baseURL: /saml/metadata, /saml/login, /saml/acs, /saml/logout, /saml/slo,
// and the signed-in page at / and /me.
type Server struct {
	st    *store.Store
	log   *slog.Logger
	now   func() time.Time
	authz Authorizer
	obs   func(string)
	// metadataRoots verify the TLS certificate of idp.metadataURL's host
	// (nil: the system roots); tests set it to trust their own servers.
	metadataRoots *x509.CertPool

	// resolved is the SamlServiceProvider and what it names, kept until a
	// resource changes; see resolve.
	resolved atomic.Pointer[resolvedKey]

	mu        sync.Mutex
	cur       *config
	refreshAt time.Time // next metadataURL refresh of cur
	degraded  string    // why cur is serving stale metadata, or ""
	failKey   []*store.Resource
	failErr   error
	failUntil time.Time

	replay ReplayCache
	// replayFrom, when the replay cache is this process's own (it starts
	// empty at every start), is when it started: assertions issued before
	// are refused as possible replays (see consume). Zero for a shared
	// cache (etcd), which outlives the process.
	replayFrom time.Time
	sessions   SessionStore
	// pendingKey seals pending sign-in cookies when there is no SP signing
	// key to derive a key from (see pendingKey).
	pendingKey []byte
	// sessionIDs mints the session cookies, keyed from PendingKey, which
	// daemons on one session store share.
	sessionIDs    sessionIDs
	untaggedUntil time.Time
	// logouts is when the IdP's latest LogoutRequest for a NameID
	// (store.Fold) was issued, by its clock; see logoutMemory.
	logouts LogoutLog
}

// NewServer returns a Server on st. Nothing is initialised until the first
// request or Ready call.
func NewServer(st *store.Store, opts Options) *Server {
	s := &Server{
		st:       st,
		log:      opts.Logger,
		now:      opts.Now,
		authz:    opts.Authorizer,
		obs:      opts.Observer,
		replay:   opts.Replay,
		sessions: opts.Sessions,
		logouts:  opts.Logouts,
	}
	s.pendingKey = opts.PendingKey
	if len(s.pendingKey) != 32 {
		s.pendingKey = make([]byte, 32)
		rand.Read(s.pendingKey)
	}
	s.sessionIDs = newSessionIDs(s.pendingKey)
	s.untaggedUntil = opts.UntaggedSessionsUntil
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.sessions == nil {
		s.sessions = newMemSessions(s.now)
	}
	if s.replay == nil {
		s.replay = newMemReplay(s.now)
		s.replayFrom = s.now()
	}
	if s.logouts == nil {
		s.logouts = newMemLogouts(s.now)
	}
	if s.authz == nil {
		panic("saml: Options.Authorizer is required")
	}
	if s.obs == nil {
		s.obs = func(string) {}
	}
	return s
}

// Ready reports whether SAML sign-in is initialised, and why not. A
// configuration serving the last good IdP metadata after a failed refresh is
// ready, with the refresh failure as the reason.
func (s *Server) Ready() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), metadataFetchTimeout+time.Second)
	defer cancel()
	c, err := s.current(ctx)
	if err != nil {
		return false, err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	why := "initialised; idp " + c.idp.EntityID
	if s.degraded != "" {
		why = s.degraded
	}
	if len(c.untrusted) > 0 {
		// A rollover under way: sign-in stops once Entra activates it.
		why += "; the idp metadata announces a signing certificate not in the keystore, not trusted until it is added: " + strings.Join(c.untrusted, ", ")
	}
	return true, why
}

// current returns the initialisation for the configuration in the store,
// building it when the configuration changed and refreshing metadataURL
// when due.
//
// A configuration change that fails to initialise takes sign-in out of
// service rather than falling back to the previous one: the change may have
// withdrawn a trust anchor. Only a failed refresh of unchanged
// configuration (the IdP's metadata URL is down, or now serves something
// that does not verify) keeps the last good initialisation.
func (s *Server) current(ctx context.Context) (*config, error) {
	sp, key, err := s.resolve()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.cur, s.degraded = nil, ""
		return nil, err
	}
	now := s.now()
	if s.cur != nil && sameKey(s.cur.key, key) {
		cur := s.cur
		if sp.IDP.MetadataURL == "" || now.Before(s.refreshAt) {
			return cur, nil
		}
		// One request refreshes, outside the lock, so a slow IdP delays only
		// that request; the others go on with the current metadata.
		s.refreshAt = now.Add(metadataFetchTimeout + metadataRetry)
		s.mu.Unlock()
		raw, ferr := s.fetchMetadata(context.WithoutCancel(ctx), sp.IDP)
		s.mu.Lock()
		if s.cur != cur {
			return cur, nil // the configuration changed meanwhile
		}
		s.refresh(sp, key, raw, ferr, now)
		return s.cur, nil
	}
	if s.failErr != nil && sameKey(s.failKey, key) && now.Before(s.failUntil) {
		return nil, s.failErr
	}
	// Whoever asks first (any anonymous client) fetches for everyone, and a
	// failure is kept for metadataRetry: a client that hangs up must not
	// fail the fetch. fetchMetadata has its own deadline.
	c, err := s.initialise(context.WithoutCancel(ctx), sp, key, now)
	if err != nil {
		s.cur, s.degraded = nil, ""
		s.failKey, s.failErr, s.failUntil = key, err, now.Add(metadataRetry)
		s.log.Error("saml: initialisation failed", "err", err)
		return nil, err
	}
	s.cur, s.degraded, s.failErr = c, "", nil
	s.refreshAt = now.Add(refreshInterval(sp))
	// Sessions and pending logins survive a configuration change; they are
	// re-checked on use.
	s.log.Info("saml: initialised", "idp", c.idp.EntityID, "entityID", sp.EntityID, "signedMetadata", c.idp.Signed)
	return c, nil
}

func refreshInterval(sp *spec.SamlServiceProvider) time.Duration {
	if d := sp.IDP.MetadataRefresh.D(); d > 0 {
		return d
	}
	return defaultMetadataRefresh
}

func (s *Server) initialise(ctx context.Context, sp *spec.SamlServiceProvider, key []*store.Resource, now time.Time) (*config, error) {
	raw, fetched := sp.IDP.MetadataXML, time.Time{}
	if len(raw) == 0 {
		if sp.IDP.MetadataURL == "" {
			return nil, fmt.Errorf("%w: neither metadataFile nor metadataURL given", ErrMetadata)
		}
		b, err := s.fetchMetadata(ctx, sp.IDP)
		if err != nil {
			return nil, err
		}
		raw, fetched = b, now
	}
	return s.build(sp, key, raw, fetched)
}

// refresh applies a re-fetch of metadataURL (raw, or the fetch error err);
// s.mu is held.
func (s *Server) refresh(sp *spec.SamlServiceProvider, key []*store.Resource, raw []byte, err error, now time.Time) {
	if err == nil && bytes.Equal(raw, s.cur.metadataRaw) {
		s.refreshAt, s.degraded = now.Add(refreshInterval(sp)), ""
		return
	}
	var c *config
	if err == nil {
		c, err = s.build(sp, key, raw, now)
	}
	if err != nil {
		s.refreshAt = now.Add(metadataRetry)
		s.degraded = "serving the last good IdP metadata; refresh failed: " + err.Error()
		s.log.Warn("saml: idp metadata refresh failed; keeping the last good metadata", "err", err)
		return
	}
	s.cur, s.degraded, s.refreshAt = c, "", now.Add(refreshInterval(sp))
	s.log.Info("saml: idp metadata refreshed", "idp", c.idp.EntityID)
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	c, err := s.current(r.Context())
	if err != nil {
		s.unavailable(w)
		return
	}
	p := r.URL.Path
	if c.basePath != "" {
		rest, ok := strings.CutPrefix(p, c.basePath)
		if !ok || (rest != "" && rest[0] != '/') {
			http.NotFound(w, r)
			return
		}
		if rest == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			// The cookies' path ends in a slash, so a browser sends none
			// of them here: the home page would find no session after
			// every sign-in and start another.
			target := c.basePath + "/"
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusFound)
			return
		}
		p = rest
	}
	if p == "" {
		p = "/"
	}
	method, h := http.MethodGet, s.serveHome
	switch p {
	case "/", "/me":
	case "/saml/metadata":
		h = s.serveMetadata
	case "/saml/login":
		h = s.serveLogin
	case "/saml/slo":
		h = s.serveSLO
	case "/saml/acs":
		method, h = http.MethodPost, s.serveACS
	case "/saml/logout":
		// A link (Application Security's SSO Logout page) asks with GET
		// and gets a page whose button posts: a GET that signed out would
		// let any page sign users out with an image tag.
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			method, h = http.MethodPost, s.serveLogout
		} else {
			h = s.serveLogoutPage
		}
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h(c, w, r)
}

// unavailable answers while sign-in is not initialised. Why goes to the
// administrator only (the log and Ready, shown by idrecon status): the
// reason can carry what a metadataURL fetch reached or was refused.
func (s *Server) unavailable(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Retry-After", "60")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "SAML single sign-on is unavailable; the administrator can see why in idrecon status.\n")
}

// secureRequest says whether cookies may carry Secure: the request came over
// TLS (directly or, per the baseURL, through a TLS-terminating proxy), or the
// SP is on a loopback host, which browsers treat as a secure context.
func secureRequest(c *config, r *http.Request) bool {
	return r.TLS != nil || c.secure
}

func (s *Server) setCookie(w http.ResponseWriter, c *config, r *http.Request, ck *http.Cookie) {
	ck.Path = c.basePath + "/"
	ck.HttpOnly = true
	ck.Secure = secureRequest(c, r)
	http.SetCookie(w, ck)
}
