package cli

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/daemon"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

// returnDeadline is how long a command may take to give up on a daemon
// that does not answer: far more than the short --request-timeout the
// tests set, far less than the HTTP client's old five minutes.
const returnDeadline = 10 * time.Second

// silentListener accepts TCP connections and never answers on them, as a
// hung daemon or a wrong port that accepts does. It returns its address.
func silentListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// runBounded runs the command line like run, failing the test if it has
// not returned within returnDeadline.
func runBounded(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code      int
		out, errs string
	}
	ch := make(chan result, 1)
	go func() {
		code, out, errs := run(t, env, args...)
		ch <- result{code, out, errs}
	}()
	select {
	case r := <-ch:
		return r.code, r.out, r.errs
	case <-time.After(returnDeadline):
		t.Fatalf("%q still running after %s", args, returnDeadline)
	}
	return 0, "", ""
}

// TestSilentDaemonTimesOut: every command that asks the admin API gives up
// on a daemon that accepts the connection and never answers within
// --request-timeout (or IDRECON_REQUEST_TIMEOUT), with an error naming the
// URL asked (below a path prefix, for a daemon behind a proxy) and the
// limit, instead of hanging for the HTTP client's five minutes. A --server
// with something to hide in it is refused before any request
// (TestServerURLWithCredentialsIsRefused).
func TestSilentDaemonTimesOut(t *testing.T) {
	addr := silentListener(t)
	server := "http://" + addr + "/idrecon-admin"
	example, _ := filepath.Abs("../../../../examples/entra")
	tests := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"status, env", map[string]string{"IDRECON_REQUEST_TIMEOUT": "300ms"}, []string{"status"}},
		{"users, flag", nil, []string{"users", "--request-timeout", "300ms"}},
		{"users json", nil, []string{"users", "--request-timeout", "300ms", "--output", "json"}},
		{"access pending", nil, []string{"access", "pending", "--request-timeout", "300ms"}},
		{"suspend", nil, []string{"suspend", "--request-timeout", "300ms"}},
		{"reconcile", nil, []string{"reconcile", "--request-timeout", "300ms"}},
		{"reconcile --wait", nil, []string{"reconcile", "--wait", "--timeout", "1m", "--request-timeout", "300ms"}},
		{"plan --server", nil, []string{"plan", example, "--request-timeout", "300ms"}},
		{"saml metadata", nil, []string{"saml", "metadata", "--request-timeout", "300ms"}},
		{"backup", nil, []string{"backup", "-o", filepath.Join(t.TempDir(), "b"), "--request-timeout", "300ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"IDRECON_SERVER": server, "IDRECON_ADMIN_TOKEN": "x"}
			for k, v := range tt.env {
				env[k] = v
			}
			code, out, errs := runBounded(t, env, tt.args...)
			msg := out + errs
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, want := range []string{`"` + server + "/v1/", "did not answer within 300ms", "--request-timeout"} {
				if !strings.Contains(msg, want) {
					t.Errorf("output does not say %q:\nstdout:\n%s\nstderr:\n%s", want, out, errs)
				}
			}
		})
	}
}

// TestRequestTimeoutRefused: a request timeout that is not a positive
// duration is a usage error, from the flag or the environment.
func TestRequestTimeoutRefused(t *testing.T) {
	for _, tt := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag zero", nil, []string{"status", "--request-timeout", "0s"}},
		{"env garbage", map[string]string{"IDRECON_REQUEST_TIMEOUT": "soon"}, []string{"status"}},
		{"env negative", map[string]string{"IDRECON_REQUEST_TIMEOUT": "-1s"}, []string{"users"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"IDRECON_SERVER": "http://127.0.0.1:1", "IDRECON_ADMIN_TOKEN": "x"}
			for k, v := range tt.env {
				env[k] = v
			}
			code, out, errs := run(t, env, tt.args...)
			if code != 1 || out != "" || !strings.Contains(errs, "request timeout") || !strings.Contains(errs, "--help") {
				t.Errorf("exit %d, want a usage error\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
		})
	}
}

// TestBackupStreamsPastRequestTimeout: --request-timeout bounds the wait
// for each answer, not a download: a backup whose body keeps coming for
// longer than it is written whole; one whose body stops coming fails
// within about the limit, saying so, and leaves no file.
func TestBackupStreamsPastRequestTimeout(t *testing.T) {
	const limit = 500 * time.Millisecond
	var sent bytes.Buffer // written by the handler before it returns
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		if r.Header.Get("Authorization") == "Bearer stall" {
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stall:
			}
			return
		}
		// Chunks paced well within the limit, for three times the limit.
		tick := time.NewTicker(limit / 10)
		defer tick.Stop()
		start := time.Now()
		for i := 0; time.Since(start) < 3*limit; i++ {
			chunk := []byte(strings.Repeat(string(rune('a'+i%26)), 1024))
			sent.Write(chunk)
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			<-tick.C
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stall) })

	file := filepath.Join(t.TempDir(), "streamed")
	code, out, errs := runBounded(t, map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "x"},
		"backup", "-o", file, "--request-timeout", limit.String())
	if code != 0 {
		t.Fatalf("backup streamed for 3x --request-timeout: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent.Bytes()) || len(got) == 0 {
		t.Errorf("backup file holds %d bytes, the daemon sent %d", len(got), sent.Len())
	}

	stalled := filepath.Join(t.TempDir(), "stalled")
	code, out, errs = runBounded(t, map[string]string{"IDRECON_SERVER": srv.URL, "IDRECON_ADMIN_TOKEN": "stall"},
		"backup", "-o", stalled, "--request-timeout", limit.String())
	if code != 1 || !strings.Contains(errs, "sent nothing for "+limit.String()) || !strings.Contains(errs, srv.URL) {
		t.Errorf("backup whose body stalls: exit %d, want 1 saying the daemon sent nothing for %s\nstdout:\n%s\nstderr:\n%s",
			code, limit, out, errs)
	}
	if _, err := os.Lstat(stalled); err == nil {
		t.Errorf("a stalled backup left %s", stalled)
	}
}

// TestEtcdEndpointsRedacted: restore --to-etcd and migrate --to-etcd name
// the etcd endpoints as spec/redact shows every URL, in their errors and in
// the line that says where the state went: an endpoint's user information
// (user:password@, or a token as the user name) never shows.
func TestEtcdEndpointsRedacted(t *testing.T) {
	// A port that was open a moment ago and is closed now: nothing listens.
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	endpoints := "http://etcduser:s3cret@" + addr + ",http://t0ken-secret@" + addr
	secrets := []string{"etcduser", "s3cret", "t0ken-secret"}
	shown := "http://REDACTED@" + addr + ",http://REDACTED@" + addr

	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	backup := filepath.Join(t.TempDir(), "idrecon.backup")
	var buf bytes.Buffer
	if err := durable.WriteBackup(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{
		{"migrate", "--from", t.TempDir(), "--to-etcd", endpoints},
		{"restore", backup, "--to-etcd", endpoints},
	} {
		t.Run(args[0], func(t *testing.T) {
			// Not runBounded: etcd's own call timeout ends these.
			code, out, errs := run(t, nil, args...)
			if code != 1 || !strings.Contains(errs, shown) {
				t.Errorf("exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", code, shown, out, errs)
			}
			for _, s := range secrets {
				if strings.Contains(out+errs, s) {
					t.Errorf("output shows %q:\n%s%s", s, out, errs)
				}
			}
		})
	}

	// The line of a restore or migrate that went through.
	for _, line := range []string{
		etcdDone("restored", "idrecon.backup", &daemon.EtcdConfig{Endpoints: strings.Split(endpoints, ","), Prefix: "/idrecon/"}, etcdstate.Stats{Users: 2}),
		etcdDone("migrated", "data", &daemon.EtcdConfig{Endpoints: strings.Split(endpoints, ","), Prefix: "/idrecon/"}, etcdstate.Stats{Users: 2}),
	} {
		if !strings.Contains(line, shown) || !strings.Contains(line, "2 users") {
			t.Errorf("done line %q does not name %s", line, shown)
		}
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("done line shows %q: %s", s, line)
			}
		}
	}
}
