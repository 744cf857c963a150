package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// listen opens a datagram socket as systemd does for NOTIFY_SOCKET.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestSendArrivesAsOneDatagram(t *testing.T) {
	for _, tc := range []struct{ name, socket string }{
		{"path", filepath.Join(t.TempDir(), "notify")},
		// Abstract names live outside the file system; the pid keeps
		// concurrent test runs apart.
		{"abstract", fmt.Sprintf("@idrecon-sdnotify-test-%d", os.Getpid())},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := listen(t, tc.socket)
			n, err := New(func(k string) string {
				if k == "NOTIFY_SOCKET" {
					return tc.socket
				}
				return ""
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Send(Ready, Status("serving\nsecond line")); err != nil {
				t.Fatal(err)
			}
			if got, want := receive(t, conn), "READY=1\nSTATUS=serving second line"; got != want {
				t.Errorf("received %q, want %q", got, want)
			}
			if err := n.Send(Stopping); err != nil {
				t.Fatal(err)
			}
			if got := receive(t, conn); got != Stopping {
				t.Errorf("received %q, want %q", got, Stopping)
			}
		})
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		socket  string
		wantNil bool
		wantErr error
	}{
		{"", true, nil},
		{"/run/systemd/notify", false, nil},
		{"@abstract", false, nil},
		{"vsock:2:1234", true, ErrUnsupported},
		{"relative/path", true, ErrUnsupported},
	} {
		n, err := New(func(string) string { return tc.socket })
		if !errors.Is(err, tc.wantErr) || (n == nil) != tc.wantNil {
			t.Errorf("New(%q) = %v, %v; want nil %v, error %v", tc.socket, n, err, tc.wantNil, tc.wantErr)
		}
	}
	var none *Notifier
	if err := none.Send(Ready); err != nil {
		t.Errorf("a nil Notifier sends nothing and succeeds, got %v", err)
	}
}

func TestSendToAMissingSocketFails(t *testing.T) {
	n, _ := New(func(string) string { return filepath.Join(t.TempDir(), "gone") })
	if err := n.Send(Ready); err == nil {
		t.Error("sending to a socket nobody listens on succeeded")
	}
}

func TestWatchdogInterval(t *testing.T) {
	for _, tc := range []struct {
		usec, pid string
		want      time.Duration
	}{
		{"", "", 0},
		{"30000000", "", 15 * time.Second},
		{"30000000", "42", 15 * time.Second},
		{"30000000", "43", 0}, // meant for another process
		{"junk", "", 0},
		{"-5", "", 0},
	} {
		env := map[string]string{"WATCHDOG_USEC": tc.usec, "WATCHDOG_PID": tc.pid}
		if got := WatchdogInterval(func(k string) string { return env[k] }, 42); got != tc.want {
			t.Errorf("WATCHDOG_USEC=%q WATCHDOG_PID=%q: %v, want %v", tc.usec, tc.pid, got, tc.want)
		}
	}
}
