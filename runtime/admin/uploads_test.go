package admin

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/spec"
)

// Each upload is unpacked to disk and loaded into memory: one client
// sending many at once exhausted the daemon's memory. Past maxUploads in
// flight an upload is refused with a 503 and Retry-After (here at once; the
// daemon waits a while first), and the slots come back when they end.
func TestConcurrentUploadsBounded(t *testing.T) {
	var loading atomic.Int32
	hold, overflow := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f := newFixtureWith(t, "test", func(c *Config) {
		c.Load = func(ctx context.Context, dir string) (*spec.Set, error) {
			if loading.Add(1) > maxUploads {
				once.Do(func() { close(overflow) })
			}
			defer loading.Add(-1)
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return spec.Load(ctx, dir, spec.LoadOptions{})
		}
	})
	f.s.uploadWait = 0
	srv := f.srv

	upload := func() *http.Request {
		req, _ := http.NewRequest("POST", srv.URL+"/v1/plan", packDir(t, map[string]string{"apps.yaml": appDoc}))
		req.Header.Set("Authorization", "Bearer "+token)
		return req
	}
	codes := make(chan int, maxUploads)
	for range maxUploads {
		req := upload()
		go func() {
			resp, err := srv.Client().Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); loading.Load() < maxUploads; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d uploads reached the load", loading.Load(), maxUploads)
		}
		time.Sleep(time.Millisecond)
	}
	past := make(chan *http.Response, 1)
	go func() {
		resp, err := srv.Client().Do(upload())
		if err == nil {
			resp.Body.Close()
		}
		past <- resp
	}()
	select {
	case <-overflow:
		t.Errorf("%d uploads loading at once, want at most %d", maxUploads+1, maxUploads)
	case resp := <-past:
		if resp == nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("upload past the bound: %v; want 503 with Retry-After", resp)
		}
	}
	close(hold)
	for range maxUploads {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("held upload: %d, want 200", code)
		}
	}
	if code, resp := f.do(t, "POST", "/v1/plan", token, packDir(t, map[string]string{"apps.yaml": appDoc})); code != http.StatusOK {
		t.Errorf("upload once the others ended: %d %s", code, resp)
	}
}
