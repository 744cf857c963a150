// Package daemon assembles idrecon's running parts — the durable runtime
// store, the SCIM and SAML servers, the admin API, the reconciler with its
// source, metrics and the audit log — and runs them until the context ends.
package daemon

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/admin/console"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/sdnotify"
	"github.com/idrecon/idrecon/runtime/metrics"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/scim"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
	"github.com/idrecon/idrecon/runtime/tlscert"
	"github.com/idrecon/idrecon/spec"
)

// Config configures the daemon. With only an AdminToken set it runs an
// in-memory, push-mode daemon on the default addresses.
type Config struct {
	// Where the spec comes from: a folder (watched), a git repository, or
	// neither (push mode: specs arrive through `idrecon apply`).
	SpecDir string
	Git     *source.GitOptions
	// Interval between reconciles (default 1m, with jitter).
	Interval  time.Duration
	DriftMode reconcile.DriftMode
	// AllowEmpty applies a spec with no documents (deleting everything),
	// from the source or pushed; without it such a spec is refused.
	AllowEmpty bool

	// Listen serves SCIM, SAML and the webhook (default ":8080").
	Listen string
	// AdminListen serves the admin API (default "127.0.0.1:9090").
	AdminListen string
	// InsecureHTTP serves Listen over plain HTTP instead of TLS with the
	// keystore's tls certificate (for local runs, tests, or behind a proxy).
	InsecureHTTP bool
	// TLSCertificate names the Certificate document to serve to every
	// client (default: of usage tls, the one whose names match the server
	// name a client asks for, else the first).
	TLSCertificate string
	// ConsoleURL is where browsers reach the console (the spec's
	// consoleRole turns it on), ending in /console/; the SAML sign-in hands
	// them back there. Default http://<AdminListen>/console/, with
	// "localhost" for an unspecified host.
	ConsoleURL string
	// AdminInsecureHTTP lets the admin API, which has no TLS, listen on an
	// address other than loopback: its token and backups then cross the
	// network in clear. Without it such an address is refused.
	AdminInsecureHTTP bool
	// Timeouts bound slow clients on both listeners (zero fields: defaults).
	Timeouts Timeouts
	// MaxConnections bounds the connections the main listener holds open
	// at once (default DefaultMaxConnections); past it a new one waits in
	// the kernel's queue until another closes. Each costs a goroutine and
	// its buffers, and nothing else bounds how many a client may open:
	// without it, enough idle connections take the daemon's memory.
	MaxConnections int
	// Limits bound what SCIM clients may make the daemon hold; a zero
	// field takes DefaultLimits' (see scim.Limits).
	Limits scim.Limits

	// DataDir holds the durable state, the audit log and a generated admin
	// token. Empty keeps everything in memory (nothing survives a restart).
	DataDir string
	// Etcd, when set, keeps the state in etcd instead, shared with every
	// daemon on the same endpoints and prefix; DataDir then holds only the
	// audit log and the admin token.
	Etcd *EtcdConfig
	// AdminToken guards the admin API. Empty: read DataDir/admin-token, or
	// generate it there on first start.
	AdminToken string
	// WebhookSecret (HMAC) or WebhookToken enables POST /hooks/git.
	WebhookSecret []byte
	WebhookToken  string

	// MaxSpecBytes, MaxSpecDocuments and MaxSpecNodes bound the spec,
	// whichever way it arrives (default spec.DefaultMaxBytes,
	// DefaultMaxDocuments and DefaultMaxNodes).
	MaxSpecBytes     int64
	MaxSpecDocuments int
	MaxSpecNodes     int

	Getenv func(string) string
	Logger *slog.Logger
	// ShutdownTimeout bounds the wait for in-flight requests (default 15s).
	// Those still running then are cut off, and Run waits up to
	// 5s more (handlerGrace) for their handlers to return.
	ShutdownTimeout time.Duration
	// Started, when set, is called once both listeners accept connections.
	Started func(addr, adminAddr string)
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = ":8080"
	}
	if c.AdminListen == "" {
		c.AdminListen = "127.0.0.1:9090"
	}
	if c.Getenv == nil {
		c.Getenv = os.Getenv
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	c.Limits = scim.Limits{
		Users:       cmp.Or(c.Limits.Users, DefaultLimits.Users),
		Groups:      cmp.Or(c.Limits.Groups, DefaultLimits.Groups),
		Memberships: cmp.Or(c.Limits.Memberships, DefaultLimits.Memberships),
	}
	c.Timeouts = c.Timeouts.orDefaults()
}

// Timeouts bound how long a client may take over each part of an exchange,
// so that stalled or deliberately slow clients cannot pile up connections.
// Both listeners use the same.
type Timeouts struct {
	// ReadHeader bounds the request line and headers (default 10s).
	ReadHeader time.Duration
	// Read bounds the whole request, body included (default 60s).
	Read time.Duration
	// Write bounds the answer, from the end of the request headers
	// (default 60s). A backup is exempt: it may be large.
	Write time.Duration
	// Idle bounds a kept-alive connection between requests (default 120s).
	Idle time.Duration
}

func (t Timeouts) orDefaults() Timeouts {
	return Timeouts{
		ReadHeader: cmp.Or(t.ReadHeader, 10*time.Second),
		Read:       cmp.Or(t.Read, 60*time.Second),
		Write:      cmp.Or(t.Write, 60*time.Second),
		Idle:       cmp.Or(t.Idle, 120*time.Second),
	}
}

// DefaultMaxConnections is Config.MaxConnections unless set: far above
// what Entra, a load balancer's pool or thousands of browsers hold open,
// and a bound on the memory connections can take.
const DefaultMaxConnections = 10000

// DefaultLimits is Config.Limits unless set: twice the users of the
// largest tenant this daemon was measured with, and room for each of them
// in 25 groups; an Entra scope past them is a mistake sooner than a
// tenant, and the daemon answers it with errors Entra reports instead of
// running out of memory.
var DefaultLimits = scim.Limits{Users: 2_000_000, Groups: 500_000, Memberships: 50_000_000}

// adminMaxConnections bounds the admin listener's connections: its
// clients are the CLI, a console and a metrics scraper.
const adminMaxConnections = 256

// maxHeaderBytes bounds a request's headers on both listeners, a quarter
// of net/http's default: far above what SCIM, SAML or an application's
// cookies through a Gateway need (nginx takes 32 KiB by default), and what
// each connection may make the daemon hold, and log, for its headers.
const maxHeaderBytes = 64 << 10

// httpServer returns a server for h with the timeouts t.
func httpServer(h http.Handler, t Timeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		MaxHeaderBytes:    maxHeaderBytes,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// under reports whether path is prefix or below it.
func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// consoleURL is configured, or the admin listener's address.
func consoleURL(configured, adminAddr string) string {
	if configured != "" {
		return configured
	}
	host, port, err := net.SplitHostPort(adminAddr)
	if err != nil {
		return "http://" + adminAddr + console.Path
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + console.Path
}

// loadOptions are the spec.Load options of every load the daemon makes.
func (c *Config) loadOptions(cache *spec.Cache) spec.LoadOptions {
	return spec.LoadOptions{
		Getenv: c.Getenv, Cache: cache, DataDir: c.DataDir,
		MaxBytes: c.MaxSpecBytes, MaxDocuments: c.MaxSpecDocuments, MaxNodes: c.MaxSpecNodes,
	}
}

// AdminTokenFile is where a generated admin token is kept inside the data dir.
const AdminTokenFile = "admin-token"

// Run starts the daemon and blocks until ctx is done, then shuts down
// gracefully: listeners stop accepting, in-flight requests finish, the
// reconciler stops between reconciles, and the store is closed last.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	// Checked before the state is opened, which may take seconds, and
	// before the loopback check, which would call a missing port an
	// address off loopback.
	if err := checkAddr("--listen", cfg.Listen); err != nil {
		return err
	}
	if err := checkAddr("--admin-listen", cfg.AdminListen); err != nil {
		return err
	}
	if cfg.InsecureHTTP && cfg.TLSCertificate != "" {
		// Dropping the name would leave the operator believing HTTPS is
		// served with that certificate.
		return fmt.Errorf("--tls-certificate %q names the certificate HTTPS is served with, and --insecure-http serves plain HTTP: give one of them", cfg.TLSCertificate)
	}
	if !loopback(cfg.AdminListen) && !cfg.AdminInsecureHTTP {
		return fmt.Errorf("admin API on %s: the address is not loopback and the admin API has no TLS, so its token and backups would cross the network in clear; "+
			"listen on 127.0.0.1 (and reach it through SSH or a TLS proxy), or accept the risk with --admin-insecure-http", cfg.AdminListen)
	}
	d, cleanup, err := assemble(ctx, cfg)
	defer cleanup()
	if err != nil {
		if ctx.Err() != nil {
			// Stopped while loading the state: the load failing is the
			// stop, not a failed start.
			cfg.Logger.Info("stopped before serving", "err", err)
			return nil
		}
		return err
	}
	// The listeners are bound before the first reconcile, which may be
	// long (a git clone), so that a port in use fails the start at once;
	// serve takes them over, and any return before it closes them.
	ln, adminLn, err := listen(cfg)
	if err != nil {
		return err
	}
	served := false
	defer func() {
		if !served {
			ln.Close()
			adminLn.Close()
		}
	}()
	// The first reconcile runs before anything is served (connections wait
	// in the listeners' backlog), so Entra never sees a runtime without its
	// SCIM configuration. A bad spec here keeps the state loaded from disk.
	// With etcd, only the elected leader applies, and the election comes
	// later: the state loaded from etcd is what the daemons serve until it
	// has.
	var waiting bool
	var firstErr error
	if d.etcd == nil {
		_, err = d.rec.ReconcileOnce(ctx)
		waiting = errors.Is(err, source.ErrNothingPushed)
		if err != nil && !waiting && ctx.Err() == nil {
			firstErr = err
			d.log.Warn("first reconcile failed; serving the state as the data dir holds it until a revision applies", "err", err)
		}
	}
	if ctx.Err() != nil {
		// Stopped while starting: serving now would tell systemd READY=1
		// and log "serving" only to shut down at once.
		d.log.Info("stopped before serving")
		return nil
	}
	if ok, why := d.tls.Ready(); !cfg.InsecureHTTP && !ok {
		switch {
		case waiting:
			d.log.Warn("no TLS certificate yet: HTTPS handshakes fail until a spec with one is pushed", "reason", why)
		case firstErr != nil:
			// The spec that was not read (a git host down at boot, a
			// refused revision) may hold the certificate: exiting would
			// send the operator to add one, and a restart would not
			// follow the source when it recovers.
			d.log.Warn("no TLS certificate yet: HTTPS handshakes fail until a revision with one applies; the first reconcile failed",
				"reason", why, "err", firstErr)
		default:
			// Serving HTTPS without a certificate fails every handshake
			// while the log says "serving https://".
			return fmt.Errorf("%w (%s)", ErrNoTLSCertificate, why)
		}
	}
	served = true
	return d.serve(ctx, ln, adminLn)
}

// checkAddr refuses a listen address without a port. net.Listen takes
// "host:" for a port the kernel picks, which no client would find.
func checkAddr(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil && port == "" {
		err = errors.New("missing port")
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w: give host:port, such as :443 (every address) or 127.0.0.1:9090", flag, addr, err)
	}
	return nil
}

// listen binds the main and the admin listener, each bounded in the
// connections it holds open (Config.MaxConnections).
func listen(cfg Config) (ln, adminLn net.Listener, err error) {
	ln, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	adminLn, err = net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return nil, nil, fmt.Errorf("admin listen %s: %w", cfg.AdminListen, err)
	}
	return netutil.LimitListener(ln, cfg.MaxConnections), netutil.LimitListener(adminLn, adminMaxConnections), nil
}

// ErrNoTLSCertificate is a daemon told to serve HTTPS by a spec without a
// certificate for it.
var ErrNoTLSCertificate = errors.New("no TLS certificate to serve HTTPS with: add a Certificate document with usage: tls to the spec, " +
	"or serve plain HTTP with --insecure-http (local runs, or behind a proxy that terminates TLS)")

// daemon is the assembled set of parts that serve runs.
type daemon struct {
	cfg     Config
	log     *slog.Logger
	st      *store.Store
	rec     *reconcile.Reconciler
	binder  *access.Binder
	tls     *tlscert.Source
	scim    *scim.Server
	etcd    *shared // nil unless the state is in etcd
	main    http.Handler
	admin   http.Handler
	console *console.Server
	fronts  *gateways
	checks  []admin.Check // behind /readyz
	trigger func()        // asks for a reconcile (of the leader, with several daemons)
	srcName string
}

// assemble opens the state and builds every part; ctx ends a load of the
// state from etcd. cleanup releases what was opened, also when assembling
// failed halfway.
func assemble(ctx context.Context, cfg Config) (d *daemon, cleanup func(), err error) {
	var closers []func()
	cleanup = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	log := cfg.Logger

	// trail records who changed what; without a data dir there is no file
	// to keep it in.
	var trail audit.Recorder = audit.Discard
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, cleanup, fmt.Errorf("data dir: %w", err)
		}
		if cfg.Etcd != nil {
			// Without a state file nothing else stops a second daemon
			// from sharing the audit log and the git cache; taken before
			// the audit log is opened, which repairs the file's end.
			unlock, err := lockDataDir(cfg.DataDir)
			if err != nil {
				return nil, cleanup, err
			}
			closers = append(closers, unlock)
		}
		auditLog, err := audit.Open(filepath.Join(cfg.DataDir, "audit.log"), audit.Options{Logger: log.With("component", "audit")})
		if err != nil {
			return nil, cleanup, err
		}
		closers = append(closers, func() {
			if err := auditLog.Close(); err != nil {
				log.Error("audit log not closed cleanly; its last records may be lost", "err", err)
			}
		})
		trail = auditLog
	}

	token, err := adminToken(cfg, log)
	if err != nil {
		return nil, cleanup, err
	}

	// rec is built below, after the parts its Config names; /metrics reads
	// its status at every scrape, as GET /v1/status does (the admin API's
	// Reconciler, forwarding or not, serves rec's Status), and no scrape
	// comes before the listeners open.
	var rec *reconcile.Reconciler
	met := metrics.New(func() reconcile.Status { return rec.Status() })
	binder := access.NewBinder(log.With("component", "access"))
	var st *store.Store
	var closeStore func()
	var sh *shared
	var suspension suspension
	onCommit := func(c memdb.Changes) {
		binder.Notify(c)
		suspension.observe(c)
	}
	var journal prometheus.Collector // the durable state's metrics, when it has one
	if cfg.Etcd != nil {
		st, sh, closeStore, err = openEtcdStore(ctx, cfg.Etcd, log, onCommit)
	} else {
		st, journal, closeStore, err = openStore(cfg, log, trail, onCommit)
	}
	if err != nil {
		return nil, cleanup, err
	}
	closers = append(closers, closeStore)

	src, pushed, removeSource, err := newSource(cfg, log)
	if err != nil {
		return nil, cleanup, err
	}
	if removeSource != nil {
		closers = append(closers, removeSource)
	}
	specCache := &spec.Cache{}
	rcfg := reconcile.Config{
		Store:      st,
		Audit:      trail,
		Interval:   cfg.Interval,
		DriftMode:  cfg.DriftMode,
		AllowEmpty: cfg.AllowEmpty,
		Logger:     log.With("component", "reconcile"),
		// The cache makes a tick on an unchanged spec read files but parse nothing.
		Load: func(ctx context.Context, dir string) (*spec.Set, error) {
			return spec.Load(ctx, dir, cfg.loadOptions(specCache))
		},
		// With several daemons one reconciles; the others report its status.
		ShareStatus: cfg.Etcd != nil,
	}
	if cfg.Etcd == nil {
		// Numbers from the clock grow across restarts (see FirstRequest);
		// with etcd, its revisions number requests.
		rcfg.FirstRequest = uint64(time.Now().UnixMicro())
	}
	// Group renames are drift that only the spec can resolve: the loop
	// lists them in its status, so /v1/drift shows what the metric counts.
	renames := renameLog{log: log.With("component", "access"), audit: trail}
	rcfg.DriftCheck = renames.drift
	rcfg.OnResult = func(res reconcile.Result) { met.Reconcile(res.Outcome, res.Duration) }
	rcfg.Source = src
	tlsSrc := tlscert.New(st, cfg.TLSCertificate)
	if !cfg.InsecureHTTP {
		rcfg.Keeps = func(docs []*spec.Document) error {
			// Before the first certificate there is nothing to lose.
			if !tlsSrc.Serving() || tlscert.Offers(cfg.TLSCertificate, docs) {
				return nil
			}
			what := "no Certificate of usage tls"
			if cfg.TLSCertificate != "" {
				what = fmt.Sprintf("not the Certificate %q of usage tls (--tls-certificate)", cfg.TLSCertificate)
			}
			return fmt.Errorf("the revision has %s, which this daemon serves HTTPS with: every TLS handshake would fail, Entra's and sign-ins' alike; keep it, or add its replacement in the same commit", what)
		}
	}
	rec, err = reconcile.New(rcfg)
	if err != nil {
		return nil, cleanup, err
	}
	suspension.follow(rec, st.Read())
	// A reconcile request (webhook, admin API, folder watch) may reach a
	// daemon that does not lead; it passes it on.
	trigger := rec.Trigger
	var recAPI admin.Reconciler = rec
	// Requests the admin API numbers: nil leaves it to rec, alone; with
	// several daemons, etcd numbers them (forwarding.Request).
	var request func(context.Context) (uint64, error)
	if sh != nil {
		trigger = func() { sh.requestReconcile(rec.Trigger) }
		fw := forwarding{rec, trigger, sh}
		recAPI, request = fw, fw.Request
	}

	scimOpts := scim.Options{Logger: log.With("component", "scim"), Audit: trail, Observer: met.SCIMRequest, Limits: cfg.Limits}
	if sh != nil {
		scimOpts.Barrier = sh.state.Barrier
	}
	scimSrv := scim.NewServer(st, scimOpts)
	samlOpts := saml.Options{
		Logger:     log.With("component", "saml"),
		Observer:   met.SAMLLogin,
		Authorizer: saml.AccessAuthorizer{Store: st},
	}
	decider := gateway.Decider(gateway.StoreDecider{Store: st})
	if sh != nil {
		samlOpts.Sessions, samlOpts.Replay, samlOpts.Logouts, samlOpts.PendingKey = sh.saml, sh.saml, sh.saml, sh.pendingKey
		samlOpts.UntaggedSessionsUntil = sh.untaggedUntil
		// A stuck mirror holds a state frozen at some revision: a user
		// disabled since would still be let in. Readiness drains the
		// daemon only where a load balancer probes it, and only a probe
		// interval later, so access is refused here too (see frozen).
		samlOpts.Authorizer = frozenAuthorizer{samlOpts.Authorizer, sh}
		decider = frozenDecider{decider, sh}
	}
	samlSrv := saml.NewServer(st, samlOpts)
	accessAPI := access.NewHandler(st, log.With("component", "access"))

	main := http.NewServeMux()
	var handoff http.Handler // the console's sign-in, set below
	if cfg.WebhookSecret != nil || cfg.WebhookToken != "" {
		main.Handle("POST "+spec.WebhookPath, &source.Webhook{
			Secret: cfg.WebhookSecret, Token: cfg.WebhookToken, OnPush: trigger, Logger: log.With("component", "webhook"),
		})
	}
	main.HandleFunc("GET "+spec.HealthzPath, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	fronts := &gateways{st: st, sessions: gateway.SessionsFunc(samlSrv.SessionUser), decider: decider,
		samlBase: samlSrv.BasePath, audit: trail, log: log.With("component", "gateway")}
	// cleanup runs once serve has drained the listeners: the Gateways'
	// upstream connections go then, not an idle timeout after Run returned.
	closers = append(closers, fronts.close)
	if journal != nil {
		if err := met.Register(journal); err != nil {
			return nil, cleanup, fmt.Errorf("journal metrics: %w", err)
		}
	}
	if l, ok := trail.(*audit.Log); ok {
		// Records the disk refused are counted, not only logged.
		if err := met.Register(l); err != nil {
			return nil, cleanup, fmt.Errorf("audit metrics: %w", err)
		}
	}
	if sh != nil {
		if err := met.Register(sh.state); err != nil {
			return nil, cleanup, fmt.Errorf("etcd metrics: %w", err)
		}
		if err := met.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idrecon_etcd_reconcile_leader",
			Help: "1 while this daemon leads the reconciler (applies the spec), else 0."}, sh.leading)); err != nil {
			return nil, cleanup, fmt.Errorf("etcd metrics: %w", err)
		}
		if err := met.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idrecon_etcd_mirror_confirmed_age_seconds",
			Help: "Time since this daemon last confirmed its mirror holds etcd's state; past --etcd-max-stale it refuses sign-ins and Gateway access."},
			func() float64 { return time.Since(sh.state.Confirmed()).Seconds() })); err != nil {
			return nil, cleanup, fmt.Errorf("etcd metrics: %w", err)
		}
		if err := met.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "idrecon_etcd_lease_renewals_total",
			Help: "Keep-alives of this daemon's reconciler election lease that etcd answered."},
			func() float64 { return float64(sh.renewals.Load()) })); err != nil {
			return nil, cleanup, fmt.Errorf("etcd metrics: %w", err)
		}
		if err := met.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "idrecon_etcd_leader_lease_lapses_total",
			Help: "Times this daemon lost the reconciler lease while leading (cut off from etcd, paused, revoked)."},
			func() float64 { return float64(sh.lapses.Load()) })); err != nil {
			return nil, cleanup, fmt.Errorf("etcd metrics: %w", err)
		}
	}
	if err := met.Register(fronts); err != nil {
		return nil, cleanup, fmt.Errorf("gateway metrics: %w", err)
	}
	if err := met.Register(scimSrv); err != nil {
		return nil, cleanup, fmt.Errorf("scim metrics: %w", err)
	}
	// SCIM's base path, SAML's base URL and the Gateways come from the spec
	// and may change at any reconcile, so the split is made per request:
	// SCIM, then SAML's own routes, then a Gateway, then SAML's pages.
	main.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if base := scimSrv.BasePath(); under(p, base) {
			scimSrv.ServeHTTP(w, r)
			return
		}
		home, samlOK := samlSrv.BasePath(r.Context())
		if samlOK && sh != nil && signingIn(p, home) {
			if err := sh.untrusted(); err != nil {
				frozen(w, log, err)
				return
			}
		}
		if samlOK && p == home+console.HandoffPath {
			handoff.ServeHTTP(w, r)
			return
		}
		if !samlOK || under(p, home+spec.SAMLPath) || under(p, home+spec.SAMLUserPath) {
			samlSrv.ServeHTTP(w, r)
			return
		}
		if g, ok := fronts.route(r, home); ok {
			g.ServeHTTP(w, r)
			return
		}
		samlSrv.ServeHTTP(w, r)
	}))

	checks := []admin.Check{
		{Name: "reconcile", Ready: func() (bool, string) {
			s := rec.Status()
			if s.AppliedRevision == "" {
				if s.LastError != "" {
					return false, "no revision applied yet: " + s.LastError
				}
				return false, "no revision applied yet"
			}
			return true, ""
		}},
		{Name: "scim", Ready: func() (bool, string) {
			return true, scimState(st)
		}},
		{Name: "saml", Ready: func() (bool, string) {
			if !samlEnabled(st) {
				return true, "disabled in the spec"
			}
			return samlSrv.Ready()
		}},
	}
	if sh != nil {
		checks = append(checks, admin.Check{Name: "etcd", Ready: func() (bool, string) {
			ctx, cancel := context.WithTimeout(context.Background(), etcdstate.DefaultTimeout)
			defer cancel()
			if err := sh.checkMirror(ctx); err != nil {
				// Status tells why this daemon neither leads nor lets users in.
				const refusing = "; until it follows etcd again, this daemon does not campaign for the reconciler lead and refuses sign-ins and Gateway access"
				if isStuck(err) {
					return false, err.Error() + refusing
				}
				if stale := sh.stale(); stale != nil {
					return false, err.Error() + "; " + stale.Error() + refusing
				}
				return false, err.Error()
			}
			return true, fmt.Sprintf("revision %d", sh.state.Applied())
		}})
	}
	if !cfg.InsecureHTTP {
		checks = append(checks, admin.Check{Name: "tls", Ready: tlsSrc.Ready})
	}
	// A load balancer reaches the main listener, not the admin API on
	// loopback: it asks here whether to send this daemon traffic (a
	// daemon cut off from etcd is drained). Which component is not ready,
	// and why, only the admin API says.
	main.HandleFunc("GET "+spec.ReadyzPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if ready, _ := admin.Readiness(checks); !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n")
			return
		}
		io.WriteString(w, "ready\n")
	})
	// Only push mode takes pushed specs, unpacked next to the current one.
	var uploadDir string
	var push func(context.Context, string) (*reconcile.Plan, error)
	if pushed != nil {
		uploadDir, push = pushed.UploadDir(), pushFunc(pushed, rec)
	}
	srcName := src.String()
	var srcKind admin.SourceKind
	switch src.(type) {
	case source.Dir:
		srcKind = admin.SourceFolder
	case *source.Git:
		srcKind = admin.SourceGit
	}
	adm, err := admin.New(admin.Config{
		Gateways:    fronts.status,
		Provisioned: scimSrv.Provisioned,
		Replication: func() *admin.ReplicationStatus {
			if sh == nil {
				return nil
			}
			return sh.status(context.Background())
		},
		Store:      st,
		Audit:      trail,
		Reconciler: recAPI,
		Request:    request,
		Suspend:    func(ctx context.Context, on bool) error { return st.Update(ctx, setSuspended(on)) },
		Token:      token,
		Logger:     log.With("component", "admin"),
		Source:     srcName,
		SourceKind: srcKind,
		UploadDir:  uploadDir,
		MaxUnpack:  cfg.MaxSpecBytes,
		Push:       push,
		Load: func(ctx context.Context, dir string) (*spec.Set, error) {
			return spec.Load(ctx, dir, cfg.loadOptions(nil))
		},
		Validate: func(docs []*spec.Document) (*spec.Set, error) {
			return spec.Validate(docs, cfg.loadOptions(nil))
		},
		Checks: checks,
		Backup: func(w io.Writer) error {
			// A large state may take longer to send than the write timeout
			// allows any other answer; only an admin-token holder gets here.
			if rw, ok := w.(http.ResponseWriter); ok {
				if err := http.NewResponseController(rw).SetWriteDeadline(time.Time{}); err != nil {
					return fmt.Errorf("lift the write timeout: %w", err)
				}
			}
			return durable.WriteBackup(w, st.Snapshot())
		},
		Public: map[string]http.Handler{"GET " + spec.MetricsPath: met.Handler()},
		Impact: func(_ context.Context, plan *reconcile.Plan, desired *spec.Set) (*access.Impact, error) {
			return access.BlastRadius(st.Read(), nil, desired.Docs, plan.Kept()...)
		},
		Routes: map[string]http.Handler{
			"/access/":       accessAPI,
			"/users":         accessAPI,
			"/users/":        accessAPI,
			"/groups":        accessAPI,
			"/groups/":       accessAPI,
			"/saml/metadata": http.HandlerFunc(samlSrv.ServeAdminMetadata),
		},
	})
	if err != nil {
		return nil, cleanup, err
	}
	// The URL is checked here and set again once the admin listener's
	// address is known (see serve).
	con, err := console.New(console.Config{
		Store: st, Reconciler: rec, Status: adm.Status, SAMLUser: samlSrv.SessionUserAndID, SAMLSessionLive: samlSrv.SessionLive,
		URL: cmp.Or(cfg.ConsoleURL, "http://localhost"+console.Path), Logger: log.With("component", "console"),
	})
	if err != nil {
		return nil, cleanup, err
	}
	adm.Handle(console.Path, con)
	handoff = con.Handoff()

	return &daemon{
		cfg: cfg, log: log, st: st, rec: rec, binder: binder, tls: tlsSrc, scim: scimSrv, etcd: sh,
		main: main, admin: adm, console: con, fronts: fronts, checks: checks, srcName: srcName, trigger: trigger,
	}, cleanup, nil
}

// serve serves ln and adminLn, which it closes, and runs every goroutine
// until ctx ends or one of them fails, then shuts down gracefully:
// listeners stop accepting, in-flight requests finish, the loops stop
// between reconciles.
func (d *daemon) serve(ctx context.Context, ln, adminLn net.Listener) error {
	cfg, log := d.cfg, d.log
	notify, err := sdnotify.New(cfg.Getenv)
	if err != nil {
		// systemd gives up on a start it hears nothing from; the daemon
		// itself works without the notification.
		log.Warn("systemd notification socket", "err", err)
	}
	if err := d.console.SetURL(consoleURL(cfg.ConsoleURL, adminLn.Addr().String())); err != nil {
		ln.Close()
		adminLn.Close()
		return fmt.Errorf("--console-url: %w", err)
	}
	var handlers inFlight
	mainSrv := httpServer(handlers.wrap(d.main), cfg.Timeouts, log)
	if !cfg.InsecureHTTP {
		mainSrv.TLSConfig = d.tls.Config()
	}
	adminSrv := httpServer(handlers.wrap(d.admin), cfg.Timeouts, log)
	if !loopback(cfg.AdminListen) {
		log.Warn("the admin API serves plain HTTP off loopback: its token and backups cross the network in clear", "admin", cfg.AdminListen)
	}

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 9) // room for every goroutine below, so none blocks
	goRun := func(name string, fn func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun("serve", func() error {
		if cfg.InsecureHTTP {
			return mainSrv.Serve(ln)
		}
		return mainSrv.ServeTLS(ln, "", "")
	})
	goRun("admin", func() error { return adminSrv.Serve(adminLn) })
	goRun("access", func() error { return d.binder.Run(runCtx, d.st) })
	if d.etcd != nil {
		goRun("etcd mirror", func() error { return d.etcd.state.Run(runCtx) })
		goRun("etcd sessions", func() error { return d.etcd.saml.Run(runCtx) })
		goRun("etcd mirror check", func() error { return d.etcd.watchMirror(runCtx) })
	}
	if d.etcd != nil {
		// One daemon of those sharing the state applies the spec.
		goRun("reconcile", func() error { return d.etcd.lead(runCtx, d.rec.Run, d.rec.RequestNumbered) })
	} else {
		goRun("reconcile", func() error { return d.rec.Run(runCtx) })
	}
	if cfg.SpecDir != "" {
		goRun("watch", func() error {
			return source.Watch(runCtx, cfg.SpecDir, 0, d.trigger, log.With("component", "watch"))
		})
	}
	scheme := "https"
	if cfg.InsecureHTTP {
		scheme = "http"
	}
	host := displayAddr(ln.Addr())
	log.Info("idrecon serving",
		"scim", fmt.Sprintf("%s://%s%s", scheme, host, d.scim.BasePath()),
		"saml", fmt.Sprintf("%s://%s/saml/metadata", scheme, host),
		"admin", "http://"+adminLn.Addr().String(),
		"source", d.srcName, "data_dir", cfg.DataDir)
	if cfg.Started != nil {
		cfg.Started(ln.Addr().String(), adminLn.Addr().String())
	}
	if notify != nil {
		goRun("systemd", func() error { return d.notifySystemd(runCtx, notify, adminLn.Addr().String()) })
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	log.Info("shutting down")
	stopping(notify, log)
	// The requests in flight drain first: with etcd they need the mirror
	// (a barrier waits for it), the sessions watch and the access binder,
	// which the cancel below stops.
	d.drain(&handlers, mainSrv, adminSrv)
	cancel()
	wg.Wait()
	return runErr
}

// handlerGrace bounds the wait for handlers to return once their
// connections were closed: they see their request's context cancelled and
// their writes fail, so they end at once unless something is wrong.
const handlerGrace = 5 * time.Second

// drain stops both servers: they stop accepting and their requests in
// flight get cfg.ShutdownTimeout to finish, both listeners at once. Then
// it cuts off what is left, and waits for every handler to return: the
// caller closes the state and the audit log next, which no handler may
// still be writing to. http.Server.Shutdown alone guarantees neither: it
// returns at its deadline with handlers still running, and it never waits
// for a hijacked connection (a WebSocket through a Gateway).
func (d *daemon) drain(handlers *inFlight, srvs ...*http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Go(func() {
			if err := srv.Shutdown(ctx); err != nil {
				d.log.Warn("requests still in flight at the shutdown timeout are cut off", "timeout", d.cfg.ShutdownTimeout, "err", err)
			}
		})
	}
	wg.Wait()
	// What remains never ends by itself: upgraded connections and streams
	// through a Gateway, and requests past the timeout.
	d.fronts.close()
	for _, srv := range srvs {
		srv.Close()
	}
	ctx, cancel = context.WithTimeout(context.Background(), handlerGrace)
	defer cancel()
	if n := handlers.wait(ctx); n > 0 {
		d.log.Error("handlers still running after their connections closed; closing the state under them", "handlers", n)
	}
}

// inFlight counts the requests in their handlers, hijacked ones included.
type inFlight struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed when n drops to 0; guarded by mu
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.n++
		f.mu.Unlock()
		defer func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if f.n--; f.n == 0 && f.idle != nil {
				close(f.idle)
				f.idle = nil
			}
		}()
		h.ServeHTTP(w, r)
	})
}

// wait returns once no handler runs, or when ctx ends, with the number
// still running.
func (f *inFlight) wait(ctx context.Context) int {
	f.mu.Lock()
	if f.n == 0 {
		f.mu.Unlock()
		return 0
	}
	if f.idle == nil {
		f.idle = make(chan struct{})
	}
	idle := f.idle
	f.mu.Unlock()
	select {
	case <-idle:
		return 0
	case <-ctx.Done():
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.n
	}
}

// openStore opens the durable state in DataDir and loads it into a fresh
// store, or returns an in-memory store when there is no data dir. metrics
// are the durable state's, nil in memory.
func openStore(cfg Config, log *slog.Logger, trail audit.Recorder, onCommit func(memdb.Changes)) (st *store.Store, metrics prometheus.Collector, closeStore func(), err error) {
	if cfg.DataDir == "" {
		log.Warn("no data dir: state lives in memory only and is lost on restart")
		st, err := store.New(store.Options{OnCommit: onCommit})
		if err != nil {
			return nil, nil, nil, err
		}
		return st, nil, func() { st.Close() }, nil
	}
	db, err := durable.Open(durable.Path(cfg.DataDir), durable.Options{Logger: log.With("component", "durable"), Audit: trail})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open state: %w", err)
	}
	st, err = store.New(store.Options{Journal: db, OnCommit: onCommit})
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	if _, err := db.LoadInto(st); err != nil {
		st.Close()
		db.Close()
		return nil, nil, nil, fmt.Errorf("load state from %s: %w", cfg.DataDir, err)
	}
	return st, db, func() { st.Close(); db.Close() }, nil
}

// newSource returns the daemon's source: the spec folder, the git
// repository or, with neither, the pushed spec, which is then also returned
// as push for the admin API's push hook. remove, when not nil, deletes what
// the source keeps only for this run.
func newSource(cfg Config, log *slog.Logger) (src reconcile.Source, push *source.Push, remove func(), err error) {
	switch {
	case cfg.SpecDir != "" && cfg.Git != nil:
		return nil, nil, nil, errors.New("give either a spec folder or a git source, not both")
	case cfg.SpecDir != "":
		abs, err := filepath.Abs(cfg.SpecDir)
		if err != nil {
			return nil, nil, nil, err
		}
		// The folder watch would fail on it too, but only once the
		// listeners serve and systemd was told the daemon is up.
		switch fi, err := os.Stat(abs); {
		case err != nil:
			return nil, nil, nil, fmt.Errorf("spec folder: %w", err)
		case !fi.IsDir():
			return nil, nil, nil, fmt.Errorf("spec folder %s: not a folder", abs)
		}
		return source.Dir{Path: abs}, nil, nil, nil
	case cfg.Git != nil:
		opts, remove, err := gitOptions(cfg, log)
		if err != nil {
			return nil, nil, nil, err
		}
		g, err := source.NewGit(opts)
		if err != nil {
			if remove != nil {
				remove()
			}
			return nil, nil, nil, err
		}
		return g, nil, remove, nil
	}
	base := cfg.DataDir
	if base == "" {
		// Made here rather than by NewPush, which would leave it behind.
		if base, err = tempDir("idrecon-push-"); err != nil {
			return nil, nil, nil, err
		}
		remove = func() { removeTemp(base, log) }
	}
	if push, err = source.NewPush(base); err != nil {
		if remove != nil {
			remove()
		}
		return nil, nil, nil, err
	}
	return push, push, remove, nil
}

// gitOptions fills in what cfg.Git leaves to the daemon: the cache in the
// data dir, the logger, the environment and the spec size limit. remove,
// when not nil, deletes a temporary cache made for want of a data dir.
func gitOptions(cfg Config, log *slog.Logger) (opts source.GitOptions, remove func(), err error) {
	opts = *cfg.Git
	if opts.CacheDir == "" {
		if cfg.DataDir == "" {
			dir, err := tempDir("idrecon-git-")
			if err != nil {
				return opts, nil, err
			}
			opts.CacheDir = dir
			remove = func() { removeTemp(dir, log) }
		} else {
			opts.CacheDir = filepath.Join(cfg.DataDir, "git")
		}
	}
	if opts.Logger == nil {
		opts.Logger = log.With("component", "git")
	}
	if opts.Getenv == nil {
		opts.Getenv = cfg.Getenv
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = cfg.MaxSpecBytes
	}
	return opts, remove, nil
}

// tempDir makes a folder for what a daemon without a data dir keeps only
// while it runs; removeTemp deletes it when it stops, since no later start
// would find it again.
func tempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("no data dir, and no temporary folder: %w", err)
	}
	return dir, nil
}

func removeTemp(dir string, log *slog.Logger) {
	if err := os.RemoveAll(dir); err != nil {
		log.Warn("temporary folder not removed", "dir", dir, "err", err)
	}
}

// pushFunc returns the admin API's push hook: the pushed spec replaces the
// current one and is reconciled at once; a refused one is put back, so that
// the source keeps what the runtime kept.
func pushFunc(p *source.Push, rec *reconcile.Reconciler) func(context.Context, string) (*reconcile.Plan, error) {
	return func(ctx context.Context, dir string) (*reconcile.Plan, error) {
		return rec.ReconcileChange(ctx, func() error { return p.Replace(dir) }, p.Restore)
	}
}

// writePrivate replaces path with data readable by the owner only. It
// writes a new file and renames it into place: os.WriteFile would keep
// the mode of a file already there (an empty one an operator made 0644),
// and a crash halfway would leave half a token.
func writePrivate(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	err = errors.Join(err, f.Sync(), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// dataDirLock is the file whose lock a daemon with --etcd holds on its
// data dir.
const dataDirLock = "daemon.lock"

// lockDataDir takes dir for this process until unlock, or says another
// idrecon has it: a daemon, or a restore. The locks go with the process,
// so a daemon killed leaves none behind.
func lockDataDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, dataDirLock)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another idrecon: with --etcd every daemon still needs a data dir of its own (its audit log, and with --git its git cache)", dir)
		}
		return nil, fmt.Errorf("data dir: lock %s: %w", path, err)
	}
	release, err := durable.HoldDataDir(dir)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (with --etcd the state is in etcd; idrecon restore --to-etcd puts a backup there)", err)
	}
	return func() { release(); f.Close() }, nil
}

// adminToken returns the configured token, or the one kept in the data dir,
// generating it on first start. The value itself is never logged.
func adminToken(cfg Config, log *slog.Logger) (string, error) {
	if cfg.AdminToken != "" {
		return cfg.AdminToken, nil
	}
	if cfg.DataDir == "" {
		return "", errors.New("no admin token: set IDRECON_ADMIN_TOKEN or --admin-token-file, or give a --data-dir to keep a generated one")
	}
	path := filepath.Join(cfg.DataDir, AdminTokenFile)
	switch b, err := os.ReadFile(path); {
	case err == nil:
		if tok := strings.TrimSpace(string(b)); tok != "" {
			log.Info("admin token read from file", "path", path)
			closeTokenFile(path, log)
			return tok, nil
		}
	case !errors.Is(err, fs.ErrNotExist):
		// A token that cannot be read now (its owner or mode changed) is
		// still the one the operator's tools hold: a new one written over
		// it would lock them out without a word.
		return "", fmt.Errorf("admin token %s: %w (give the daemon read access, or remove the file to have a new token generated)", path, err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := base64.RawURLEncoding.EncodeToString(buf)
	if err := writePrivate(path, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	log.Info("generated an admin token; idrecon commands on this host find it without flags in ./data/admin-token (below the folder they run in) or /var/lib/idrecon/admin-token; for a token elsewhere, give them --admin-token-file with this path", "path", path)
	return tok, nil
}

// closeTokenFile takes a token file that others may read back to its
// owner: whoever reads it holds the admin API, backups of personal data
// included. A file another user owns cannot be changed, only reported.
func closeTokenFile(path string, log *slog.Logger) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
		log.Warn("the admin token file is readable by others, who can use the admin API with it; make it mode 0600", "path", path, "mode", fi.Mode().Perm().String(), "err", err)
		return
	}
	log.Warn("the admin token file was readable by others; made it readable by its owner only", "path", path, "was", fi.Mode().Perm().String())
}

// loopback reports whether addr (host:port) listens on loopback only: a
// loopback IP or "localhost". An empty host or a wildcard listens everywhere;
// any other name is assumed to reach off the machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// displayAddr names a listener the way a user would type it: a wildcard
// address becomes localhost.
func displayAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return fmt.Sprintf("localhost:%d", tcp.Port)
}

// single returns the spec of the only resource of kind (SCIM and SAML
// settings exist at most once), or nil.
func single[T any](st *store.Store, kind string) *T {
	res, _ := st.Read().Resources(kind)
	for _, r := range res {
		if v, ok := r.Spec.(*T); ok {
			return v
		}
	}
	return nil
}

func samlEnabled(st *store.Store) bool {
	sp := single[spec.SamlServiceProvider](st, spec.KindSamlServiceProvider)
	return sp != nil && sp.Enabled
}

// scimState says whether the spec has SCIM serving, for status.
func scimState(st *store.Store) string {
	if sp := single[spec.ScimProvisioning](st, spec.KindScimProvisioning); sp != nil && sp.Enabled {
		return fmt.Sprintf("serving %s with %d token(s)", cmp.Or(sp.BasePath, spec.DefaultScimBasePath), len(sp.Tokens))
	}
	return "disabled in the spec"
}
