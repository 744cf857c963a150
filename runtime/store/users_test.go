package store

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// TestUserIndexesAgainstModel runs random user writes (creates, renames,
// externalId changes, deletes; several per write, some in writes that fail)
// and checks every lookup against a plain model after each write. The
// store is first filled through Load, whose indexes are built in place.
func TestUserIndexesAgainstModel(t *testing.T) {
	names := []string{"ada", "Ada", "bob", "cy", "dee", "ed"}
	exts := []string{"", "x1", "x2", "x3"}
	ids := []string{"u1", "u2", "u3", "u4", "u5"}
	rapid.Check(t, func(rt *rapid.T) {
		st, err := New(Options{})
		if err != nil {
			rt.Fatal(err)
		}
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
					ExternalID: rapid.SampledFrom(exts).Draw(rt, "ext")})
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
		check(rt, st.Read(), model, names, exts)
		for range rapid.IntRange(1, 20).Draw(rt, "writes") {
			next := maps.Clone(model)
			ops := valid(next, draw("ops"))
			deletes := rapid.SliceOfN(rapid.SampledFrom(ids), 0, 2).Draw(rt, "deletes")
			for _, id := range deletes {
				delete(next, id)
			}
			fail := rapid.IntRange(0, 4).Draw(rt, "fail") == 0
			errFail := errors.New("fail after mutating")
			err := st.Update(context.Background(), func(tx *Txn) error {
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
			case !fail && err != nil:
				rt.Fatal(err)
			case !fail:
				model = next
			}
			check(rt, st.Read(), model, names, exts)
		}
	})
}

func check(rt *rapid.T, tx *Txn, model map[string]*User, names, exts []string) {
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
	for _, ext := range exts[1:] {
		var want []string
		for _, id := range slices.Sorted(maps.Keys(model)) {
			if model[id].ExternalID == ext {
				want = append(want, id)
			}
		}
		us, err := tx.UsersByExternalID(ext)
		if err != nil {
			rt.Fatal(err)
		}
		var got []string
		for _, u := range us {
			got = append(got, u.ID)
		}
		if !slices.Equal(got, want) {
			rt.Fatalf("UsersByExternalID(%q) = %v, want %v", ext, got, want)
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
