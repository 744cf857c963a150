package daemon

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/httpload"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
)

// BenchmarkGateway measures the front door after a real SAML sign-in:
// keep-alive load from this process through the built-in proxy to an
// upstream here, and on /auth/verify. "own-process" runs it as users do:
// the idrecon binary built from this tree, started with `serve` and its
// default flags (plain HTTP on loopback); "in-process" runs the daemon in
// this process, where a CPU profile sees it. The daemon, the client and
// the upstream share the machine's cores. Run:
//
//	go test -run '^$' -bench BenchmarkGateway -cpu 2 -benchtime 5s ./runtime/daemon/
func BenchmarkGateway(b *testing.B) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer app.Close()
	files := map[string]string{"bench-gateway.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: bench\nspec:\n" +
		"  upstream: " + app.URL + "\n  pathPrefix: /app\n  rolesHeader: X-Idrecon-Roles\n  versionsHeader: X-Idrecon-Versions\n" +
		// Every load client is the one signed-in user: on a machine of many
		// cores they pass the default bound on one user's requests.
		"  maxRequestsPerUser: 10000\n"}
	b.Run("own-process", func(b *testing.B) {
		bin := buildBinary(b)
		specDir, key := gatewaySpec(b, files)
		d, pid := startBinary(b, bin, specDir)
		setBaseURL(b, d, specDir, d.base)
		loadGateway(b, d, key, pid)
	})
	// What the gateway's proxy costs is judged against this: a bare
	// httputil.ReverseProxy in a process of its own, to the same upstream.
	b.Run("own-process/bare", func(b *testing.B) {
		addr, pid := startBareProxy(b, app.URL)
		httpload.Run(b, func() *http.Request {
			req, _ := http.NewRequest("GET", "http://"+addr+"/app/page?x=1", nil)
			return req
		}, http.StatusOK, pid)
	})
	b.Run("in-process", func(b *testing.B) {
		specDir, key := gatewaySpec(b, files)
		d := start(b, Config{SpecDir: specDir, DataDir: b.TempDir()})
		setBaseURL(b, d, specDir, d.base)
		loadGateway(b, d, key, 0)
	})
}

// loadGateway signs a user in to d and loads its proxy and /auth/verify.
// pid, when not 0, is the daemon's process, whose CPU is reported.
func loadGateway(b *testing.B, d *running, key *testidp.Key, pid int) {

	provision(b, d, "alice@contoso.com")
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	signIn(b, d, browser, key, "/saml/login?returnTo=/app/", "alice@contoso.com", "/app/")
	base, _ := url.Parse(d.base)
	cookies := jar.Cookies(base)

	get := func(path string) func() *http.Request {
		return func() *http.Request {
			req, _ := http.NewRequest("GET", d.base+path, nil)
			for _, c := range cookies {
				req.AddCookie(c)
			}
			req.Header.Set("X-Original-URI", "/app/page")
			return req
		}
	}
	b.Run("proxy", func(b *testing.B) { httpload.Run(b, get("/app/page?x=1"), http.StatusOK, pid) })
	b.Run("verify", func(b *testing.B) { httpload.Run(b, get("/auth/verify"), http.StatusOK, pid) })
}

// buildBinary builds the idrecon command from the tree, for benchmarks
// that run the daemon as users do.
func buildBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "idrecon")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/idrecon/idrecon/cmd/idrecon").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startBinary starts `bin serve` on specDir with default flags but for
// loopback listeners on ports the OS picks, plain HTTP, a fresh data dir
// and extra, and stops it when b ends. It returns the daemon and its pid.
func startBinary(b *testing.B, bin, specDir string, extra ...string) (*running, int) {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--spec", specDir, "--data-dir", b.TempDir(), "--insecure-http",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, extra...)...)
	cmd.Env = append(os.Environ(), "IDRECON_ADMIN_TOKEN="+adminTok)
	logs, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	serving := make(chan *running, 1)
	go func() {
		sc := bufio.NewScanner(logs)
		for sc.Scan() {
			var line struct{ Msg, SAML, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "idrecon serving" {
				serving <- &running{base: strings.TrimSuffix(line.SAML, "/saml/metadata"), admin: line.Admin}
			}
		}
		io.Copy(io.Discard, logs)
	}()
	select {
	case d := <-serving:
		return d, cmd.Process.Pid
	case <-time.After(30 * time.Second):
		b.Fatal("the daemon did not start within 30s")
	}
	return nil, 0
}

// TestBareProxyChild is the bare reverse proxy of BenchmarkGateway, in a
// process of its own. It only runs when the benchmark starts it.
func TestBareProxyChild(t *testing.T) {
	upstream := os.Getenv("IDRECON_BARE_PROXY_UPSTREAM")
	if upstream == "" {
		t.Skip("helper process for BenchmarkGateway")
	}
	target, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 128
	fmt.Printf("LISTEN %s\n", ln.Addr())
	t.Fatal(http.Serve(ln, &httputil.ReverseProxy{Transport: tr, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}))
}

// startBareProxy starts TestBareProxyChild to upstream and returns its
// address and pid.
func startBareProxy(b *testing.B, upstream string) (string, int) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestBareProxyChild$")
	cmd.Env = append(os.Environ(), "IDRECON_BARE_PROXY_UPSTREAM="+upstream)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "LISTEN "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a, cmd.Process.Pid
	case <-time.After(30 * time.Second):
		b.Fatal("the bare proxy did not start within 30s")
	}
	return "", 0
}
