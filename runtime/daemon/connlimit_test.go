package daemon

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestConnectionsBounded: the main listener holds at most MaxConnections
// open; one more is served once another closes, not before. Nothing else
// bounds how many idle connections one client may keep, each a goroutine
// and its buffers.
func TestConnectionsBounded(t *testing.T) {
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir(), MaxConnections: 2})
	addr := strings.TrimPrefix(d.base, "http://")
	// ask sends GET /readyz on c and returns the answer's status line, or
	// an error once the deadline passes.
	ask := func(c net.Conn, within time.Duration) (string, error) {
		c.SetDeadline(time.Now().Add(within))
		if _, err := c.Write([]byte("GET /readyz HTTP/1.1\r\nHost: idrecon\r\n\r\n")); err != nil {
			return "", err
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "", err
		}
		resp.Body.Close()
		return resp.Status, nil
	}
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := ask(c, 10*time.Second); err != nil {
			t.Fatalf("a connection within the bound: %v", err)
		}
		held = append(held, c) // kept alive, idle
	}
	extra, err := net.Dial("tcp", addr) // the kernel's queue takes it
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if status, err := ask(extra, 300*time.Millisecond); err == nil {
		t.Fatalf("a connection past the bound was served: %s", status)
	}
	held[0].Close()
	if _, err := ask(extra, 10*time.Second); err != nil {
		t.Fatalf("once one closed, the waiting connection: %v", err)
	}
}

// TestHeadersBounded: a request's headers past maxHeaderBytes are refused
// (431; net/http allows a few KiB of slack) rather than held and, on some
// paths, logged.
func TestHeadersBounded(t *testing.T) {
	d := start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir()})
	req, err := http.NewRequest(http.MethodGet, d.base+"/readyz", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Filler", strings.Repeat("a", maxHeaderBytes+8192))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d for %d bytes of headers, want 431", resp.StatusCode, maxHeaderBytes+8192)
	}
}
