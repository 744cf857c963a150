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
)

// DefaultWebhookMaxBody is the body limit used when Webhook.MaxBody is zero.
const DefaultWebhookMaxBody int64 = 1 << 20

// Webhook receives push notifications from a git host (POST /hooks/git) and
// turns an authenticated one into a call to OnPush. Payloads are untrusted:
// nothing in them is used beyond logging the event type, so a forged but
// authenticated hook can at most cause an extra poll.
//
// Authentication is either an HMAC-SHA256 of the body with Secret
// (GitHub/Gitea "X-Hub-Signature-256: sha256=<hex>") or a shared Token
// (GitLab "X-Gitlab-Token"). With neither configured every request is
// refused.
type Webhook struct {
	// Secret is the HMAC key shared with the git host.
	Secret []byte
	// Token is the shared token alternative.
	Token string
	// MaxBody caps the request body; DefaultWebhookMaxBody when zero.
	MaxBody int64
	// OnPush is called once per authenticated, non-ping hook, on the
	// request goroutine; it must not block (nudge a poll and return).
	OnPush func()
	// Logger receives one line per hook; nil discards.
	Logger *slog.Logger
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
		h.OnPush()
	}
	w.WriteHeader(http.StatusAccepted)
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
