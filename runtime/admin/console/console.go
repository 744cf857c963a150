// Package console serves idrecon's read-only web console on the admin
// listener, at /console/: sync status and history, drift, the last plan,
// users and groups with search and paging, and who can reach an
// application version and why. Every page is a GET, rendered on the server
// from html/template with no script at all, so it works without
// JavaScript; the Content-Security-Policy allows only the console's own
// style sheet.
//
// The data come from the functions the admin API answers with (the admin
// server's Status, the reconciler's CurrentPlan and History, and
// runtime/access for users, groups and access), so the console never
// disagrees with idrecon status or idrecon access.
//
// Sign-in. The console is on, and requires, the Role that the
// SamlServiceProvider names in consoleRole; users sign in through
// idrecon's own SAML SP, which lives on the main listener, a different
// origin. The hand-off between the two:
//
//  1. /console/ without a console session adds a random state to a
//     SameSite=Lax cookie on the console's origin (which keeps the newest
//     few, so sign-ins started in several tabs at once all finish) and
//     redirects to <baseURL>/saml/console?state=S on the main listener
//     (Handoff).
//  2. Handoff, for a browser signed in to the SP (else it sends it through
//     /saml/login and back) whose user holds the console role, mints a
//     one-time code valid for a minute, bound to S, and redirects to the
//     configured console URL (never to one the request names) at
//     /console/auth?code=C.
//  3. /console/auth takes the code once, only from a browser whose state
//     cookie holds the state it was bound to (so a code sent to another
//     browser is worthless there), and
//     starts a console session: a random id in an HttpOnly, SameSite=Strict
//     cookie limited to /console/, which ends with the SAML session it came
//     from (expired, or signed out here or at the IdP). Codes and sessions
//     are kept as SHA-256 hashes, in this process: both listeners are this
//     daemon's.
//
// Every request of a session decides again from the current state, as the
// gateway does: a user deleted or disabled over SCIM, or who lost the
// console role, gets a 403 page and the session ends. The admin token is
// not accepted here; it stays for the CLI.
package console

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/store"
)

// Path is where the console is mounted on the admin listener.
const Path = "/console/"

// HandoffPath is the hand-off endpoint on the main listener, below the SAML
// base path, among the SAML routes that Gateways and SCIM may not claim.
const HandoffPath = "/saml/console"

// Reconciler is what the console reads of the reconciler.
type Reconciler interface {
	CurrentPlan(ctx context.Context) (*reconcile.Plan, error)
	History() []reconcile.HistoryEntry
}

// Config configures the console. Store, Reconciler, Status, SAMLUser and
// URL are required.
type Config struct {
	Store      *store.Store
	Reconciler Reconciler
	// Status is the admin API's GET /v1/status (admin.Server.Status).
	Status func() (admin.StatusResponse, error)
	// SAMLUser returns the user the request's browser signed in to the SAML
	// SP as, and that session's id (saml.Server.SessionUserAndID); the
	// console decides access itself.
	SAMLUser func(r *http.Request) (userName, session string, ok bool)
	// SAMLSessionLive, when set, reports whether the SAML session a console
	// session came from is still live (saml.Server.SessionLive): the
	// console session ends with it, at its expiry or a sign-out here or at
	// the IdP.
	SAMLSessionLive func(ctx context.Context, session string) bool
	// URL is the console's absolute URL as browsers reach it, ending in
	// /console/ (e.g. http://127.0.0.1:9090/console/). The hand-off sends
	// codes there and nowhere else.
	URL    string
	Logger *slog.Logger
	Now    func() time.Time
}

// Server serves the console (ServeHTTP, on the admin listener) and its
// sign-in hand-off (Handoff, on the main listener).
type Server struct {
	cfg    Config
	log    *slog.Logger
	url    *url.URL
	mux    *http.ServeMux
	csrf   *http.CrossOriginProtection
	static http.Handler
	// The names of the session and state cookies (cookieNames of url).
	sessionName, stateName string

	mu       sync.Mutex
	codes    map[[32]byte]code    // hash of the code → entry; guarded by mu
	sessions map[[32]byte]session // hash of the session id → entry; guarded by mu
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":    when,
	"path":    pathOf,
	"join":    strings.Join,
	"plural":  plural,
	"few":     few,
	"nonzero": func(t time.Time) bool { return !t.IsZero() },
	"nav":     func() []navItem { return navigation },
}).ParseFS(templateFS, "templates/*.html"))

// New returns the console for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Reconciler == nil || cfg.Status == nil || cfg.SAMLUser == nil {
		return nil, errors.New("console: config needs Store, Reconciler, Status and SAMLUser")
	}
	u, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	static, _ := fs.Sub(staticFS, "static")
	s := &Server{cfg: cfg, log: cfg.Logger, url: u, mux: http.NewServeMux(), csrf: http.NewCrossOriginProtection(),
		static: http.StripPrefix(Path+"static/", http.FileServerFS(static)),
		codes:  map[[32]byte]code{}, sessions: map[[32]byte]session{}}
	s.sessionName, s.stateName = cookieNames(u)
	s.mux.Handle("GET "+Path+"static/", s.static)
	s.mux.HandleFunc("GET "+Path+"auth", s.serveAuth)
	s.mux.Handle("POST "+Path+"signout", s.csrf.Handler(http.HandlerFunc(s.serveSignOut)))
	for _, p := range []struct {
		pattern string
		fn      func(*request) (string, any, error)
	}{
		{"{$}", s.overview},
		{"history", s.history},
		{"plan", s.plan},
		{"drift", s.drift},
		{"users", s.users},
		{"users/{userName...}", s.user},
		{"groups", s.groups},
		{"groups/{displayName...}", s.group},
		{"reach", s.reach},
	} {
		s.mux.Handle("GET "+Path+p.pattern, s.page(p.fn))
	}
	return s, nil
}

// pathOf is what follows users/ or groups/ in the link to the page of the
// user or group name: the name, escaped, or for a dot segment ("." or
// ".."), which browsers and the server's path cleaning resolve away, an
// empty segment and the name in the query (see nameOf).
func pathOf(name string) string {
	if name == "." || name == ".." {
		return "?name=" + url.QueryEscape(name)
	}
	return url.PathEscape(name)
}

// nameOf is the name in the path of a user's or group's page (its
// wildcard), or in its query (see pathOf).
func nameOf(r *request, wildcard string) string {
	if name := r.PathValue(wildcard); name != "" {
		return name
	}
	return r.URL.Query().Get("name")
}

// parseURL checks a console URL.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != Path ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("console: URL %q must be an absolute http(s) URL whose path is %s", raw, Path)
	}
	// As browsers send it in Host: the name in lower case, no default port.
	u.Host = canonicalHost(u.Scheme, u.Host)
	return u, nil
}

// canonicalHost is host (a URL's or a request's Host) in lower case and
// without the default port of scheme.
func canonicalHost(scheme, host string) string {
	host = strings.ToLower(host)
	if h, port, err := net.SplitHostPort(host); err == nil && (scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		if strings.Contains(h, ":") {
			return "[" + h + "]"
		}
		return h
	}
	return host
}

// SetURL replaces Config.URL, for a daemon that learns its admin address
// only once it listens. Call it before serving.
func (s *Server) SetURL(raw string) error {
	u, err := parseURL(raw)
	if err != nil {
		return err
	}
	s.url, s.cfg.URL = u, raw
	s.sessionName, s.stateName = cookieNames(u)
	return nil
}

// ServeHTTP serves the console's routes below Path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hardened(s.mux, func() string { return "'self'" }).ServeHTTP(w, r)
}

// hardened wraps h so that every answer it gives carries the headers that
// keep the console's pages, which show personal data, out of caches and
// frames and let them load nothing but the style sheet from styleFrom's
// origin (the console's own; the hand-off's pages on the main listener take
// the console's). The headers are set again as the answer's header is
// written, since handlers on the way may delete them: http.FileServer's
// errors drop Cache-Control.
func hardened(h http.Handler, styleFrom func() string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hw := &hardenedWriter{ResponseWriter: w, styleFrom: styleFrom()}
		// Also now, for an answer that h never writes (net/http then sends
		// the header without passing through hw).
		hw.set()
		h.ServeHTTP(hw, r)
	})
}

type hardenedWriter struct {
	http.ResponseWriter
	styleFrom string
	wrote     bool
}

func (w *hardenedWriter) set() {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+w.styleFrom+"; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

func (w *hardenedWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 {
		w.wrote = true
		w.set()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *hardenedWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *hardenedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// request is one signed-in page request.
type request struct {
	*http.Request
	User string
}

// view is what every page's template gets.
type view struct {
	Title string
	// Nav names the page's entry in the navigation.
	Nav  string
	User string
	Data any
	Now  time.Time
	// Home is the console's URL that links and the style sheet start
	// from: Path, or the absolute URL on the hand-off's other origin.
	Home string
}

// page serves fn behind the session check; fn returns the template to
// render and its data, or an error (*pageError for a clear refusal).
func (s *Server) page(fn func(*request) (string, any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := s.authorize(w, r)
		if !ok {
			return
		}
		name, data, err := fn(&request{Request: r, User: user})
		if err != nil {
			s.fail(w, r, user, err)
			return
		}
		title, nav := titles[name][0], titles[name][1]
		s.render(w, http.StatusOK, name, view{Title: title, Nav: nav, User: user, Data: data, Now: s.cfg.Now()})
	})
}

// navItem is one entry of the navigation.
type navItem struct{ Name, Href, Label string }

var navigation = []navItem{
	{"overview", Path, "Overview"},
	{"history", Path + "history", "History"},
	{"plan", Path + "plan", "Last plan"},
	{"drift", Path + "drift", "Drift"},
	{"users", Path + "users", "Users"},
	{"groups", Path + "groups", "Groups"},
	{"reach", Path + "reach", "Who can reach"},
}

// titles are each template's title and navigation entry.
var titles = map[string][2]string{
	"overview": {"Overview", "overview"},
	"history":  {"Sync history", "history"},
	"plan":     {"Last plan", "plan"},
	"drift":    {"Drift", "drift"},
	"users":    {"Users", "users"},
	"user":     {"User", "users"},
	"groups":   {"Groups", "groups"},
	"group":    {"Group", "groups"},
	"reach":    {"Who can reach a version", "reach"},
}

// pageError is a refusal or a missing object, shown on the error page.
type pageError struct {
	Status      int
	Title, Text string
}

func (e *pageError) Error() string { return e.Title + ": " + e.Text }

func (s *Server) fail(w http.ResponseWriter, r *http.Request, user string, err error) {
	s.failAt(w, r, user, Path, err)
}

// failAt is fail for a page whose links start from home.
func (s *Server) failAt(w http.ResponseWriter, r *http.Request, user, home string, err error) {
	pe, ok := errors.AsType[*pageError](err)
	if !ok {
		s.log.Error("console: page failed", "path", r.URL.Path, "err", err)
		pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong",
			Text: "The page could not be built; the daemon's log says why."}
	}
	s.render(w, pe.Status, "error", view{Title: pe.Title, User: user, Data: pe, Now: s.cfg.Now(), Home: home})
}

func (s *Server) render(w http.ResponseWriter, status int, name string, v view) {
	v.Home = cmp.Or(v.Home, Path)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		s.log.Error("console: render", "page", name, "err", err)
	}
}

// when shows a time in UTC, to the second, and how long ago it was.
func when(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	ago := "just now"
	switch {
	case d >= time.Hour:
		ago = fmt.Sprintf("%dh%02dm ago", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		ago = fmt.Sprintf("%dm%02ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d >= time.Second:
		ago = fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < 0:
		ago = "in the future"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC") + " (" + ago + ")"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
