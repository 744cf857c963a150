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
		hook       Webhook
		method     string
		body       []byte
		header     map[string]string
		wantStatus int
		wantPushes int64
	}{
		{"github hmac", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": "push"}, http.StatusAccepted, 1},
		{"gitea hmac", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-Gitea-Event": "push"}, http.StatusAccepted, 1},
		{"gitlab token", Webhook{Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok", "X-Gitlab-Event": "Push Hook"}, http.StatusAccepted, 1},
		{"either method when both configured", Webhook{Secret: secret, Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok"}, http.StatusAccepted, 1},
		{"ping does not trigger", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, body), "X-GitHub-Event": "ping"}, http.StatusOK, 0},
		{"wrong hmac", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign([]byte("other"), body)}, http.StatusUnauthorized, 0},
		{"hmac over a different body", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(secret, []byte("{}"))}, http.StatusUnauthorized, 0},
		{"malformed hmac", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": "sha256=zz"}, http.StatusUnauthorized, 0},
		{"sha1 header only", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature": "sha1=00"}, http.StatusUnauthorized, 0},
		{"missing auth", Webhook{Secret: secret}, http.MethodPost, body, nil, http.StatusUnauthorized, 0},
		{"wrong token", Webhook{Token: "tok"}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": "tok2"}, http.StatusUnauthorized, 0},
		{"token when only secret configured", Webhook{Secret: secret}, http.MethodPost, body,
			map[string]string{"X-Gitlab-Token": ""}, http.StatusUnauthorized, 0},
		{"nothing configured refuses all", Webhook{}, http.MethodPost, body,
			map[string]string{"X-Hub-Signature-256": sign(nil, body), "X-Gitlab-Token": ""}, http.StatusUnauthorized, 0},
		{"wrong method", Webhook{Secret: secret}, http.MethodGet, nil, nil, http.StatusMethodNotAllowed, 0},
		{"oversize", Webhook{Secret: secret, MaxBody: 1024}, http.MethodPost, big,
			map[string]string{"X-Hub-Signature-256": sign(secret, big)}, http.StatusRequestEntityTooLarge, 0},
		{"at the limit", Webhook{Secret: secret, MaxBody: 2048}, http.MethodPost, big,
			map[string]string{"X-Hub-Signature-256": sign(secret, big)}, http.StatusAccepted, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pushes atomic.Int64
			hook := tt.hook
			hook.OnPush = func() { pushes.Add(1) }
			srv := httptest.NewServer(&hook)
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
