package source

import (
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSpecPath checks that no accepted spec path can leave the checkout.
func FuzzSpecPath(f *testing.F) {
	for _, s := range []string{"", ".", "spec", "./a/b/", "../x", "a/../../b", "/etc", `a\..\b`, "a//b", "..", "...", "a/./..//.."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got, err := specPath(p)
		if err != nil {
			return
		}
		if got == "" {
			return
		}
		if got != path.Clean(got) || strings.HasPrefix(got, "/") || strings.Contains(got, `\`) {
			t.Fatalf("specPath(%q) = %q: not clean and relative", p, got)
		}
		root := "/checkout"
		joined := filepath.Join(root, filepath.FromSlash(got))
		if rel, err := filepath.Rel(root, joined); err != nil || !filepath.IsLocal(rel) {
			t.Fatalf("specPath(%q) = %q escapes %s", p, got, root)
		}
	})
}

// FuzzWebhook checks that arbitrary headers and bodies never trigger a poll
// without the right signature or token, and never panic.
func FuzzWebhook(f *testing.F) {
	f.Add([]byte(`{"ref":"refs/heads/main"}`), "sha256=00", "tok", "push")
	f.Add([]byte{}, "", "", "ping")
	f.Add([]byte("x"), "sha256=zz", "wrong", "Push Hook")
	f.Fuzz(func(t *testing.T, body []byte, sig, token, event string) {
		secret := []byte("fuzz-secret")
		const wantToken = "fuzz-token-value"
		pushed := false
		h := &Webhook{Secret: secret, Token: wantToken, MaxBody: 4096, OnPush: func() { pushed = true }}
		req := httptest.NewRequest(http.MethodPost, "/hooks/git", strings.NewReader(string(body)))
		req.Header.Set("X-Hub-Signature-256", sig)
		req.Header.Set("X-Gitlab-Token", token)
		req.Header.Set("X-GitHub-Event", event)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		legit := sig == sign(secret, body) || token == wantToken
		if pushed && !legit {
			t.Fatalf("OnPush triggered by sig %q token %q", sig, token)
		}
		if rec.Code == http.StatusAccepted != pushed {
			t.Fatalf("status %d but pushed=%v", rec.Code, pushed)
		}
	})
}
