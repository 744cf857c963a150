package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// startNginx runs nginx with testdata/nginx-idrecon.conf, its upstreams
// pointed at idrecon and app, and returns its base URL. nginx runs in the
// foreground as a child of the test and is killed when the test ends.
func startNginx(t *testing.T, idrecon, app string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx not installed (the Debian package nginx)")
		}
	}
	snippet, err := os.ReadFile(filepath.Join("testdata", "nginx-idrecon.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		dir := t.TempDir()
		site := strings.NewReplacer(
			"server 127.0.0.1:9443;", "server "+strings.TrimPrefix(idrecon, "http://")+";",
			"server 127.0.0.1:8080;", "server "+strings.TrimPrefix(app, "http://")+";",
			"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		).Replace(string(snippet))
		writeFile(t, filepath.Join(dir, "idrecon.conf"), site)
		writeFile(t, filepath.Join(dir, "nginx.conf"), strings.ReplaceAll(`daemon off;
master_process off;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log info;
events { worker_connections 128; }
http {
    access_log DIR/access.log;
    client_body_temp_path DIR/client_body;
    proxy_temp_path DIR/proxy;
    fastcgi_temp_path DIR/fastcgi;
    uwsgi_temp_path DIR/uwsgi;
    scgi_temp_path DIR/scgi;
    include DIR/idrecon.conf;
}
`, "DIR", dir))
		ctx, cancel := context.WithCancel(context.Background())
		cmd := exec.CommandContext(ctx, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatalf("start nginx: %v", err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			cancel()
			<-exited
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		err := waitListening(addr, exited)
		if err == nil {
			t.Cleanup(stop)
			return "http://" + addr
		}
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if strings.Contains(string(log), "Address already in use") && attempt < 5 {
			continue // another process took the port between our check and nginx's bind
		}
		t.Fatalf("nginx did not start: %v\n%s", err, log)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitListening polls addr until it accepts a connection, nginx exits, or
// a generous deadline passes.
func waitListening(addr string, exited <-chan error) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("nginx exited: %v", err)
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("nginx not listening after 20s")
}

// TestNginxAuthRequest runs the documented nginx configuration against
// idrecon's /auth/verify and an application that echoes what it receives.
func TestNginxAuthRequest(t *testing.T) {
	g, err := gateway.New(gateway.Config{}, gateway.Deps{Sessions: sessions, Decider: deciders, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(gateway.VerifyPath, g)
	mux.HandleFunc("/saml/login", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "sign in, then back to "+r.URL.Query().Get("returnTo"))
	})
	idrecon := httptest.NewServer(mux)
	defer idrecon.Close()
	app, hits := echoUpstream(t)
	base := startNginx(t, idrecon.URL, app.URL)

	spoofs := [][2]string{
		{"username", forged}, {"USERNAME", forged}, {"Username", forged + "2"}, {"user_name", forged},
		{"User_Name", forged}, {"USER_NAME", forged}, {"Connection", "username"},
		{"X-Original-URI", "/" + forged}, {"X-Original-URL", "http://evil.example/" + forged},
		{"X-Forwarded-Uri", "/" + forged}, {"X-Forwarded-For", forged}, {"X-Forwarded-Host", forged},
		{"X-Real-IP", forged}, {"Forwarded", "for=" + forged}, {"x_original_uri", "//evil.example"},
	}
	t.Run("signed in", func(t *testing.T) {
		for _, raw := range [][][2]string{nil, spoofs} {
			got := decodeSeen(t, do(t, "GET", base+"/ssc/html/index.jsp?a=1&b=2", "tok-ann", append(raw, [2]string{"Cookie", "JSESSIONID=j1"})))
			if v := valuesFolded(got.Header, "username"); !slices.Equal(v, []string{"ann"}) {
				t.Errorf("app saw username %q, want [ann]", v)
			}
			if v := valuesFolded(got.Header, "user-name"); v != nil {
				t.Errorf("app saw user_name %q", v)
			}
			for k, vs := range got.Header {
				if strings.Contains(strings.Join(vs, ","), forged) || strings.Contains(strings.Join(vs, ","), "evil") {
					t.Errorf("forged value arrived in %s: %q", k, vs)
				}
				f := fold(k)
				if strings.HasPrefix(f, "x-original-") || f == "forwarded" || f == "x-real-ip" || f == "x-forwarded-uri" {
					t.Errorf("app saw %s: %q", k, vs)
				}
			}
			if c := got.Header.Get("Cookie"); strings.Contains(c, "idrecon_session") || !strings.Contains(c, "JSESSIONID=j1") {
				t.Errorf("app saw Cookie %q", c)
			}
			if got.URI != "/ssc/html/index.jsp?a=1&b=2" {
				t.Errorf("app saw URI %q", got.URI)
			}
		}
	})
	t.Run("signed out goes to the sign-in and back", func(t *testing.T) {
		before := hits.Load()
		for _, raw := range [][][2]string{nil, spoofs} {
			resp := do(t, "GET", base+"/ssc/html/index.jsp?a=1&b=2", "", raw)
			if resp.StatusCode != http.StatusFound {
				t.Fatalf("status %d, want 302", resp.StatusCode)
			}
			loc, err := url.Parse(resp.Header.Get("Location"))
			if err != nil || loc.Path != "/saml/login" || loc.Query().Get("returnTo") != "/ssc/html/index.jsp?a=1&b=2" {
				t.Errorf("Location %q, want the sign-in returning to the page", resp.Header.Get("Location"))
			}
			// Following it reaches idrecon's sign-in through nginx.
			next := do(t, "GET", base+loc.RequestURI(), "", nil)
			body, _ := io.ReadAll(next.Body)
			if string(body) != "sign in, then back to /ssc/html/index.jsp?a=1&b=2" {
				t.Errorf("sign-in page said %q", body)
			}
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("app hit %d times without a session", n)
		}
	})
	t.Run("signed in without access", func(t *testing.T) {
		before := hits.Load()
		for _, tok := range []string{"tok-bob", "tok-eve"} {
			if resp := do(t, "GET", base+"/ssc/", tok, spoofs); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", tok, resp.StatusCode)
			}
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("app hit %d times without access", n)
		}
	})
	t.Run("verify is internal", func(t *testing.T) {
		if resp := do(t, "GET", base+gateway.VerifyPath, "tok-ann", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("status %d, want 404", resp.StatusCode)
		}
	})
}
