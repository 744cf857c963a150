package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
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
	return doWith(t, noRedirects, method, url, token, raw)
}

// doWith is do through client. A POST carries a small form, as a browser's
// does, so that the application can tell the body arrived.
func doWith(t *testing.T, client *http.Client, method, url, token string, raw [][2]string) *http.Response {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(postedForm)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, kv := range raw {
		req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
	}
	if token != "" {
		req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: token})
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// postedForm is the body doWith posts.
const postedForm = "a=1"

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

// verifyServer serves g's forward-auth and a stand-in for idrecon's sign-in
// page, which says where it would send the browser back: what a proxy in
// front of an application asks and sends the browser to.
func verifyServer(t *testing.T, g *gateway.Gateway) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(gateway.VerifyPath, g)
	mux.HandleFunc("/saml/login", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sign in, then back to "+r.URL.Query().Get("returnTo"))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// checkAnn checks that the application saw ann's identity as the Gateway of
// examples/entra's header names sets it, whatever copies the client sent.
func checkAnn(t *testing.T, got seen) {
	t.Helper()
	if v := valuesFolded(got.Header, "username"); !slices.Equal(v, []string{"ann"}) {
		t.Errorf("app saw username %q, want [ann]", v)
	}
	if v := valuesFolded(got.Header, "x-idrecon-roles"); !slices.Equal(v, []string{"Developer, Manager"}) {
		t.Errorf("app saw roles %q, want idrecon's [Developer, Manager]", v)
	}
	if v := valuesFolded(got.Header, "x-idrecon-versions"); !slices.Equal(v, []string{"ledger/1, payments/2.0"}) {
		t.Errorf("app saw versions %q, want idrecon's", v)
	}
}

// crossSitePosts are the headers of a POST another site's page makes on
// the user's session: a current browser's, an older one's without
// Sec-Fetch-Site, and one with headers the client wrote itself, which do
// not whitewash it.
func crossSitePosts(spoofs [][2]string) [][][2]string {
	evil := [2]string{"Origin", "https://evil.example"}
	return [][][2]string{
		{evil, {"Sec-Fetch-Site", "cross-site"}},
		{evil},
		append([][2]string{evil}, spoofs...),
	}
}

// unreached runs f and fails t if the application was hit meanwhile; what
// says how it was asked ("without a session").
func unreached(t *testing.T, hits *atomic.Int64, what string, f func()) {
	t.Helper()
	before := hits.Load()
	f()
	if n := hits.Load() - before; n != 0 {
		t.Errorf("app hit %d times %s", n, what)
	}
}

// checkOrigins sends as another site's page would, then as the
// application's own (origin) would, through a proxy in front of g that
// send sends one request to: the first are refused and counted, the
// application never hit, the second reach it with ann's identity.
func checkOrigins(t *testing.T, g *gateway.Gateway, hits *atomic.Int64, origin string, spoofs [][2]string, send func(t *testing.T, method string, raw [][2]string) *http.Response) {
	post := func(t *testing.T, raw [][2]string) *http.Response { return send(t, http.MethodPost, raw) }
	t.Run("cross-site POST", func(t *testing.T) {
		before, refused := hits.Load(), g.Stats().Refusals[gateway.ReasonCrossOrigin]
		posts := crossSitePosts(spoofs)
		for _, raw := range posts {
			if resp := post(t, raw); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%q: status %d, want 403", raw, resp.StatusCode)
			}
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("app hit %d times by a cross-site POST", n)
		}
		if n := g.Stats().Refusals[gateway.ReasonCrossOrigin] - refused; n != uint64(len(posts)) {
			t.Errorf("%d cross-origin refusals counted, want %d", n, len(posts))
		}
	})
	t.Run("same-origin POST", func(t *testing.T) {
		for _, raw := range [][][2]string{
			{{"Origin", origin}, {"Sec-Fetch-Site", "same-origin"}},
			{{"Origin", origin}}, // an older browser: Origin against the host the proxy forwards
			nil,
		} {
			got := decodeSeen(t, post(t, raw))
			if got.Method != http.MethodPost || got.Body != int64(len(postedForm)) {
				t.Errorf("%q: app saw %s with %d bytes", raw, got.Method, got.Body)
			}
			if v := valuesFolded(got.Header, "username"); !slices.Equal(v, []string{"ann"}) {
				t.Errorf("%q: app saw username %q", raw, v)
			}
		}
	})
	// nginx and Traefik drop the upgrade headers on the way to
	// forward-auth, and Caddy keeps them: the handshake must be known
	// either way. Browsers send PATCH and extension methods as written.
	t.Run("cross-site handshake and other methods", func(t *testing.T) {
		before, refused := hits.Load(), g.Stats().Refusals[gateway.ReasonCrossOrigin]
		sent := 0
		for _, method := range []string{"GET", "PUT", "DELETE", "PATCH", "PROPFIND"} {
			var extra [][2]string
			if method == "GET" {
				extra = webSocketHandshake
			}
			// A current browser's and an older one's, without Sec-Fetch-Site.
			for _, raw := range [][][2]string{
				slices.Concat([][2]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}}, extra),
				slices.Concat([][2]string{{"Origin", "https://evil.example"}}, extra),
			} {
				sent++
				if resp := send(t, method, raw); resp.StatusCode != http.StatusForbidden {
					t.Errorf("%s %q: status %d, want 403", method, raw, resp.StatusCode)
				}
			}
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("app hit %d times from another site", n)
		}
		if n := g.Stats().Refusals[gateway.ReasonCrossOrigin] - refused; n != uint64(sent) {
			t.Errorf("%d cross-origin refusals counted, want %d", n, sent)
		}
	})
	t.Run("same-origin handshake", func(t *testing.T) {
		for _, raw := range [][][2]string{
			slices.Concat([][2]string{{"Origin", origin}, {"Sec-Fetch-Site", "same-origin"}}, webSocketHandshake),
			slices.Concat([][2]string{{"Origin", origin}}, webSocketHandshake),
		} {
			// The echo application does not switch protocols; reaching it
			// with ann's identity is what counts.
			got := decodeSeen(t, send(t, "GET", raw))
			if v := valuesFolded(got.Header, "username"); !slices.Equal(v, []string{"ann"}) {
				t.Errorf("%q: app saw username %q", raw, v)
			}
		}
	})
}

// webSocketHandshake are the headers a browser adds to a WebSocket
// handshake over HTTP/1.1.
var webSocketHandshake = [][2]string{
	{"Connection", "Upgrade"}, {"Upgrade", "websocket"},
	{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}, {"Sec-WebSocket-Version", "13"},
}
