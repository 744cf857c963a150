package reconcile

import (
	"context"
	"testing"
)

// TestRequestAnsweredOnlyByALaterAttempt: an attempt under way when a
// request is made (here suspended, the request following a Resume) does
// not answer it: Status.Request stays below the request's number until an
// attempt that began after the request ends, and that attempt saw the
// Resume and applied. The fake clock stands still, so LastAttempt could
// not tell the two apart.
func TestRequestAnsweredOnlyByALaterAttempt(t *testing.T) {
	tests := []struct {
		name string
		// request makes the request and returns the number it waits for.
		request func(r *Reconciler) uint64
		// later is a request made afterwards with a number no higher: it
		// triggers but must not lower Status.Request.
		later func(r *Reconciler)
	}{
		{"Request", func(r *Reconciler) uint64 { return r.Request() }, nil},
		{"RequestNumbered", func(r *Reconciler) uint64 { r.RequestNumbered(42); return 42 },
			func(r *Reconciler) { r.RequestNumbered(7) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newLoopEnv(t, DriftCorrect, nil)
			e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
			e.r.Suspend()
			e.src.gate, e.src.entered = make(chan struct{}), make(chan struct{}, 1)
			ended := make(chan error, 1)
			go func() {
				_, err := e.r.ReconcileOnce(context.Background())
				ended <- err
			}()
			waitFor(t, e.src.entered, "the attempt under way")

			e.r.Resume()
			n := tt.request(e.r)
			e.src.gate <- struct{}{}
			if err := waitFor(t, ended, "the attempt under way to end"); err != nil {
				t.Fatal(err)
			}
			if st := e.r.Status(); st.Request >= n || versions(t, e.store, "webgoat") != nil {
				t.Fatalf("the attempt under way answers request %d (status request %d) or applied (%v)", n, st.Request, versions(t, e.store, "webgoat"))
			}

			e.src.gate, e.src.entered = nil, nil
			e.once(t)
			if st := e.r.Status(); st.Request < n || versions(t, e.store, "webgoat") == nil {
				t.Fatalf("the next attempt: status request %d, want %d; applied %v", st.Request, n, versions(t, e.store, "webgoat"))
			}
			if tt.later != nil {
				tt.later(e.r)
				e.once(t)
				if st := e.r.Status(); st.Request != n {
					t.Errorf("status request %d after a lower number, want it to stay %d", st.Request, n)
				}
			}
		})
	}
}
