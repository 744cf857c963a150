package scim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// ContentType is the media type of every response.
const ContentType = "application/scim+json"

// MaxResults caps count on list requests (advertised as filter.maxResults).
const MaxResults = 1000

// maxDepth bounds JSON nesting in request bodies; SCIM resources nest three
// levels at most.
const maxDepth = 32

// Options configure a Server.
type Options struct {
	// Logger receives failures. Default: discard.
	Logger *slog.Logger
	// Audit records every write made (not a PUT or PATCH that changes
	// nothing), and every write whose outcome the store cannot tell (see
	// Server.audit) (default audit.Discard).
	Audit audit.Recorder
	// MaxBodyBytes limits request bodies (default 1 MiB).
	MaxBodyBytes int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Observer, when set, is called after every request with the route name
	// ("users.create", "groups.patch", …; "unknown" when nothing matched),
	// the status and the time taken.
	Observer func(route string, status int, d time.Duration)
	// Limits bound what clients may make the server hold (zero: no
	// bounds).
	Limits Limits
	// Barrier, when set, is called before an authenticated request is
	// served: with several daemons on one state it returns once this one
	// holds every write any of them acknowledged, so Entra's create on one
	// daemon and its PATCH a moment later on another agree. Its error is
	// the request's (store.ErrUnavailable: 503).
	Barrier func(context.Context) error
}

// Server serves the SCIM endpoints below the configured base path. It
// implements http.Handler and expects the full request path.
type Server struct {
	st      *store.Store
	opts    Options
	log     *slog.Logger
	cfg     atomic.Pointer[config]
	cursors cursors
	// warnedFull is when a refusal by Limits was last logged (unix ns).
	warnedFull atomic.Int64
}

// NewServer returns a Server on st.
func NewServer(st *store.Store, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{st: st, opts: opts, log: opts.Logger}
}

// config is what the server derives from the ScimProvisioning resource.
// It is kept until a commit changes a resource (changed closes) and then
// derived again only if the ScimProvisioning resource itself changed
// (stored resources are immutable, so the pointer says).
type config struct {
	res      *store.Resource
	changed  <-chan struct{}
	enabled  bool
	basePath string
	// baseURL, when set, is the public URL of basePath that every
	// emitted URL starts with; when empty they are built from the request.
	baseURL string
	tokens  []tokenHash
	keep    *keepSet
}

type tokenHash struct {
	name string
	sum  [sha256.Size]byte
	ok   bool
}

func (s *Server) config() (*config, error) {
	cur := s.cfg.Load()
	if cur != nil {
		select {
		case <-cur.changed:
		default:
			return cur, nil
		}
	}
	// Taken before the read, so a commit that the read misses closes it.
	changed := s.st.ResourcesChanged()
	res, err := s.st.Read().Resources(spec.KindScimProvisioning)
	if err != nil {
		return nil, err
	}
	var r *store.Resource
	if len(res) > 0 {
		r = res[0]
	}
	if cur != nil && cur.res == r {
		c := *cur
		c.changed = changed
		s.cfg.Store(&c)
		return &c, nil
	}
	c := &config{res: r, changed: changed, basePath: spec.DefaultScimBasePath}
	if r != nil {
		if sp, ok := r.Spec.(*spec.ScimProvisioning); ok && sp != nil {
			c.enabled = sp.Enabled
			if sp.BasePath != "" {
				c.basePath = "/" + strings.Trim(sp.BasePath, "/")
				if c.basePath == "/" {
					c.basePath = ""
				}
			}
			// The loader holds its path to basePath; only a trailing
			// slash, which Entra's Tenant URL field often keeps, goes.
			c.baseURL = strings.TrimSuffix(sp.BaseURL, "/")
			for _, t := range sp.Tokens {
				th := tokenHash{name: t.Name}
				if b, err := hex.DecodeString(strings.TrimSpace(t.SHA256)); err == nil && len(b) == sha256.Size {
					copy(th.sum[:], b)
					th.ok = true
				}
				c.tokens = append(c.tokens, th)
			}
			attrs := sp.UserAttributes
			if len(attrs) == 0 {
				attrs = spec.DefaultUserAttributes
			}
			keep, err := newKeepSet(attrs)
			if err != nil {
				s.log.Error("scim: bad userAttributes; keeping the defaults", "err", err)
				keep, _ = newKeepSet(spec.DefaultUserAttributes)
			}
			c.keep = keep
		}
	}
	if c.keep == nil {
		c.keep, _ = newKeepSet(spec.DefaultUserAttributes)
	}
	s.cfg.Store(c)
	return c, nil
}

// BasePath returns the base path the endpoints currently live under
// (spec.DefaultScimBasePath unless the ScimProvisioning spec sets one), for
// routers that dispatch by prefix. It follows configuration changes.
func (s *Server) BasePath() string {
	c, err := s.config()
	if err != nil {
		return spec.DefaultScimBasePath
	}
	return c.basePath
}

// locationBase is the URL of the base path that emitted URLs start with:
// the configured baseURL, else the request's scheme and Host. X-Forwarded-*
// and Forwarded are never read: any client can send them, and a proxy that
// sets them is only trusted if the operator says so, which baseURL does
// once and for every request.
func (c *config) locationBase(r *http.Request) string {
	if c.baseURL != "" {
		return c.baseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + c.basePath
}

// authenticate returns the name of the token presented, comparing its hash
// with every configured token in constant time so that neither timing nor
// order tells which one matched.
func (c *config) authenticate(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(h[7:])))
	actor, found := "", 0
	for _, t := range c.tokens {
		eq := subtle.ConstantTimeCompare(sum[:], t.sum[:])
		if eq == 1 && t.ok && found == 0 {
			actor, found = t.name, 1
		}
	}
	return actor, found == 1
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// request is one SCIM request after routing and authentication.
type request struct {
	*http.Request
	actor   string
	cfg     *config
	query   url.Values // the decoded query string (see parseQuery)
	baseURL string     // the URL of the base path, for meta.location (see locationBase)
	// barrier, when not nil, is the store barrier this request has not
	// passed yet (see lateBarrier); settle passes it.
	barrier func(context.Context) error
	// buffers are pooled buffers the request holds (see buffer).
	buffers []*[]byte
}

// settle passes the request's barrier if it has not yet: from then on it
// sees every write acknowledged before it arrived.
func (r *request) settle() error {
	if r.barrier == nil {
		return nil
	}
	b := r.barrier
	r.barrier = nil
	return b(r.Context())
}

// lateBarrier names the routes that may run before the barrier. A create
// reads nothing but its name's index entry, and a journal shared by several
// daemons compares that entry when it commits: a create computed on a
// mirror that missed the name's owner is refused as stale and runs again
// caught up. So only a refusal can come from a mirror behind the cluster (a
// name another daemon freed a moment ago): the handler then settles the
// barrier and tries once more before it answers. A group created with
// members reads those members, so that create settles first.
var lateBarrier = map[string]bool{"users.create": true, "groups.create": true}

// create runs a create of a lateBarrier route: a refusal (4xx), which a
// mirror behind the cluster could have caused, is answered only after the
// barrier and a second try.
func (r *request) create(try func() error) error {
	err := try()
	var se *scimerr.Error
	if r.barrier == nil || !errors.As(err, &se) || se.Status >= 500 {
		return err
	}
	if err := r.settle(); err != nil {
		return err
	}
	return try()
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	route := "unknown"
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("scim handler panicked", "method", r.Method, "path", r.URL.Path, "panic", p)
			if sw.status == 0 {
				s.writeError(sw, r, errStatus(http.StatusInternalServerError, "internal error"))
			}
		}
		if s.opts.Observer != nil {
			s.opts.Observer(route, sw.status, time.Since(start))
		}
	}()
	route = s.serve(sw, r)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) string {
	cfg, err := s.config()
	if err != nil {
		s.writeError(w, r, err)
		return "unknown"
	}
	path := r.URL.Path
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	if !strings.HasPrefix(path, cfg.basePath) || (len(path) > len(cfg.basePath) && path[len(cfg.basePath)] != '/') {
		s.writeError(w, r, errStatus(http.StatusNotFound, "no SCIM endpoint at %s", r.URL.Path))
		return "unknown"
	}
	rest := strings.Trim(path[len(cfg.basePath):], "/")
	seg := strings.SplitN(rest, "/", 3)
	rt := route(r.Method, seg)
	if !cfg.enabled {
		s.writeError(w, r, errStatus(http.StatusForbidden, "SCIM is disabled: enable it in the ScimProvisioning spec"))
		return rt.name
	}
	actor, ok := cfg.authenticate(r)
	if !ok {
		s.writeError(w, r, errStatus(http.StatusUnauthorized, "missing or invalid bearer token"))
		return rt.name
	}
	if rt.handle == nil {
		if rt.allow != "" {
			w.Header().Set("Allow", rt.allow)
		}
		s.writeError(w, r, rt.err)
		return rt.name
	}
	query, err := parseQuery(r.URL.RawQuery)
	if err != nil {
		s.writeError(w, r, err)
		return rt.name
	}
	req := &request{Request: r, actor: actor, cfg: cfg, query: query, baseURL: cfg.locationBase(r), barrier: s.opts.Barrier}
	if !lateBarrier[rt.name] {
		if err := req.settle(); err != nil {
			s.writeError(w, r, err)
			return rt.name
		}
	}
	id := ""
	if len(seg) > 1 {
		id = seg[1]
	}
	defer req.release()
	if err := rt.handle(s, w, req, id); err != nil {
		s.writeError(w, r, err)
	}
	return rt.name
}

type handler func(s *Server, w http.ResponseWriter, r *request, id string) error

var (
	userHandlers  = map[string]handler{"list": (*Server).listUsers, "create": (*Server).createUser, "get": (*Server).getUser, "replace": (*Server).replaceUser, "patch": (*Server).patchUser, "delete": (*Server).deleteUser}
	groupHandlers = map[string]handler{"list": (*Server).listGroups, "create": (*Server).createGroup, "get": (*Server).getGroup, "replace": (*Server).replaceGroup, "patch": (*Server).patchGroup, "delete": (*Server).deleteGroup}
)

type routed struct {
	name   string
	handle handler
	err    error
	allow  string // the methods the path takes, for a 405's Allow header
}

func route(method string, seg []string) routed {
	if len(seg) == 0 || seg[0] == "" {
		return routed{name: "unknown", err: errStatus(http.StatusNotFound, "no SCIM endpoint here")}
	}
	// A 405 MUST name the methods the path takes (RFC 9110 §15.5.6).
	notAllowed := func(name, allow string) routed {
		return routed{name: name, allow: allow, err: errStatus(http.StatusMethodNotAllowed, "method %s is not allowed here (allowed: %s)", method, allow)}
	}
	if method == http.MethodHead {
		// HEAD is GET without the body (RFC 9110 §9.3.2), which net/http
		// drops: the same route gives the same status and headers.
		method = http.MethodGet
	}
	hasID := len(seg) == 2 && seg[1] != ""
	if len(seg) > 2 {
		return routed{name: "unknown", err: errStatus(http.StatusNotFound, "no SCIM endpoint here")}
	}
	switch strings.ToLower(seg[0]) {
	case "users", "groups":
		if hasID && strings.EqualFold(seg[1], ".search") {
			// POST /Users/.search is a query (RFC 7644 §3.4.3), not a
			// resource called ".search": unsupported as /.search is.
			return routed{name: "unsupported", err: errStatus(http.StatusNotImplemented, "/%s/%s is not supported (see /ServiceProviderConfig)", seg[0], seg[1])}
		}
		kind := strings.ToLower(seg[0])
		table := userHandlers
		if kind == "groups" {
			table = groupHandlers
		}
		var op string
		switch {
		case !hasID && method == http.MethodGet:
			op = "list"
		case !hasID && method == http.MethodPost:
			op = "create"
		case hasID && method == http.MethodGet:
			op = "get"
		case hasID && method == http.MethodPut:
			op = "replace"
		case hasID && method == http.MethodPatch:
			op = "patch"
		case hasID && method == http.MethodDelete:
			op = "delete"
		case hasID:
			return notAllowed(kind, "GET, HEAD, PUT, PATCH, DELETE")
		default:
			return notAllowed(kind, "GET, HEAD, POST")
		}
		return routed{name: kind + "." + op, handle: table[op]}
	case "serviceproviderconfig":
		if hasID {
			// The configuration is a single resource with nothing below it.
			return routed{name: "unknown", err: errStatus(http.StatusNotFound, "no SCIM endpoint here")}
		}
		if method != http.MethodGet {
			return notAllowed("discovery", "GET, HEAD")
		}
		return routed{name: "discovery", handle: (*Server).serviceProviderConfig}
	case "resourcetypes":
		if method != http.MethodGet {
			return notAllowed("discovery", "GET, HEAD")
		}
		return routed{name: "discovery", handle: (*Server).resourceTypes}
	case "schemas":
		if method != http.MethodGet {
			return notAllowed("discovery", "GET, HEAD")
		}
		return routed{name: "discovery", handle: (*Server).schemas}
	case "bulk", "me", ".search":
		return routed{name: "unsupported", err: errStatus(http.StatusNotImplemented, "/%s is not supported (see /ServiceProviderConfig)", seg[0])}
	}
	return routed{name: "unknown", err: errStatus(http.StatusNotFound, "no SCIM endpoint /%s", seg[0])}
}

// readObject reads and decodes a JSON object body, rejecting what Entra
// never sends: other media types, oversized or deeply nested bodies,
// invalid UTF-8, a member named twice, trailing data.
func (s *Server) readObject(w http.ResponseWriter, r *request) (map[string]any, error) {
	body, err := s.readBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodeObject(body)
}

// readBody reads a request body of a JSON media type, up to MaxBodyBytes.
func (s *Server) readBody(w http.ResponseWriter, r *request) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/scim+json" && mt != "application/json") {
			return nil, errStatus(http.StatusUnsupportedMediaType, "content type must be application/scim+json or application/json")
		}
	}
	bp := r.buffer()
	if n := r.ContentLength; n > 0 && n <= s.opts.MaxBodyBytes {
		// Room for the announced size (and the MinRead spare bytes ReadFrom
		// wants to see the end) instead of doubling: the limit below still
		// holds if the client lied.
		*bp = slices.Grow(*bp, int(n)+bytes.MinRead)
	}
	buf := bytes.NewBuffer(*bp)
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	*bp = buf.Bytes() // grown or not, the request gives it back
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errStatus(http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", s.opts.MaxBodyBytes)
		}
		return nil, scimerr.New(scimerr.InvalidSyntax, "cannot read request body")
	}
	return buf.Bytes(), nil
}

func decodeObject(body []byte) (map[string]any, error) {
	if !utf8.Valid(body) {
		return nil, scimerr.New(scimerr.InvalidSyntax, "request body is not valid UTF-8")
	}
	if esc := unpairedSurrogate(body); esc != "" {
		return nil, scimerr.New(scimerr.InvalidValue, "request body escapes half a UTF-16 surrogate pair (%s), which is no character", esc)
	}
	if err := scanMembers(body); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, scimerr.New(scimerr.InvalidSyntax, "request body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, scimerr.New(scimerr.InvalidSyntax, "unexpected data after the JSON object")
	}
	// Every key of a body is matched case-insensitively from here on
	// (attribute names, and the PatchOp's): two keys that differ only in
	// case are refused here, once, rather than applied in map order.
	if err := schema.DistinctNames(m); err != nil {
		return nil, err
	}
	return m, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"schemas":["`+uriError+`"],"status":"500","detail":"cannot encode response"}`)
	}
	writeRaw(w, status, b)
}

// contentType is the Content-Type header's value, shared by every
// response rather than made for each (Header.Set allocates a slice).
var contentType = []string{ContentType}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// audit records a write answered with err: one that was made (err nil),
// and one whose outcome is unknown. The latter is answered 503, which
// promises nothing, but etcd may still commit it when it has quorum again:
// without its record, a user would appear (and Entra's retried create get
// 409) with nothing in the trail to say who asked for it. A write refused
// with nothing written is not recorded, and neither is a PUT or PATCH that
// left the resource as it was (its handler does not call audit): a token
// holder could otherwise push the rest of the trail out with writes that
// change nothing. Only ids: no personal data, never a token.
func (s *Server) audit(r *request, op, resourceType, id string, err error) {
	rec := audit.SCIMWrite{Actor: r.actor, Op: op, ResourceType: resourceType, ID: id}
	switch {
	case err == nil:
	case errors.Is(err, store.ErrOutcomeUnknown):
		// The store's errors name no user and no token.
		rec.Outcome, rec.Error = "unknown", err.Error()
	default:
		return
	}
	s.opts.Audit.Record(rec)
}
