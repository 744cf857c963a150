package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/logsink"
)

// waitClosed reads from conn until the server closes it, failing if it is
// still open at the deadline.
func waitClosed(t *testing.T, conn net.Conn, within time.Duration) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(within))
	buf := make([]byte, 512)
	for {
		_, err := conn.Read(buf)
		var ne net.Error
		switch {
		case err == nil:
			continue // an error response before the close
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("the server kept a stalled connection open for %v", within)
		default:
			return // EOF or reset: closed
		}
	}
}

// TestSlowClientsAreCutOff: both listeners close a connection whose client
// stalls in its headers or its body, after the (here shortened) timeouts.
func TestSlowClientsAreCutOff(t *testing.T) {
	short := 100 * time.Millisecond
	r := start(t, Config{Timeouts: Timeouts{ReadHeader: short, Read: short, Write: short, Idle: short}})
	stalls := map[string]string{
		"partial header": "GET /v1/status HTTP/1.1\r\nHost: idrecon\r\n",
		"partial body": "POST /v1/plan HTTP/1.1\r\nHost: idrecon\r\nAuthorization: Bearer " + adminTok +
			"\r\nContent-Type: application/gzip\r\nContent-Length: 1000\r\n\r\n0123456789",
		"idle": "GET /healthz HTTP/1.1\r\nHost: idrecon\r\n\r\n",
	}
	for listener, base := range map[string]string{"main": r.base, "admin": r.admin} {
		for name, send := range stalls {
			t.Run(listener+"/"+name, func(t *testing.T) {
				conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close()
				if _, err := io.WriteString(conn, send); err != nil {
					t.Fatal(err)
				}
				// Far below the default timeouts (10s for headers, 60s for a
				// request, 120s idle), far above the shortened ones.
				waitClosed(t, conn, 5*time.Second)
			})
		}
	}
}

// TestBackupOutlastsTheWriteTimeout: a backup of a large state may take
// longer to send than any other answer, so it alone is exempt.
func TestBackupOutlastsTheWriteTimeout(t *testing.T) {
	// A deadline that has always passed by the time an answer is written.
	r := start(t, Config{Timeouts: Timeouts{Write: time.Nanosecond}})
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", r.admin+path, nil)
		req.Header.Set("Authorization", "Bearer "+adminTok)
		return http.DefaultClient.Do(req)
	}
	if resp, err := get("/v1/status"); err == nil {
		resp.Body.Close()
		t.Fatalf("the admin API answered %s despite its write timeout", resp.Status)
	}
	resp, err := get("/v1/backup")
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || len(b) == 0 {
		t.Fatalf("backup: %s, %d bytes, %v", resp.Status, len(b), err)
	}
}

// runUntilStarted runs a daemon with cfg and stops it once it serves; it
// returns Run's error and whether it started.
func runUntilStarted(t *testing.T, cfg Config) (started bool, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg.Listen = "127.0.0.1:0"
	cfg.InsecureHTTP = true
	cfg.AdminToken = adminTok
	cfg.Interval = time.Hour
	cfg.Started = func(string, string) { started = true; cancel() }
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon neither started nor failed")
	}
	return started, err
}

func TestAdminOffLoopbackNeedsConsent(t *testing.T) {
	// Every interface: the one address every machine has that is not loopback.
	const everywhere = "0.0.0.0:0"

	started, err := runUntilStarted(t, Config{AdminListen: everywhere})
	if started || err == nil || !strings.Contains(err.Error(), "--admin-insecure-http") {
		t.Fatalf("plain admin API off loopback: started %t, err %v", started, err)
	}

	logs := &logsink.Buffer{}
	started, err = runUntilStarted(t, Config{AdminListen: everywhere, AdminInsecureHTTP: true,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !started || err != nil {
		t.Fatalf("with consent: started %t, err %v", started, err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "admin API serves plain HTTP") {
		t.Fatalf("no warning in the log:\n%s", logs)
	}

	logs = &logsink.Buffer{}
	started, err = runUntilStarted(t, Config{AdminListen: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if !started || err != nil || strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "admin API") {
		t.Fatalf("loopback: started %t, err %v\n%s", started, err, logs)
	}
}

func TestLoopback(t *testing.T) {
	tests := map[string]bool{
		"127.0.0.1:9090": true, "127.0.0.2:9090": true, "[::1]:9090": true, "localhost:9090": true,
		":9090": false, "0.0.0.0:9090": false, "[::]:9090": false, "10.0.0.1:9090": false,
		"admin.example.com:9090": false, "[fe80::1%eth0]:9090": false,
	}
	for addr, want := range tests {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %t, want %t", addr, got, want)
		}
	}
}

// TestHTTPSNeedsACertificate: a daemon told to serve HTTPS by a spec with no
// tls Certificate refuses to start, saying what to add, instead of logging
// "serving https://" while every handshake fails. In push mode, where the
// certificate can only come with the first push, it starts and warns.
func TestHTTPSNeedsACertificate(t *testing.T) {
	specDir := copyDir(t, "../../examples/entra")
	cfg := Config{SpecDir: specDir, DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0",
		AdminToken: adminTok, Logger: slog.New(slog.DiscardHandler)}
	err := Run(t.Context(), cfg)
	if !errors.Is(err, ErrNoTLSCertificate) || !strings.Contains(err.Error(), "usage: tls") || !strings.Contains(err.Error(), "--insecure-http") {
		t.Fatalf("Run = %v, want ErrNoTLSCertificate saying what to do", err)
	}

	logs := &logsink.Buffer{}
	cfg = Config{DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", AdminToken: adminTok,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	started := make(chan struct{})
	cfg.Started = func(string, string) { close(started) }
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("push mode did not start: %v", err)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "no TLS certificate yet") {
		t.Errorf("push mode without a certificate does not warn:\n%s", logs)
	}

	// A first reconcile that failed (a git host down at boot, a refused
	// revision) may be why there is no certificate: the daemon starts,
	// says so, and takes one from the first revision that applies, rather
	// than exiting with advice about the spec it could not read.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "broken.yaml"), []byte("kind: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logs = &logsink.Buffer{}
	cfg = Config{SpecDir: bad, DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", AdminToken: adminTok,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}
	started = make(chan struct{})
	cfg.Started = func(string, string) { close(started) }
	ctx, cancel = context.WithCancel(t.Context())
	done = make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("a daemon whose first reconcile failed did not start: %v", err)
	}
	cancel()
	<-done
	if !strings.Contains(logs.String(), "no TLS certificate yet") || !strings.Contains(logs.String(), "first reconcile failed") {
		t.Errorf("a daemon whose first reconcile failed does not say why it has no certificate:\n%s", logs)
	}
}

// TestListenAddressNeedsAPort: an address without a port (a host alone, a
// port alone, a colon with nothing after it) is refused at once, naming the
// flag and what to write. Before, an admin address such as 127.0.0.1 was
// refused as "not loopback" with advice to take --admin-insecure-http, a
// main one only after the state was opened (seconds for a large one), and
// "127.0.0.1:" listened on a port chosen at random.
func TestListenAddressNeedsAPort(t *testing.T) {
	tests := []struct{ listen, admin, flag string }{
		{"127.0.0.1:0", "127.0.0.1", "--admin-listen"},
		{"127.0.0.1:0", "localhost", "--admin-listen"},
		{"127.0.0.1:0", "127.0.0.1:", "--admin-listen"},
		{"0.0.0.0", "127.0.0.1:0", "--listen"},
		{"443", "127.0.0.1:0", "--listen"},
		{"127.0.0.1:", "127.0.0.1:0", "--listen"},
	}
	for _, tt := range tests {
		t.Run(tt.listen+" "+tt.admin, func(t *testing.T) {
			dataDir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			started := false
			err := Run(ctx, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: dataDir,
				Listen: tt.listen, AdminListen: tt.admin, InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour,
				Logger: slog.New(slog.DiscardHandler), Started: func(string, string) { started = true; cancel() }})
			switch {
			case started:
				t.Fatal("the daemon served")
			case err == nil:
				t.Fatal("Run = nil, want an error")
			case !strings.Contains(err.Error(), tt.flag) || !strings.Contains(err.Error(), "port"):
				t.Errorf("Run = %v, want it to name %s and say a port is missing", err, tt.flag)
			case strings.Contains(err.Error(), "admin-insecure-http"):
				t.Errorf("Run = %v: an address without a port is no question of loopback", err)
			}
			if _, err := os.Stat(filepath.Join(dataDir, "state.db")); err == nil {
				t.Error("the state was opened before the address was checked")
			}
		})
	}
}

// TestTLSCertificateNeedsHTTPS: naming the certificate to serve while
// serving plain HTTP contradicts itself. Before, the name was dropped
// silently: an operator who added --insecure-http to a unit with
// --tls-certificate believed HTTPS was still served with that certificate.
func TestTLSCertificateNeedsHTTPS(t *testing.T) {
	started, err := runUntilStarted(t, Config{AdminListen: "127.0.0.1:0", TLSCertificate: "idrecon-tls"})
	if started || err == nil || !strings.Contains(err.Error(), "--tls-certificate") || !strings.Contains(err.Error(), "--insecure-http") {
		t.Fatalf("--tls-certificate with --insecure-http: started %t, err %v; want a refusal naming both flags", started, err)
	}
}
