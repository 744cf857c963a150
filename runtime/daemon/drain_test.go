package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestNoRequestOutlivesRun: a request still in its handler when the
// shutdown timeout passes is cut off before Run returns, so no handler
// writes to the store or the audit log after they closed. Before, Run
// returned (closing both) while the handler went on, and the client could
// still finish its SCIM write against a daemon that had stopped.
func TestNoRequestOutlivesRun(t *testing.T) {
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir(), ShutdownTimeout: 200 * time.Millisecond})
	provision(t, d, "alice@contoso.com") // SCIM serves

	body := []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@contoso.com","active":true}`)
	conn, err := net.Dial("tcp", strings.TrimPrefix(d.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Expect: 100-continue makes the server say when the handler first
	// reads the body: from then on the request is in its handler.
	fmt.Fprintf(conn, "POST /api/scim/v2/Users HTTP/1.1\r\nHost: idrecon\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/scim+json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", scimTok, len(body))
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100") {
		t.Fatalf("no 100 Continue: %q, %v", line, err)
	}
	br.ReadString('\n') // the blank line ending the interim answer

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// The daemon has stopped: whatever the client sends now must not be
	// served.
	if _, err := conn.Write(body); err != nil {
		return // closed: fine
	}
	resp, err := http.ReadResponse(br, nil)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("a request was served after Run returned: %s %s", resp.Status, b)
	}
}

// TestRunLeavesNoGoroutines: every goroutine the daemon starts (servers,
// reconciler, folder watch, audit sync, connections) has ended once Run
// returned.
func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir()})
	provision(t, d, "alice@contoso.com")
	if code, _ := d.call(t, "GET", d.admin+"/v1/status", adminTok, nil); code != 200 {
		t.Fatalf("status: %d", code)
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after Run returned, %d before:\n%s", runtime.NumGoroutine(), before, bytes.TrimSpace(buf))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWebSocketDoesNotHoldShutdown: a WebSocket through a Gateway, which
// never ends by itself, is closed at shutdown without waiting out the
// shutdown timeout, and before Run returns.
func TestWebSocketDoesNotHoldShutdown(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		for {
			line, err := rw.ReadString('\n')
			if err != nil {
				return
			}
			rw.WriteString("echo: " + line)
			rw.Flush()
		}
	}))
	defer app.Close()

	specDir, key := gatewaySpec(t, map[string]string{"gateway.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n"})
	const timeout = time.Minute
	d := start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), ShutdownTimeout: timeout})
	setBaseURL(t, d, specDir, d.base)
	provision(t, d, "alice@contoso.com")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer browser.CloseIdleConnections()
	resp, err := browser.Get(d.base + "/app/ws")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	signIn(t, d, browser, key, resp.Header.Get("Location"), "alice@contoso.com", "/app/ws")
	u, _ := url.Parse(d.base)
	var cookies []string
	for _, c := range jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}

	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second)) // a hang fails rather than blocks the run
	fmt.Fprintf(conn, "GET /app/ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nCookie: %s\r\n\r\n", u.Host, strings.Join(cookies, "; "))
	br := bufio.NewReader(conn)
	resp, err = http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v, %v\nlogs:\n%s", resp, err, d.logs)
	}
	io.WriteString(conn, "hello\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo: hello\n" {
		t.Fatalf("through the WebSocket: %q, %v", line, err)
	}

	began := time.Now()
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > timeout/4 {
		t.Errorf("shutdown took %v with a WebSocket open; the timeout is %v", took, timeout)
	}
	io.WriteString(conn, "after\n")
	if line, err := br.ReadString('\n'); err == nil {
		t.Errorf("the WebSocket still echoes after Run returned: %q", line)
	}
}

// TestInFlightWriteFinishesOnStop: a SCIM write in its handler when the
// daemon is told to stop (SIGTERM) is served to its end within the
// shutdown timeout, answered, and durable: the daemon started again on the
// same data dir has it. New connections are refused meanwhile.
func TestInFlightWriteFinishesOnStop(t *testing.T) {
	specDir, dataDir := copyDir(t, "../../examples/entra"), t.TempDir()
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir, ShutdownTimeout: time.Minute})
	provision(t, d, "alice@contoso.com") // SCIM serves

	body := []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"bob@contoso.com","active":true}`)
	host := strings.TrimPrefix(d.base, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/scim/v2/Users HTTP/1.1\r\nHost: idrecon\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/scim+json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", scimTok, len(body))
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "100") {
		t.Fatalf("no 100 Continue: %q, %v", line, err)
	}
	br.ReadString('\n')

	stopped := make(chan error, 1)
	go func() { stopped <- d.stop() }()
	eventually(t, "the listener closed", func() bool {
		c, err := net.Dial("tcp", host)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) with a request in its handler, well inside the shutdown timeout", err)
	default:
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("the write in flight got no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("the write in flight: %s %s", resp.Status, b)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}

	d = start(t, Config{SpecDir: specDir, DataDir: dataDir})
	code, got := d.call(t, "GET", d.base+`/api/scim/v2/Users?filter=userName+eq+"bob@contoso.com"`, scimTok, nil)
	if code != 200 || !strings.Contains(string(got), `"totalResults":1`) {
		t.Fatalf("after the restart: %d %s", code, got)
	}
}
