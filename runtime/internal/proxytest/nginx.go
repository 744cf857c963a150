// Package proxytest runs a real nginx or Caddy (the Debian packages) for
// the end-to-end tests of the configurations the README documents: in a
// directory of the test's own, as a child process stopped when the test
// ends, skipping the test when the proxy is not installed.
package proxytest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Nginx runs nginx with the README's configuration (conf, a server block
// for the http {} context), its upstreams pointed at idrecon and app, and
// returns its base URL. nginx runs in the foreground as a child of the test
// and is stopped when the test ends; without nginx the test is skipped.
func Nginx(t testing.TB, conf, idrecon, app string) string {
	t.Helper()
	snippet, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	// The example names idrecon at serve's default address and the
	// application at the example Gateway's upstream; one that drifted from
	// them would have nginx send the test's traffic elsewhere.
	for _, want := range []string{"server 127.0.0.1:8080;", "server 127.0.0.1:8180;", "listen 80;"} {
		if !strings.Contains(string(snippet), want) {
			t.Fatalf("%s no longer has %q", conf, want)
		}
	}
	base, _ := run(t, func(listen string) string {
		return strings.NewReplacer(
			"server 127.0.0.1:8080;", "server "+strings.TrimPrefix(idrecon, "http://")+";",
			"server 127.0.0.1:8180;", "server "+strings.TrimPrefix(app, "http://")+";",
			"listen 80;", "listen "+listen+";",
		).Replace(string(snippet))
	}, true)
	return base
}

// NginxBalance runs nginx as a round-robin load balancer in front of upstreams
// (base URLs), with keep-alive connections to them and no access log, as
// one would in production, and returns its base URL and process id.
func NginxBalance(t testing.TB, upstreams []string) (string, int) {
	t.Helper()
	var servers strings.Builder
	for _, u := range upstreams {
		fmt.Fprintf(&servers, "    server %s;\n", strings.TrimPrefix(u, "http://"))
	}
	return run(t, func(listen string) string {
		return "upstream replicas {\n" + servers.String() + "    keepalive 64;\n}\n" +
			"server {\n    listen " + listen + ";\n    location / {\n" +
			"        proxy_pass http://replicas;\n        proxy_http_version 1.1;\n" +
			"        proxy_set_header Connection \"\";\n        proxy_set_header Host $http_host;\n" +
			"        proxy_next_upstream off;\n    }\n}\n"
	}, false)
}

// run starts nginx with the server block site(listen address) and returns
// its base URL and pid.
func run(t testing.TB, site func(listen string) string, accessLog bool) (string, int) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if bin, err = exec.LookPath("/usr/sbin/nginx"); err != nil {
			t.Skip("nginx not installed (the Debian package nginx)")
		}
	}
	for attempt := 1; ; attempt++ {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "idrecon.conf"), site(addr))
		access := "access_log DIR/access.log;"
		if !accessLog {
			access = "access_log off;"
		}
		writeFile(t, filepath.Join(dir, "nginx.conf"), strings.ReplaceAll(`daemon off;
master_process off;
worker_processes 1;
pid DIR/nginx.pid;
error_log DIR/error.log info;
events { worker_connections 1024; }
http {
    `+access+`
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
		exited, stop := start(t, "nginx", cmd, cancel)
		err := waitDialable("nginx", func() (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) }, exited)
		if err == nil {
			t.Cleanup(stop)
			return "http://" + addr, cmd.Process.Pid
		}
		stop()
		log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if strings.Contains(string(log), "Address already in use") && attempt < 5 {
			continue // another process took the port between our check and nginx's bind
		}
		t.Fatalf("nginx did not start: %v\n%s", err, log)
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
