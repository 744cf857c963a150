package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// gateways serves the spec's Gateway documents: a request goes to the
// Gateway whose pathPrefix is its longest match, and /auth/verify to the one
// the original URI (X-Original-URI, X-Forwarded-Uri) falls under. Each
// stored Gateway is built once: stored values are immutable, so a new
// pointer means a new configuration.
type gateways struct {
	st       *store.Store
	sessions gateway.Sessions
	decider  gateway.Decider
	// samlBase is the SAML baseURL's path, below which sign-in lives.
	samlBase func(context.Context) (string, bool)
	audit    audit.Recorder
	log      *slog.Logger

	mu     sync.Mutex
	built  map[*store.Resource]builtGateway // guarded by mu
	failed map[*store.Resource]error        // why a Gateway is not served; guarded by mu
	login  string                           // the LoginURL they were built with; guarded by mu
	// routes is what current last returned, good until unchanged closes
	// (the next write to the spec's resources); guarded by mu.
	routes    []routed
	unchanged <-chan struct{}
}

type routed struct {
	res    *store.Resource
	prefix string
	g      *gateway.Gateway // nil when it cannot be built
	h      http.Handler     // g, or unavailable
}

// loginURL is where a Gateway sends a browser without a session.
func (gs *gateways) loginURL(ctx context.Context) string {
	home, _ := gs.samlBase(ctx)
	return home + spec.SAMLPath + "/login"
}

// current returns the Gateways of the store, longest prefix first, built
// with login as the sign-in URL. A Gateway that cannot be built (its
// shared secret or client key not resolved yet after a restart) is logged
// and its paths fail closed, with a 503.
func (gs *gateways) current(login string) []routed {
	gs.mu.Lock()
	if gs.unchanged != nil && login == gs.login {
		select {
		case <-gs.unchanged:
		default:
			out := gs.routes
			gs.mu.Unlock()
			return out
		}
	}
	gs.mu.Unlock()
	unchanged := gs.st.ResourcesChanged()
	snap := gs.st.Read()
	res, err := snap.Resources(spec.KindGateway)
	if err != nil {
		gs.log.Error("read gateways", "err", err)
		return nil
	}
	certs, err := snap.Resources(spec.KindCertificate)
	if err != nil {
		gs.log.Error("read certificates", "err", err)
		return nil
	}
	keystore := make(map[string]*spec.Certificate, len(certs))
	for _, r := range certs {
		if c, ok := r.Spec.(*spec.Certificate); ok {
			keystore[r.Name] = c
		}
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	reuse := gs.built
	if login != gs.login {
		reuse, gs.login = nil, login // built with the old sign-in URL
	}
	next := make(map[*store.Resource]builtGateway, len(res))
	// A Gateway that cannot be built is logged once, not on every request.
	logged := gs.failed
	gs.failed = map[*store.Resource]error{}
	var out []routed
	for _, r := range res {
		sg, ok := r.Spec.(*spec.Gateway)
		if !ok {
			continue
		}
		deps := gatewayCerts(sg, keystore)
		b, ok := reuse[r]
		if !ok || !slices.Equal(b.certs, deps) {
			cfg, err := gatewayConfig(sg, keystore)
			var g *gateway.Gateway
			if err == nil {
				g, err = gateway.New(cfg, gateway.Deps{Sessions: gs.sessions, Decider: gs.decider, LoginURL: login,
					Name: r.Name, Audit: gs.audit, Logger: gs.log.With("gateway", r.Name)})
			}
			if err != nil {
				if _, known := logged[r]; !known {
					gs.log.Error("gateway not served", "gateway", r.Name, "err", err)
				}
				gs.failed[r] = err
				out = append(out, routed{res: r, prefix: gatewayPrefix(sg), h: unavailable{}})
				continue
			}
			b = builtGateway{g: g, certs: deps}
		}
		next[r] = b
		out = append(out, routed{res: r, prefix: gatewayPrefix(sg), g: b.g, h: b.g})
	}
	for r, b := range gs.built {
		if next[r].g != b.g {
			b.g.Close() // replaced or deleted: its idle upstream connections go
		}
	}
	gs.built = next
	// Longest prefix first, so /ssc/api wins over /ssc and / comes last.
	slices.SortStableFunc(out, func(a, b routed) int { return len(b.prefix) - len(a.prefix) })
	gs.routes, gs.unchanged = out, unchanged
	return out
}

// close releases the idle upstream connections of every Gateway built so
// far. The daemon calls it once its listeners have drained: otherwise each
// Gateway's transport keeps its connections (and their read and write
// goroutines) open to the upstream for its idle timeout after Run returned.
func (gs *gateways) close() {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	for _, b := range gs.built {
		b.g.Close()
	}
}

// builtGateway is a Gateway built from a stored document and the keystore
// entries it was built with: a rotated certificate rebuilds it.
type builtGateway struct {
	g     *gateway.Gateway
	certs []*spec.Certificate
}

// gatewayCerts lists the keystore entries g uses, in a fixed order (nil
// for a name not in the keystore).
func gatewayCerts(g *spec.Gateway, keystore map[string]*spec.Certificate) []*spec.Certificate {
	if len(g.UpstreamCAs) == 0 && g.ClientCertificate == "" {
		return nil
	}
	out := make([]*spec.Certificate, 0, len(g.UpstreamCAs)+1)
	for _, name := range g.UpstreamCAs {
		out = append(out, keystore[name])
	}
	return append(out, keystore[g.ClientCertificate])
}

func gatewayPrefix(g *spec.Gateway) string {
	if g.PathPrefix == "" || g.PathPrefix == "/" {
		return "/"
	}
	return strings.TrimSuffix(g.PathPrefix, "/")
}

// gatewayConfig maps a Gateway document and the keystore onto the
// gateway's Config.
func gatewayConfig(g *spec.Gateway, keystore map[string]*spec.Certificate) (gateway.Config, error) {
	cfg := gateway.Config{
		Upstream: g.Upstream, PathPrefix: g.PathPrefix,
		UserHeader: g.UserHeader, RolesHeader: g.RolesHeader, VersionsHeader: g.VersionsHeader,
		RequiredRole: g.RequiredRole,
		DialTimeout:  g.Timeouts.Dial.D(), ResponseHeaderTimeout: g.Timeouts.ResponseHeader.D(),
		MaxRequestsPerUser: g.MaxRequestsPerUser,
	}
	if s := g.SharedSecret; s != nil {
		if s.Value == "" {
			return cfg, errSecretUnresolved
		}
		cfg.SharedSecret = &gateway.SharedSecret{Header: s.Header, Value: gateway.Secret(s.Value)}
	}
	for _, name := range g.UpstreamCAs {
		c := keystore[name]
		if c == nil || c.Usage != spec.UsageTLSCA {
			return cfg, fmt.Errorf("upstreamCAs: no Certificate %q of usage %s", name, spec.UsageTLSCA)
		}
		ca, err := x509.ParseCertificate(c.DER)
		if err != nil {
			return cfg, fmt.Errorf("upstreamCAs: Certificate %q: %w", name, err)
		}
		cfg.UpstreamCAs = append(cfg.UpstreamCAs, ca)
	}
	if name := g.ClientCertificate; name != "" {
		c := keystore[name]
		switch {
		case c == nil || c.Usage != spec.UsageTLSClient:
			return cfg, fmt.Errorf("clientCertificate: no Certificate %q of usage %s", name, spec.UsageTLSClient)
		case c.PrivateKey == nil:
			return cfg, errKeyUnresolved
		}
		tc, err := c.TLSCertificate()
		if err != nil {
			return cfg, fmt.Errorf("clientCertificate: Certificate %q: %w", name, err)
		}
		cfg.ClientCertificate = tc
	}
	return cfg, nil
}

var (
	errSecretUnresolved = errors.New("its shared secret is not resolved yet (the next reconcile reads it from valueFrom)")
	errKeyUnresolved    = errors.New("its client certificate's private key is not resolved yet (the next reconcile reads it from privateKeyFrom)")
)

// match returns the handler of the Gateway that serves path, or nil. The
// prefixes are compared with the path the application maps (MappedPath),
// so "/strict;x/y" is decided by the Gateway of /strict.
func match(rs []routed, path string) http.Handler {
	path = gateway.MappedPath(path)
	for _, r := range rs {
		if r.prefix == "/" || path == r.prefix || strings.HasPrefix(path, r.prefix+"/") {
			return r.h
		}
	}
	return nil
}

// unavailable answers for a Gateway that cannot be built: its paths fail
// closed, and say so rather than 404 (the reason is in the log and status).
type unavailable struct{}

func (unavailable) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "30")
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, "This application is unavailable: its Gateway is not configured yet. The administrator can see why in idrecon status.", http.StatusServiceUnavailable)
}

// route returns the Gateway for r, with home the SAML baseURL's path: for /auth/verify the one the original
// URI falls under (or any, the longest-prefix order putting "/" last),
// otherwise the one whose prefix r's path is under. ok is false when none
// is.
func (gs *gateways) route(r *http.Request, home string) (http.Handler, bool) {
	rs := gs.current(home + spec.SAMLPath + "/login")
	if len(rs) == 0 {
		return nil, false
	}
	p := r.URL.Path
	if p != spec.VerifyPath && !strings.HasPrefix(p, spec.VerifyPath+"/") {
		g := match(rs, p)
		return g, g != nil
	}
	// The Gateway reads the original URI the same way and refuses the
	// request when it is ambiguous, whichever Gateway this picks.
	if v, ok := gateway.OriginalURI(r); ok && strings.HasPrefix(v, "/") {
		if u, err := url.ParseRequestURI(v); err == nil {
			if g := match(rs, u.Path); g != nil {
				return g, true
			}
		}
	}
	return rs[len(rs)-1].h, true
}

// Describe sends nothing: the Gateways come and go with the spec, so the
// collector is unchecked (each Gateway's metrics carry its name).
func (gs *gateways) Describe(chan<- *prometheus.Desc) {}

// Collect collects every Gateway built so far for the current spec.
func (gs *gateways) Collect(ch chan<- prometheus.Metric) {
	gs.mu.Lock()
	built := make([]*gateway.Gateway, 0, len(gs.built))
	for _, b := range gs.built {
		built = append(built, b.g)
	}
	gs.mu.Unlock()
	for _, g := range built {
		g.Collect(ch)
	}
}

// status reports every Gateway of the spec for GET /v1/status.
func (gs *gateways) status() []admin.GatewayStatus {
	rs := gs.current(gs.loginURL(context.Background()))
	res, _ := gs.st.Read().Resources(spec.KindGateway)
	gs.mu.Lock()
	failed := gs.failed
	gs.mu.Unlock()
	out := make([]admin.GatewayStatus, 0, len(res))
	for _, r := range res {
		sg, ok := r.Spec.(*spec.Gateway)
		if !ok {
			continue
		}
		st := admin.GatewayStatus{Name: r.Name, PathPrefix: gatewayPrefix(sg), Upstream: sg.Upstream}
		for _, x := range rs {
			if x.res == r && x.g != nil {
				s := x.g.Stats()
				st.Serving, st.Requests, st.Refusals, st.UpstreamErrors = true, s.Requests, s.Refusals, s.UpstreamErrors
			}
		}
		if err := failed[r]; err != nil {
			st.Error = err.Error()
		}
		out = append(out, st)
	}
	return out
}
