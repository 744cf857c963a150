package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"
)

// daemon is an `idrecon serve` process this run started, as users run it:
// its own process, default flags, plain HTTP on loopback ports the system
// picks, a data dir of its own.
type daemon struct {
	cmd   *exec.Cmd
	scim  string // the SCIM base URL it announced
	admin string
	done  chan struct{}
}

// startDaemon starts bin serve on spec with dataDir and extra flags, and
// returns once it announced its addresses and /readyz answers 200.
func startDaemon(ctx context.Context, bin, spec, dataDir string, extra []string, logs io.Writer) (*daemon, error) {
	args := append([]string{"serve", "--spec", spec, "--data-dir", dataDir, "--insecure-http",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &daemon{cmd: cmd, done: make(chan struct{})}
	serving := make(chan struct{ scim, admin string }, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var line struct{ Msg, SCIM, Admin string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "idrecon serving" {
				serving <- struct{ scim, admin string }{line.SCIM, line.Admin}
			} else if logs != nil {
				fmt.Fprintln(logs, sc.Text())
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // a million stored users load in seconds
	defer cancel()
	select {
	case a := <-serving:
		d.scim, d.admin = a.scim, a.admin
	case <-d.done:
		return nil, fmt.Errorf("%s serve exited before serving", bin)
	case <-ctx.Done():
		d.stop()
		return nil, fmt.Errorf("%s serve did not announce its addresses: %w", bin, ctx.Err())
	}
	for {
		if resp, err := http.Get(d.admin + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("%s serve exited before it was ready", bin)
		case <-ctx.Done():
			d.stop()
			return nil, fmt.Errorf("%s serve not ready: %w", bin, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop interrupts the daemon and waits for it, killing it after 30s.
func (d *daemon) stop() error {
	if err := d.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
		return errors.New("the daemon did not stop within 30s: killed")
	}
	if s := d.cmd.ProcessState; s != nil && !s.Success() && !strings.Contains(s.String(), "interrupt") {
		return fmt.Errorf("the daemon exited: %s", s)
	}
	return nil
}
