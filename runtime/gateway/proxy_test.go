package gateway_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
)

func TestProxySignInRedirect(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc"}, gateway.Deps{})
	tests := []struct {
		method, path string
		token        string
		wantStatus   int
		wantLocation string
	}{
		{"GET", "/ssc/html/ssc/index.jsp?a=1&b=%2F", "", http.StatusFound, "/saml/login?returnTo=" + url.QueryEscape("/ssc/html/ssc/index.jsp?a=1&b=%2F")},
		{"HEAD", "/ssc", "", http.StatusFound, "/saml/login?returnTo=%2Fssc"},
		{"POST", "/ssc/api/v1/x", "", http.StatusSeeOther, "/saml/login?returnTo=" + url.QueryEscape("/ssc/api/v1/x")},
		{"GET", "/ssc/x", "tok-unknown", http.StatusFound, "/saml/login?returnTo=%2Fssc%2Fx"},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			resp := do(t, tc.method, srv.URL+tc.path, tc.token, nil)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if got := resp.Header.Get("Location"); got != tc.wantLocation {
				t.Errorf("Location %q, want %q", got, tc.wantLocation)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("upstream hit %d times", hits.Load())
	}
}

func TestProxyLoginURLFromDeps(t *testing.T) {
	up, _ := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{LoginURL: "/idp/saml/login?force=1"})
	resp := do(t, "GET", srv.URL+"/x", "", nil)
	if got, want := resp.Header.Get("Location"), "/idp/saml/login?force=1&returnTo=%2Fx"; got != want {
		t.Errorf("Location %q, want %q", got, want)
	}
}

// TestProxyRefusesWithoutAccess: a signed-in user without access gets a
// 403 page, not a redirect to the sign-in (which would loop); nothing
// reaches the upstream.
func TestProxyRefusesWithoutAccess(t *testing.T) {
	up, hits := echoUpstream(t)
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	tests := []struct {
		token      string
		wantStatus int
		wantReason string
	}{
		{"tok-bob", http.StatusForbidden, gateway.ReasonNoRole},
		{"tok-eve", http.StatusForbidden, gateway.ReasonUnsafeName},
		{"tok-err", http.StatusServiceUnavailable, gateway.ReasonDecisionError},
	}
	for _, tc := range tests {
		t.Run(tc.wantReason, func(t *testing.T) {
			resp := do(t, "GET", srv.URL+"/x", tc.token, nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d Location %q, want %d and no redirect", resp.StatusCode, resp.Header.Get("Location"), tc.wantStatus)
			}
			if strings.Contains(string(body), errDecider.Error()) {
				t.Errorf("page shows the internal error: %s", body)
			}
			if n := g.Stats().Refusals[tc.wantReason]; n != 1 {
				t.Errorf("refusals[%s] = %d, want 1", tc.wantReason, n)
			}
		})
	}
	if hits.Load() != 0 {
		t.Errorf("upstream hit %d times", hits.Load())
	}
}

// TestProxyPaths: only paths under the prefix and outside idrecon's own
// are forwarded; dot segments are refused rather than resolved.
func TestProxyPaths(t *testing.T) {
	up, _ := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc/"}, gateway.Deps{
		Reserved: append([]string{"/ssc/internal"}, gateway.DefaultReserved...),
	})
	_, root := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	tests := []struct {
		base *httptest.Server
		path string
		want int
	}{
		{srv, "/ssc", http.StatusOK},
		{srv, "/ssc/a/b", http.StatusOK},
		{srv, "/sscx", http.StatusNotFound},
		{srv, "/other", http.StatusNotFound},
		{srv, "/ssc/internal/x", http.StatusNotFound},
		{srv, "/ssc/a/../../saml/login", http.StatusBadRequest},
		{srv, "/ssc/%2e%2e/saml/login", http.StatusBadRequest},
		{root, "/saml/login", http.StatusNotFound},
		{root, "/saml", http.StatusNotFound},
		{root, "/metrics", http.StatusNotFound},
		{root, "/api/scim/v2/Users", http.StatusNotFound},
		{root, "/samlx", http.StatusOK},
		{root, "/", http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			resp := getAsAnn(t, tc.base.URL, tc.path)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// TestProxyReservedAsTheApplicationMaps: a reserved path stays reserved
// in every spelling the application maps onto it. Tomcat drops each
// segment's ";parameters" and merges runs of '/', so "/ssc/internal;x/y"
// and "/ssc//internal/y" are /ssc/internal/y to it; forwarding them would
// hand the application a path the Gateway promised never to forward.
func TestProxyReservedAsTheApplicationMaps(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc"}, gateway.Deps{
		Reserved: append([]string{"/ssc/internal"}, gateway.DefaultReserved...),
	})
	_, root := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	for _, tc := range []struct {
		base *httptest.Server
		path string
	}{
		{srv, "/ssc/internal;x/secret"},
		{srv, "/ssc/internal;x"},
		{srv, "/ssc//internal/secret"},
		{srv, "/ssc/;/internal/secret"},
		{srv, "/ssc/internal//secret"},
		{root, "/saml;x/login"},
		{root, "//saml/login"},
		{root, "/metrics;x"},
		{root, "/auth;x/verify"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			unreached(t, hits, "through idrecon's own paths", func() {
				resp := getAsAnn(t, tc.base.URL, tc.path)
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("status %d, want 404", resp.StatusCode)
				}
			})
		})
	}
}

// TestProxyUnderItsPrefixAsTheApplicationMaps: the daemon picks the
// Gateway by the path as the application maps it, so "//ssc/x" and
// "/ssc;jsessionid=1/x" come to the Gateway of /ssc, and are under it for
// the application too: an entitled user's request is decided and
// forwarded as written, not answered 404.
func TestProxyUnderItsPrefixAsTheApplicationMaps(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc"}, gateway.Deps{})
	for _, path := range []string{"//ssc/x", "/ssc;jsessionid=1/x", "///ssc//x"} {
		t.Run(path, func(t *testing.T) {
			before := hits.Load()
			resp := getAsAnn(t, srv.URL, path)
			if resp.StatusCode != http.StatusOK || hits.Load()-before != 1 {
				t.Errorf("status %d, forwarded %d times; want 200, once", resp.StatusCode, hits.Load()-before)
			}
		})
	}
}

// TestProxyCookies: idrecon's cookies (its session, and every idrecon_
// name: the pending sign-in, the console's) never reach the upstream, the
// application's cookies do, and the upstream cannot set ours.
func TestProxyCookies(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: gateway.DefaultSessionCookie, Value: "planted"})
		http.SetCookie(w, &http.Cookie{Name: "idrecon_console", Value: "planted"})
		http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: "j1"})
		io.WriteString(w, strings.Join(r.Header.Values("Cookie"), "|"))
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	tests := []struct {
		name   string
		cookie []string
		want   string
	}{
		{"between others", []string{"a=1; idrecon_session=tok-ann; b=2"}, "a=1; b=2"},
		{"alone", []string{"idrecon_session=tok-ann"}, ""},
		{"two headers", []string{"idrecon_session=tok-ann", "JSESSIONID=j1; idrecon_session=tok-x"}, "JSESSIONID=j1"},
		{"the console's and the pending sign-in's", []string{"idrecon_console=c1; a=1; idrecon_session=tok-ann; idrecon_console_state=s; idrecon_saml_pending=p"}, "a=1"},
		{"lookalike kept", []string{"idrecon_session=tok-ann; my_idrecon_session=1"}, "my_idrecon_session=1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/", nil)
			req.Header["Cookie"] = tc.cookie
			resp, err := noRedirects.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != tc.want {
				t.Errorf("status %d, upstream saw Cookie %q, want %q", resp.StatusCode, body, tc.want)
			}
			for _, c := range resp.Cookies() {
				if strings.HasPrefix(c.Name, "idrecon_") {
					t.Errorf("upstream set %s", c)
				}
			}
			if len(resp.Cookies()) != 1 {
				t.Errorf("cookies %v, want JSESSIONID only", resp.Cookies())
			}
		})
	}
}

// TestProxyNamelessCookiesCannotPlantOurs: a browser keeps a Set-Cookie
// without a name ("=v", or "v" with no '=') as a nameless cookie, and sends
// it back as its value alone: "=idrecon_session=x" comes back as
// "idrecon_session=x", which idrecon reads as its session cookie. So the
// upstream could fix a browser's session through it; such cookies are
// dropped like the named ones.
func TestProxyNamelessCookiesCannotPlantOurs(t *testing.T) {
	planted := []string{
		"=idrecon_session=planted",
		"=idrecon_session=planted; Path=/; HttpOnly",
		" = idrecon_session =planted",
		"=idrecon_console=planted",
		"idrecon_session",
		"idrecon_session; Path=/",
		"=idrecon_session",
	}
	kept := []string{"JSESSIONID=j1; Path=/", "=nameless", "lookalike; Path=/"}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Set-Cookie"] = append(append([]string{}, planted...), kept...)
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	resp := do(t, "GET", srv.URL+"/", "tok-ann", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header["Set-Cookie"]; !slices.Equal(got, kept) {
		t.Errorf("Set-Cookie %q, want %q", got, kept)
	}
}

// TestProxyStreams: a flushed chunk reaches the client while the upstream
// is still writing.
func TestProxyStreams(t *testing.T) {
	release := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "data: last\n\n")
	}))
	defer up.Close()
	defer close(release)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	resp := do(t, "GET", srv.URL+"/events", "tok-ann", nil)
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		if line != "data: first\n" {
			t.Errorf("first line %q", line)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flushed event did not arrive while the upstream was still writing")
	}
}

// TestProxyLargeUpload streams a body bigger than any buffer through.
func TestProxyLargeUpload(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	const size = 64 << 20
	pr, pw := io.Pipe()
	sum := sha256.New()
	go func() {
		buf := make([]byte, 1<<20)
		for i := 0; i < size/len(buf); i++ {
			buf[0] = byte(i)
			sum.Write(buf)
			if _, err := pw.Write(buf); err != nil {
				return
			}
		}
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/upload", pr) // unknown length: chunked
	req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("%d %s", size, hex.EncodeToString(sum.Sum(nil))); string(body) != want {
		t.Errorf("upstream got %q, want %q", body, want)
	}
}

// TestProxyWebSocket upgrades through the proxy and echoes over the
// hijacked connection; the upstream sees the identity on the handshake.
func TestProxyWebSocket(t *testing.T) {
	user := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			http.Error(w, "upgrade required", http.StatusUpgradeRequired)
			return
		}
		user <- strings.Join(r.Header.Values("Username"), ",")
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, err := rw.ReadString('\n')
		if err != nil {
			return
		}
		rw.WriteString("echo: " + line)
		rw.Flush()
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nusername: root-forged\r\nCookie: idrecon_session=tok-ann\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("status %d, want 101", resp.StatusCode)
	}
	if got := <-user; got != "ann" {
		t.Errorf("upstream saw username %q, want ann", got)
	}
	io.WriteString(conn, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo: hello\n" {
		t.Errorf("read %q, %v", line, err)
	}
}

// TestProxyUpstreamDown: refused connections and slow upstreams give a
// page without upstream detail, quickly, and are counted.
func TestProxyUpstreamDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // never answers
	}))
	defer slow.Close()

	tests := []struct {
		name     string
		upstream string
		want     int
	}{
		{"refused", "http://" + closedAddr, http.StatusBadGateway},
		{"no headers in time", slow.URL, http.StatusGatewayTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs logsink.Buffer
			g, srv := newFrontDoor(t, gateway.Config{Upstream: tc.upstream, ResponseHeaderTimeout: 100 * time.Millisecond},
				gateway.Deps{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
			// A long path: the client's, logged with each failure while
			// the upstream is down, so clipped.
			resp := do(t, "GET", srv.URL+"/x/"+strings.Repeat("a", 20000), "tok-ann", nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			u, _ := url.Parse(tc.upstream)
			if strings.Contains(string(body), u.Port()) || strings.Contains(string(body), "dial") {
				t.Errorf("page reveals the upstream: %s", body)
			}
			if n := g.Stats().UpstreamErrors; n != 1 {
				t.Errorf("UpstreamErrors = %d, want 1", n)
			}
			if l := logs.String(); !strings.Contains(l, "upstream request failed") || len(l) > 2000 {
				t.Errorf("the failure logged %d bytes: %.300s", len(l), l)
			}
		})
	}
}

// TestProxyMutualTLS: an https upstream that requires a client certificate
// is reached with the configured one, verified against the configured CA.
func TestProxyMutualTLS(t *testing.T) {
	now := time.Now()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	clientKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	clientDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: "idrecon-gateway"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName+" as "+r.Header.Get("username"))
	}))
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	up.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	up.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	up.StartTLS()
	defer up.Close()

	client := &tls.Certificate{Certificate: [][]byte{clientDER}, PrivateKey: clientKey}
	tests := []struct {
		name       string
		cfg        gateway.Config
		wantStatus int
		wantBody   string
	}{
		{"client certificate", gateway.Config{Upstream: up.URL, UpstreamCAs: []*x509.Certificate{up.Certificate()}, ClientCertificate: client},
			http.StatusOK, "idrecon-gateway as ann"},
		{"no client certificate", gateway.Config{Upstream: up.URL, UpstreamCAs: []*x509.Certificate{up.Certificate()}},
			http.StatusBadGateway, ""},
		{"upstream not trusted", gateway.Config{Upstream: up.URL, UpstreamCAs: []*x509.Certificate{ca}, ClientCertificate: client},
			http.StatusBadGateway, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, srv := newFrontDoor(t, tc.cfg, gateway.Deps{})
			resp := do(t, "GET", srv.URL+"/x", "tok-ann", nil)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
		})
	}
}

// TestProxyRefusesCrossSitePosts: a form on another site cannot post to
// the application with the user's session; same-origin posts and safe
// methods pass.
func TestProxyRefusesCrossSitePosts(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	tests := []struct {
		name   string
		method string
		raw    [][2]string
		want   int
	}{
		{"cross-site POST", "POST", [][2]string{{"Sec-Fetch-Site", "cross-site"}}, http.StatusForbidden},
		{"foreign Origin POST", "POST", [][2]string{{"Origin", "https://evil.example"}}, http.StatusForbidden},
		{"same-origin POST", "POST", [][2]string{{"Sec-Fetch-Site", "same-origin"}}, http.StatusOK},
		{"non-browser POST", "POST", nil, http.StatusOK},
		{"cross-site GET", "GET", [][2]string{{"Sec-Fetch-Site", "cross-site"}}, http.StatusOK},
		// Only a browser's WebSocket handshake carries the key, so it is
		// judged as one even with its upgrade headers gone, as forward-auth
		// judges it.
		{"cross-site GET with a WebSocket key", "GET", [][2]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusForbidden},
		{"same-origin GET with a WebSocket key", "GET", [][2]string{{"Sec-Fetch-Site", "same-origin"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			resp := do(t, tc.method, srv.URL+"/x", "tok-ann", tc.raw)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if reached := hits.Load() > before; reached != (tc.want == http.StatusOK) {
				t.Errorf("upstream reached: %v", reached)
			}
		})
	}
}

// getAsAnn GETs path from base, sent as written (not cleaned by the
// client), with ann's session cookie, and returns the answer, its body
// closed.
func getAsAnn(t *testing.T, base, path string) *http.Response {
	t.Helper()
	u, _ := url.Parse(base)
	u.Opaque = "//" + u.Host + path
	req := &http.Request{Method: "GET", URL: u, Header: http.Header{}}
	req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
