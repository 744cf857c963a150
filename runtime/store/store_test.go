package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	memdb "github.com/hashicorp/go-memdb"
)

func newStore(t *testing.T, opts Options) *Store {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var errTaken = errors.New("taken")

func insertUnique(name, id string) func(*Txn) error {
	return func(tx *Txn) error {
		u, err := tx.UserByName(name)
		if err != nil {
			return err
		}
		if u != nil {
			return errTaken
		}
		return tx.Insert(TableUsers, &User{ID: id, UserName: name})
	}
}

func TestUpdateSerialisesUniqueness(t *testing.T) {
	s := newStore(t, Options{})
	var wg sync.WaitGroup
	var okCount, takenCount atomic.Int32
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "Alice@Example.com"
			if i%2 == 0 {
				name = "alice@example.COM"
			}
			err := s.Update(context.Background(), insertUnique(name, fmt.Sprint(i)))
			switch {
			case err == nil:
				okCount.Add(1)
			case errors.Is(err, errTaken):
				takenCount.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if okCount.Load() != 1 || takenCount.Load() != 19 {
		t.Fatalf("ok=%d taken=%d, want 1 and 19", okCount.Load(), takenCount.Load())
	}
}

func TestFailedWriteAfterMutationLeavesNothing(t *testing.T) {
	s := newStore(t, Options{})
	bad := errors.New("bad")
	var wg sync.WaitGroup
	errs := make([]error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Update(context.Background(), func(tx *Txn) error {
				if err := tx.Insert(TableUsers, &User{ID: fmt.Sprint(i), UserName: fmt.Sprint("u", i)}); err != nil {
					return err
				}
				if i%3 == 0 {
					return bad
				}
				return nil
			})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		u, _ := s.Read().UserByID(fmt.Sprint(i))
		if i%3 == 0 {
			if !errors.Is(err, bad) || u != nil {
				t.Errorf("write %d: err=%v stored=%v, want bad and nothing stored", i, err, u != nil)
			}
		} else if err != nil || u == nil {
			t.Errorf("write %d: err=%v stored=%v, want success", i, err, u != nil)
		}
	}
}

type failingJournal struct{ fail atomic.Bool }

func (j *failingJournal) Commit(memdb.Changes) error {
	if j.fail.Load() {
		return errors.New("disk full")
	}
	return nil
}

func TestJournalFailureDiscardsBatch(t *testing.T) {
	j := &failingJournal{}
	s := newStore(t, Options{Journal: j})
	if err := s.Update(context.Background(), insertUnique("a", "1")); err != nil {
		t.Fatal(err)
	}
	j.fail.Store(true)
	if err := s.Update(context.Background(), insertUnique("b", "2")); err == nil {
		t.Fatal("write acknowledged although the journal failed")
	}
	if u, _ := s.Read().UserByID("2"); u != nil {
		t.Fatal("write visible although the journal failed")
	}
	if u, _ := s.Read().UserByID("1"); u == nil {
		t.Fatal("earlier write lost")
	}
}

func TestPanickingWriteIsAnError(t *testing.T) {
	s := newStore(t, Options{})
	err := s.Update(context.Background(), func(*Txn) error { panic("boom") })
	if err == nil {
		t.Fatal("want error")
	}
	if err := s.Update(context.Background(), insertUnique("a", "1")); err != nil {
		t.Fatalf("store unusable after a panic: %v", err)
	}
}

// TestUsersByWorkEmail covers both ways a work email is found: through its
// own index when it differs from the userName, and as the userName when it
// is the same address (which the index leaves out).
func TestUsersByWorkEmail(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	users := []*User{
		{ID: "u1", UserName: "ada@example.com", WorkEmail: "Ada@Example.com"},
		{ID: "u2", UserName: "bob@example.com", WorkEmail: "shared@example.com"},
		{ID: "u3", UserName: "shared@example.com", WorkEmail: "shared@example.com"},
		{ID: "u0", UserName: "cy@example.com", WorkEmail: "shared@example.com"},
		{ID: "u4", UserName: "dee@example.com"},
		{ID: "u5", UserName: "ed@example.com", WorkEmail: "ada@example.com "},
	}
	if err := st.Update(context.Background(), func(tx *Txn) error {
		for _, u := range users {
			if err := tx.Insert(TableUsers, u); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		email string
		want  []string
	}{
		{"ADA@example.com", []string{"u1"}},
		{"shared@EXAMPLE.com", []string{"u0", "u2", "u3"}},
		{"bob@example.com", nil},
		{"dee@example.com", nil},
		{"nobody@example.com", nil},
	}
	for _, tt := range tests {
		got, err := st.Read().UsersByWorkEmail(tt.email)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, u := range got {
			ids = append(ids, u.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("UsersByWorkEmail(%q) = %v, want %v", tt.email, ids, tt.want)
		}
	}
}

func TestResourcesChanged(t *testing.T) {
	s := newStore(t, Options{})
	closed := func(ch <-chan struct{}) bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
	ctx := context.Background()
	steps := []struct {
		name  string
		write func() error
		want  bool
	}{
		{"a user", func() error { return s.Update(ctx, insertUnique("alice", "u1")) }, false},
		{"a failed resource write", func() error {
			err := s.Update(ctx, func(tx *Txn) error {
				if err := tx.Insert(TableResources, &Resource{Kind: "K", Name: "gone"}); err != nil {
					return err
				}
				return errTaken
			})
			if !errors.Is(err, errTaken) {
				return fmt.Errorf("write: %v, want %v", err, errTaken)
			}
			return nil
		}, false},
		{"a resource", func() error {
			return s.Update(ctx, func(tx *Txn) error { return tx.Insert(TableResources, &Resource{Kind: "K", Name: "a"}) })
		}, true},
		{"a load", func() error { return s.Load(func(*Txn) error { return nil }) }, true},
	}
	for _, step := range steps {
		ch := s.ResourcesChanged()
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if got := closed(ch); got != step.want {
			t.Errorf("after %s: closed %v, want %v", step.name, got, step.want)
		}
		if closed(s.ResourcesChanged()) {
			t.Errorf("after %s: the channel ResourcesChanged now returns is closed", step.name)
		}
	}
}
