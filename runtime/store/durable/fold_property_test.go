package durable

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/idrecon/idrecon/runtime/store"
)

// foldRunes are runes whose case folding is easy to get wrong: the sigmas,
// the Kelvin sign, the long s, sharp s, the Turkic i's, a combining mark.
var foldRunes = []rune("ςσΣKkK\u212AſsSßẞİıiI\u0301eé -")

// TestNamesStayUniqueAcrossRestart writes random creates and renames of
// users and groups with tricky names through the store, then restarts: the
// state loads with nothing to repair, every object is found by its own
// name, and no two names of a kind are equal under strings.EqualFold (the
// oracle, independent of store.Fold).
func TestNamesStayUniqueAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	run := 0
	rapid.Check(t, func(rt *rapid.T) {
		run++
		path := filepath.Join(dir, fmt.Sprint(run), FileName)
		db, err := Open(path, Options{})
		if err != nil {
			rt.Fatal(err)
		}
		st, err := store.New(store.Options{Journal: db})
		if err != nil {
			rt.Fatal(err)
		}
		name := rapid.Custom(func(t *rapid.T) string {
			return string(rapid.SliceOfN(rapid.SampledFrom(foldRunes), 1, 4).Draw(t, "runes"))
		})
		users, groups := map[string]string{}, map[string]string{} // id → name
		for range rapid.IntRange(1, 30).Draw(rt, "writes") {
			isUser := rapid.Bool().Draw(rt, "user")
			id := rapid.SampledFrom([]string{"a", "b", "c", "d"}).Draw(rt, "id")
			n := name.Draw(rt, "name")
			model, obj, table, taken := groups, any(&store.Group{ID: id, DisplayName: n}), store.TableGroups, store.ErrGroupNameTaken
			if isUser {
				model, obj, table, taken = users, any(&store.User{ID: id, UserName: n}), store.TableUsers, store.ErrUserNameTaken
			}
			err := st.Update(context.Background(), func(tx *store.Txn) error { return tx.Insert(table, obj) })
			clash := heldByOther(model, id, n)
			switch {
			case err == nil && clash != "":
				rt.Fatalf("%s %s took %q, which %s holds as %q", table, id, n, clash, model[clash])
			case err != nil && (clash == "" || !errors.Is(err, taken)):
				rt.Fatalf("%s %s as %q: %v (clash with %q)", table, id, n, err, clash)
			case err == nil:
				model[id] = n
			}
		}
		st.Close()
		if err := db.Close(); err != nil {
			rt.Fatal(err)
		}

		db, err = Open(path, Options{})
		if err != nil {
			rt.Fatal(err)
		}
		defer db.Close()
		st, err = store.New(store.Options{Journal: db})
		if err != nil {
			rt.Fatal(err)
		}
		defer st.Close()
		stats, err := db.LoadInto(st)
		if err != nil || len(stats.Repairs) != 0 {
			rt.Fatalf("restart: %v, repairs %+v", err, stats.Repairs)
		}
		txn := st.Read()
		for id, n := range groups {
			if g, err := txn.GroupByName(n); err != nil || g == nil || g.ID != id {
				rt.Fatalf("GroupByName(%q) = %+v, %v; want group %s", n, g, err, id)
			}
		}
		for id, n := range users {
			if u, err := txn.UserByName(n); err != nil || u == nil || u.ID != id {
				rt.Fatalf("UserByName(%q) = %+v, %v; want user %s", n, u, err, id)
			}
		}
		for _, model := range []map[string]string{users, groups} {
			for id, n := range model {
				if other := heldByOther(model, id, n); other != "" {
					rt.Fatalf("%s and %s hold %q and %q", id, other, n, model[other])
				}
			}
		}
	})
}

// heldByOther returns the id, other than id, whose name in model is name
// under strings.EqualFold, or "".
func heldByOther(model map[string]string, id, name string) string {
	for other, n := range model {
		if other != id && strings.EqualFold(n, name) {
			return other
		}
	}
	return ""
}
