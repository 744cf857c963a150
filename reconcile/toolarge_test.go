package reconcile

import (
	"fmt"
	"log/slog"
	"reflect"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
)

// smallJournal refuses, as etcd's bound on a transaction's operations does,
// any batch of more than limit changes.
type smallJournal struct{ limit int }

func (j smallJournal) Commit(changes memdb.Changes) error {
	if len(changes) > j.limit {
		return fmt.Errorf("%d changes: %w", len(changes), store.ErrTooLarge)
	}
	return nil
}

// A revision whose changes do not fit one journal transaction can never
// apply: it is refused (the last good one stays, the loop does not retry it
// with backoff as if etcd were away), and the next commit that fits applies.
func TestRevisionTooLargeIsRefused(t *testing.T) {
	st, src, r := appliedOnSmallJournal(t)
	many := ""
	for i := range 8 {
		many += "---\n" + app(fmt.Sprintf("app%d", i), "1.0")
	}
	src.write(t, "c2", map[string]string{"apps.yaml": app("a", "1.0") + many})
	_, err := r.ReconcileOnce(t.Context())
	st2 := r.Status()
	if st2.LastResult != OutcomeRefused || st2.Stalled == "" {
		t.Fatalf("a revision too large for the journal: err %v, status %+v; want refused", err, st2)
	}
	if got := versions(t, st, "a"); !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("after the refusal a has versions %v, want the last good [1.0]", got)
	}
	src.write(t, "c3", map[string]string{"apps.yaml": app("a", "1.0", "2.0")})
	if _, err := r.ReconcileOnce(t.Context()); err != nil {
		t.Fatalf("the next revision that fits: %v", err)
	}
	if got := versions(t, st, "a"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("a has versions %v, want [1.0 2.0]", got)
	}
}

// The baseline record rides in the apply's transaction. When the journal
// refuses the transaction for its size with the record (etcd's request or
// operation bound) and would take it without, the apply is made without
// the record, which only restarts and other daemons miss, rather than
// refused: a spec that applied before the record existed still applies.
func TestBaselineLeftOutWhenTheJournalRefusesIt(t *testing.T) {
	// c1's resources (the builtin roles among them) and the applied
	// revision fit; with the record they do not. c2's one change fits with it.
	st, err := store.New(store.Options{Journal: smallJournal{limit: 8}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &logRecorder{}
	src := newDirSource(t)
	r := newReconciler(t, Config{Store: st, Source: src, DriftMode: DriftReport, Clock: newFakeClock(), Logger: slog.New(logs)})
	for _, step := range []struct {
		rev, apps string
		recorded  bool
	}{
		{"c1", app("a", "1.0"), false},
		{"c2", app("a", "1.0") + "---\n" + app("b", "1.0"), true},
	} {
		src.write(t, step.rev, map[string]string{"apps.yaml": step.apps})
		if _, err := r.ReconcileOnce(t.Context()); err != nil {
			t.Fatalf("%s: %v", step.rev, err)
		}
		if st := r.Status(); st.LastResult != OutcomeOK {
			t.Fatalf("%s: %+v, want applied", step.rev, st)
		}
		if rec, _ := st.Read().MetaValue(store.MetaAppliedBaseline); (rec != "") != step.recorded {
			t.Errorf("%s: record %q, want recorded %v", step.rev, rec, step.recorded)
		}
	}
	if got := len(logs.find(baselineTooLarge)); got != 1 {
		t.Errorf("%d warnings, want 1:\n%s", got, logs.all())
	}
}

// appliedOnSmallJournal is a reconciler whose journal takes at most 9
// changes a transaction, which has applied c1: it just fits (its
// resources, the builtin roles among them, the applied revision and the
// baseline record).
func appliedOnSmallJournal(t *testing.T) (*store.Store, *dirSource, *Reconciler) {
	t.Helper()
	st, err := store.New(store.Options{Journal: smallJournal{limit: 9}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	src := newDirSource(t)
	r := newReconciler(t, Config{Store: st, Source: src, DriftMode: DriftCorrect, Clock: newFakeClock(),
		Logger: slog.New(slog.DiscardHandler), Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second}})
	src.write(t, "c1", map[string]string{"apps.yaml": app("a", "1.0")})
	if _, err := r.ReconcileOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	return st, src, r
}
