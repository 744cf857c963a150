package access_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestBinderFollowsCommits(t *testing.T) {
	b := access.NewBinder(slog.New(slog.DiscardHandler))
	st, err := store.New(store.Options{OnCommit: func(c memdb.Changes) { b.Notify(c) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w := &world{t: t, st: st}

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- b.Run(ctx, st) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	w.builtinRoles()
	u := w.user("ann", true)
	g := w.group("Ops")
	w.member(g, u)
	w.assign("ops", "group:Ops", dev)
	eventually(t, "the binding", func() bool {
		v, _ := st.Read().MetaValue("access/binding/ops")
		return v != ""
	})
	w.rename(g, "Operations")
	if got := w.forUser("ann").RoleNames(); !slices.Equal(got, dev) {
		t.Fatalf("roles after rename = %v, want %v", got, dev)
	}
	// Dropping the assignment removes its binding.
	w.deleteResource("AccessAssignment", "ops")
	eventually(t, "the binding to go", func() bool {
		v, _ := st.Read().MetaValue("access/binding/ops")
		return v == ""
	})
}

func TestQueriesInsideAWriteTransaction(t *testing.T) {
	w := baseWorld(t)
	w.user("ann", true)
	w.forUser("ann") // warm the memo with the committed state
	w.update(func(tx *store.Txn) error {
		if err := tx.Insert(store.TableResources, &store.Resource{Kind: "AccessAssignment", Name: "a", Spec: assignment("user:ann", dev)}); err != nil {
			return err
		}
		e, err := access.ForUser(tx, "ann")
		if err != nil {
			return err
		}
		if !e.HasAccess() {
			t.Error("write transaction: the uncommitted assignment is not seen")
		}
		// Later changes in the same transaction must not be hidden by the
		// memo of an earlier query (in a write transaction, radix nodes are
		// changed in place).
		want := []string{"Developer"}
		for _, more := range []string{"View Only", "Manager"} {
			if err := tx.Insert(store.TableResources, &store.Resource{Kind: "AccessAssignment", Name: more, Spec: assignment("user:ann", []string{more})}); err != nil {
				return err
			}
			if e, err = access.ForUser(tx, "ann"); err != nil {
				return err
			}
			want = append(want, more)
			slices.Sort(want)
			if got := e.RoleNames(); !slices.Equal(got, want) {
				t.Errorf("write transaction: roles = %v, want %v", got, want)
			}
		}
		for _, more := range []string{"View Only", "Manager"} {
			if _, err := tx.DeleteAll(store.TableResources, store.IndexID, "AccessAssignment", more); err != nil {
				return err
			}
		}
		if _, err := tx.DeleteAll(store.TableResources, store.IndexID, "AccessAssignment", "a"); err != nil {
			return err
		}
		if e, err = access.ForUser(tx, "ann"); err != nil {
			return err
		}
		if e.HasAccess() {
			t.Error("write transaction: the deleted assignment still counts")
		}
		return nil
	})
	if w.forUser("ann").HasAccess() {
		t.Error("committed state: access without assignment")
	}
}

// TestBindingFromBeforeFold keeps a binding recorded while subjects were
// keyed by strings.ToLower, before store.Fold: for a Greek name with a
// final sigma the two keys differ (ToLower keeps ς, Fold gives σ), and a
// group renamed since must keep its access rather than lose it and its
// binding.
func TestBindingFromBeforeFold(t *testing.T) {
	const subject = "Προγραμματιστές"
	oldKey := strings.ToLower(subject)
	if oldKey == store.Fold(subject) {
		t.Fatalf("%q: ToLower and Fold agree, the test tests nothing", subject)
	}
	w := baseWorld(t)
	ann := w.user("ann", true)
	g := w.group(subject)
	w.member(g, ann)
	w.assign("devs", "group:"+subject, dev)
	// The record as the code before store.Fold wrote it.
	w.update(func(tx *store.Txn) error {
		v := strings.Join([]string{"v1", oldKey, g, "ext-" + g, subject}, "\x00")
		return tx.Insert(store.TableMeta, &store.Meta{Key: "access/binding/devs", Value: v})
	})
	w.rename(g, "Developers")
	if got := w.forUser("ann").RoleNames(); !slices.Equal(got, dev) {
		t.Errorf("renamed group, old binding: roles = %v, want %v", got, dev)
	}
	w.bind()
	if got := w.forUser("ann").RoleNames(); !slices.Equal(got, dev) {
		t.Errorf("after the Binder ran: roles = %v, want %v", got, dev)
	}
	if got := w.pending(); len(got) != 0 {
		t.Errorf("pending = %v, want none", got)
	}
	renames, err := access.Renames(w.st.Read())
	if err != nil {
		t.Fatal(err)
	}
	if len(renames) != 1 || renames[0].To != "Developers" {
		t.Errorf("renames = %+v, want the rename to Developers", renames)
	}
}
