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

	"github.com/idrecon/idrecon/runtime/internal/logsink"
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

// TestAdminTokenFileOpenToOthersIsClosed: a token file others may read (a
// data dir made by hand, a file copied in with the umask's mode) hands the
// admin API, backups of personal data included, to every local user.
// Before, the daemon read it and said nothing; now it takes the file back
// to the owner only, and says so.
func TestAdminTokenFileOpenToOthersIsClosed(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AdminTokenFile)
	if err := os.WriteFile(path, []byte("operator-chosen-token\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	logs := &logsink.Buffer{}
	tok, err := adminToken(Config{DataDir: dir}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil || tok != "operator-chosen-token" {
		t.Fatalf("adminToken: %q, %v; want the token in the file", tok, err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v, %v; want mode 0600", st, err)
	}
	if !strings.Contains(logs.String(), `"level":"WARN"`) || !strings.Contains(logs.String(), path) {
		t.Errorf("no warning naming %s:\n%s", path, logs)
	}
	if strings.Contains(logs.String(), tok) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
}

// TestUnreadableAdminTokenIsNotReplaced: a token file the daemon cannot
// read (a root-owned file does that to a service user; here a link that
// loops, since the tests may run as root) is an error naming it, not a new
// token written over what the operator's tools hold.
func TestUnreadableAdminTokenIsNotReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, AdminTokenFile)
	if err := os.Symlink(AdminTokenFile, path); err != nil {
		t.Fatal(err)
	}
	tok, err := adminToken(Config{DataDir: dir}, slog.New(slog.NewJSONHandler(io.Discard, nil)))
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("adminToken: %q, %v; want an error naming %s", tok, err, path)
	}
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("what stood at the token's path was replaced: %v, %v", st, err)
	}
}
