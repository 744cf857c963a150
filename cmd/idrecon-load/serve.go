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

// daemon is a server process this run started and loads, as users run
// it: its own process, plain HTTP on a loopback port the system picks.
type daemon struct {
	name string // for messages: "idrecon serve", "the peer"
	cmd  *exec.Cmd
	scim string // the SCIM base URL it announced
	// metrics is the URL of its Prometheus metrics, when it has them.
	metrics string
	done    chan struct{}
}

// announcement is what a server process says on stderr, as a JSON line,
// once it listens: the SCIM base URL and, when it has one, a readiness
// URL to poll until it answers 200.
type announcement struct{ scim, ready, metrics string }

// startDaemon starts bin serve on spec with dataDir and extra flags, and
// returns once it announced its addresses and /readyz answers 200.
func startDaemon(ctx context.Context, bin, spec, dataDir string, extra []string, logs io.Writer) (*daemon, error) {
	args := append([]string{"serve", "--spec", spec, "--data-dir", dataDir, "--insecure-http",
		"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, extra...)
	return startProcess(ctx, "idrecon serve", exec.Command(bin, args...), func(b []byte) (announcement, bool) {
		var line struct{ Msg, SCIM, Admin string }
		if json.Unmarshal(b, &line) != nil || line.Msg != "idrecon serving" {
			return announcement{}, false
		}
		return announcement{line.SCIM, line.Admin + "/readyz", line.Admin + "/metrics"}, true
	}, logs)
}

// startProcess starts cmd and returns once a line of its stderr made
// announce say where it serves and, when it gave a readiness URL, that
// answered 200. Other lines go to logs.
func startProcess(ctx context.Context, name string, cmd *exec.Cmd, announce func([]byte) (announcement, bool), logs io.Writer) (*daemon, error) {
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	d := &daemon{name: name, cmd: cmd, done: make(chan struct{})}
	serving := make(chan announcement, 1)
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if a, ok := announce(sc.Bytes()); ok {
				select {
				case serving <- a:
				default:
				}
			} else if logs != nil {
				fmt.Fprintln(logs, sc.Text())
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute) // a million stored users load in seconds
	defer cancel()
	var a announcement
	select {
	case a = <-serving:
		d.scim, d.metrics = a.scim, a.metrics
	case <-d.done:
		return nil, fmt.Errorf("%s exited before serving", name)
	case <-ctx.Done():
		d.stop()
		return nil, fmt.Errorf("%s did not announce its addresses: %w", name, ctx.Err())
	}
	for a.ready != "" {
		if resp, err := get(ctx, a.ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("%s exited before it was ready", name)
		case <-ctx.Done():
			d.stop()
			return nil, fmt.Errorf("%s not ready: %w", name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return d, nil
}

// get is http.Get that gives up when ctx ends.
func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	return http.DefaultClient.Do(req)
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
		return fmt.Errorf("%s did not stop within 30s: killed", d.name)
	}
	if s := d.cmd.ProcessState; s != nil && !s.Success() && !strings.Contains(s.String(), "interrupt") {
		return fmt.Errorf("%s exited: %s", d.name, s)
	}
	return nil
}
