package store

import (
	"context"
	"errors"
	"testing"
)

// TestGroupNamesFoldUnique: the store refuses a group whose displayName
// folds equal to another group's, whatever the writer checked; memdb's
// unique index would take the entry over and hide the other group.
func TestGroupNamesFoldUnique(t *testing.T) {
	tests := []struct{ taken, variant string }{
		{"Team σ", "TEAM ς"},
		{"sam", "ſam"},
		{"kate", "\u212Aate"},
		{"Developers", "developers"},
	}
	for _, tt := range tests {
		t.Run(tt.variant, func(t *testing.T) {
			s := newStore(t, Options{})
			ctx := context.Background()
			write := func(g *Group) error {
				return s.Update(ctx, func(tx *Txn) error { return tx.Insert(TableGroups, g) })
			}
			if err := write(&Group{ID: "a", DisplayName: tt.taken}); err != nil {
				t.Fatal(err)
			}
			if err := write(&Group{ID: "b", DisplayName: "other"}); err != nil {
				t.Fatal(err)
			}
			if err := write(&Group{ID: "c", DisplayName: tt.variant}); !errors.Is(err, ErrGroupNameTaken) {
				t.Errorf("create %q beside %q: %v, want ErrGroupNameTaken", tt.variant, tt.taken, err)
			}
			if err := write(&Group{ID: "b", DisplayName: tt.variant}); !errors.Is(err, ErrGroupNameTaken) {
				t.Errorf("rename onto %q beside %q: %v, want ErrGroupNameTaken", tt.variant, tt.taken, err)
			}
			// A group may change the case of its own name.
			if err := write(&Group{ID: "a", DisplayName: tt.variant}); err != nil {
				t.Errorf("rename %q to %q: %v", tt.taken, tt.variant, err)
			}
			for name, id := range map[string]string{tt.taken: "a", tt.variant: "a", "OTHER": "b"} {
				g, err := s.Read().GroupByName(name)
				if err != nil || g == nil || g.ID != id {
					t.Errorf("GroupByName(%q) = %+v, %v; want group %s", name, g, err, id)
				}
			}
		})
	}
}

// TestUserNamesFoldUnique is TestGroupNamesFoldUnique for userNames, whose
// index the store keeps itself.
func TestUserNamesFoldUnique(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	write := func(u *User) error {
		return s.Update(ctx, func(tx *Txn) error { return tx.Insert(TableUsers, u) })
	}
	if err := write(&User{ID: "a", UserName: "σam@contoso.com"}); err != nil {
		t.Fatal(err)
	}
	if err := write(&User{ID: "b", UserName: "ΣAM@CONTOSO.COM"}); !errors.Is(err, ErrUserNameTaken) {
		t.Errorf("create a case variant: %v, want ErrUserNameTaken", err)
	}
	if err := write(&User{ID: "b", UserName: "ςam@contoso.com"}); !errors.Is(err, ErrUserNameTaken) {
		t.Errorf("create a fold variant: %v, want ErrUserNameTaken", err)
	}
	for _, name := range []string{"σam@contoso.com", "ςAM@contoso.com", "ΣAM@CONTOSO.COM"} {
		u, err := s.Read().UserByName(name)
		if err != nil || u == nil || u.ID != "a" {
			t.Errorf("UserByName(%q) = %+v, %v; want user a", name, u, err)
		}
	}
}
