package gateway_test

import (
	"bufio"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// serverTimeout is the front server's read and write timeout in these
// tests: a whole exchange through the Gateway outlasts it on purpose.
const serverTimeout = 150 * time.Millisecond

// newTimedFrontDoor serves a Gateway over a server with the daemon's kind
// of timeouts, which bound a whole exchange from its start.
func newTimedFrontDoor(t *testing.T, cfg gateway.Config, timeout time.Duration) *httptest.Server {
	t.Helper()
	return startTimedFrontDoor(t, cfg, timeout, false)
}

// startTimedFrontDoor is newTimedFrontDoor, over TLS and HTTP/2 if h2.
func startTimedFrontDoor(t *testing.T, cfg gateway.Config, timeout time.Duration, h2 bool) *httptest.Server {
	t.Helper()
	g, err := gateway.New(cfg, gateway.Deps{Sessions: sessions, Decider: deciders, Logger: quietLogger(), Recheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g.Close)
	srv := httptest.NewUnstartedServer(g)
	srv.Config.ReadTimeout = timeout
	srv.Config.WriteTimeout = timeout
	if h2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

// past waits until the server's timeouts, counted from now, are over.
func past() {
	deadline := time.Now().Add(3 * serverTimeout)
	for time.Now().Before(deadline) {
		time.Sleep(time.Until(deadline))
	}
}

// TestProxyStreamOutlivesServerTimeouts: an event stream (or a long
// download) goes on for as long as the client keeps reading, past the
// server's read and write timeouts, which are for idrecon's own answers.
// Go's server enforces them per connection: the read deadline cancels the
// request once its background read times out, the write deadline fails
// the next write.
func TestProxyStreamOutlivesServerTimeouts(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%v", h2), func(t *testing.T) { testStreamOutlivesServerTimeouts(t, h2) })
	}
}

func testStreamOutlivesServerTimeouts(t *testing.T, h2 bool) {
	next := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 3 {
			fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
			if i == 2 {
				return
			}
			select {
			case <-next:
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer up.Close()
	srv := startTimedFrontDoor(t, gateway.Config{Upstream: up.URL}, serverTimeout, h2)
	req, _ := http.NewRequest("GET", srv.URL+"/events", nil)
	req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if h2 && resp.ProtoMajor != 2 {
		t.Fatalf("served over %s", resp.Proto)
	}
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if want := fmt.Sprintf("data: %d\n", i); line != want {
			t.Fatalf("event %d: %q, %v; want %q", i, line, err, want)
		}
		br.ReadString('\n')
		past()
		if i < 2 {
			next <- struct{}{}
		}
	}
}

// TestProxyUploadOutlivesServerTimeouts: a slow but steady upload passes
// however long it takes in all, each pause well within the read timeout.
func TestProxyUploadOutlivesServerTimeouts(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
	}))
	defer up.Close()
	const timeout = time.Second
	srv := newTimedFrontDoor(t, gateway.Config{Upstream: up.URL}, timeout)
	pr, pw := io.Pipe()
	sum := sha256.New()
	sent := make(chan int, 1)
	go func() {
		total := 0
		for end := time.Now().Add(2 * timeout); time.Now().Before(end); {
			chunk := strings.Repeat("x", 1000)
			sum.Write([]byte(chunk))
			if _, err := io.WriteString(pw, chunk); err != nil {
				break
			}
			total += len(chunk)
			time.Sleep(timeout / 10)
		}
		sent <- total
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", srv.URL+"/upload", pr)
	req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %x", <-sent, sum.Sum(nil)); resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("status %d, upstream got %q; want %q", resp.StatusCode, body, want)
	}
}

// TestProxyStalledUploadReleasesUpstream: a client that stops sending its
// body midway is cut once a read has waited the server's read timeout, and
// the upstream's read of the body fails rather than waiting for ever.
func TestProxyStalledUploadReleasesUpstream(t *testing.T) {
	failed := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.Copy(io.Discard, r.Body)
		failed <- err
	}))
	defer up.Close()
	srv := newTimedFrontDoor(t, gateway.Config{Upstream: up.URL}, serverTimeout)
	sendRaw(t, srv, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nCookie: %s=tok-ann\r\n\r\nabc")
	select {
	case err := <-failed:
		if err == nil {
			t.Error("the upstream read a whole body the client never sent")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream still waits for a body the client stopped sending")
	}
}

// TestProxySlowReaderReleasesUpstream: a client that stops reading a
// download does not hold the upstream connection forever: once a write to
// it has waited the server's write timeout, the exchange ends and the
// upstream sees its request cancelled.
func TestProxySlowReaderReleasesUpstream(t *testing.T) {
	done := make(chan error, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for {
			if _, err := w.Write(buf); err != nil {
				done <- err
				return
			}
		}
	}))
	defer up.Close()
	srv := newTimedFrontDoor(t, gateway.Config{Upstream: up.URL}, serverTimeout)
	sendRaw(t, srv, "GET /download HTTP/1.1\r\nHost: x\r\nCookie: %s=tok-ann\r\n\r\n")
	// The client never reads.
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the upstream is still writing to a client that stopped reading")
	}
}

// sendRaw writes request, its %s the session cookie's name, on a
// connection of its own to srv, which stays open until the test ends and
// is never read.
func sendRaw(t *testing.T, srv *httptest.Server, request string) {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, request, gateway.DefaultSessionCookie)
}
