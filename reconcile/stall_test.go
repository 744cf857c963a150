package reconcile

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile/source"
)

// TestRunStalls: a failure that retrying cannot fix (the git server refuses
// the credentials) stalls: status says so and why, and the loop polls at
// the interval instead of backing off; a transient failure (the server is
// unavailable) backs off as before.
func TestRunStalls(t *testing.T) {
	interval := func(d time.Duration) bool { return d >= 54*time.Second && d <= 66*time.Second }
	tests := []struct {
		name    string
		answer  int // what the git server answers every request
		outcome string
		stalled string // the status JSON's "stalled"
		waits   []func(time.Duration) bool
	}{
		{
			name: "auth", answer: http.StatusUnauthorized, outcome: "stalled", stalled: "AuthenticationFailed",
			waits: []func(time.Duration) bool{interval, interval, interval},
		},
		{
			name: "transient", answer: http.StatusServiceUnavailable, outcome: OutcomeError,
			waits: []func(time.Duration) bool{
				func(d time.Duration) bool { return d == time.Second },
				func(d time.Duration) bool { return d == 2*time.Second },
				func(d time.Duration) bool { return d == 4*time.Second },
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, http.StatusText(tt.answer), tt.answer)
			}))
			t.Cleanup(srv.Close)
			g, err := source.NewGit(source.GitOptions{URL: srv.URL + "/spec.git", CacheDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			results := make(chan Result, 10)
			clock := newFakeClock()
			r := newReconciler(t, Config{
				Store: newStore(t), Source: g, Clock: clock,
				Backoff:  Backoff{Initial: time.Second, Max: 4 * time.Second},
				OnResult: func(res Result) { results <- res },
			})
			runLoop(t, r)
			for i, ok := range tt.waits {
				if res := waitFor(t, results, "a failed reconcile"); res.Outcome != tt.outcome || res.Err == nil {
					t.Errorf("result %d: outcome %q, err %v; want %q", i, res.Outcome, res.Err, tt.outcome)
				}
				if d := waitFor(t, clock.waits, "the next wait"); !ok(d) {
					t.Errorf("wait %d after a %d: %v", i, tt.answer, d)
				}
				st := statusJSON(t, r)
				if st["stalled"] != nil && st["stalled"] != tt.stalled || st["stalled"] == nil && tt.stalled != "" {
					t.Errorf("status stalled = %v, want %q", st["stalled"], tt.stalled)
				}
				if st["lastResult"] != tt.outcome || st["lastError"] == nil {
					t.Errorf("status %v", st)
				}
				clock.fire <- t0
			}
			waitFor(t, results, "the last reconcile")
		})
	}
}

// statusJSON is the status as the admin API serves it.
func statusJSON(t *testing.T, r *Reconciler) map[string]any {
	t.Helper()
	b, err := json.Marshal(r.Status())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
