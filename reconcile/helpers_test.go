package reconcile

import (
	"bytes"
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// t0 is the fixed time of the tests' clock.
var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func newStore(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newReconciler(t testing.TB, cfg Config) *Reconciler {
	t.Helper()
	if cfg.Clock == nil {
		cfg.Clock = newFakeClock()
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func doc(kind, name string, s any) *spec.Document {
	return &spec.Document{APIVersion: spec.APIVersion, Kind: kind, Metadata: spec.Metadata{Name: name}, Spec: s}
}

// newSet sorts docs the way spec.Load does.
func newSet(rev string, docs ...*spec.Document) *spec.Set {
	slices.SortFunc(docs, func(a, b *spec.Document) int {
		return cmp.Or(cmp.Compare(kindRank(a.Kind), kindRank(b.Kind)), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
	return &spec.Set{Docs: docs, Revision: rev}
}

// adminWrite stores a resource the way the admin API does: out of band.
func adminWrite(t testing.TB, s *store.Store, kind, name string, v any) {
	t.Helper()
	err := s.Update(context.Background(), func(txn *store.Txn) error {
		return txn.Insert(store.TableResources, &store.Resource{Kind: kind, Name: name, Spec: v, ModifiedBy: "admin", Modified: t0})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func adminDelete(t testing.TB, s *store.Store, kind, name string) {
	t.Helper()
	err := s.Update(context.Background(), func(txn *store.Txn) error {
		r, err := txn.Resource(kind, name)
		if err != nil {
			return err
		}
		return txn.Delete(store.TableResources, r)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func resource(t testing.TB, s *store.Store, kind, name string) *store.Resource {
	t.Helper()
	r, err := s.Read().Resource(kind, name)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fakeClock stands still; After reports each wait and returns a channel the
// test fires to end it.
type fakeClock struct {
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{waits: make(chan time.Duration, 100), fire: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time { return t0 }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.waits <- d
	return c.fire
}

// logRecorder is a slog.Handler that keeps records for assertions.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *logRecorder) WithGroup(string) slog.Handler            { return h }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

// find returns the attributes of the records with message msg.
func (h *logRecorder) find(msg string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
	for _, r := range h.records {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

func (h *logRecorder) all() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b bytes.Buffer
	th := slog.NewTextHandler(&b, nil)
	for _, r := range h.records {
		th.Handle(context.Background(), r)
	}
	return b.String()
}
