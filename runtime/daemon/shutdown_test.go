package daemon

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// openConns counts the connections a server has open, through its
// ConnState hook.
type openConns struct {
	mu   sync.Mutex
	open map[net.Conn]bool
}

func (o *openConns) track(c net.Conn, s http.ConnState) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.open == nil {
		o.open = map[net.Conn]bool{}
	}
	switch s {
	case http.StateNew:
		o.open[c] = true
	case http.StateClosed, http.StateHijacked:
		delete(o.open, c)
	}
}

func (o *openConns) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.open)
}

// TestReviewGatewayUpstreamClosedOnShutdown: once Run has returned, the
// daemon holds no connection to a Gateway's upstream. Before, the Gateway's
// transport kept its idle connection (and the goroutines reading and
// writing it) for its 50s idle timeout after the daemon had stopped.
func TestGatewayUpstreamClosedOnShutdown(t *testing.T) {
	var conns openConns
	app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "app\n") }))
	app.Config.ConnState = conns.track
	app.Start()
	defer app.Close()

	d, key := gatewayDaemon(t, t.TempDir(), map[string]string{"gateway.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n"})
	provision(t, d, "alice@contoso.com")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	defer browser.CloseIdleConnections()
	get := func() *http.Response {
		t.Helper()
		resp, err := browser.Get(d.base + "/app/x")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	signIn(t, d, browser, key, get().Header.Get("Location"), "alice@contoso.com", "/app/x")
	if resp := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("through the Gateway: %s", resp.Status)
	}
	if conns.count() == 0 {
		t.Fatal("the upstream saw no connection")
	}

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	// Far below the transport's 50s idle timeout.
	deadline := time.Now().Add(10 * time.Second)
	for conns.count() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) from the stopped daemon still open at the upstream", conns.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGeneratedAdminTokenIsPrivate: a token generated into an existing
// empty file an operator made readable to all is still readable by the
// owner only.
func TestGeneratedAdminTokenIsPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AdminTokenFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	tok, err := adminToken(Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil || tok == "" {
		t.Fatalf("adminToken: %q, %v", tok, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, %v; want mode 0600", st, err)
	}
	if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != tok {
		t.Errorf("file holds %q, want the token returned", b)
	}
}
