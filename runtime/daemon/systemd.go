package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/internal/sdnotify"
)

// readinessPoll is how often the STATUS line systemd shows is brought up to
// date while the daemon is not ready yet.
const readinessPoll = time.Second

// notifySystemd runs while the daemon serves when systemd started it as a
// Type=notify service (NOTIFY_SOCKET set), and returns when ctx ends.
//
// READY=1 goes out once the listeners accept connections and the state is
// loaded, with the first reconcile already attempted (serve is called
// after it), so with a good spec /readyz answers 200 by then. A daemon
// that is not ready (push mode before the first push, a spec refused
// since the start) is still reported up, with the reason as STATUS: it
// serves what it has and says what is wrong through `idrecon status`, and
// a restart by systemd would not mend the spec. The STATUS line follows the
// readiness checks until they all pass.
//
// With WatchdogSec= in the unit, a WATCHDOG=1 keep-alive follows each
// /healthz the admin listener answers, so a daemon that stopped serving
// its admin API is restarted.
func (d *daemon) notifySystemd(ctx context.Context, n *sdnotify.Notifier, adminAddr string) error {
	send := func(states ...string) {
		if err := n.Send(states...); err != nil {
			d.log.Warn("systemd notification", "err", err)
		}
	}
	ready, status := d.readiness()
	send(sdnotify.Ready, sdnotify.Status(status))
	d.log.Info("told systemd the daemon is up", "status", status)

	var poll <-chan time.Time
	if !ready {
		t := time.NewTicker(readinessPoll)
		defer t.Stop()
		poll = t.C
	}
	var watchdog <-chan time.Time
	if every := sdnotify.WatchdogInterval(d.cfg.Getenv, os.Getpid()); every > 0 {
		t := time.NewTicker(every)
		defer t.Stop()
		watchdog = t.C
		d.log.Info("systemd watchdog", "every", every)
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-poll:
			nowReady, now := d.readiness()
			if now != status {
				status = now
				send(sdnotify.Status(status))
			}
			if nowReady {
				poll = nil
			}
		case <-watchdog:
			if err := healthz(ctx, hc, adminAddr); err != nil {
				d.log.Warn("systemd watchdog: no keep-alive sent", "err", err)
				continue
			}
			send(sdnotify.Watchdog)
		}
	}
}

// readiness runs the checks behind /readyz and says in one line how the
// daemon stands.
func (d *daemon) readiness() (bool, string) {
	ok, detail := admin.Readiness(d.checks)
	if ok {
		return true, "serving, ready"
	}
	var why []string
	for name, state := range detail {
		if r, found := strings.CutPrefix(state, "not ready: "); found {
			why = append(why, name+": "+r)
		}
	}
	slices.Sort(why)
	return false, "serving, not ready: " + strings.Join(why, "; ")
}

// healthz asks the daemon's own admin listener whether it answers.
func healthz(ctx context.Context, hc *http.Client, adminAddr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+adminAddr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz answered %s", resp.Status)
	}
	return nil
}

// stopping tells systemd the daemon is shutting down.
func stopping(n *sdnotify.Notifier, log *slog.Logger) {
	if err := n.Send(sdnotify.Stopping, sdnotify.Status("shutting down")); err != nil {
		log.Warn("systemd notification", "err", err)
	}
}
