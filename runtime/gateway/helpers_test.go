package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// cookieSessions maps the idrecon_session cookie's value to a user name,
// standing in for the SAML server's session table.
type cookieSessions map[string]string

func (s cookieSessions) UserOf(r *http.Request) (string, bool) {
	c, err := r.Cookie(gateway.DefaultSessionCookie)
	if err != nil {
		return "", false
	}
	u, ok := s[c.Value]
	return u, ok
}

// staticAccess is a Decider over a fixed table; a missing user is unknown.
type staticAccess map[string]gateway.Access

func (s staticAccess) Access(_ context.Context, name string) (gateway.Access, error) {
	a, ok := s[name]
	if !ok {
		return gateway.Access{}, gateway.ErrUnknownUser
	}
	return a, nil
}

var (
	sessions = cookieSessions{"tok-ann": "ann", "tok-bob": "bob", "tok-eve": "eve\r\nusername: root", "tok-err": "err"}
	people   = staticAccess{
		"ann":                   {UserName: "ann", Active: true, Roles: []string{"Developer", "Manager"}, Versions: []string{"ledger/1", "payments/2.0"}},
		"bob":                   {UserName: "bob", Active: true},
		"eve\r\nusername: root": {UserName: "eve\r\nusername: root", Active: true, Roles: []string{"Developer"}},
	}
	errDecider = errors.New("store on fire")
	deciders   = gateway.DeciderFunc(func(ctx context.Context, name string) (gateway.Access, error) {
		if name == "err" {
			return gateway.Access{}, errDecider
		}
		return people.Access(ctx, name)
	})
)

// seen is what the echo upstream received.
type seen struct {
	Method string
	URI    string
	Host   string
	Header http.Header
	Body   int64
}

// echoUpstream answers every request with what it saw, as JSON, and counts
// the requests.
func echoUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(seen{Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header, Body: n})
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newFrontDoor serves a Gateway with cfg over an httptest server, using the
// fake sessions and deciders unless deps names others.
func newFrontDoor(t *testing.T, cfg gateway.Config, deps gateway.Deps) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	if deps.Sessions == nil {
		deps.Sessions = sessions
	}
	if deps.Decider == nil {
		deps.Decider = deciders
	}
	if deps.Logger == nil {
		deps.Logger = quietLogger()
	}
	g, err := gateway.New(cfg, deps)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	return g, srv
}

// noRedirects is a client that reports redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request with raw header keys (written exactly as given, so
// "USERNAME" and "user_name" reach the server as spelled) and the session
// token as cookie ("" for none).
func do(t *testing.T, method, url, token string, raw [][2]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range raw {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: token})
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeSeen(t *testing.T, resp *http.Response) seen {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d, want 200: %s", resp.StatusCode, b)
	}
	var s seen
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// valuesFolded returns every value of every key in h that folds (case, '_'
// and '.' as '-') to name.
func valuesFolded(h http.Header, name string) []string {
	var out []string
	for k, v := range h {
		if fold(k) == fold(name) {
			out = append(out, v...)
		}
	}
	return out
}

func fold(s string) string {
	return strings.NewReplacer("_", "-", ".", "-").Replace(strings.ToLower(s))
}
