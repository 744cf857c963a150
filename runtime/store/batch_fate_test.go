package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	memdb "github.com/hashicorp/go-memdb"
)

// journalFunc is a Journal made of a function.
type journalFunc func(memdb.Changes) error

func (f journalFunc) Commit(c memdb.Changes) error { return f(c) }

// holdsUser reports whether changes hold a change to user id.
func holdsUser(changes memdb.Changes, id string) bool {
	for _, c := range changes {
		if c.Table != TableUsers {
			continue
		}
		for _, obj := range []any{c.Before, c.After} {
			if u, ok := obj.(*User); ok && u.ID == id {
				return true
			}
		}
	}
	return false
}

// userChanges counts the users changes in changes.
func userChanges(changes memdb.Changes) int {
	n := 0
	for _, c := range changes {
		if c.Table == TableUsers {
			n++
		}
	}
	return n
}

// batchOf runs fns as one batch of the committer's (commitBatch, which
// only the committer calls otherwise: memdb's writer lock keeps the two
// apart) and returns their answers. Concurrent Updates make such batches
// too, but only when they happen to queue up together.
func batchOf(s *Store, fns ...func(*Txn) error) []error {
	reqs := make([]*request, len(fns))
	for i, fn := range fns {
		reqs[i] = &request{ctx: context.Background(), fn: fn, errc: make(chan error, 1)}
	}
	s.commitBatch(reqs)
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		errs[i] = <-r.errc
	}
	return errs
}

// TestFailedWriteDoesNotSeeDiscardedWrites: a write that fails after an
// earlier write of its batch ran saw that write's changes; when the batch
// is then discarded (the journal failed, or the earlier write is too large
// for it), its answer must not report a state that never became visible,
// such as a userName taken by a user that does not exist.
func TestFailedWriteDoesNotSeeDiscardedWrites(t *testing.T) {
	tests := []struct {
		name string
		// journal builds the store's journal; s is the store, once made.
		journal func(s **Store) Journal
		// created says which of the two users exist afterwards.
		created []bool
	}{
		{"journal fails", func(**Store) Journal {
			return journalFunc(func(memdb.Changes) error { return errors.New("disk full") })
		}, []bool{false, false}},
		{"journal stale", func(**Store) Journal {
			return journalFunc(func(memdb.Changes) error { return fmt.Errorf("etcd: %w", ErrStale) })
		}, []bool{false, false}},
		{"first write too large", func(**Store) Journal {
			return journalFunc(func(c memdb.Changes) error {
				if holdsUser(c, "1") {
					return fmt.Errorf("frame: %w", ErrTooLarge)
				}
				return nil
			})
		}, []bool{false, true}},
		{"pipeline send fails", func(s **Store) Journal {
			return &pipelineOf{s: s, fail: func(memdb.Changes) error { return fmt.Errorf("etcd: %w", ErrUnavailable) }}
		}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Store
			s = newStore(t, Options{Journal: tt.journal(&s)})
			errs := batchOf(s, insertUnique("bob", "1"), insertUnique("Bob", "2"))
			for i, id := range []string{"1", "2"} {
				u, err := s.Read().UserByID(id)
				if err != nil {
					t.Fatal(err)
				}
				if (u != nil) != tt.created[i] {
					t.Errorf("user %s stored %v, want %v (answers %v)", id, u != nil, tt.created[i], errs)
				}
				if tt.created[i] && errs[i] != nil {
					t.Errorf("write %d: %v, want success", i, errs[i])
				}
			}
			if u, _ := s.Read().UserByName("bob"); u == nil && errors.Is(errs[1], errTaken) {
				t.Errorf("second write answered %q, but no user holds the name: it saw the first write, which was discarded", errs[1])
			}
		})
	}
}

// TestPoisonedBatchRunsDeferredFailuresAgain: a write that failed after an
// earlier one succeeded runs again with it when a later write poisons the
// batch, and keeps its answer.
func TestPoisonedBatchRunsDeferredFailuresAgain(t *testing.T) {
	s := newStore(t, Options{Journal: journalFunc(func(memdb.Changes) error { return nil })})
	bad := errors.New("bad")
	errs := batchOf(s, insertUnique("bob", "1"), insertUnique("Bob", "2"), func(tx *Txn) error {
		if err := tx.Insert(TableUsers, &User{ID: "3", UserName: "cy"}); err != nil {
			return err
		}
		return bad
	}, insertUnique("dee", "4"))
	want := []error{nil, errTaken, bad, nil}
	for i := range want {
		if !errors.Is(errs[i], want[i]) || (want[i] == nil) != (errs[i] == nil) {
			t.Errorf("write %d: %v, want %v", i, errs[i], want[i])
		}
	}
	for id, stored := range map[string]bool{"1": true, "2": false, "3": false, "4": true} {
		if u, _ := s.Read().UserByID(id); (u != nil) != stored {
			t.Errorf("user %s stored %v, want %v", id, u != nil, stored)
		}
	}
}

// pipelineOf is a Pipeline that makes what it sends visible through the
// store's Mirror, as etcdstate's watch does; s is set once the store is
// made. fail, when set, decides the outcome of a send from its changes;
// refuse, that of Prepare, from the number of writes too.
type pipelineOf struct {
	s      **Store
	fail   func(memdb.Changes) error
	refuse func(memdb.Changes, int) error
}

func (p *pipelineOf) Commit(memdb.Changes) error { return errors.New("Commit on a pipeline") }

func (p *pipelineOf) Prepare(changes memdb.Changes, writes int) (func(func()) error, bool, error) {
	if p.refuse != nil {
		if err := p.refuse(changes, writes); err != nil {
			return nil, false, err
		}
	}
	return func(released func()) error {
		if p.fail != nil {
			if err := p.fail(changes); err != nil {
				return err
			}
		}
		released()
		return (*p.s).Mirror(context.Background(), func(tx *Txn) error {
			for _, c := range changes {
				if c.Table != TableUsers {
					continue
				}
				var err error
				if c.After != nil {
					err = tx.Insert(TableUsers, c.After)
				} else {
					err = tx.Delete(TableUsers, c.Before)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}, true, nil
}

// TestPipelinedTooLargeBatchRunsWritesAlone: a Pipeline's send, its
// commit, may find a batch too large (etcd's request size limit); as with
// Commit, the store must then commit the batch's writes one by one rather
// than fail small writes for sharing a batch with others.
func TestPipelinedTooLargeBatchRunsWritesAlone(t *testing.T) {
	var s *Store
	s = newStore(t, Options{Journal: &pipelineOf{s: &s, fail: func(c memdb.Changes) error {
		if userChanges(c) > 1 {
			return fmt.Errorf("etcd: %w", ErrTooLarge)
		}
		return nil
	}}})
	errs := batchOf(s,
		func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "1", UserName: "a"}) },
		func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "2", UserName: "b"}) },
	)
	for i, err := range errs {
		if err != nil {
			t.Errorf("write %d: %v, want success (each write fits alone)", i, err)
		}
	}
	for _, id := range []string{"1", "2"} {
		if u, _ := s.Read().UserByID(id); u == nil {
			t.Errorf("user %s not stored", id)
		}
	}
}

// TestPipelineToldWhichWritesShareABatch: a Pipeline may commit one
// write's changes in several transactions, and must then refuse them in a
// batch of several writes (see Prepare), which it can only do when told
// how many share the batch: each is then prepared alone, and answered with
// its own outcome.
func TestPipelineToldWhichWritesShareABatch(t *testing.T) {
	var s *Store
	var prepared []int
	s = newStore(t, Options{Journal: &pipelineOf{s: &s, refuse: func(_ memdb.Changes, writes int) error {
		prepared = append(prepared, writes)
		if writes > 1 {
			return fmt.Errorf("journal: %w", ErrTooLarge)
		}
		return nil
	}}})
	if err := s.Update(context.Background(), insertUnique("bob", "0")); err != nil {
		t.Fatal(err)
	}
	prepared = nil
	errs := batchOf(s,
		func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "1", UserName: "a"}) },
		insertUnique("bob", "2"),
		func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "3", UserName: "c"}) },
	)
	want := []error{nil, errTaken, nil}
	for i := range want {
		if !errors.Is(errs[i], want[i]) || (want[i] == nil) != (errs[i] == nil) {
			t.Errorf("write %d: %v, want %v", i, errs[i], want[i])
		}
	}
	if want := []int{3, 1, 1}; !slices.Equal(prepared, want) {
		t.Errorf("prepared batches of %v writes, want %v", prepared, want)
	}
	for id, stored := range map[string]bool{"1": true, "2": false, "3": true} {
		if u, _ := s.Read().UserByID(id); (u != nil) != stored {
			t.Errorf("user %s stored %v, want %v", id, u != nil, stored)
		}
	}
}

// FuzzFoldAgreesWithEqualFold compares Fold and AppendFold with
// strings.EqualFold on any pair of byte strings, invalid UTF-8 included.
func FuzzFoldAgreesWithEqualFold(f *testing.F) {
	for _, seed := range [][2]string{
		{"Team Σ", "team ς"}, {"\u212Aate", "kATE"}, {"ſam", "SAM"}, {"ß", "ẞ"},
		{"İ", "i"}, {"\xff", "\uFFFD"}, {"\xe2\x82", "\uFFFD\uFFFD"}, {"ǅ", "ǆ"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := Fold(a) == Fold(b), strings.EqualFold(a, b); got != want {
			t.Fatalf("Fold(%+q)=%+q, Fold(%+q)=%+q: equal %v, strings.EqualFold says %v", a, Fold(a), b, Fold(b), got, want)
		}
		if !utf8.ValidString(Fold(a)) {
			t.Fatalf("Fold(%+q) = %+q is not valid UTF-8", a, Fold(a))
		}
		if got := string(AppendFold([]byte("x"), a)); got != "x"+Fold(a) {
			t.Fatalf("AppendFold(x, %+q) = %+q, want x%+q", a, got, Fold(a))
		}
	})
}

// TestStoreRefusalsShareBatchFate: the store's own refusal of a write (a
// userName taken, when a write inserts without checking first; a delete of
// what is not there) may rest on what an earlier write of the batch did.
// When the journal then refuses the batch, that never happened, so the
// refusal must not be the answer; when the journal takes it, only the
// refused writer fails.
func TestStoreRefusalsShareBatchFate(t *testing.T) {
	insert := func(name, id string) func(*Txn) error {
		return func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: id, UserName: name}) }
	}
	deleteUser := func(tx *Txn) error { return tx.Delete(TableUsers, &User{ID: "0"}) }
	deleteGroup := func(tx *Txn) error { return tx.Delete(TableGroups, &Group{ID: "g", DisplayName: "staff"}) }
	for _, tt := range []struct {
		name   string
		writes []func(*Txn) error
		// refused is the store's answer to the second write when the
		// journal takes the batch.
		refused error
	}{
		{"userName taken", []func(*Txn) error{insert("bob", "1"), insert("Bob", "2")}, ErrUserNameTaken},
		{"user deleted twice", []func(*Txn) error{deleteUser, deleteUser}, memdb.ErrNotFound},
		{"group deleted twice", []func(*Txn) error{deleteGroup, deleteGroup}, memdb.ErrNotFound},
	} {
		for _, journalErr := range []error{nil, errJournal} {
			t.Run(fmt.Sprintf("%s/journal %v", tt.name, journalErr), func(t *testing.T) {
				s := newStore(t, Options{Journal: journalFunc(func(memdb.Changes) error { return journalErr })})
				if err := s.Load(func(tx *Txn) error {
					if err := tx.Insert(TableUsers, &User{ID: "0", UserName: "zed"}); err != nil {
						return err
					}
					return tx.Insert(TableGroups, &Group{ID: "g", DisplayName: "staff"})
				}); err != nil {
					t.Fatal(err)
				}
				want := []error{nil, tt.refused}
				if journalErr != nil {
					want = []error{journalErr, journalErr}
				}
				errs := batchOf(s, tt.writes...)
				for i := range want {
					if (want[i] == nil) != (errs[i] == nil) || !errors.Is(errs[i], want[i]) {
						t.Errorf("write %d: %v, want %v", i, errs[i], want[i])
					}
				}
			})
		}
	}
}

// TestPoisoningWriteDoesNotSeeDiscardedWrites: a write that fails after
// mutating poisons its batch, and its failure may rest on what an earlier
// write of the batch did (a userName it took). That earlier write may
// still be discarded (the journal fails, or it is too large), so the
// poisoning write must not be answered before the batch's fate is known,
// nor with a refusal that rests on a state that never became visible.
func TestPoisoningWriteDoesNotSeeDiscardedWrites(t *testing.T) {
	// poisoner creates user 3, then fails when "Bob" is taken.
	poisoner := func(tx *Txn) error {
		if err := tx.Insert(TableUsers, &User{ID: "3", UserName: "cy"}); err != nil {
			return err
		}
		return insertUnique("Bob", "2")(tx)
	}
	tests := []struct {
		name    string
		journal func(s **Store) Journal
		// stored says which of users 1, 2 and 3 exist afterwards.
		stored []bool
		// taken: the poisoner is answered errTaken (user 1 was committed).
		taken bool
	}{
		{"journal takes the batch", func(**Store) Journal {
			return journalFunc(func(memdb.Changes) error { return nil })
		}, []bool{true, false, false}, true},
		{"journal fails", func(**Store) Journal {
			return journalFunc(func(memdb.Changes) error { return errJournal })
		}, []bool{false, false, false}, false},
		{"first write too large", func(**Store) Journal {
			return journalFunc(func(c memdb.Changes) error {
				if holdsUser(c, "1") {
					return fmt.Errorf("frame: %w", ErrTooLarge)
				}
				return nil
			})
		}, []bool{false, true, true}, false},
		{"pipeline send fails", func(s **Store) Journal {
			return &pipelineOf{s: s, fail: func(memdb.Changes) error { return fmt.Errorf("etcd: %w", ErrUnavailable) }}
		}, []bool{false, false, false}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s *Store
			s = newStore(t, Options{Journal: tt.journal(&s)})
			errs := batchOf(s, insertUnique("bob", "1"), poisoner)
			for i, id := range []string{"1", "2", "3"} {
				u, err := s.Read().UserByID(id)
				if err != nil {
					t.Fatal(err)
				}
				if (u != nil) != tt.stored[i] {
					t.Errorf("user %s stored %v, want %v (answers %v)", id, u != nil, tt.stored[i], errs)
				}
			}
			if got := errors.Is(errs[1], errTaken); got != tt.taken {
				t.Errorf("poisoner answered %v; errTaken %v, want %v", errs[1], got, tt.taken)
			}
			if tt.stored[1] && errs[1] != nil {
				t.Errorf("poisoner answered %v, but its users were stored", errs[1])
			}
		})
	}
}
