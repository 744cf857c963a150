package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	memdb "github.com/hashicorp/go-memdb"
	"pgregory.net/rapid"
)

// TestUserIndexesAgainstModel runs random user writes (creates, renames,
// externalId and work email changes, deletes; several per write, some in
// writes that fail, some refused by the journal, which must leave no trace)
// and checks every lookup against a plain model after each write, and that
// the users' changes handed to the journal take it from the model before
// the write to the model after. The store is first filled through Load,
// whose indexes are built in place.
func TestUserIndexesAgainstModel(t *testing.T) {
	names := []string{"ada", "Ada", "bob", "cy", "dee", "ed"}
	exts := []string{"", "x1", "x2", "x3"}
	// Work emails: none, one that is also a userName, others, and several:
	// one of them a userName, one address twice.
	emails := []string{"", "ADA", "w1", "W1", "w2",
		JoinWorkEmails("w1", "w2"), JoinWorkEmails("w2", "ada", "bob"), JoinWorkEmails("W1", "w1"), JoinWorkEmails("\x00w3")}
	// The addresses the work email lookups ask for.
	addresses := []string{"ADA", "w1", "W1", "w2", "bob", "\x00w3", "w3"}
	ids := []string{"u1", "u2", "u3", "u4", "u5"}
	rapid.Check(t, func(rt *rapid.T) {
		st, journal := journaledStore(rt)
		defer st.Close()
		model := map[string]*User{} // id → user
		apply := func(tx *Txn, ops []*User, deletes []string) error {
			for _, u := range ops {
				if err := tx.Insert(TableUsers, u); err != nil {
					return err
				}
			}
			for _, id := range deletes {
				if _, err := tx.DeleteAll(TableUsers, IndexID, id); err != nil {
					return err
				}
			}
			return nil
		}
		// valid returns the ops that keep userNames unique, applied to m.
		valid := func(m map[string]*User, ops []*User) []*User {
			var out []*User
			for _, u := range ops {
				clash := false
				for id, o := range m {
					if id != u.ID && strings.EqualFold(o.UserName, u.UserName) {
						clash = true
					}
				}
				if !clash {
					m[u.ID] = u
					out = append(out, u)
				}
			}
			return out
		}
		draw := func(label string) []*User {
			var ops []*User
			for range rapid.IntRange(0, 3).Draw(rt, label) {
				ops = append(ops, &User{ID: rapid.SampledFrom(ids).Draw(rt, "id"),
					UserName:   rapid.SampledFrom(names).Draw(rt, "name"),
					ExternalID: rapid.SampledFrom(exts).Draw(rt, "ext"),
					WorkEmail:  rapid.SampledFrom(emails).Draw(rt, "email")})
			}
			return ops
		}
		// Load takes each user once, through LoadUser, and must see them
		// before it ends.
		var initial []*User
		for _, u := range valid(model, draw("initial")) {
			if !slices.ContainsFunc(initial, func(o *User) bool { return o.ID == u.ID }) && model[u.ID] == u {
				initial = append(initial, u)
			}
		}
		for id, u := range model {
			if !slices.Contains(initial, u) {
				delete(model, id)
			}
		}
		if err := st.Load(func(tx *Txn) error {
			for _, u := range initial {
				if err := tx.LoadUser(u); err != nil {
					return err
				}
			}
			for _, u := range initial {
				if got, err := tx.UserByName(u.UserName); err != nil || got != u {
					rt.Fatalf("inside Load, UserByName(%q) = %v, %v", u.UserName, got, err)
				}
			}
			return nil
		}); err != nil {
			rt.Fatal(err)
		}
		check(rt, st.Read(), model, names, exts, addresses)
		journal.users = maps.Clone(model) // Load bypasses the journal
		for range rapid.IntRange(1, 20).Draw(rt, "writes") {
			next := maps.Clone(model)
			ops := valid(next, draw("ops"))
			deletes := rapid.SliceOfN(rapid.SampledFrom(ids), 0, 2).Draw(rt, "deletes")
			for _, id := range deletes {
				delete(next, id)
			}
			// Now and then every user goes first, as a mirror's reload
			// clears them, and the write's own users come back.
			clear := rapid.IntRange(0, 9).Draw(rt, "clear") == 0
			if clear {
				next = map[string]*User{}
				ops = valid(next, ops)
				for _, id := range deletes {
					delete(next, id)
				}
			}
			fail := rapid.IntRange(0, 4).Draw(rt, "fail") == 0
			journal.fail = rapid.IntRange(0, 3).Draw(rt, "journal fails") == 0
			journal.refused = false
			errFail := errors.New("fail after mutating")
			err := st.Update(context.Background(), func(tx *Txn) error {
				if clear {
					if _, err := tx.DeleteAll(TableUsers, IndexID); err != nil {
						return err
					}
				}
				if err := apply(tx, ops, deletes); err != nil {
					return err
				}
				if fail {
					return errFail
				}
				return nil
			})
			switch {
			case fail && !errors.Is(err, errFail):
				rt.Fatalf("failing write returned %v", err)
			case fail:
			case journal.refused && !errors.Is(err, errJournal):
				rt.Fatalf("write the journal refused returned %v", err)
			case journal.refused:
			case err != nil:
				rt.Fatal(err)
			default:
				model = next
			}
			check(rt, st.Read(), model, names, exts, addresses)
			if journal.err != nil {
				rt.Fatal(journal.err)
			}
			if !maps.Equal(journal.users, model) {
				rt.Fatalf("the journal's users %v, want %v", journal.users, model)
			}
		}
	})
}

// userJournal applies the users' changes a store hands its journal, checking
// that each starts from the version the journal holds. It runs on the
// store's committer, so it keeps the first error for the test to report.
type userJournal struct {
	users map[string]*User
	err   error
	// fail makes Commit refuse its batches (errJournal), as a full disk
	// would; refused says it did.
	fail, refused bool
}

var errJournal = errors.New("journal: disk full")

// journaledStore returns a store whose batches go to a userJournal, for
// the model tests.
func journaledStore(rt *rapid.T) (*Store, *userJournal) {
	journal := &userJournal{users: map[string]*User{}}
	st, err := New(Options{Journal: journal})
	if err != nil {
		rt.Fatal(err)
	}
	return st, journal
}

func (j *userJournal) Commit(changes memdb.Changes) error {
	if j.fail {
		j.refused = true
		return errJournal
	}
	if j.err == nil {
		j.err = j.apply(changes)
	}
	return nil
}

func (j *userJournal) apply(changes memdb.Changes) error {
	seen := map[string]bool{}
	for _, c := range changes {
		if c.Table != TableUsers {
			continue
		}
		if c.Before == nil && c.After == nil {
			return errors.New("a users change with neither before nor after")
		}
		var before, after *User
		if c.Before != nil {
			before = c.Before.(*User)
		}
		if c.After != nil {
			after = c.After.(*User)
		}
		id := cmp.Or(after, before).ID
		if seen[id] {
			return fmt.Errorf("user %s changed twice in one batch", id)
		}
		seen[id] = true
		if j.users[id] != before {
			return fmt.Errorf("change of user %s from %v, the journal holds %v", id, before, j.users[id])
		}
		if after == nil {
			delete(j.users, id)
		} else {
			j.users[id] = after
		}
	}
	return nil
}

func check(rt *rapid.T, tx *Txn, model map[string]*User, names, exts, addresses []string) {
	for _, name := range names {
		var want *User
		for _, u := range model {
			if strings.EqualFold(u.UserName, name) {
				want = u
			}
		}
		got, err := tx.UserByName(name)
		if err != nil || got != want {
			rt.Fatalf("UserByName(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	var want []string
	for _, u := range model {
		want = append(want, Fold(u.UserName))
	}
	slices.Sort(want)
	users, err := tx.UsersByName("")
	if err != nil {
		rt.Fatal(err)
	}
	var got []string
	for u, err := range users {
		if err != nil {
			rt.Fatal(err)
		}
		got = append(got, Fold(u.UserName))
	}
	if !slices.Equal(got, want) {
		rt.Fatalf("UsersByName = %v, want %v", got, want)
	}
	// The id-list lookups: each key against the users the model holds
	// under it, in id order.
	for _, l := range []struct {
		name    string
		keys    []string
		lookup  func(string) ([]*User, error)
		matches func(u *User, key string) bool
	}{
		{"UsersByExternalID", exts[1:], tx.UsersByExternalID, func(u *User, key string) bool { return u.ExternalID == key }},
		{"UsersByWorkEmail", addresses, tx.UsersByWorkEmail, func(u *User, key string) bool {
			for e := range u.WorkEmails() {
				if strings.EqualFold(e, key) {
					return true
				}
			}
			return false
		}},
	} {
		for _, key := range l.keys {
			var want []string
			for _, id := range slices.Sorted(maps.Keys(model)) {
				if l.matches(model[id], key) {
					want = append(want, id)
				}
			}
			us, err := l.lookup(key)
			if err != nil {
				rt.Fatal(err)
			}
			var got []string
			for _, u := range us {
				got = append(got, u.ID)
			}
			if !slices.Equal(got, want) {
				rt.Fatalf("%s(%q) = %v, want %v", l.name, key, got, want)
			}
		}
	}
	for i := range 6 { // every id the test draws, and one it never does
		id := fmt.Sprintf("u%d", i)
		u, err := tx.UserByID(id)
		if err != nil || u != model[id] {
			rt.Fatalf("UserByID(%q) = %v, %v; want %v", id, u, err, model[id])
		}
	}
	if n, err := tx.UserCount(); err != nil || n != len(model) {
		rt.Fatalf("UserCount = %d, %v; want %d", n, err, len(model))
	}
	ids := slices.Sorted(maps.Keys(model))
	for _, from := range append([]string{"", "u0", "u9"}, ids...) {
		after, err := tx.UsersAfter(from)
		if err != nil {
			rt.Fatal(err)
		}
		var got []string
		for u := range after {
			got = append(got, u.ID)
		}
		want := slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id <= from })
		if !slices.Equal(got, want) {
			rt.Fatalf("UsersAfter(%q) = %v, want %v", from, got, want)
		}
	}
}

// TestUserNameTakenIsRefused checks the store itself refuses a second user
// with a userName (case-insensitively), so its index never points two ways.
func TestUserNameTakenIsRefused(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Update(ctx, func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "u1", UserName: "ada@example.com"}) }); err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "u2", UserName: "ADA@example.com"}) })
	if !errors.Is(err, ErrUserNameTaken) {
		t.Fatalf("second user with the same userName: %v, want ErrUserNameTaken", err)
	}
	if u, _ := st.Read().UserByName("ada@EXAMPLE.com"); u == nil || u.ID != "u1" {
		t.Fatalf("UserByName after the refused write = %+v", u)
	}
	// The holder may change the case of its own name.
	if err := st.Update(ctx, func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "u1", UserName: "Ada@example.com"}) }); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Read().UserByName("ada@example.com"); u == nil || u.UserName != "Ada@example.com" {
		t.Fatalf("UserByName after a case change = %+v", u)
	}
}

// TestUsersByNameFrom checks the cursor start of the ordered walk.
func TestUsersByNameFrom(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Load(func(tx *Txn) error {
		for i := range 5 {
			if err := tx.Insert(TableUsers, &User{ID: fmt.Sprint("id", 4-i), UserName: fmt.Sprintf("User%d", i)}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	users, err := st.Read().UsersByName("USER2")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for u := range users {
		got = append(got, u.UserName)
	}
	if want := []string{"User2", "User3", "User4"}; !slices.Equal(got, want) {
		t.Fatalf("UsersByName(USER2) = %v, want %v", got, want)
	}
}

// TestUnchangedFollowsUsers checks Unchanged(TableUsers), which lets a
// write skip re-checking what it checked on an earlier snapshot: it stays
// the same until a user changes, also within a write, whose own pending
// changes count.
func TestUnchangedFollowsUsers(t *testing.T) {
	st, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.Update(ctx, func(tx *Txn) error { return tx.Insert(TableUsers, &User{ID: "u1", UserName: "ada"}) }); err != nil {
		t.Fatal(err)
	}
	checked, err := st.Read().Unchanged(TableUsers)
	if err != nil {
		t.Fatal(err)
	}
	err = st.Update(ctx, func(tx *Txn) error {
		if ch, err := tx.Unchanged(TableUsers); err != nil || ch != checked {
			return fmt.Errorf("before any user changed: %v, %v; want the snapshot's channel", ch, err)
		}
		if err := tx.Insert(TableGroups, &Group{ID: "g1", DisplayName: "staff"}); err != nil {
			return err
		}
		if ch, _ := tx.Unchanged(TableUsers); ch != checked {
			return errors.New("a group write changed the users' channel")
		}
		if err := tx.Insert(TableUsers, &User{ID: "u2", UserName: "bob"}); err != nil {
			return err
		}
		if ch, _ := tx.Unchanged(TableUsers); ch == checked {
			return errors.New("a pending user write left the users' channel as it was")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-checked:
	default:
		t.Fatal("the snapshot's channel is open after a user write committed")
	}
	if ch, _ := st.Read().Unchanged(TableUsers); ch == checked {
		t.Fatal("a later snapshot has the old channel")
	}
}
