// Package sdnotify tells systemd how a service of Type=notify is doing:
// READY=1 once it serves, STOPPING=1 when it shuts down, a STATUS= line for
// `systemctl status`, and WATCHDOG=1 keep-alives. It is the datagram protocol
// of sd_notify(3), written here so the daemon needs no C library.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// The states a service reports.
const (
	Ready    = "READY=1"
	Stopping = "STOPPING=1"
	Watchdog = "WATCHDOG=1"
)

// Status is a free-form line shown by `systemctl status`. A line break
// would start another assignment, so each becomes a space.
func Status(s string) string {
	return "STATUS=" + strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}

// Notifier sends states to the service manager's socket. A nil Notifier
// (not started by systemd) sends nothing.
type Notifier struct {
	addr *net.UnixAddr
}

// ErrUnsupported is a NOTIFY_SOCKET that is neither a socket path nor an
// abstract socket name (systemd also knows vsock: addresses, for virtual
// machines, which this package does not speak).
var ErrUnsupported = errors.New("sdnotify: unsupported NOTIFY_SOCKET")

// New returns a Notifier for the socket named by NOTIFY_SOCKET, or nil when
// the variable is unset. A name starting with '@' is an abstract socket
// (Go's net package maps the '@' to the leading NUL byte Linux expects).
func New(getenv func(string) string) (*Notifier, error) {
	name := getenv("NOTIFY_SOCKET")
	switch {
	case name == "":
		return nil, nil
	case strings.HasPrefix(name, "/"), strings.HasPrefix(name, "@"):
		return &Notifier{addr: &net.UnixAddr{Name: name, Net: "unixgram"}}, nil
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupported, name)
	}
}

// Send sends states (Ready, Status("..."), ...) in one datagram, which
// systemd applies together. On a nil Notifier it does nothing.
func (n *Notifier) Send(states ...string) error {
	if n == nil || len(states) == 0 {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(strings.Join(states, "\n"))); err != nil {
		return fmt.Errorf("sdnotify: %w", err)
	}
	return nil
}

// WatchdogInterval is how often to send Watchdog: half of WATCHDOG_USEC, as
// sd_watchdog_enabled(3) advises, or zero when systemd expects no
// keep-alives from this process (unset, unparsable, or WATCHDOG_PID names
// another process).
func WatchdogInterval(getenv func(string) string, pid int) time.Duration {
	if p := getenv("WATCHDOG_PID"); p != "" && p != strconv.Itoa(pid) {
		return 0
	}
	usec, err := strconv.ParseInt(getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}
