package proxytest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Caddy runs caddy with the Caddyfile conf, SOCKET replaced by a unix
// socket in a directory of the test's own, and returns a client that
// reaches it and does not follow redirects. A socket path needs no port, so
// no other process can take the address between choosing it and Caddy's
// listening on it. Without caddy the test is skipped.
func Caddy(t testing.TB, conf string) *http.Client {
	t.Helper()
	bin, err := exec.LookPath("caddy")
	if err != nil {
		t.Skip("caddy not installed (the Debian package caddy)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "caddy.sock")
	file := filepath.Join(dir, "Caddyfile")
	writeFile(t, file, strings.ReplaceAll(conf, "SOCKET", sock))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "run", "--config", file, "--adapter", "caddyfile")
	// Caddy keeps its state (an autosaved config, certificates) under
	// these; the user's own must stay untouched.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	exited, stop := start(t, "caddy", cmd, cancel)
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	if err := waitDialable("caddy", func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		return dial(ctx, "", "")
	}, exited); err != nil {
		stop()
		t.Fatalf("caddy did not start: %v\n%s", err, logs.String())
	}
	t.Cleanup(stop)
	tr := &http.Transport{DialContext: dial}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// waitDialable polls dial until it connects, the proxy (name) exits, or a
// generous deadline passes.
func waitDialable(name string, dial func() (net.Conn, error), exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited: %v", name, err)
		default:
		}
		if c, err := dial(); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening after 20s", name)
}

// start starts cmd, which cancel kills, and returns the channel its end is
// reported on and a stop that kills it and waits for it.
func start(t testing.TB, name string, cmd *exec.Cmd, cancel context.CancelFunc) (<-chan error, func()) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return exited, func() {
		cancel()
		<-exited
	}
}
