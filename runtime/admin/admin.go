// Package admin serves idrecon's admin API: a JSON API on its own listener,
// behind an admin token, to read the runtime state, see the plan and drift,
// trigger or pause reconciles, plan or apply an uploaded spec, edit
// spec-owned resources the way a console would (such edits are drift), take
// backups, and probe health.
package admin

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/internal/adminjson"
	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/bundle"
	"github.com/idrecon/idrecon/spec/redact"
)

// Reconciler is what the admin API needs of the reconciler.
type Reconciler interface {
	Status() reconcile.Status
	CurrentPlan(ctx context.Context) (*reconcile.Plan, error)
	Plan(ctx context.Context, desired *spec.Set) (*reconcile.Plan, error)
	Apply(ctx context.Context, desired *spec.Set) (*reconcile.Plan, error)
	Trigger()
	Suspend()
	Resume()
}

// Check is one readiness condition.
type Check struct {
	Name  string
	Ready func() (bool, string)
}

// Config configures the admin API. Store, Reconciler and Token are required.
type Config struct {
	Store      *store.Store
	Reconciler Reconciler
	// Token is the admin bearer token.
	Token  string
	Logger *slog.Logger
	// Audit records each edit and each other request that changes what the
	// daemon does or hands out its state, once made (default audit.Discard).
	Audit audit.Recorder
	// Source names what the daemon follows, for status and messages.
	Source string
	// SourceKind says what Source is: where a change goes instead of an
	// upload (apply's refusal) depends on it.
	SourceKind SourceKind
	// Push, when set, makes this a push-mode daemon: POST /v1/apply loads
	// and validates the uploaded spec, then hands its folder to Push, which
	// makes it the daemon's source and reconciles it. Without Push, apply is
	// refused: the source in git is the truth.
	Push func(ctx context.Context, dir string) (*reconcile.Plan, error)
	// UploadDir is where uploads are unpacked (default the system temp
	// dir); Push may move folders out of it, so keep it on Push's filesystem.
	UploadDir string
	// MaxUnpack bounds the unpacked size of an uploaded bundle (default
	// spec.DefaultMaxBytes); keep it equal to the loader's MaxBytes.
	MaxUnpack int64
	// Load turns an uploaded spec folder into a Set (default spec.Load).
	Load func(ctx context.Context, dir string) (*spec.Set, error)
	// Validate checks the documents an edit would leave in the runtime
	// (default spec.Validate with default options); pass the options Load uses.
	Validate func(docs []*spec.Document) (*spec.Set, error)
	// Checks gate /readyz and appear in /v1/status.
	Checks []Check
	// Backup writes a consistent snapshot of the state (GET /v1/backup).
	Backup func(w io.Writer) error
	// Gateways, when set, reports the front doors for status.
	Gateways func() []GatewayStatus
	// Replication, when set, reports the state shared with other daemons.
	Replication func() *ReplicationStatus
	// Provisioned, when set, reports what SCIM clients made the daemon
	// hold, against its bounds.
	Provisioned func() (scim.Provisioned, error)
	// Unauthenticated handlers mounted as is (e.g. "/metrics").
	Public map[string]http.Handler
	// Authenticated handlers mounted under /v1 (e.g. "/access/", "/users").
	// The path they see keeps the /v1 prefix stripped.
	Routes map[string]http.Handler
	// Suspend, when set, suspends (on) or resumes reconciliation instead of
	// the Reconciler's own Suspend and Resume: the daemon keeps the flag in
	// the state, so it survives a restart and reaches the leader of several
	// daemons.
	Suspend func(ctx context.Context, on bool) error
	// Request, when set, asks for a reconcile (POST /v1/reconcile, and
	// /v1/resume once resumed) instead of the Reconciler's Trigger, and
	// numbers the request (see reconcile.Status.Request): the daemon's is
	// the leader's, through etcd. Without it, a Reconciler with a Request
	// method (reconcile.Reconciler) numbers requests itself; with neither,
	// requests are not numbered.
	Request func(ctx context.Context) (uint64, error)
	// Impact, when set, adds the blast radius of access changes to plans of
	// uploaded specs.
	Impact func(ctx context.Context, p *reconcile.Plan, desired *spec.Set) (*access.Impact, error)
	Now    func() time.Time
}

// SourceKind is what a daemon follows; the zero value leaves it unsaid.
type SourceKind int

const (
	// SourceGit is a git repository: a change is committed and pushed.
	SourceGit SourceKind = iota + 1
	// SourceFolder is a local folder the daemon watches: a change is
	// saved in its files.
	SourceFolder
)

// Server is the admin API's http.Handler.
type Server struct {
	cfg       Config
	tokenHash [sha256.Size]byte
	mux       *http.ServeMux
	log       *slog.Logger
	// uploads holds a slot per upload being unpacked, loaded and planned.
	uploads chan struct{}
	// uploadWait bounds how long an upload waits for a slot.
	uploadWait time.Duration
}

// maxUploads bounds the uploads (POST /v1/plan, /v1/apply) handled at
// once. Each may unpack a spec of MaxUnpack bytes to disk and load it into
// memory: without a bound, one client sending many at once could exhaust the
// memory of the daemon, which serves SCIM and SAML too. Past it an upload
// waits its turn a while (plans from CI come in bursts), then is refused
// with a 503 and Retry-After.
const (
	maxUploads        = 2
	defaultUploadWait = 10 * time.Second
)

// MaxUpload bounds an uploaded spec bundle.
const MaxUpload = 32 << 20

// maxEdit bounds the body of a resource edit: one spec document.
const maxEdit = 1 << 20

// tooLarge reports whether err is a body cut off at its limit: the
// client's 413, not a malformed request.
func tooLarge(err error) bool {
	_, ok := errors.AsType[*http.MaxBytesError](err)
	return ok
}

// New returns the admin API for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Reconciler == nil {
		return nil, errors.New("admin: config needs Store and Reconciler")
	}
	if cfg.Token == "" {
		return nil, errors.New("admin: no admin token")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard
	}
	if cfg.Load == nil {
		cfg.Load = func(ctx context.Context, dir string) (*spec.Set, error) {
			return spec.Load(ctx, dir, spec.LoadOptions{})
		}
	}
	if cfg.Validate == nil {
		cfg.Validate = func(docs []*spec.Document) (*spec.Set, error) {
			return spec.Validate(docs, spec.LoadOptions{})
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Request == nil {
		switch rec := cfg.Reconciler.(type) {
		case interface{ Request() uint64 }:
			cfg.Request = func(context.Context) (uint64, error) { return rec.Request(), nil }
		default:
			cfg.Request = func(context.Context) (uint64, error) { rec.Trigger(); return 0, nil }
		}
	}
	s := &Server{cfg: cfg, tokenHash: sha256.Sum256([]byte(cfg.Token)), mux: http.NewServeMux(), log: cfg.Logger,
		uploads: make(chan struct{}, maxUploads), uploadWait: defaultUploadWait}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", s.readyz)
	for p, h := range cfg.Public {
		s.mux.Handle(p, h)
	}
	s.handle("GET /v1/status", s.status)
	s.handle("GET /v1/plan", s.currentPlan)
	s.handle("GET /v1/drift", s.drift)
	s.handle("POST /v1/plan", s.planUpload)
	s.handle("POST /v1/apply", s.applyUpload)
	s.handle("POST /v1/reconcile", s.trigger)
	s.handle("POST /v1/suspend", s.suspend)
	s.handle("POST /v1/resume", s.resume)
	s.handle("GET /v1/resources", s.listResources)
	s.handle("GET /v1/resources/{kind}", s.listResources)
	s.handle("GET /v1/resources/{kind}/{name}", s.getResource)
	s.handle("PUT /v1/resources/{kind}/{name}", s.putResource)
	s.handle("DELETE /v1/resources/{kind}/{name}", s.deleteResource)
	if cfg.Backup != nil {
		s.handle("GET /v1/backup", s.backup)
	}
	if _, ok := cfg.Reconciler.(Historian); ok {
		s.handle("GET /v1/history", s.history)
	}
	for p, h := range cfg.Routes {
		s.mux.Handle("/v1"+p, s.auth(http.StripPrefix("/v1", h)))
	}
	// Go's profiles, for measuring the daemon as it runs (go tool pprof
	// with the admin token); a profile shows code paths, never request data.
	s.mux.Handle("GET /debug/pprof/", s.auth(http.HandlerFunc(pprof.Index)))
	s.mux.Handle("GET /debug/pprof/profile", s.auth(http.HandlerFunc(pprof.Profile)))
	s.mux.Handle("GET /debug/pprof/trace", s.auth(http.HandlerFunc(pprof.Trace)))
	s.mux.Handle("GET /debug/pprof/symbol", s.auth(http.HandlerFunc(pprof.Symbol)))
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if private(r.URL.Path) {
		// The token first, before the router may answer a redirect:
		// without it, nobody learns which routes exist or which methods
		// they take.
		s.auth(http.HandlerFunc(s.route)).ServeHTTP(w, r)
		return
	}
	s.route(w, r)
}

// route serves r through the router, refusing first what it would
// redirect elsewhere.
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	if private(r.URL.Path) {
		// The router would redirect to the path with the segment resolved
		// away, and a client follows a redirect with the method and body
		// kept: a GET of the resource named ".." would answer the list of
		// all resources, a DELETE of a name whose "/" went unescaped would
		// delete another resource.
		switch escaped := r.URL.EscapedPath(); {
		case dotSegment(escaped):
			writeError(w, http.StatusBadRequest, "the path "+escaped+
				" has a . or .. segment, which would name another path; write a name . or .. escaped, as %2E or %2E%2E")
			return
		case strings.Contains(escaped, "//"):
			writeError(w, http.StatusBadRequest, "the path "+escaped+
				" has an empty segment (//), which would name another path; write a / in a name escaped, as %2F")
			return
		}
	}
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.unrouted(w, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// unrouted answers a request no route takes in the API's error JSON, with
// the status the router decides (404, or 405 and Allow), rather than
// net/http's plain text. For a private path, ServeHTTP asked for the token
// already.
func (s *Server) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := s.mux.Handler(r)
	var c statusCapture
	h.ServeHTTP(&c, r)
	for _, k := range []string{"Allow", "Location"} {
		if v := c.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	status := cmp.Or(c.status, http.StatusNotFound)
	writeError(w, status, strings.ToLower(http.StatusText(status))+": "+r.Method+" "+r.URL.Path)
}

// dotSegment reports whether the escaped path has a "." or ".." segment;
// an escaped one ("%2E") is a name, and no dot segment.
func dotSegment(escaped string) bool {
	return slices.ContainsFunc(strings.Split(escaped, "/"), func(seg string) bool { return seg == "." || seg == ".." })
}

// private reports whether p is, or the router would clean it into, a path
// below /v1 or /debug. The cleaned form counts too: "/x/../v1/status" was
// redirected without the token (telling anyone which routes exist), and a
// dot segment before /v1 escaped route's refusal of them.
func private(p string) bool {
	c := path.Clean(p)
	return under(p, "/v1") || under(p, "/debug") || under(c, "/v1") || under(c, "/debug")
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// statusCapture keeps the status and headers of the router's own 404, 405
// or redirect and drops its plain-text body.
type statusCapture struct {
	header http.Header
	status int
}

func (c *statusCapture) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *statusCapture) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
}

func (c *statusCapture) Write(p []byte) (int, error) {
	c.WriteHeader(http.StatusOK)
	return len(p), nil
}

// Handle mounts h at pattern without the admin token check, for a handler
// that authenticates its own requests (the console's browser sessions).
// Call it before serving.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// handle serves pattern with fn behind the token check; what fn returns
// is answered by writeErr.
func (s *Server) handle(pattern string, fn func(http.ResponseWriter, *http.Request) error) {
	s.mux.Handle(pattern, s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			writeErr(w, err)
		}
	})))
}

// auth admits requests that carry the admin token.
func (s *Server) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idrecon-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries the admin token.
func (s *Server) authorized(r *http.Request) bool {
	tok, ok := bearer(r.Header.Get("Authorization"))
	// Hashes of equal length, compared in constant time: neither the
	// token's length nor how much of it matched shows in the timing.
	sum := sha256.Sum256([]byte(tok))
	return ok && subtle.ConstantTimeCompare(sum[:], s.tokenHash[:]) == 1
}

// bearer returns the token of an Authorization header of the Bearer
// scheme. The scheme is case-insensitive (RFC 9110 §11.1) and one or more
// spaces separate it from the token (RFC 6750); "bearer t" from a hand-typed
// curl is the same request as "Bearer t". The token is only ever taken from
// this header, never from the query, which ends up in logs and histories.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	tok = strings.TrimLeft(tok, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return "", false
	}
	return tok, true
}

// Error is the admin API's error body.
type Error struct {
	Error string `json:"error"`
	// Details lists spec errors (file:line:column field: message), one each.
	Details []string `json:"details,omitempty"`
	// Problems are the same spec errors with their parts apart, so that a
	// client reports them as it reports the errors of a spec it loaded
	// itself (the CLI's --output json), without parsing Details.
	Problems []Problem `json:"problems,omitempty"`
}

// Problem is one spec error: where it is (File relative to the spec's
// root, as the loader names it), the field and what is wrong. Its JSON is
// the "problems" of the CLI's --output json.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	adminjson.Write(w, status, v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	adminjson.WriteError(w, status, msg)
}

// writeSpecError answers status with each spec error in Details, and a
// spec past a limit of the load as one, as the CLI shows a local load's.
func writeSpecError(w http.ResponseWriter, status int, err error) {
	var list spec.ErrorList
	var limit *spec.LimitError
	body := Error{Error: err.Error()}
	switch {
	case errors.As(err, &list):
		body.Error = fmt.Sprintf("the spec has %d error(s)", len(list))
		for _, e := range list {
			body.Details = append(body.Details, e.Error())
			body.Problems = append(body.Problems, Problem{File: e.Pos.File, Line: e.Pos.Line, Column: e.Pos.Column, Field: e.Field, Message: e.Msg})
		}
	case errors.As(err, &limit):
		body.Details = []string{limit.Error()}
		body.Problems = []Problem{{File: limit.File, Line: limit.Line, Message: limit.Error()}}
	}
	writeJSON(w, status, body)
}

func (s *Server) checks() (bool, map[string]string) { return Readiness(s.cfg.Checks) }

// Readiness runs checks and reports whether all pass, with each one's
// state as /readyz and /v1/status show it ("ready", "ready (why)", "not
// ready: why"). The daemon asks the same before it tells systemd it is up.
func Readiness(checks []Check) (bool, map[string]string) {
	ready := true
	out := map[string]string{}
	for _, c := range checks {
		ok, why := c.Ready()
		switch {
		case ok && why != "":
			out[c.Name] = "ready (" + why + ")"
		case ok:
			out[c.Name] = "ready"
		default:
			out[c.Name] = "not ready: " + why
			ready = false
		}
	}
	return ready, out
}

// readyz answers 200 when every check passes, else 503, with each
// component's state. It needs no token, for load balancers and probes; the
// reasons (a reconcile error naming a spec file and line, the IdP, the
// SCIM path) only go to a request with the token, as in /v1/status.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ready, detail := s.checks()
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	// It differs with the token and changes by the moment: a cache
	// between a dashboard and the daemon keeps neither answer.
	w.Header().Set("Cache-Control", "no-store")
	if !s.authorized(r) {
		for name, state := range detail {
			detail[name] = "not ready"
			if strings.HasPrefix(state, "ready") {
				detail[name] = "ready"
			}
		}
	}
	writeJSON(w, status, detail)
}

// StatusResponse is GET /v1/status.
type StatusResponse struct {
	reconcile.Status
	Ready      bool              `json:"ready"`
	Components map[string]string `json:"components"`
	Mode       string            `json:"mode"`
	// Renames are assignments whose group was renamed in Entra: drift the
	// spec should follow (access keeps following the group).
	Renames []access.GroupRename `json:"renames,omitempty"`
	// Gateways are the front doors the spec declares.
	Gateways []GatewayStatus `json:"gateways,omitempty"`
	// Replication is set when the state is shared through etcd.
	Replication *ReplicationStatus `json:"replication,omitempty"`
	// Provisioned counts the users, groups and memberships SCIM clients
	// made the daemon hold, with the bounds on them.
	Provisioned *scim.Provisioned `json:"provisioned,omitempty"`
}

// ReplicationStatus describes a state shared by several daemons.
type ReplicationStatus struct {
	Backend   string   `json:"backend"` // "etcd"
	Endpoints []string `json:"endpoints"`
	// Revision is the etcd revision this daemon's mirror holds.
	Revision int64 `json:"revision"`
	// Replica is this daemon's name; Leader the one that applies the spec
	// ("" while there is none).
	Replica string `json:"replica"`
	Leader  string `json:"leader"`
	// Unreachable are the endpoints whose member did not answer: the
	// cluster may go on without one, but one loss more can take its
	// quorum.
	Unreachable []string `json:"unreachable,omitempty"`
}

// GatewayStatus is one Gateway as it serves: its paths, whether it is
// serving and why not, and its counters since it was last (re)built.
type GatewayStatus struct {
	Name           string            `json:"name"`
	PathPrefix     string            `json:"pathPrefix"`
	Upstream       string            `json:"upstream,omitempty"`
	Serving        bool              `json:"serving"`
	Error          string            `json:"error,omitempty"`
	Requests       map[string]uint64 `json:"requests,omitempty"`
	Refusals       map[string]uint64 `json:"refusals,omitempty"`
	UpstreamErrors uint64            `json:"upstreamErrors"`
}

// Status is what GET /v1/status answers: the reconciler's status with
// readiness, mode, renames, Gateways and replication.
func (s *Server) Status() (StatusResponse, error) {
	ready, comps := s.checks()
	mode := "pull"
	if s.cfg.Push != nil {
		mode = "push"
	}
	renames, err := access.Renames(s.cfg.Store.Read())
	if err != nil {
		return StatusResponse{}, err
	}
	resp := StatusResponse{Status: s.cfg.Reconciler.Status(), Ready: ready, Components: comps, Mode: mode, Renames: renames}
	if s.cfg.Gateways != nil {
		resp.Gateways = s.cfg.Gateways()
		for i := range resp.Gateways {
			resp.Gateways[i].Upstream = redact.URL(resp.Gateways[i].Upstream)
		}
	}
	if s.cfg.Replication != nil {
		resp.Replication = s.cfg.Replication()
	}
	if s.cfg.Provisioned != nil {
		p, err := s.cfg.Provisioned()
		if err != nil {
			return StatusResponse{}, err
		}
		resp.Provisioned = &p
	}
	return resp, nil
}

func (s *Server) status(w http.ResponseWriter, _ *http.Request) error {
	resp, err := s.Status()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Historian is what a Reconciler with a sync history also provides
// (GET /v1/history).
type Historian interface {
	History() []reconcile.HistoryEntry
}

func (s *Server) history(w http.ResponseWriter, _ *http.Request) error {
	h := s.cfg.Reconciler.(Historian).History()
	if h == nil {
		h = []reconcile.HistoryEntry{}
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

func (s *Server) currentPlan(w http.ResponseWriter, r *http.Request) error {
	p, err := s.cfg.Reconciler.CurrentPlan(r.Context())
	if errors.Is(err, reconcile.ErrNoRevision) {
		return errorf(http.StatusConflict, "no spec revision loaded yet")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) drift(w http.ResponseWriter, _ *http.Request) error {
	st := s.cfg.Reconciler.Status()
	drift := st.Drift
	if drift == nil {
		drift = []reconcile.Change{}
	}
	writeJSON(w, http.StatusOK, drift)
	return nil
}

// PlanResponse is what POST /v1/plan and /v1/apply answer.
type PlanResponse struct {
	Plan *reconcile.Plan `json:"plan"`
	// Impact is the access blast radius against the live users and groups.
	Impact *access.Impact `json:"impact,omitempty"`
	// Warnings are the loader's (certificates about to expire).
	Warnings []string `json:"warnings,omitempty"`
}

// uploadSlot takes a slot for an upload, waiting at most s.uploadWait;
// the caller calls release once done with the upload. Past the wait it
// answers the 503 itself.
func (s *Server) uploadSlot(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	release = func() { <-s.uploads }
	select {
	case s.uploads <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(s.uploadWait)
	defer t.Stop()
	select {
	case s.uploads <- struct{}{}:
		return release, nil
	case <-r.Context().Done():
		return nil, r.Context().Err()
	case <-t.C:
		w.Header().Set("Retry-After", "5")
		return nil, errorf(http.StatusServiceUnavailable, "%d spec uploads are being planned or applied already; retry later", maxUploads)
	}
}

// loadUpload unpacks an uploaded spec bundle into a new folder under
// UploadDir and loads it. The caller removes the folder.
func (s *Server) loadUpload(w http.ResponseWriter, r *http.Request) (string, *spec.Set, error) {
	dir, err := os.MkdirTemp(s.cfg.UploadDir, "idrecon-upload-")
	if err != nil {
		return "", nil, err
	}
	body := bufio.NewReader(http.MaxBytesReader(w, r.Body, MaxUpload))
	if _, err := body.Peek(1); errors.Is(err, io.EOF) {
		// The unpacker would say only "EOF".
		return dir, nil, errorf(http.StatusBadRequest, "empty body: send the spec bundle, a gzip-compressed tar of the spec folder (idrecon plan and apply send one)")
	}
	if err := bundle.Unpack(body, dir, s.cfg.MaxUnpack); err != nil {
		var limit *spec.LimitError
		switch {
		case tooLarge(err):
			return dir, nil, errorf(http.StatusRequestEntityTooLarge, "spec bundle larger than %d MiB", MaxUpload>>20)
		case errors.As(err, &limit):
			// Past the spec's own size limit: refused as the loader
			// refuses such a folder, the limit named as its problem.
			return dir, nil, &specError{status: http.StatusUnprocessableEntity, err: err}
		case errors.Is(err, bundle.ErrTooLarge):
			return dir, nil, errorf(http.StatusRequestEntityTooLarge, "%v", err)
		}
		return dir, nil, errorf(http.StatusBadRequest, "bad spec bundle: %v", err)
	}
	set, err := s.cfg.Load(r.Context(), dir)
	if err != nil {
		return dir, nil, &specError{status: http.StatusUnprocessableEntity, err: err}
	}
	return dir, set, nil
}

func (s *Server) planUpload(w http.ResponseWriter, r *http.Request) error {
	release, err := s.uploadSlot(w, r)
	if err != nil {
		return err
	}
	defer release()
	dir, set, err := s.loadUpload(w, r)
	defer os.RemoveAll(dir)
	if err != nil {
		return err
	}
	p, err := s.cfg.Reconciler.Plan(r.Context(), set)
	if err != nil {
		return err
	}
	resp := PlanResponse{Plan: p, Warnings: set.Warnings}
	if s.cfg.Reconciler.Status().Suspended {
		// The plan is what a reconcile would do; a suspended daemon does
		// nothing until resumed, and a push to it is refused.
		resp.Warnings = append(slices.Clone(resp.Warnings), "the daemon is suspended: nothing of this plan is applied until 'idrecon resume'")
	}
	if s.cfg.Impact != nil {
		if resp.Impact, err = s.cfg.Impact(r.Context(), p, set); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

func (s *Server) applyUpload(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Push == nil {
		return errorf(http.StatusConflict, "%s; apply is for daemons started without a source", s.changeGoes())
	}
	release, err := s.uploadSlot(w, r)
	if err != nil {
		return err
	}
	defer release()
	dir, set, err := s.loadUpload(w, r)
	defer os.RemoveAll(dir)
	if err != nil {
		return err
	}
	p, err := s.cfg.Push(r.Context(), dir)
	s.acted("apply", set.Revision, err)
	if errors.Is(err, spec.ErrInvalid) {
		return &specError{status: http.StatusUnprocessableEntity, err: err}
	}
	if errors.Is(err, reconcile.ErrSuspended) {
		return errorf(http.StatusConflict, "the daemon is suspended: the spec was neither pushed nor applied; run 'idrecon resume' first")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, PlanResponse{Plan: p, Warnings: set.Warnings})
	return nil
}

// adminActor is who the admin API acts for: the holder of its one token.
const adminActor = "admin"

// acted records the admin action made, or failed with err.
func (s *Server) acted(action, revision string, err error) {
	e := audit.AdminAction{Actor: adminActor, Action: action, Revision: revision}
	if err != nil {
		e.Outcome, e.Error = "failed", err.Error()
	}
	s.cfg.Audit.Record(e)
}

// changeGoes tells where a change to the spec goes on a daemon that
// follows a source, which takes no upload.
func (s *Server) changeGoes() string {
	const now = "'idrecon reconcile' converges at once"
	switch s.cfg.SourceKind {
	case SourceGit:
		repo := "a git repository"
		if s.cfg.Source != "" {
			repo = "the git repository " + s.cfg.Source
		}
		return fmt.Sprintf("this daemon follows %s: commit the change and push it there; "+
			"the next reconcile applies it (%s)", repo, now)
	case SourceFolder:
		// Saving is all it takes: the watch applies it, no commit, no
		// reconcile to ask for.
		if s.cfg.Source == "" {
			return "this daemon watches a local folder: save the change in the spec files there, and it applies what is saved"
		}
		return fmt.Sprintf("this daemon watches the folder %s: save the change in the spec files there, "+
			"and it applies what is saved", s.cfg.Source)
	}
	return fmt.Sprintf("this daemon follows %s: make the change there, committed and pushed to a git repository "+
		"or saved in a watched folder (%s)", cmp.Or(s.cfg.Source, "a source"), now)
}

// Requested is in the answers of POST /v1/reconcile and /v1/resume: the
// number of the reconcile request made. Once GET /v1/status shows a
// "request" at least that high, a reconcile that began after the request
// has ended, and the status tells how. It is 0, and absent, when the
// daemon does not number requests.
type Requested struct {
	Request uint64 `json:"request,omitempty"`
}

func (s *Server) trigger(w http.ResponseWriter, r *http.Request) error {
	n, err := s.cfg.Request(r.Context())
	s.acted("reconcile", "", err)
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	writeJSON(w, http.StatusAccepted, struct {
		Result string `json:"result"`
		Requested
	}{"reconcile triggered", Requested{n}})
	return nil
}

func (s *Server) suspend(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Suspend != nil {
		if err := s.cfg.Suspend(r.Context(), true); err != nil {
			s.acted("suspend", "", err)
			return fmt.Errorf("suspend: %w", err)
		}
	} else {
		s.cfg.Reconciler.Suspend()
	}
	s.acted("suspend", "", nil)
	s.log.Info("reconciliation suspended", "by", "admin-api")
	writeJSON(w, http.StatusOK, map[string]bool{"suspended": true})
	return nil
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Suspend != nil {
		if err := s.cfg.Suspend(r.Context(), false); err != nil {
			s.acted("resume", "", err)
			return fmt.Errorf("resume: %w", err)
		}
	} else {
		s.cfg.Reconciler.Resume()
	}
	// Resumed whether or not the request below is made: the next
	// interval's reconcile applies.
	s.acted("resume", "", nil)
	s.log.Info("reconciliation resumed", "by", "admin-api")
	// Requested once the resume is stored, so that the reconcile that
	// answers the request sees it and applies.
	n, err := s.cfg.Request(r.Context())
	if err != nil {
		return fmt.Errorf("resumed, but the reconcile request failed (the next interval's reconcile applies): %w", err)
	}
	writeJSON(w, http.StatusOK, struct {
		Suspended bool `json:"suspended"`
		Requested
	}{false, Requested{n}})
	return nil
}

// Resource is a spec-owned resource as the admin API shows it.
type Resource struct {
	Kind       string    `json:"kind"`
	Name       string    `json:"name"`
	Spec       any       `json:"spec"`
	Revision   string    `json:"revision,omitempty"`
	ModifiedBy string    `json:"modifiedBy,omitempty"`
	Modified   time.Time `json:"modified,omitzero"`
}

func view(r *store.Resource) Resource {
	return Resource{Kind: r.Kind, Name: r.Name, Spec: redactSpec(r.Spec), Revision: r.Revision, ModifiedBy: r.ModifiedBy, Modified: r.Modified}
}

// redactSpec drops derived fields before showing a spec. A
// certificate keeps its pem: it is the document's own field (public, a
// certificate holds no key), which a PUT of what GET showed, or an export,
// needs.
func redactSpec(v any) any {
	switch c := v.(type) {
	case *spec.Certificate:
		cp := *c
		cp.DER, cp.Chain = nil, nil
		return &cp
	case *spec.SamlServiceProvider:
		// URLs stay whole, unlike in status: a resource read here is
		// written back (PUT) or exported as the spec (idrecon export),
		// and the admin token that reads it may change it anyway.
		cp := *c
		cp.IDP.MetadataXML = nil
		return &cp
	case *spec.ScimProvisioning:
		// A token read from a reference shows the reference alone, as it
		// was written: the loader's hash next to it is a document the
		// loader refuses (a PUT of it, an export).
		cp := *c
		cp.Tokens = slices.Clone(c.Tokens)
		for i := range cp.Tokens {
			if cp.Tokens[i].ValueFrom != nil {
				cp.Tokens[i].SHA256 = ""
			}
		}
		return &cp
	}
	return v
}

// unknownKind is the 404 for a kind no spec document has, or nil: a
// misspelled kind answered "not found" read as a missing resource.
func unknownKind(kind string) error {
	if _, known := spec.NewSpec(kind); !known {
		return errorf(http.StatusNotFound, "unknown kind %q", kind)
	}
	return nil
}

func (s *Server) listResources(w http.ResponseWriter, r *http.Request) error {
	kind := r.PathValue("kind")
	if kind != "" {
		if err := unknownKind(kind); err != nil {
			return err
		}
	}
	res, err := s.cfg.Store.Read().Resources(kind)
	if err != nil {
		return err
	}
	out := make([]Resource, 0, len(res))
	for _, r := range res {
		out = append(out, view(r))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getResource(w http.ResponseWriter, r *http.Request) error {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := unknownKind(kind); err != nil {
		return err
	}
	res, err := s.cfg.Store.Read().Resource(kind, name)
	if err != nil {
		return err
	}
	if res == nil {
		return errorf(http.StatusNotFound, "%s/%s not found", kind, name)
	}
	writeJSON(w, http.StatusOK, view(res))
	return nil
}

var errBuiltin = errors.New("built-in roles cannot be changed")

// validateEdit validates the resources of tx with edit in place of the
// resource of its kind and name, as one spec: references cross documents.
// It returns the edit as the loader resolved it (defaults filled in).
func (s *Server) validateEdit(tx *store.Txn, edit *store.Resource) (any, error) {
	set, err := s.validateRuntime(tx, edit.Kind, edit.Name, edit)
	if err != nil {
		return nil, err
	}
	return set.Get(edit.Kind, edit.Name).Spec, nil
}

// validateRuntime validates the resources of tx without the one of kind
// and name, plus edit when it is not nil, as one spec.
func (s *Server) validateRuntime(tx *store.Txn, kind, name string, edit *store.Resource) (*spec.Set, error) {
	current, err := tx.Resources("")
	if err != nil {
		return nil, err
	}
	docs := make([]*spec.Document, 0, len(current)+1)
	add := func(r *store.Resource) {
		docs = append(docs, &spec.Document{
			APIVersion: spec.APIVersion, Kind: r.Kind, Metadata: spec.Metadata{Name: r.Name}, Spec: r.Spec,
			Pos: spec.Position{File: r.Kind + "/" + r.Name},
		})
	}
	for _, r := range current {
		if r.Kind != kind || r.Name != name {
			add(standIn(r))
		}
	}
	if edit == nil {
		set, err := s.cfg.Validate(docs)
		if err != nil {
			// What is left refers to what would go: a conflict with
			// the rest of the runtime, named in Details.
			return nil, &specError{status: http.StatusConflict, err: err}
		}
		return set, nil
	}
	add(edit)
	set, err := s.cfg.Validate(docs)
	if err != nil {
		// The edit, not the runtime, is at fault: 400, as a bad body is.
		return nil, &specError{status: http.StatusBadRequest, err: err}
	}
	return set, nil
}

// standIn is r as Validate needs it to take r as resolved. A Gateway's
// shared secret is never persisted: after a restart the runtime holds its
// hash but not the value until the next apply, and Validate, given no
// value, reads the secret again, which for a file relative to the spec repo
// it cannot. Every edit, of anything, was refused for it. The runtime's
// resource was validated when it was stored; what an edit needs of it is
// its references, so a copy carries a placeholder value. Only the edit's
// own resource is taken from the Set Validate returns, never this one.
func standIn(r *store.Resource) *store.Resource {
	g, ok := r.Spec.(*spec.Gateway)
	if !ok || g.SharedSecret == nil || g.SharedSecret.Value != "" || g.SharedSecret.SHA256 == "" {
		return r
	}
	gc, sc := *g, *g.SharedSecret
	sc.Value = "resolved-before-the-restart"
	gc.SharedSecret = &sc
	cp := *r
	cp.Spec = &gc
	return &cp
}

// putResource stores a resource the way a console edit would, once the
// spec's validation accepts the runtime with it. The next reconcile sees
// it as drift and reports (and by default corrects) it.
func (s *Server) putResource(w http.ResponseWriter, r *http.Request) error {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := unknownKind(kind); err != nil {
		return err
	}
	v, _ := spec.NewSpec(kind)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEdit))
	if err != nil {
		if tooLarge(err) {
			return errorf(http.StatusRequestEntityTooLarge, "%s spec larger than %d MiB", kind, maxEdit>>20)
		}
		return errorf(http.StatusBadRequest, "bad %s spec: %v", kind, err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		// The decoder would say only "EOF".
		return errorf(http.StatusBadRequest, "bad %s spec: the body is empty; send the resource's spec as one JSON object", kind)
	}
	// encoding/json keeps the last of a key written twice and drops the
	// other; the loader refuses such a document, and so does an edit.
	if key := duplicateKey(body); key != "" {
		return errorf(http.StatusBadRequest, "bad %s spec: an object has the key %q twice (keys are matched ignoring case)", kind, key)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errorf(http.StatusBadRequest, "bad %s spec: %v", kind, err)
	}
	// One JSON value, as a spec file is one document: anything after it is
	// a mistake to report, not to drop.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errorf(http.StatusBadRequest, "bad %s spec: data after the JSON object", kind)
	}
	if field := loaderOnly(v); field != "" {
		return errorf(http.StatusBadRequest, "bad %s spec: %s is read by the loader, not written in a spec document; leave it out", kind, field)
	}
	switch c := v.(type) {
	case *spec.Role:
		c.Builtin = false
	case *spec.ScimProvisioning:
		// A token's sha256 next to its valueFrom is what the loader
		// resolved (GET shows it, so a GET-then-PUT sends it back);
		// Validate would take it as read. It comes from the runtime's
		// resource (keepResolved) or is resolved again from valueFrom,
		// never from the body.
		for i := range c.Tokens {
			if c.Tokens[i].ValueFrom != nil {
				c.Tokens[i].SHA256 = ""
			}
		}
	case *spec.Certificate:
		// Validate takes a key fingerprint as proof that the key was read
		// and matched; only the loader may say so. From a body it would
		// skip reading privateKeyFrom, accept a key that does not match
		// (or does not exist), and store the certificate without its key.
		// The chain, too, is the loader's to read from the PEM or file.
		c.KeyFingerprint, c.PrivateKey, c.Chain = "", nil, nil
	}
	err = s.cfg.Store.Update(r.Context(), func(tx *store.Txn) error {
		old, err := tx.Resource(kind, name)
		if err != nil {
			return err
		}
		if old != nil {
			if role, ok := old.Spec.(*spec.Role); ok && role.Builtin {
				return errBuiltin
			}
			keepResolved(v, old.Spec)
		}
		var oldSpec any
		if old != nil {
			oldSpec = old.Spec
		}
		at := spec.Position{File: kind + "/" + name}
		if err := keepRepoSecret(at, v, oldSpec); err != nil {
			return err
		}
		edit := &store.Resource{Kind: kind, Name: name, Spec: v, ModifiedBy: adminActor, Modified: s.cfg.Now()}
		if edit.Spec, err = s.validateEdit(tx, edit); err != nil {
			return err
		}
		if err := checkKeptKey(at, edit.Spec); err != nil {
			return err
		}
		return tx.Insert(store.TableResources, edit)
	})
	if err != nil {
		return err
	}
	s.cfg.Audit.Record(audit.AdminEdit{Op: "put", Kind: kind, Name: name})
	writeJSON(w, http.StatusOK, map[string]string{"result": "stored; the next reconcile reports it as drift"})
	return nil
}

// duplicateKey returns a key that one object of the JSON data has twice,
// as encoding/json matches keys to fields (ignoring case), or "" when none
// has, or when data is no valid JSON (decoding it says what is wrong). It
// walks the tokens without recursion: a body deeply nested is no deep
// stack.
func duplicateKey(data []byte) string {
	type level struct {
		keys   map[string]struct{} // nil for a list
		keyNow bool                // an object's next token is a key
	}
	var stack []level
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].keys != nil {
			stack[n-1].keyNow = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return ""
		}
		if n := len(stack); n > 0 && stack[n-1].keyNow {
			key, ok := tok.(string)
			if !ok {
				// The object's end.
				stack = stack[:n-1]
				valueDone()
				continue
			}
			folded := foldKey(key)
			if _, dup := stack[n-1].keys[folded]; dup {
				return key
			}
			stack[n-1].keys[folded] = struct{}{}
			stack[n-1].keyNow = false
			continue
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, level{keys: map[string]struct{}{}, keyNow: true})
		case json.Delim('['):
			stack = append(stack, level{})
		case json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
		if len(stack) == 0 {
			return ""
		}
	}
}

// foldKey maps keys that strings.EqualFold (and so encoding/json) takes
// for the same to one string: each rune to the least of its case folds.
func foldKey(s string) string {
	return strings.Map(func(r rune) rune {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		return least
	}, s)
}

// loaderOnly names a field of v that only the loader fills in from a file
// (never shown by GET, so never part of a round trip), or returns "".
// Validate takes such a field as read: from a body, a certificate's DER
// stood in for a file nobody read, and IdP metadata for the metadataFile
// or metadataURL it claims to come from (the SAML server uses it and never
// fetches the URL).
func loaderOnly(v any) string {
	switch c := v.(type) {
	case *spec.Certificate:
		if c.DER != nil {
			return "spec.der"
		}
	case *spec.SamlServiceProvider:
		if c.IDP.MetadataXML != nil {
			return "spec.idp.metadataXML"
		}
	}
	return ""
}

// keepResolved gives edit what the loader resolved from a file or secret
// that old, as the runtime holds it, names too. Validate cannot read a file
// relative to the spec repo again (there is none behind an edit) and takes
// what it is given as read; coming from the runtime, not the body, it is
// what the loader read.
func keepResolved(edit, old any) {
	switch e := edit.(type) {
	case *spec.ScimProvisioning:
		o, ok := old.(*spec.ScimProvisioning)
		if !ok {
			return
		}
		for i := range e.Tokens {
			t := &e.Tokens[i]
			for _, ot := range o.Tokens {
				if t.ValueFrom != nil && ot.ValueFrom != nil && *t.ValueFrom == *ot.ValueFrom {
					t.SHA256 = ot.SHA256
					break
				}
			}
		}
	case *spec.Certificate:
		if o, ok := old.(*spec.Certificate); ok && e.File != "" && e.PEM == "" && e.File == o.File {
			e.DER, e.Chain = o.DER, o.Chain
		}
	case *spec.SamlServiceProvider:
		if o, ok := old.(*spec.SamlServiceProvider); ok && e.IDP.MetadataFile != "" && e.IDP.MetadataFile == o.IDP.MetadataFile {
			e.IDP.MetadataXML = o.IDP.MetadataXML
		}
	}
}

// repoFile is the path of v when it names a file relative to the spec
// repo, else "".
func repoFile(v *spec.ValueFrom) string {
	if v == nil || v.Env != "" || v.File == "" || filepath.IsAbs(v.File) {
		return ""
	}
	return v.File
}

// keepRepoSecret gives edit, a Certificate whose private key or a Gateway
// whose shared secret is a file relative to the spec repo, what the
// loader read from that file, which the runtime's resource old holds.
// Validate cannot read such a file (an edit has no repo behind it). It
// refuses, as a 400 naming the field and saying why, an edit whose file
// the runtime holds nothing of: a new reference, a changed one, or one not
// resolved since the daemon restarted (neither is persisted). A Certificate
// keeps its key only for the same usage, which the key was checked for;
// checkKeptKey checks that it still matches the certificate.
func keepRepoSecret(at spec.Position, edit, old any) error {
	refuse := func(field, file, why string) error {
		return &specError{status: http.StatusBadRequest, err: spec.ErrorList{{Pos: at, Field: field,
			Msg: fmt.Sprintf("%q is a file relative to the spec repo, which an edit cannot read, and %s; "+
				"commit the change to the spec repo, or reference the value with env or an absolute file path", file, why)}}}
	}
	const restarted = "the runtime does not hold what was read from it: it is not persisted, and has not been read again since the daemon restarted (the next apply of the spec reads it)"
	switch e := edit.(type) {
	case *spec.Certificate:
		file := repoFile(e.PrivateKeyFrom)
		if file == "" {
			return nil
		}
		const field = "spec.privateKeyFrom.file"
		o, _ := old.(*spec.Certificate)
		switch {
		case o == nil || o.PrivateKeyFrom == nil || *o.PrivateKeyFrom != *e.PrivateKeyFrom:
			return refuse(field, file, "the runtime's certificate does not reference it")
		case o.Usage != e.Usage:
			return refuse(field, file, "the key read from it was checked for usage "+o.Usage+", not "+e.Usage)
		case o.PrivateKey == nil || o.KeyFingerprint == "":
			return refuse(field, file, restarted)
		}
		e.PrivateKey, e.KeyFingerprint = o.PrivateKey, o.KeyFingerprint
	case *spec.Gateway:
		if e.SharedSecret == nil {
			return nil
		}
		file := repoFile(e.SharedSecret.ValueFrom)
		if file == "" {
			return nil
		}
		const field = "spec.sharedSecret.valueFrom.file"
		o, _ := old.(*spec.Gateway)
		switch {
		case o == nil || o.SharedSecret == nil || o.SharedSecret.ValueFrom == nil || *o.SharedSecret.ValueFrom != *e.SharedSecret.ValueFrom:
			return refuse(field, file, "the runtime's Gateway does not reference it")
		case o.SharedSecret.Value == "":
			return refuse(field, file, restarted)
		}
		e.SharedSecret.Value, e.SharedSecret.SHA256 = o.SharedSecret.Value, o.SharedSecret.SHA256
	}
	return nil
}

// checkKeptKey refuses a validated Certificate edit whose key, kept by
// keepRepoSecret, does not match its certificate: Validate takes a kept
// key as checked, and the edit may have changed the certificate.
func checkKeptKey(at spec.Position, v any) error {
	c, ok := v.(*spec.Certificate)
	if !ok || c.PrivateKey == nil || repoFile(c.PrivateKeyFrom) == "" {
		return nil
	}
	cert, err := x509.ParseCertificate(c.DER)
	if err == nil {
		if pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pub.Equal(c.PrivateKey.Public()) {
			return nil
		}
	}
	return &specError{status: http.StatusBadRequest, err: spec.ErrorList{{Pos: at, Field: "spec.privateKeyFrom.file",
		Msg: fmt.Sprintf("the private key read from %q when the spec was loaded does not match the certificate", c.PrivateKeyFrom.File)}}}
}

func (s *Server) deleteResource(w http.ResponseWriter, r *http.Request) error {
	kind, name := r.PathValue("kind"), r.PathValue("name")
	if err := unknownKind(kind); err != nil {
		return err
	}
	found := false
	err := s.cfg.Store.Update(r.Context(), func(tx *store.Txn) error {
		old, err := tx.Resource(kind, name)
		if err != nil || old == nil {
			found = false
			return err
		}
		if role, ok := old.Spec.(*spec.Role); ok && role.Builtin {
			return errBuiltin
		}
		found = true
		// A delete is an edit too: what stays must still be a spec the
		// loader accepts (no reference to what goes), or every later edit
		// is refused for it.
		if _, err := s.validateRuntime(tx, old.Kind, old.Name, nil); err != nil {
			return err
		}
		return tx.Delete(store.TableResources, old)
	})
	switch {
	case err != nil:
		return err
	case !found:
		return errorf(http.StatusNotFound, "%s/%s not found", kind, name)
	}
	s.cfg.Audit.Record(audit.AdminEdit{Op: "delete", Kind: kind, Name: name})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) backup(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="idrecon-backup"`)
	if r.Method == http.MethodHead {
		// The router hands HEAD to this GET route; a snapshot nobody
		// receives would cost a whole backup's work and be put on record
		// as one that left the daemon.
		return nil
	}
	bw := &backupWriter{ResponseWriter: w}
	err := s.cfg.Backup(bw)
	// Users, groups and credential hashes leave the daemon: who took them
	// is asked as often as who changed them, and a backup cut off after it
	// sent some took part of them.
	switch {
	case err == nil:
		s.acted("backup", "", nil)
	case bw.wrote:
		s.cfg.Audit.Record(audit.AdminAction{Actor: adminActor, Action: "backup", Outcome: "partly", Error: err.Error()})
	default:
		s.acted("backup", "", err)
	}
	switch {
	case err == nil:
		return nil
	case !bw.wrote:
		// Nothing sent yet: the failure can still be told as one.
		w.Header().Del("Content-Disposition")
		return fmt.Errorf("backup: %w", err)
	}
	// The 200 is gone. Ending the body normally would hand the client a
	// truncated snapshot that looks whole; breaking the connection makes
	// the download itself fail.
	s.log.Error("backup failed midway; connection aborted", "err", err)
	panic(http.ErrAbortHandler)
}

// backupWriter notes whether a backup sent anything. It stays an
// http.ResponseWriter (Backup may lift the write deadline through
// http.NewResponseController, which finds the server's through Unwrap).
type backupWriter struct {
	http.ResponseWriter
	wrote bool
}

func (b *backupWriter) Write(p []byte) (int, error) {
	b.wrote = b.wrote || len(p) > 0
	return b.ResponseWriter.Write(p)
}

func (b *backupWriter) Flush() {
	b.wrote = true
	http.NewResponseController(b.ResponseWriter).Flush()
}

func (b *backupWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }
