package gateway

import (
	"context"
	"net/http"
	"time"
)

// DefaultRecheck is how often a request still in flight (a WebSocket, a
// long download, a server-sent event stream) is decided again.
const DefaultRecheck = 2 * time.Second

// A proxied request is one decision, so a user disabled in Entra would keep
// an open WebSocket for as long as it lasts. live keeps every proxied
// request in flight; while there are any, one goroutine decides the old
// ones again every Deps.Recheck and cancels those of users now refused,
// which makes ReverseProxy close both connections.
type liveRequest struct {
	user   string   // as decided: the key of Gateway.perUser
	cookie []string // the request's Cookie header; r itself belongs to its handler
	since  time.Time
	cancel context.CancelFunc
	// failed is set while the last recheck could not decide; only
	// recheckLoop, of which one runs at a time, reads or writes it.
	failed bool
}

// track registers r, made by user, and returns the request to proxy, bound
// to a context that a recheck may cancel, and the function that ends the
// tracking. It returns ok false, and tracks nothing, when user already has
// Config.MaxRequestsPerUser requests in flight.
func (g *Gateway) track(r *http.Request, user string) (_ *http.Request, done func(), ok bool) {
	g.liveMu.Lock()
	if g.perUser[user] >= g.cfg.MaxRequestsPerUser {
		g.liveMu.Unlock()
		return r, nil, false
	}
	g.perUser[user]++
	ctx, cancel := context.WithCancel(r.Context())
	lr := &liveRequest{
		user:   user,
		cookie: r.Header["Cookie"],
		since:  time.Now(),
		cancel: cancel,
	}
	g.live[lr] = struct{}{}
	if !g.rechecking {
		g.rechecking = true
		go g.recheckLoop()
	}
	g.liveMu.Unlock()
	return r.WithContext(ctx), func() {
		g.liveMu.Lock()
		delete(g.live, lr)
		if g.perUser[user]--; g.perUser[user] == 0 {
			delete(g.perUser, user) // the map holds only users in flight
		}
		g.liveMu.Unlock()
		cancel()
	}, true
}

// recheckLoop runs while requests are in flight and stops with the last.
func (g *Gateway) recheckLoop() {
	t := time.NewTicker(g.deps.Recheck)
	defer t.Stop()
	for range t.C {
		g.liveMu.Lock()
		if len(g.live) == 0 {
			g.rechecking = false
			g.liveMu.Unlock()
			return
		}
		old := time.Now().Add(-g.deps.Recheck)
		var due []*liveRequest
		for lr := range g.live {
			if lr.since.Before(old) {
				due = append(due, lr)
			}
		}
		closed := g.closed
		g.liveMu.Unlock()
		if closed {
			// Replaced: these are not this Gateway's to decide any more.
			for _, lr := range due {
				lr.cancel()
			}
			continue
		}
		for _, lr := range due {
			probe := &http.Request{Header: http.Header{"Cookie": lr.cookie}}
			_, reason := g.decide(probe)
			if reason == ReasonDecisionError && !lr.failed {
				// One failed decision may be a blip. A daemon whose state
				// cannot be trusted fails every decision for as long as
				// that lasts, and refuses new requests meanwhile; an open
				// connection must not outlast it either, since its user
				// may have been disabled through the other daemons.
				lr.failed = true
				continue
			}
			lr.failed = false
			if reason != "" {
				g.counters.cut.Add(1)
				lr.cancel()
			}
		}
	}
}
