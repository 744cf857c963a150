package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// tunnelUpstream is a lax upstream that accepts a CONNECT of any form and
// answers 200, as a tunnel would, counting the CONNECTs it is sent.
func tunnelUpstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var connects atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodConnect {
			connects.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(up.Close)
	return up, &connects
}

// TestConnectRefused: a CONNECT asks for a tunnel, which idrecon would no
// longer read: whatever crossed it would reach the application undecided
// and unstripped. Go's HTTP/1.1 server hands a handler a CONNECT whose
// target is a path, so it would otherwise be proxied like any request.
func TestConnectRefused(t *testing.T) {
	up, connects := tunnelUpstream(t)
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	for _, tc := range []struct {
		name, target string
		want         int
	}{
		{"path", "/app/ws", http.StatusMethodNotAllowed},
		{"root", "/", http.StatusMethodNotAllowed},
		// Authority form: no path, so under no prefix.
		{"authority", "app.example:443", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
			fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: app\r\nCookie: idrecon_session=tok-ann\r\n\r\n", tc.target)
			resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
	if n := connects.Load(); n != 0 {
		t.Errorf("upstream sent %d CONNECTs", n)
	}
	if n := g.Stats().Refusals[gateway.ReasonBadMethod]; n != 2 {
		t.Errorf("%s refusals %d, want 2", gateway.ReasonBadMethod, n)
	}
}

// xconnectEnv turns on Go's HTTP/2 extended CONNECT (RFC 8441), off by
// default in Go 1.26 (golang/go#71128). An operator can turn it on with
// GODEBUG, and a later Go may turn it on by default; read once at start,
// so the test runs itself again with it.
const xconnectEnv = "http2xconnect=1"

// TestExtendedConnectOverHTTP2: over HTTP/2 a WebSocket is a CONNECT with
// :protocol, and the stream is the tunnel. With extended CONNECT enabled it
// reaches the handler as method CONNECT with a path; it must not be
// forwarded, and plain HTTP/2 CONNECT (no path) never is.
func TestExtendedConnectOverHTTP2(t *testing.T) {
	xconnect := strings.Contains(os.Getenv("GODEBUG"), xconnectEnv)
	if !xconnect {
		name := t.Name()
		t.Run("enabled", func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$", "-test.v")
			cmd.Env = append(os.Environ(), "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+","+xconnectEnv, ","))
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "--- PASS: "+name+"/extended/websocket") {
				t.Fatalf("with GODEBUG=%s: %v\n%s", xconnectEnv, err, out)
			}
		})
	}
	up, connects := tunnelUpstream(t)
	g, err := gateway.New(gateway.Config{Upstream: up.URL}, gateway.Deps{Sessions: sessions, Decider: deciders, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewUnstartedServer(g)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// x/net's transport, not net/http's: net/http refuses to send a
	// ":protocol" header before it reaches its bundled HTTP/2 client.
	//lint:ignore SA1019 only x/net's transport sends :protocol
	tr := &http2.Transport{TLSClientConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	//lint:ignore SA1019 as above
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr}

	connect := func(t *testing.T, url, protocol string) (*http.Response, error) {
		t.Helper()
		pr, pw := io.Pipe() // the stream stays open, as a tunnel's would
		t.Cleanup(func() { pw.Close() })
		req, err := http.NewRequest(http.MethodConnect, url, pr)
		if err != nil {
			t.Fatal(err)
		}
		if protocol != "" {
			req.Header.Set(":protocol", protocol)
		}
		req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
		resp, err := client.Do(req)
		if err == nil {
			t.Cleanup(func() { resp.Body.Close() })
			if resp.ProtoMajor != 2 {
				t.Fatalf("served over %s, want HTTP/2", resp.Proto)
			}
		}
		return resp, err
	}
	for _, protocol := range []string{"websocket", "connect-udp", "h2c"} {
		t.Run("extended/"+protocol, func(t *testing.T) {
			resp, err := connect(t, srv.URL+"/app/ws", protocol)
			if !xconnect {
				// Go's default: the server does not offer it, so the client
				// does not send it.
				if err == nil {
					t.Errorf("extended CONNECT answered %d with it off", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("status %d, want %d", resp.StatusCode, http.StatusMethodNotAllowed)
			}
		})
	}
	t.Run("plain", func(t *testing.T) {
		u := strings.TrimPrefix(srv.URL, "https://")
		req, err := http.NewRequest(http.MethodConnect, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.URL.Opaque = u // authority form: no :path, no :scheme
		req.Host = u
		req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Errorf("status %d, want a refusal", resp.StatusCode)
		}
	})
	if n := connects.Load(); n != 0 {
		t.Errorf("upstream sent %d CONNECTs", n)
	}
}

// TestTraceRefused: an upstream that answers TRACE echoes the request it
// received, identity headers and shared secret included, back to the
// client; the secret is what tells idrecon's requests from anyone else's.
func TestTraceRefused(t *testing.T) {
	var traces atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodTrace {
			traces.Add(1)
		}
		w.Header().Set("Content-Type", "message/http")
		_ = r.Write(w) // the request as received, as TRACE answers
	}))
	t.Cleanup(up.Close)
	g, srv := newFrontDoor(t, spoofConfig(up.URL, "username"), gateway.Deps{})
	resp := do(t, http.MethodTrace, srv.URL+"/app", "tok-ann", nil)
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(string(body), "s3cret") {
		t.Errorf("status %d, want 405; body:\n%s", resp.StatusCode, body)
	}
	if resp.Header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	if n := traces.Load(); n != 0 {
		t.Errorf("upstream sent %d TRACEs", n)
	}
	if n := g.Stats().Refusals[gateway.ReasonBadMethod]; n != 1 {
		t.Errorf("%s refusals %d, want 1", gateway.ReasonBadMethod, n)
	}
}
