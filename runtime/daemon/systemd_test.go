package daemon

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// notifySocket listens where systemd would for a Type=notify service and
// returns the socket and a Getenv that names it, with extra variables.
func notifySocket(t *testing.T, extra map[string]string) (*net.UnixConn, func(string) string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, func(k string) string {
		if k == "NOTIFY_SOCKET" {
			return path
		}
		if v, ok := extra[k]; ok {
			return v
		}
		return os.Getenv(k)
	}
}

// nextNotification returns the next datagram for which want holds,
// skipping others (watchdog keep-alives).
func nextNotification(t *testing.T, conn *net.UnixConn, want func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	buf := make([]byte, 4096)
	for {
		conn.SetReadDeadline(deadline)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		if msg := string(buf[:n]); want(msg) {
			return msg
		}
	}
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSystemdNotify: started as a Type=notify service, the daemon says
// READY=1 once it serves and /readyz answers 200, sends watchdog
// keep-alives while its admin API answers, and STOPPING=1 when it stops.
func TestSystemdNotify(t *testing.T) {
	conn, getenv := notifySocket(t, map[string]string{"WATCHDOG_USEC": "200000"})
	// READY is checked the moment it arrives, from the start on: systemd
	// then starts what is ordered after idrecon, which must find it serving
	// and ready.
	var adminAddr atomic.Pointer[string]
	type arrival struct {
		msg    string
		readyz int // -1: the listeners were not open yet
	}
	ready := make(chan arrival, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			ready <- arrival{msg: err.Error(), readyz: -1}
			return
		}
		a := arrival{msg: string(buf[:n]), readyz: -1}
		if addr := adminAddr.Load(); addr != nil {
			if resp, err := http.Get("http://" + *addr + "/readyz"); err == nil {
				resp.Body.Close()
				a.readyz = resp.StatusCode
			}
		}
		ready <- a
	}()
	d := start(t, Config{
		SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir(), Getenv: getenv,
		Started: func(_, admin string) { adminAddr.Store(&admin) },
	})
	if a := <-ready; a.msg != "READY=1\nSTATUS=serving, ready" || a.readyz != http.StatusOK {
		t.Fatalf("first notification %q with /readyz answering %d (-1: not listening yet)", a.msg, a.readyz)
	}
	nextNotification(t, conn, func(m string) bool { return m == "WATCHDOG=1" })

	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if msg := nextNotification(t, conn, func(m string) bool { return m != "WATCHDOG=1" }); msg != "STOPPING=1\nSTATUS=shutting down" {
		t.Errorf("stop notification %q", msg)
	}
}

// TestSystemdNotifyNotReady: a push-mode daemon with nothing pushed yet is
// up (so the spec can be pushed) but not ready; systemd hears both, and the
// STATUS line turns to ready once a spec is applied.
func TestSystemdNotifyNotReady(t *testing.T) {
	conn, getenv := notifySocket(t, nil)
	d := start(t, Config{DataDir: t.TempDir(), Getenv: getenv})

	msg := nextNotification(t, conn, func(string) bool { return true })
	if !strings.HasPrefix(msg, "READY=1\nSTATUS=serving, not ready: reconcile: no revision applied yet") {
		t.Errorf("ready notification %q", msg)
	}
	if code := getStatus(t, d.admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz answers %d before anything was pushed", code)
	}
	if code, b := push(t, d, "../../examples/entra"); code != http.StatusOK {
		t.Fatalf("push: %d %s", code, b)
	}
	if msg := nextNotification(t, conn, func(string) bool { return true }); msg != "STATUS=serving, ready" {
		t.Errorf("after the push: %q", msg)
	}
}
