package source

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// BenchmarkWatchNotify measures file write → notify. Each op includes the
// debounce quiet period, so the overhead is ns/op minus the debounce.
func BenchmarkWatchNotify(b *testing.B) {
	for _, debounce := range []time.Duration{time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("debounce=%s", debounce), func(b *testing.B) {
			h := startWatch(b, debounce)
			b.ResetTimer()
			for i := range b.N {
				h.write("app.yaml", fmt.Sprint(i))
				h.wait("write")
			}
		})
	}
}

// BenchmarkWebhook measures an HMAC-signed request over a real listener →
// OnPush.
func BenchmarkWebhook(b *testing.B) {
	secret := []byte("bench-secret")
	body := bytes.Repeat([]byte(`{"ref":"refs/heads/main"}`), 200) // ~5 KB, a typical push payload
	fired := make(chan struct{}, 1)
	// A MinInterval of 1ns lets every request through: the benchmark
	// measures the request path, not the merging of bursts.
	srv := httptest.NewServer(&Webhook{Secret: secret, MinInterval: time.Nanosecond, OnPush: func() { fired <- struct{}{} }})
	defer srv.Close()
	client := srv.Client()
	sig := sign(secret, body)
	b.ResetTimer()
	for range b.N {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/hooks/git", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("X-Hub-Signature-256", sig)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		<-fired
	}
}

// BenchmarkGitFetch measures polls of a repository: a cold first fetch, a
// fetch after one new commit, and a poll with no change, over file://
// (system git-upload-pack) and smart HTTP (git-http-backend via CGI). A
// 10-commit and a 2,000-commit history cost the same thanks to depth-1
// fetches; the figures are dominated by the server spawning git processes.
func BenchmarkGitFetch(b *testing.B) {
	for _, history := range []int{10, 2000} {
		r := newTestRepo(b)
		var tip plumbing.Hash
		for i := range history {
			tip = r.rawCommit(tip, fmt.Sprintf("rev: %d\n", i))
		}
		main := plumbing.NewBranchReferenceName("main")
		r.setRef(main, tip)
		// Hosted repositories are packed; thousands of loose objects would
		// slow the server for reasons unrelated to the client.
		if out, err := exec.Command("git", "-C", r.dir, "gc", "--quiet").CombinedOutput(); err != nil {
			b.Fatalf("git gc: %v: %s", err, out)
		}
		srv := newHTTPGitServer(b, filepath.Dir(r.dir), nil)
		urls := map[string]string{"file": r.url(), "http": srv.URL + "/" + filepath.Base(r.dir)}

		for _, transport := range []string{"file", "http"} {
			url := urls[transport]
			prefix := fmt.Sprintf("history=%d/%s", history, transport)
			b.Run(prefix+"/cold", func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					g := newTestGit(b, GitOptions{URL: url})
					b.StartTimer()
					mustFetch(b, g)
				}
			})
			b.Run(prefix+"/new-commit", func(b *testing.B) {
				g := newTestGit(b, GitOptions{URL: url})
				mustFetch(b, g)
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					tip = r.rawCommit(tip, fmt.Sprintf("bench: %d\n", i))
					r.setRef(main, tip)
					b.StartTimer()
					if rev := mustFetch(b, g); rev.ID != tip.String() {
						b.Fatalf("fetched %s, want %s", rev.ID, tip)
					}
				}
			})
			b.Run(prefix+"/unchanged", func(b *testing.B) {
				g := newTestGit(b, GitOptions{URL: url})
				mustFetch(b, g)
				b.ResetTimer()
				for range b.N {
					mustFetch(b, g)
				}
			})
		}
	}
}

// BenchmarkProcessSpawn is the floor under every git transport figure on
// this machine: the server side forks git for each session.
func BenchmarkProcessSpawn(b *testing.B) {
	for range b.N {
		if err := exec.Command("git", "--version").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
