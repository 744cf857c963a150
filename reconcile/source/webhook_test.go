package source

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	secret := []byte("hook-secret")
	body := []byte(`{"ref":"refs/heads/main"}`)
	big := bytes.Repeat([]byte("x"), 2048)

	tests := []struct {
		name       string
		hook       *Webhook
		method     string
		body       []byte
		header     map[string]string
		wantStatus int
		wantPushes int64
	}{
		{"github hmac", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": "push"}, http.StatusAccepted, 1},
		{"gitea hmac", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-Gitea-Event": "push"}, http.StatusAccepted, 1},
		{"gitlab token", &Webhook{Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok", "X-Gitlab-Event": "Push Hook"}, http.StatusAccepted, 1},
		{"either method when both configured", &Webhook{Secret: secret, Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok"}, http.StatusAccepted, 1},
		{"ping does not trigger", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": "ping"}, http.StatusOK, 0},
		{"wrong hmac", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign([]byte("other"), body)}, http.StatusUnauthorized, 0},
		{"hmac over a different body", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, []byte("{}"))}, http.StatusUnauthorized, 0},
		{"malformed hmac", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": "sha256=zz"}, http.StatusUnauthorized, 0},
		{"sha1 header only", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature": "sha1=00"}, http.StatusUnauthorized, 0},
		{"missing auth", &Webhook{Secret: secret}, http.MethodPost, body, nil, http.StatusUnauthorized, 0},
		{"wrong token", &Webhook{Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok2"}, http.StatusUnauthorized, 0},
		{"token when only secret configured", &Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": ""}, http.StatusUnauthorized, 0},
		{"nothing configured refuses all", &Webhook{}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(nil, body), "X-Gitlab-Token": ""}, http.StatusUnauthorized, 0},
		{"wrong method", &Webhook{Secret: secret}, http.MethodGet, nil, nil, http.StatusMethodNotAllowed, 0},
		{"oversize", &Webhook{Secret: secret, MaxBody: 1024}, http.MethodPost, big,
			map[string]string{"X-Hub-Signature-256": sign(secret, big)}, http.StatusRequestEntityTooLarge, 0},
		{"at the limit", &Webhook{Secret: secret, MaxBody: 2048}, http.MethodPost, big,
			map[string]string{"X-Hub-Signature-256": sign(secret, big)}, http.StatusAccepted, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pushes atomic.Int64
			hook := tt.hook // each case has its own
			hook.OnPush = func() { pushes.Add(1) }
			srv := httptest.NewServer(hook)
			defer srv.Close()

			req, err := http.NewRequest(tt.method, srv.URL+"/hooks/git", bytes.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			// The handler calls OnPush before responding, so the count is final.
			if got := pushes.Load(); got != tt.wantPushes {
				t.Fatalf("OnPush called %d times, want %d", got, tt.wantPushes)
			}
		})
	}
}

func TestWebhookOversizeWithoutContentLength(t *testing.T) {
	var pushes atomic.Int64
	hook := &Webhook{Token: "tok", MaxBody: 16, OnPush: func() { pushes.Add(1) }}
	// A chunked body has no Content-Length, so the limit must hold while reading.
	req := httptest.NewRequest(http.MethodPost, "/hooks/git", io.MultiReader(strings.NewReader(strings.Repeat("y", 64))))
	req.ContentLength = -1
	req.Header.Set("X-Gitlab-Token", "tok")
	rec := httptest.NewRecorder()
	hook.ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge || pushes.Load() != 0 {
		t.Fatalf("status %d, pushes %d; want 413 and none", rec.Code, pushes.Load())
	}
}

func TestEventTypeSanitised(t *testing.T) {
	h := http.Header{}
	h.Set("X-GitHub-Event", "Push\n\"injected\"=1 "+strings.Repeat("a", 100))
	got := eventType(h)
	if strings.ContainsAny(got, "\n\"=") || len(got) > 40 {
		t.Fatalf("eventType = %q", got)
	}
}

// TestWebhookBurstFetchesOnce: a burst of authenticated deliveries (a
// replay, or a busy or compromised git host) must not make the daemon
// fetch from the remote once per delivery.
func TestWebhookBurstFetchesOnce(t *testing.T) {
	var pushes atomic.Int64
	hook := &Webhook{Token: "tok", OnPush: func() { pushes.Add(1) }}
	for range 20 {
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", "tok")
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Fatalf("status %d, want 202", rec.Code)
		}
	}
	if got := pushes.Load(); got != 1 {
		t.Fatalf("OnPush called %d times for a burst of 20 deliveries, want 1 now (and one more later)", got)
	}
}

// TestWebhookDeferredPushFires: the call merging a burst is made on the
// real clock too.
func TestWebhookDeferredPushFires(t *testing.T) {
	pushed := make(chan struct{}, 10)
	hook := &Webhook{Token: "tok", MinInterval: 20 * time.Millisecond, OnPush: func() { pushed <- struct{}{} }}
	for range 3 {
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", "tok")
		hook.ServeHTTP(httptest.NewRecorder(), req)
	}
	for i := range 2 {
		select {
		case <-pushed:
		case <-time.After(10 * time.Second):
			t.Fatalf("OnPush called %d times, want 2", i)
		}
	}
}

// TestWebhookMinInterval: within MinInterval of a fetch, hooks are merged
// into one more fetch at the end of the interval, so that the last push of
// a burst is still fetched; after it, a hook fetches at once again.
func TestWebhookMinInterval(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	var timers []func()
	var waits []time.Duration
	var pushes atomic.Int64
	hook := &Webhook{
		Token:       "tok",
		MinInterval: 10 * time.Second,
		OnPush:      func() { pushes.Add(1) },
		now:         func() time.Time { return now },
		afterFunc: func(d time.Duration, f func()) {
			waits = append(waits, d)
			timers = append(timers, f)
		},
	}
	deliver := func(event string) {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader("{}"))
		req.Header.Set("X-Gitlab-Token", "tok")
		req.Header.Set("X-Gitlab-Event", event)
		rec := httptest.NewRecorder()
		hook.ServeHTTP(rec, req)
		if want := map[bool]int{true: http.StatusOK, false: http.StatusAccepted}[event == "ping"]; rec.Code != want {
			t.Fatalf("status %d, want %d", rec.Code, want)
		}
	}
	expect := func(wantPushes int64, wantTimers int) {
		t.Helper()
		if got := pushes.Load(); got != wantPushes {
			t.Fatalf("OnPush called %d times, want %d", got, wantPushes)
		}
		if len(timers) != wantTimers {
			t.Fatalf("%d deferred calls scheduled, want %d", len(timers), wantTimers)
		}
	}

	deliver("Push Hook")
	expect(1, 0)
	now = now.Add(3 * time.Second)
	deliver("Push Hook")
	deliver("ping") // never a fetch, never scheduled
	deliver("Push Hook")
	expect(1, 1)
	if waits[0] != 7*time.Second {
		t.Fatalf("deferred by %v, want the rest of the interval, 7s", waits[0])
	}

	now = now.Add(7 * time.Second)
	timers[0]()
	expect(2, 1)
	// The deferred fetch starts a new interval.
	now = now.Add(time.Second)
	deliver("Push Hook")
	expect(2, 2)
	now = now.Add(9 * time.Second)
	timers[1]()
	expect(3, 2)

	now = now.Add(10 * time.Second)
	deliver("Push Hook")
	expect(4, 2)
}
