package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultWebhookMaxBody is the body limit used when Webhook.MaxBody is zero.
const DefaultWebhookMaxBody int64 = 1 << 20

// DefaultWebhookMinInterval is Webhook.MinInterval when zero: the reconcile
// loop's first backoff step, so that hooks do not retry a failing remote
// sooner than the loop itself would.
const DefaultWebhookMinInterval = 5 * time.Second

// Webhook receives push notifications from a git host (POST /hooks/git) and
// turns an authenticated one into a call to OnPush. Payloads are untrusted:
// nothing in them is used beyond logging the event type, so a forged but
// authenticated hook can at most cause an extra poll.
//
// Authentication is either an HMAC-SHA256 of the body with Secret
// (GitHub/Gitea "X-Hub-Signature-256: sha256=<hex>") or a shared Token
// (GitLab "X-Gitlab-Token"). With neither configured every request is
// refused.
//
// A Webhook must not be copied after first use: it keeps when it last
// called OnPush.
type Webhook struct {
	// Secret is the HMAC key shared with the git host.
	Secret []byte
	// Token is the shared token alternative.
	Token string
	// MaxBody caps the request body; DefaultWebhookMaxBody when zero.
	MaxBody int64
	// OnPush is called for authenticated, non-ping hooks, at most once per
	// MinInterval: on the request goroutine, or, for hooks that came
	// sooner, once on a timer's at the end of the interval. It must not
	// block (nudge a poll and return).
	OnPush func()
	// MinInterval is the least time between two calls of OnPush;
	// DefaultWebhookMinInterval when zero. The reconcile loop merges only
	// the triggers that arrive while one is pending, so without it a
	// stream of deliveries (replayed, or from a busy or compromised host)
	// would have the daemon fetch from the remote back to back, past its
	// backoff. The last hook of a burst is still followed by a fetch.
	MinInterval time.Duration
	// Logger receives one line per hook; nil discards.
	Logger *slog.Logger

	mu      sync.Mutex
	last    time.Time // when OnPush was last called
	pending bool      // a call at last+MinInterval is scheduled
	// now and afterFunc stand for the clock in tests.
	now       func() time.Time
	afterFunc func(time.Duration, func())
}

var _ http.Handler = (*Webhook)(nil)

func (h *Webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	logger := h.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	limit := h.MaxBody
	if limit <= 0 {
		limit = DefaultWebhookMaxBody
	}
	if r.ContentLength > limit {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	event := eventType(r.Header)
	if !h.authenticated(r.Header, body) {
		logger.Warn("git webhook refused", "reason", "unauthenticated", "remote", r.RemoteAddr, "event", event)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if event == "ping" {
		logger.Info("git webhook ping", "remote", r.RemoteAddr)
		w.WriteHeader(http.StatusOK)
		return
	}
	logger.Info("git webhook received", "event", event, "remote", r.RemoteAddr)
	if h.OnPush != nil {
		h.push()
	}
	w.WriteHeader(http.StatusAccepted)
}

// push calls OnPush now, or, within MinInterval of the last call, once at
// its end, merging the hooks that come meanwhile into that call.
func (h *Webhook) push() {
	gap := h.MinInterval
	if gap <= 0 {
		gap = DefaultWebhookMinInterval
	}
	now, after := h.now, h.afterFunc
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	}
	h.mu.Lock()
	if h.pending {
		h.mu.Unlock()
		return
	}
	t := now()
	if wait := h.last.Add(gap).Sub(t); wait > 0 {
		h.pending = true
		h.mu.Unlock()
		after(wait, func() {
			h.mu.Lock()
			h.pending, h.last = false, now()
			h.mu.Unlock()
			h.OnPush()
		})
		return
	}
	h.last = t
	h.mu.Unlock()
	h.OnPush()
}

func (h *Webhook) authenticated(hdr http.Header, body []byte) bool {
	if len(h.Secret) > 0 {
		if sig, ok := strings.CutPrefix(hdr.Get("X-Hub-Signature-256"), "sha256="); ok {
			got, err := hex.DecodeString(sig)
			if err == nil {
				mac := hmac.New(sha256.New, h.Secret)
				mac.Write(body)
				if hmac.Equal(got, mac.Sum(nil)) {
					return true
				}
			}
		}
	}
	if h.Token != "" {
		if got := hdr.Get("X-Gitlab-Token"); got != "" {
			// Comparing digests keeps the comparison constant-time even
			// when the lengths differ.
			a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(h.Token))
			if subtle.ConstantTimeCompare(a[:], b[:]) == 1 {
				return true
			}
		}
	}
	return false
}

// eventType returns the host's event name, reduced to a short safe token so
// that an attacker cannot inject text into logs.
func eventType(hdr http.Header) string {
	var ev string
	for _, k := range []string{"X-GitHub-Event", "X-Gitea-Event", "X-Gitlab-Event"} {
		if ev = hdr.Get(k); ev != "" {
			break
		}
	}
	ev = strings.ToLower(ev)
	if len(ev) > 40 {
		ev = ev[:40]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == ' ' {
			return r
		}
		return -1
	}, ev)
}
