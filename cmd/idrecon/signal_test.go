package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSecondSignalStopsAtOnce: the first ^C (or SIGTERM) lets the daemon
// drain its requests; a second one, from an operator who will not wait,
// ends the process at once. Writes it acknowledged are synced already, so
// nothing acknowledged is lost by it.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a daemon")
	}
	work, bin := layout(t)
	serve := exec.Command(bin, "serve", "--spec", "examples/entra", "--insecure-http",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	serve.Dir = work
	logs, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		serve.Process.Kill()
		<-exited
	})
	addrs := make(chan [2]string, 1)
	draining := make(chan struct{})
	go func() { // owned here: ends when serve's stderr closes, when it exits
		pr, pw := io.Pipe()
		go func() { // hands the lines on to readServing; ends with logs
			sc := bufio.NewScanner(logs)
			closed := false
			for sc.Scan() {
				if !closed && strings.Contains(sc.Text(), "shutting down") {
					close(draining)
					closed = true
				}
				pw.Write(append(sc.Bytes(), '\n'))
			}
			pw.Close()
		}()
		readServing(pr, addrs)
		exited <- serve.Wait()
	}()
	var scim string
	select {
	case a := <-addrs:
		scim = a[0]
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not say where it serves")
	}

	// A request in flight, its body never finished, holds the drain.
	u, err := url.Parse(scim)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /api/scim/v2/Users HTTP/1.1\r\nHost: "+u.Host+
		"\r\nAuthorization: Bearer idrecon-demo-token-for-make-run-only-0123456789\r\nContent-Type: application/scim+json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}

	if err := serve.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-draining:
	case err := <-exited:
		t.Fatalf("the daemon exited on the first signal, with a request in flight: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not start draining")
	}
	if err := serve.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	// Far less than the drain's own bound, which the first signal waits
	// out.
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 128+int(syscall.SIGINT) {
			t.Fatalf("after the second signal: %v, want exit status %d, as a shell reports a process ^C ended", err, 128+int(syscall.SIGINT))
		}
		exited <- err // for the clean-up
	case <-time.After(5 * time.Second):
		t.Fatal("the second signal did not end the process: it drains on")
	}
}
