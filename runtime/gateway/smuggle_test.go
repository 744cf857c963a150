package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestPathParameterDotSegments: Tomcat (Application Security's
// server) strips ";params" from each segment before it resolves dot
// segments, so "/ssc/..;/manager/html" is "/manager/html" there. A Gateway
// forwarding only /ssc must not hand the upstream a path that leaves /ssc,
// nor let a lax Gateway's prefix carry a request to a stricter one's.
func TestPathParameterDotSegments(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc"}, gateway.Deps{})
	for _, p := range []string{
		"/ssc/..;/manager/html",
		"/ssc/..;jsessionid=x/manager/html",
		"/ssc/a/..;/..;/manager/html",
		"/ssc/.;/x",
		"/ssc/%2e%2e;/manager/html",
	} {
		t.Run(p, func(t *testing.T) {
			before := hits.Load()
			resp := getAsAnn(t, srv.URL, p)
			if resp.StatusCode != http.StatusBadRequest || hits.Load() != before {
				t.Errorf("status %d, upstream hits %d: a path Tomcat resolves outside /ssc was forwarded",
					resp.StatusCode, hits.Load()-before)
			}
		})
	}
	// Path parameters that are not dot segments still pass.
	if resp := do(t, "GET", srv.URL+"/ssc/a;jsessionid=1/b", "tok-ann", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("/ssc/a;jsessionid=1/b: status %d, want 200", resp.StatusCode)
	}
}

// TestVerifyRefusesAmbiguousOriginalURI: behind the documented nginx
// configuration, "/lax/../strict/x" reaches /auth/verify as X-Original-URI
// "/lax/../strict/x" and the application as the same raw URI, which it
// resolves to /strict/x (nginx matches its locations on the normalised
// /strict/x). The daemon picks the Gateway by the header's prefix, so the
// Gateway of /lax (no requiredRole) answers for a request that lands in
// /strict. An original URI with dot segments (raw, percent-encoded, or
// Tomcat's "..;") names another resource than its prefix suggests: the
// answer must not be 200. Nor when the request gives more than one original
// URI: each proxy sets one and passes the client's headers on, so the other
// is the client's choice of the Gateway that decides.
func TestVerifyRefusesAmbiguousOriginalURI(t *testing.T) {
	_, srv := newFrontDoor(t, gateway.Config{PathPrefix: "/lax"}, gateway.Deps{})
	for _, tc := range []struct {
		name string
		path string
		raw  [][2]string
	}{
		{"nginx dots", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/lax/../strict/x"}}},
		{"nginx encoded dots", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/lax/%2e%2e/strict/x"}}},
		{"nginx encoded slash", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/lax%2f..%2fstrict/x"}}},
		{"tomcat path parameter", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/lax/..;/strict/x"}}},
		{"traefik", gateway.VerifyPath, [][2]string{{"X-Forwarded-Uri", "/lax/./../strict/x?q=1"}}},
		{"encoded dots beside a bad escape", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/lax/%2e%2e/strict/x%zz"}}},
		{"encoded dots beside a lone percent", gateway.VerifyPath, [][2]string{{"X-Forwarded-Uri", "/lax/%2E%2E/strict/%"}}},
		{"envoy", gateway.VerifyPath + "/lax/%2E%2E/strict/x", nil},
		{"both headers", gateway.VerifyPath, [][2]string{{"X-Original-URI", "/strict/x"}, {"X-Forwarded-Uri", "/lax/x"}}},
		{"a header twice", gateway.VerifyPath, [][2]string{{"X-Forwarded-Uri", "/strict/x"}, {"X-Forwarded-Uri", "/lax/x"}}},
		{"a header and a path", gateway.VerifyPath + "/strict/x", [][2]string{{"X-Original-URI", "/lax/x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, _ := url.Parse(srv.URL)
			u.Opaque = "//" + u.Host + tc.path
			req := &http.Request{Method: "GET", URL: u, Header: http.Header{}}
			for _, kv := range tc.raw {
				req.Header[kv[0]] = append(req.Header[kv[0]], kv[1])
			}
			req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Username") != "" {
				t.Errorf("status %d, username %q; want 403 and no identity", resp.StatusCode, resp.Header.Get("Username"))
			}
		})
	}
	// A plain original URI is still answered.
	if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", [][2]string{{"X-Original-URI", "/lax/a.b/..x/c"}}); resp.StatusCode != http.StatusOK {
		t.Errorf("plain URI: status %d, want 200", resp.StatusCode)
	}
}

// TestClientKeyNeverPrinted: Config promises it can be logged (the
// daemon's slog JSON handler) or dumped as JSON whole; JSON follows the
// *tls.Certificate into its private key, whose exported D (and an RSA
// key's primes) would be printed.
func TestClientKeyNeverPrinted(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gateway.Config{Upstream: "https://ssc", ClientCertificate: &tls.Certificate{Certificate: [][]byte{{1, 2, 3}}, PrivateKey: key}}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg)
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	d := new(big.Int).SetBytes(raw).String() // as encoding/json writes D
	for name, out := range map[string]string{"slog JSON": logged.String(), "json.Marshal": string(js)} {
		if strings.Contains(out, d) {
			t.Errorf("%s printed the client private key: %s", name, out)
		}
	}
	// Still a usable dump: the rest of the Config is there.
	if !strings.Contains(string(js), `"Upstream":"https://ssc"`) {
		t.Errorf("json.Marshal lost the config: %s", js)
	}
}

// TestWebSocketFromAnotherOriginRefused: a WebSocket handshake is a GET,
// which the cross-origin check lets through as safe, yet it opens a
// channel both ways on the user's session; a page on another origin (a
// sibling subdomain gets the SameSite=Lax cookie) must not open one.
func TestWebSocketFromAnotherOriginRefused(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		name    string
		headers [][2]string
		want    int
	}{
		{"same origin", [][2]string{{"Origin", "http://" + host}, {"Sec-Fetch-Site", "same-origin"}}, http.StatusOK},
		{"no origin (not a browser)", nil, http.StatusOK},
		{"sibling subdomain", [][2]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "same-site"}}, http.StatusForbidden},
		{"cross site", [][2]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}}, http.StatusForbidden},
		{"cross site, old browser", [][2]string{{"Origin", "http://evil.example"}}, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			raw := append([][2]string{{"Connection", "keep-alive, Upgrade"}, {"Upgrade", "websocket"}}, tc.headers...)
			resp := do(t, "GET", srv.URL+"/ws", "tok-ann", raw)
			resp.Body.Close()
			// The echo upstream does not switch protocols; reaching it is
			// what counts.
			reached := hits.Load() != before
			if tc.want == http.StatusForbidden && (resp.StatusCode != http.StatusForbidden || reached) {
				t.Errorf("status %d, upstream reached %v: want 403 and not reached", resp.StatusCode, reached)
			}
			if tc.want == http.StatusOK && !reached {
				t.Errorf("status %d: a same-origin handshake did not reach the upstream", resp.StatusCode)
			}
		})
	}
}

// TestRequestTrailersCarryNoIdentity: a chunked request body may end in
// trailer fields, which ReverseProxy passes on and some servers (CGI
// bridges, Tomcat with allowedTrailerHeaders) merge into the headers. A
// trailer named like an identity header must not reach the upstream.
func TestRequestTrailersCarryNoIdentity(t *testing.T) {
	var got atomic.Pointer[http.Header]
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		tr := r.Trailer.Clone()
		got.Store(&tr)
	}))
	t.Cleanup(up.Close)
	cfg := spoofConfig(up.URL, "username")
	_, srv := newFrontDoor(t, cfg, gateway.Deps{})
	for _, tc := range spoofCases("username") {
		t.Run(tc.name, func(t *testing.T) {
			got.Store(nil)
			body := io.MultiReader(strings.NewReader("payload")) // unknown length: chunked
			req, err := http.NewRequest("POST", srv.URL+"/app/upload", body)
			if err != nil {
				t.Fatal(err)
			}
			req.Trailer = http.Header{}
			for _, kv := range tc.raw {
				if strings.EqualFold(kv[0], "Connection") {
					continue
				}
				req.Trailer[kv[0]] = append(req.Trailer[kv[0]], kv[1])
			}
			req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d, want 200", resp.StatusCode)
			}
			tr := got.Load()
			if tr == nil {
				t.Fatal("upstream not reached")
			}
			for k, vs := range *tr {
				if strings.Contains(strings.Join(vs, ","), forged) {
					t.Errorf("forged trailer reached the upstream: %s: %q", k, vs)
				}
			}
		})
	}
}

// TestUpgradeOnlyToWebSocket: after a 101 the connection is a tunnel to the
// upstream that idrecon no longer reads. Upgraded to h2c, every later
// HTTP/2 request on it reaches the application with whatever "username" the
// client writes, never decided nor stripped (h2c smuggling); any other
// protocol escapes the per-request decision the same way. Only WebSocket,
// what the Gateway is for, is let through; the upstream never sees the rest.
func TestUpgradeOnlyToWebSocket(t *testing.T) {
	var hits atomic.Int64
	up := rawUpstream(t, &hits, func(rw *bufio.ReadWriter, r *http.Request) {
		// A lax upstream: switches to whatever it is asked.
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: " + r.Header.Get("Upgrade") + "\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
	})
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	for _, tc := range []struct {
		name, headers string
		want          int
	}{
		{"h2c", "Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n", http.StatusBadRequest},
		{"h2c without settings in connection", "Upgrade: h2c\r\nConnection: Upgrade\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n", http.StatusBadRequest},
		{"h2c listed with websocket", "Upgrade: h2c, websocket\r\nConnection: Upgrade\r\n", http.StatusBadRequest},
		{"h2c in a second header", "Upgrade: websocket\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n", http.StatusBadRequest},
		{"tls", "Upgrade: TLS/1.2\r\nConnection: Upgrade\r\n", http.StatusBadRequest},
		{"websocket", "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n", http.StatusSwitchingProtocols},
		{"websocket any case", "Upgrade: WebSocket\r\nConnection: upgrade\r\n", http.StatusSwitchingProtocols},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
			fmt.Fprintf(conn, "GET /app HTTP/1.1\r\nHost: app\r\n%sCookie: idrecon_session=tok-ann\r\n\r\n", tc.headers)
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if n := hits.Load() - before; tc.want != http.StatusSwitchingProtocols && n != 0 {
				t.Errorf("upstream asked to switch protocols %d times", n)
			}
		})
	}
}

// rawUpstream is an upstream that counts its requests in hits and answers
// each with whatever answer writes on the hijacked connection (answers
// net/http would not send), closed when t ends.
func rawUpstream(t *testing.T, hits *atomic.Int64, answer func(rw *bufio.ReadWriter, r *http.Request)) *httptest.Server {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		answer(rw, r)
	}))
	t.Cleanup(up.Close)
	return up
}
