package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/spec"
)

// VerifyPath is the forward-auth endpoint. Paths below it are served too:
// Envoy's ext_authz appends the original path to its path_prefix.
const VerifyPath = "/auth/verify"

// SigninHeader tells a forward-auth proxy where to send a browser that has
// no session (nginx turns a 3xx from auth_request into a 500, so /auth/verify
// answers 401 and names the sign-in URL here).
const SigninHeader = "X-Idrecon-Signin"

// Defaults for the optional Deps fields.
const (
	DefaultLoginURL      = spec.SAMLPath + "/login"
	DefaultSessionCookie = "idrecon_session"
)

// DefaultReserved are idrecon's own path prefixes, never forwarded.
var DefaultReserved = []string{spec.SAMLPath, spec.SAMLUserPath, spec.HealthzPath, spec.ReadyzPath, spec.WebhookPath,
	spec.MetricsPath, spec.DefaultScimBasePath, "/auth"}

// Sessions finds the signed-in user of a request (the SAML server's
// session cookie).
type Sessions interface {
	UserOf(r *http.Request) (userName string, ok bool)
}

// SessionsFunc adapts a function to Sessions.
type SessionsFunc func(r *http.Request) (string, bool)

// UserOf calls f.
func (f SessionsFunc) UserOf(r *http.Request) (string, bool) { return f(r) }

// Deps are what a Gateway needs from the rest of idrecon.
type Deps struct {
	Sessions Sessions // required
	Decider  Decider  // required; StoreDecider in the daemon
	Logger   *slog.Logger
	// Reserved are idrecon's own path prefixes (default DefaultReserved);
	// a request under one is never forwarded.
	Reserved []string
	// LoginURL is where a browser without a session signs in (default
	// DefaultLoginURL); "returnTo" is appended.
	LoginURL string
	// SessionCookie is idrecon's session cookie (default
	// DefaultSessionCookie), removed from requests sent upstream.
	SessionCookie string
	// Name, when set, labels the Gateway's metrics gateway=<name> (the
	// Gateway document's name), so several are collected side by side.
	Name string
	// Recheck is how often a proxied request still in flight is decided
	// again (default DefaultRecheck): a user who loses access loses their
	// open WebSockets and streams within it.
	Recheck time.Duration
	// Audit records the refusals of signed-in users (default audit.Discard),
	// at most one a minute per user and reason, so that one user reloading
	// a refused page cannot rotate the audit history away.
	Audit audit.Recorder
}

// Gateway is the front door: a reverse proxy that forwards signed-in,
// entitled users to the upstream with their identity in headers, and a
// forward-auth endpoint answering the same question for another proxy.
type Gateway struct {
	cfg      Config
	deps     Deps
	log      *slog.Logger
	target   *url.URL
	proxy    *httputil.ReverseProxy // nil without an upstream
	tr       *http.Transport
	strip    stripper
	csrf     *http.CrossOriginProtection
	counters *counters

	auditMu   sync.Mutex
	lastAudit map[string]time.Time // user and reason → last audit record; guarded by auditMu

	liveMu     sync.Mutex
	live       map[*liveRequest]struct{} // proxied requests in flight; guarded by liveMu
	perUser    map[string]int            // requests in flight by user; guarded by liveMu
	rechecking bool                      // recheckLoop runs; guarded by liveMu
	closed     bool                      // Close was called; guarded by liveMu
}

// New builds a Gateway. It returns an error wrapping ErrConfig for a bad
// Config.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg, target, err := cfg.normalized()
	if err != nil {
		return nil, err
	}
	if deps.Sessions == nil || deps.Decider == nil {
		return nil, errors.New("gateway: Deps.Sessions and Deps.Decider are required")
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Reserved == nil {
		deps.Reserved = DefaultReserved
	}
	if deps.LoginURL == "" {
		deps.LoginURL = DefaultLoginURL
	}
	if deps.SessionCookie == "" {
		deps.SessionCookie = DefaultSessionCookie
	}
	if deps.Audit == nil {
		deps.Audit = audit.Discard
	}
	if deps.Recheck <= 0 {
		deps.Recheck = DefaultRecheck
	}
	g := &Gateway{cfg: cfg, deps: deps, log: deps.Logger, target: target, strip: newStripper(cfg),
		csrf: http.NewCrossOriginProtection(), counters: newCounters(deps.Name), lastAudit: map[string]time.Time{},
		live: map[*liveRequest]struct{}{}, perUser: map[string]int{}}
	if target != nil {
		g.tr = newTransport(cfg)
		g.proxy = &httputil.ReverseProxy{
			Rewrite:        g.rewrite,
			Transport:      timedTransport{g.tr, g.counters},
			ModifyResponse: g.modifyResponse,
			ErrorHandler:   g.upstreamError,
			ErrorLog:       slog.NewLogLogger(deps.Logger.Handler(), slog.LevelWarn),
		}
	}
	return g, nil
}

// newTransport builds the upstream transport. Not http.DefaultTransport: it
// would send identity headers through HTTP(S)_PROXY and wait forever for a
// hung upstream's headers.
func newTransport(cfg Config) *http.Transport {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		// Below Tomcat's default keep-alive (60s), so idrecon drops an idle
		// connection before the upstream does and a POST never meets a
		// half-closed one.
		IdleConnTimeout:     50 * time.Second,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 128,
		// The response headers are held whole before any reaches the
		// client; net/http's default would let an upstream make every
		// request cost 10 MiB. 1 MiB is net/http's own limit on request
		// headers and far above what a browser accepts.
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.UpstreamCAs != nil {
		tc.RootCAs = x509.NewCertPool()
		for _, c := range cfg.UpstreamCAs {
			tc.RootCAs.AddCert(c)
		}
	}
	if cfg.ClientCertificate != nil {
		tc.Certificates = []tls.Certificate{*cfg.ClientCertificate}
	}
	tr.TLSClientConfig = tc
	return tr
}

// maxResponseHeaderBytes bounds an upstream response's headers; past it
// the client gets a 502.
const maxResponseHeaderBytes = 1 << 20

// Close releases idle upstream connections and ends the proxied requests
// still in flight (WebSockets, streams); call it when the Gateway is
// replaced. Only this Gateway rechecks them, under its old Config, so left
// open they would outlive a stricter RequiredRole, a moved upstream or the
// Gateway's deletion. A request it is handed after Close is served, and
// ended at its first recheck.
func (g *Gateway) Close() {
	g.liveMu.Lock()
	g.closed = true
	for lr := range g.live {
		lr.cancel()
	}
	g.liveMu.Unlock()
	if g.tr != nil {
		g.tr.CloseIdleConnections()
	}
}

// Stats returns a snapshot of the counters.
func (g *Gateway) Stats() Stats { return g.counters.stats() }

// ServeHTTP serves VerifyPath (any method) and, with an upstream, proxies
// every path under PathPrefix that is not reserved; anything else is 404.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	switch {
	case p == VerifyPath || strings.HasPrefix(p, VerifyPath+"/"):
		g.serveVerify(w, r)
	case g.proxy != nil && g.forwards(p) && g.forwardsSent(r.URL.EscapedPath()):
		g.serveProxy(w, r)
	default:
		http.NotFound(w, r)
	}
}

// forwards reports whether p is under PathPrefix and not reserved, as
// written or as the application maps it (MappedPath): "//ssc/x" is
// /ssc/x to Tomcat, and the daemon picks this Gateway for it by that; and
// "/saml;x/login" and "//saml/login" are /saml/login, so passing them on
// would forward a reserved path all the same.
func (g *Gateway) forwards(p string) bool {
	mapped := MappedPath(p)
	if !underPrefix(p, g.cfg.PathPrefix) && !underPrefix(mapped, g.cfg.PathPrefix) {
		return false
	}
	for _, res := range g.deps.Reserved {
		if underPrefix(p, res) || underPrefix(mapped, res) {
			return false
		}
	}
	return true
}

// forwardsSent reports whether the path as sent upstream (escaped), as the
// application maps it (SentPath), is under PathPrefix and not reserved.
// The decoded path forwards checks cannot tell an escaped ';' or '/' from
// a real one, but Tomcat drops ";parameters" and splits segments before it
// decodes: "/ssc%3Bx/y" is "/ssc;x/y" to it, outside /ssc.
func (g *Gateway) forwardsSent(escaped string) bool {
	p, ok := SentPath(escaped)
	if !ok || !underPrefix(p, g.cfg.PathPrefix) {
		return false
	}
	for _, res := range g.deps.Reserved {
		if underPrefix(p, res) {
			return false
		}
	}
	return true
}

func underPrefix(p, prefix string) bool {
	if prefix == "/" {
		return strings.HasPrefix(p, "/")
	}
	prefix = strings.TrimSuffix(prefix, "/")
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}

// decide returns the user's access, or the reason they are refused.
func (g *Gateway) decide(r *http.Request) (Access, string) {
	name, ok := g.deps.Sessions.UserOf(r)
	if !ok || name == "" {
		return Access{}, ReasonNoSession
	}
	a, err := g.deps.Decider.Access(r.Context(), name)
	switch {
	case errors.Is(err, ErrUnknownUser):
		return Access{UserName: name}, g.audited(name, ReasonUnknownUser)
	case err != nil:
		g.log.Error("gateway: decide access", "user", name, "err", err)
		return Access{UserName: name}, ReasonDecisionError
	}
	if a.UserName == "" {
		a.UserName = name
	}
	switch {
	case !a.Active:
		return a, g.audited(a.UserName, ReasonDisabled)
	case len(a.Roles) == 0:
		return a, g.audited(a.UserName, ReasonNoRole)
	case g.cfg.RequiredRole != "" && !slices.Contains(a.Roles, g.cfg.RequiredRole):
		return a, g.audited(a.UserName, ReasonMissingRole)
	case !safeValue(a.UserName, false):
		// CR/LF would break the request; non-ASCII would be decoded as
		// ISO-8859-1 by Tomcat and name someone else.
		g.log.Warn("gateway: user name cannot be sent in a header", "user", fmt.Sprintf("%q", a.UserName))
		return a, ReasonUnsafeName
	}
	return a, ""
}

// audited records the refusal of a signed-in user, at most once a minute
// per user and reason, and returns reason.
func (g *Gateway) audited(user, reason string) string {
	now := time.Now()
	key := user + "\x00" + reason
	g.auditMu.Lock()
	last, seen := g.lastAudit[key]
	if !seen || now.Sub(last) >= time.Minute {
		if len(g.lastAudit) >= maxAuditKeys {
			clear(g.lastAudit) // bounded; at worst a record comes early
		}
		g.lastAudit[key] = now
		seen = false
	}
	g.auditMu.Unlock()
	if !seen {
		g.deps.Audit.Record(audit.GatewayRefusal{Gateway: g.deps.Name, User: user, Reason: reason})
	}
	return reason
}

// maxAuditKeys bounds the refusal throttle's memory.
const maxAuditKeys = 10_000

// signinURL is LoginURL with returnTo set to the given local path.
func (g *Gateway) signinURL(returnTo string) string {
	sep := "?"
	if strings.Contains(g.deps.LoginURL, "?") {
		sep = "&"
	}
	return g.deps.LoginURL + sep + "returnTo=" + url.QueryEscape(returnTo)
}

// returnPath is where a sign-in started at this request should come back.
func (g *Gateway) returnPath(uri string) string {
	if p := localPath(uri); p != "" {
		return p
	}
	return g.cfg.PathPrefix
}

// identity sets the configured identity headers from a on h.
func (g *Gateway) identity(h http.Header, a *Access) {
	h.Set(g.cfg.UserHeader, a.UserName)
	if g.cfg.RolesHeader != "" {
		h.Set(g.cfg.RolesHeader, joinSafe(a.Roles))
	}
	if g.cfg.VersionsHeader != "" {
		h.Set(g.cfg.VersionsHeader, joinSafe(a.Versions))
	}
}

type accessKey struct{}

func (g *Gateway) serveProxy(w http.ResponseWriter, r *http.Request) {
	g.counters.proxied.Add(1)
	if r.Method == http.MethodConnect || r.Method == http.MethodTrace {
		// A CONNECT asks for a tunnel (over HTTP/2 with :protocol, a
		// WebSocket's): what crossed it would reach the application never
		// decided nor stripped. A TRACE has the upstream echo the request
		// it got back to the client, the shared secret included.
		g.counters.refuse(ReasonBadMethod)
		w.Header().Set("Allow", allowed)
		g.page(w, http.StatusMethodNotAllowed, "Method not allowed", "This method is not supported here.")
		return
	}
	if hasDotSegment(r.URL.Path) {
		// The upstream might resolve the segments differently from the
		// prefix check above; refuse rather than guess.
		g.counters.refuse(ReasonBadPath)
		g.page(w, http.StatusBadRequest, "Bad request", "The path holds . or .. segments.")
		return
	}
	if upgrades(r.Header) && !webSocket(r.Header) {
		// After a 101 the connection is a tunnel idrecon no longer reads:
		// upgraded to h2c, each later request on it would reach the
		// application with any user header the client wrote.
		g.counters.refuse(ReasonBadUpgrade)
		g.page(w, http.StatusBadRequest, "Bad request", "Only WebSocket upgrades are supported.")
		return
	}
	if g.crossOrigin(r, r.Method, r.Host) {
		// The application now trusts an ambient cookie plus an injected
		// header, so a cross-site form post would ride on the session.
		g.counters.refuse(ReasonCrossOrigin)
		g.page(w, http.StatusForbidden, "Cross-site request refused", "This request came from another site.")
		return
	}
	a, reason := g.decide(r)
	switch reason {
	case "":
	case ReasonNoSession:
		g.counters.refuse(reason)
		code := http.StatusFound
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			code = http.StatusSeeOther // the browser comes back with a GET
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, g.signinURL(g.returnPath(r.URL.RequestURI())), code)
		return
	case ReasonDecisionError:
		g.counters.refuse(reason)
		g.page(w, http.StatusServiceUnavailable, "Try again later", "Access cannot be checked right now.")
		return
	default:
		g.counters.refuse(reason)
		// A page, not a redirect: sending a signed-in user back to the
		// sign-in would loop.
		g.page(w, http.StatusForbidden, "No access", "You are signed in as "+a.UserName+", but you have no access to this application.")
		return
	}
	r, done, ok := g.track(r, a.UserName)
	if !ok {
		// Audited as a refusal is: a user's own script, or a page gone
		// wrong, is worth an operator's look.
		g.counters.refuse(g.audited(a.UserName, ReasonTooMany))
		w.Header().Set("Retry-After", "1")
		g.page(w, http.StatusTooManyRequests, "Too many requests", "You have too many requests open to this application; try again when some have finished.")
		return
	}
	defer done()
	prog, r := newProgress(w, r)
	defer prog.end()
	iw := &informationalWriter{ResponseWriter: w, g: g, budget: maxResponseHeaderBytes, prog: prog}
	g.proxy.ServeHTTP(iw, r.WithContext(context.WithValue(r.Context(), accessKey{}, &a)))
}

// allowed is the Allow header of a refused method: the standard methods
// the proxy forwards (others, such as WebDAV's, pass too).
const allowed = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"

// crossOrigin reports whether r, taken as a request with method for host,
// is one a page of another origin may not send on the user's session: an
// unsafe method, or a WebSocket handshake, with Sec-Fetch-Site or Origin
// naming another origin (http.CrossOriginProtection). The proxy asks it of
// the request it serves, forward-auth of the original request the proxy in
// front describes, so that both refuse the same requests.
//
// The check lets GET through as safe, but a GET that opens a WebSocket
// opens a channel both ways on the session, which a page of another origin,
// a sibling subdomain included (SameSite=Lax does send the cookie there),
// must not get: it is checked as a POST is. It is known by its upgrade
// headers or, since nginx and Traefik drop those on the way to
// forward-auth, by its Sec-WebSocket-Key, which a browser sends in a
// handshake only.
func (g *Gateway) crossOrigin(r *http.Request, method, host string) bool {
	c := *r
	c.Method, c.Host = method, host
	if upgrades(r.Header) || r.Header.Get("Sec-Websocket-Key") != "" {
		c.Method = http.MethodPost
	}
	return g.csrf.Check(&c) != nil
}

// upgrades reports whether h's Connection header lists "upgrade".
func upgrades(h http.Header) bool {
	for _, v := range h["Connection"] {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "upgrade") {
				return true
			}
		}
	}
	return false
}

// webSocket reports whether h asks to upgrade to WebSocket and to nothing
// else: one Upgrade value, "websocket" in any case.
func webSocket(h http.Header) bool {
	v := h["Upgrade"]
	return len(v) == 1 && strings.EqualFold(strings.TrimSpace(v[0]), "websocket")
}

// rewrite builds the upstream request. ReverseProxy has already removed the
// hop-by-hop headers (including any the client named in Connection), so
// what is set here reaches the upstream.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	g.strip.strip(pr.Out.Header)
	if c := pr.Out.Header["Cookie"]; c != nil {
		if kept := withoutCookie(c, g.ownCookie); kept != nil {
			pr.Out.Header["Cookie"] = kept
		} else {
			delete(pr.Out.Header, "Cookie")
		}
	}
	pr.SetURL(g.target)
	pr.Out.Host = pr.In.Host // the application builds its links from it
	pr.SetXForwarded()
	a, _ := pr.In.Context().Value(accessKey{}).(*Access)
	if a == nil {
		// Unreachable: serveProxy always decides first. An empty user header
		// identifies nobody.
		a = &Access{}
	}
	g.identity(pr.Out.Header, a)
	if s := g.cfg.SharedSecret; s != nil {
		pr.Out.Header.Set(s.Header, s.Value.reveal())
	}
}

// ownCookie reports whether a cookie is idrecon's: its session cookie, and
// every name in its idrecon_ namespace (the pending sign-in and sign-out,
// the console's session and state). None reaches an upstream, and an
// upstream cannot set one.
func (g *Gateway) ownCookie(name string) bool {
	return name == g.deps.SessionCookie || strings.HasPrefix(name, "idrecon_")
}

// modifyResponse filters the upstream's final response, and its trailers
// once the body has been read.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	switching := resp.StatusCode == http.StatusSwitchingProtocols
	g.upstreamHeader(resp.Header, switching)
	if !switching && resp.Body != nil && resp.Body != http.NoBody {
		resp.Body = &trailerFilter{ReadCloser: resp.Body, resp: resp, g: g}
	}
	return nil
}

// upstreamHeader is the one filter of every header section the upstream
// sends towards the client: the final response's, each 1xx response's and
// the trailers. It drops a Set-Cookie that would plant or overwrite one of
// idrecon's cookies, and the hop-by-hop headers, which belong to the
// upstream connection; only a 101 keeps them (switching), since its
// Connection and Upgrade make the switch.
func (g *Gateway) upstreamHeader(h http.Header, switching bool) {
	if !switching {
		removeHopByHop(h)
	}
	sc := h["Set-Cookie"]
	if len(sc) == 0 {
		return
	}
	kept := sc[:0:0]
	for _, v := range sc {
		if !g.ownCookie(returnedName(v)) {
			kept = append(kept, v)
		}
	}
	if len(kept) == 0 {
		delete(h, "Set-Cookie")
		return
	}
	h["Set-Cookie"] = kept
}

// hopByHop are the headers that describe one connection (RFC 9110, section
// 7.6.1, and the older Keep-Alive and Proxy-Connection), as Go spells them.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// removeHopByHop deletes the hop-by-hop headers from h, and those its
// Connection header names.
func removeHopByHop(h http.Header) {
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		delete(h, name)
	}
}

// trailerFilter passes the upstream's trailers through upstreamHeader.
// They arrive with the end of the body, after ModifyResponse, and
// ReverseProxy copies them to the client once the body is closed.
type trailerFilter struct {
	io.ReadCloser
	resp *http.Response
	g    *Gateway
}

func (b *trailerFilter) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.g.upstreamHeader(b.resp.Trailer, false)
	}
	return n, err
}

func (b *trailerFilter) Close() error {
	err := b.ReadCloser.Close()
	b.g.upstreamHeader(b.resp.Trailer, false)
	return err
}

// informationalWriter is the ResponseWriter the proxy writes to.
// ReverseProxy forwards each 1xx response of the upstream (103 Early
// Hints) from a ClientTrace hook with WriteHeader, bypassing
// ModifyResponse, so this is where they meet upstreamHeader. It also keeps
// them within maxResponseHeaderBytes in all: the transport resets its
// limit on response headers after each 1xx it hands on, so an upstream
// could otherwise send the client headers without end. Past the budget a
// 1xx is dropped, which HTTP allows since it is only advisory.
type informationalWriter struct {
	http.ResponseWriter
	g *Gateway
	// budget is what 1xx headers may still cost; only the transport's
	// read loop, one 1xx after another, touches it.
	budget int
	// prog bounds each write to the client (nil: unbounded).
	prog *progress
}

func (w *informationalWriter) Write(b []byte) (int, error) {
	w.prog.arm(false)
	defer w.prog.disarm(false)
	return w.ResponseWriter.Write(b)
}

// FlushError is what http.ResponseController's Flush finds first, so
// ReverseProxy's flushes are bounded as its writes are.
func (w *informationalWriter) FlushError() error {
	w.prog.arm(false)
	defer w.prog.disarm(false)
	return http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *informationalWriter) WriteHeader(code int) {
	w.prog.arm(false)
	defer w.prog.disarm(false)
	if code < 100 || code > 199 || code == http.StatusSwitchingProtocols {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	h := w.Header()
	w.g.upstreamHeader(h, false)
	for k, vs := range h {
		for _, v := range vs {
			w.budget -= len(k) + len(v) + len(": \r\n")
		}
	}
	if w.budget < 0 {
		// ReverseProxy clears the header map after each 1xx either way.
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController (ReverseProxy's Flush and Hijack)
// reach the server's ResponseWriter.
func (w *informationalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// returnedName is the name a server reads from the cookie a browser keeps
// for the Set-Cookie value v. Browsers keep a pair without a name ("=v",
// or "v" with no '=') as a nameless cookie and send back its value alone,
// so "=idrecon_session=x" returns as "idrecon_session=x": its name is the
// value's, up to its first '='.
func returnedName(v string) string {
	pair, _, _ := strings.Cut(v, ";")
	name, value, hasEq := strings.Cut(pair, "=")
	if !hasEq {
		name = pair
	} else if strings.TrimSpace(name) == "" {
		name, _, _ = strings.Cut(value, "=")
	}
	return strings.TrimSpace(name)
}

// upstreamError answers 502 (504 when the upstream was too slow) with a
// page that names no upstream detail; the detail goes to the log.
func (g *Gateway) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		// The client went away: not the upstream's fault.
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	g.counters.upstreamErrors.Add(1)
	status, title := http.StatusBadGateway, "Application unavailable"
	var op *net.OpError
	var ne net.Error
	if !(errors.As(err, &op) && op.Op == "dial") && errors.As(err, &ne) && ne.Timeout() {
		status, title = http.StatusGatewayTimeout, "Application too slow"
	}
	// The path clipped: it is the client's, up to the header bound, and
	// every failure while the upstream is down is logged.
	g.log.Warn("gateway: upstream request failed", "method", fmt.Sprintf("%.20q", r.Method), "path", fmt.Sprintf("%.200q", r.URL.Path), "status", status, "err", err)
	g.page(w, status, title, "The application did not answer. Try again in a moment.")
}

// timedTransport observes the upstream latency (to response headers).
type timedTransport struct {
	base http.RoundTripper
	c    *counters
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.base.RoundTrip(r)
	if err == nil {
		t.c.latency.Observe(time.Since(start).Seconds())
	}
	return resp, err
}

func (g *Gateway) serveVerify(w http.ResponseWriter, r *http.Request) {
	g.counters.verified.Add(1)
	h := w.Header()
	// A cached "yes" would outlive a disable; a cached answer keyed without
	// the cookie would hand one user's identity to another.
	h.Set("Cache-Control", "no-store")
	original, ok := OriginalURI(r)
	if !ok {
		g.counters.refuse(ReasonBadPath)
		g.text(w, r, http.StatusForbidden, "no access\n")
		return
	}
	methods, host, ok := originalRequest(r)
	if !ok || slices.ContainsFunc(methods, func(m string) bool { return g.crossOrigin(r, m, host) }) {
		// Behind nginx, Traefik or Caddy the application trusts the
		// ambient session as it does behind the proxy: a cross-site form
		// post would ride on it unless refused here.
		g.counters.refuse(ReasonCrossOrigin)
		g.text(w, r, http.StatusForbidden, "cross-site request refused\n")
		return
	}
	a, reason := g.decide(r)
	switch reason {
	case "":
		g.identity(h, &a)
		w.WriteHeader(http.StatusOK)
		return
	case ReasonNoSession:
		g.counters.refuse(reason)
		signin := g.signinURL(g.returnPath(original))
		h.Set(SigninHeader, signin)
		g.text(w, r, http.StatusUnauthorized, "sign in at "+signin+"\n")
	case ReasonDecisionError:
		g.counters.refuse(reason)
		g.text(w, r, http.StatusInternalServerError, "access cannot be checked right now\n")
	default:
		g.counters.refuse(reason)
		g.text(w, r, http.StatusForbidden, "no access\n")
	}
}

// OriginalURI returns the URI a forward-auth request asks about: the one
// value of X-Original-URI (nginx, as the documented auth location sets it),
// of X-Forwarded-Uri (Traefik, Caddy) or the path below VerifyPath (Envoy's
// path_prefix). Each proxy sets one of these itself and passes the client's
// other headers on, so a second one, or a header sent twice, can only be
// the client's: ok is false and the request is refused rather than letting
// the client choose the Gateway that decides. With none of them, uri is ""
// and ok true. A URI holding a dot segment, as sent or percent-decoded, is
// refused too: the daemon picks the Gateway by the URI's prefix, but nginx
// matches its locations on the resolved path and passes the URI on as sent,
// which the application resolves, so "/lax/../strict" would be decided by
// the Gateway of /lax for a request that lands in /strict (browsers resolve
// dot segments before sending, so this refuses no one honest).
func OriginalURI(r *http.Request) (uri string, ok bool) {
	given := slices.Concat(r.Header.Values("X-Original-Uri"), r.Header.Values("X-Forwarded-Uri"))
	if rest, found := strings.CutPrefix(r.URL.RequestURI(), VerifyPath); found && strings.HasPrefix(rest, "/") {
		given = append(given, rest)
	}
	switch len(given) {
	case 0:
		return "", true
	case 1:
		uri = given[0]
	default:
		return "", false
	}
	p, _, _ := strings.Cut(uri, "?")
	if hasDotSegment(p) {
		return "", false
	}
	// A path that does not percent-decode ("%zz", a lone '%') cannot be
	// checked as decoded, and is no URI nginx or Go would forward (both
	// answer 400); an application that decodes leniently could still read
	// its "%2e%2e" as "..". Refused like a dot segment.
	if d, err := url.PathUnescape(p); err != nil || hasDotSegment(d) {
		return "", false
	}
	return uri, true
}

// originalRequest returns the methods and the host a forward-auth request
// gives for the original request, for the cross-origin check. Traefik and
// Caddy send a GET naming the original method in X-Forwarded-Method and the
// host in X-Forwarded-Host (the auth request's own Host is idrecon's there);
// nginx sends a GET with the original headers, any X-Forwarded-Method the
// client wrote included unless the configuration replaces it, and Envoy the
// original method. When the two methods differ both are returned and the
// request must pass with each. Two values of either header, a list, or a
// method that is no token describe no one request: ok is false and the
// request is refused.
func originalRequest(r *http.Request) (methods []string, host string, ok bool) {
	methods = []string{r.Method}
	switch fm := r.Header.Values("X-Forwarded-Method"); len(fm) {
	case 0:
		// nginx's auth_request subrequest is a GET whatever the original
		// was, so without the header the original method is unknown. A
		// browser sends Origin with every unsafe request, a form post
		// included, but not when following a link: a request carrying one
		// is checked as the unsafe request it may be, and a link followed
		// from another site still passes.
		if r.Header.Get("Origin") != "" && r.Method != http.MethodPost {
			methods = append(methods, http.MethodPost)
		}
	case 1:
		if !token(fm[0]) {
			return nil, "", false
		}
		if fm[0] != r.Method {
			methods = append(methods, fm[0])
		}
	default:
		return nil, "", false
	}
	host = r.Host
	switch fh := r.Header.Values("X-Forwarded-Host"); len(fh) {
	case 0:
	case 1:
		host = strings.TrimSpace(fh[0])
		if host == "" || strings.Contains(host, ",") {
			return nil, "", false
		}
	default:
		return nil, "", false
	}
	return methods, host, true
}

// token reports whether s is an HTTP token (RFC 9110, section 5.6.2), the
// form of a method.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

func (g *Gateway) text(w http.ResponseWriter, r *http.Request, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(body))
	}
}
