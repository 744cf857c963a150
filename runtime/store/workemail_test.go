package store

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
)

// TestWorkEmailsRoundTrip: WorkEmails yields what JoinWorkEmails joined,
// without the empty addresses, and a single address is kept as it is.
func TestWorkEmailsRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name   string
		emails []string
		want   []string
		plain  bool // WorkEmail is the address itself
	}{
		{name: "none", emails: nil, plain: true},
		{name: "empty", emails: []string{"", ""}, plain: true},
		{name: "one", emails: []string{"ann@contoso.com"}, want: []string{"ann@contoso.com"}, plain: true},
		{name: "one among empties", emails: []string{"", "ann@contoso.com", ""}, want: []string{"ann@contoso.com"}, plain: true},
		{name: "two", emails: []string{"ann@contoso.com", "a@fabrikam.com"}, want: []string{"ann@contoso.com", "a@fabrikam.com"}},
		{name: "one twice", emails: []string{"a@x", "A@x", "a@x"}, want: []string{"a@x", "A@x", "a@x"}},
		{name: "one that looks like a list", emails: []string{"\x00\x01a"}, want: []string{"\x00\x01a"}},
		{name: "NULs and a long one", emails: []string{"\x00", string(make([]byte, 300)) + "@x"}, want: []string{"\x00", string(make([]byte, 300)) + "@x"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := &User{WorkEmail: JoinWorkEmails(tt.emails...)}
			if got := slices.Collect(u.WorkEmails()); !slices.Equal(got, tt.want) {
				t.Errorf("WorkEmails = %q, want %q", got, tt.want)
			}
			if plain := len(tt.want) == 0 && u.WorkEmail == "" || len(tt.want) == 1 && u.WorkEmail == tt.want[0]; plain != tt.plain {
				t.Errorf("WorkEmail %q: plain %v, want %v", u.WorkEmail, plain, tt.plain)
			}
		})
	}
	// What JoinWorkEmails never makes is read as one address after the
	// marker, not past its end.
	u := &User{WorkEmail: workEmailList + "\x05ab"}
	if got := slices.Collect(u.WorkEmails()); !slices.Equal(got, []string{"\x05ab"}) {
		t.Errorf("a damaged list yields %q", got)
	}
}

// TestWorkEmailKeys: a user's keys in the work email index are its folded
// work emails, each once, but for its userName.
func TestWorkEmailKeys(t *testing.T) {
	for _, tt := range []struct {
		user     string
		emails   []string
		want     []string
		hasEmail []string
	}{
		{"ann@contoso.com", []string{"ann@contoso.com"}, nil, []string{"ANN@contoso.com"}},
		{"ann@contoso.com", []string{"a@x"}, []string{"a@x"}, []string{"A@X"}},
		{"ann@contoso.com", []string{"b@x", "ANN@contoso.com", "a@x", "A@x"}, []string{"a@x", "b@x"}, []string{"a@x", "b@x", "ann@contoso.com"}},
	} {
		u := &User{UserName: tt.user, WorkEmail: JoinWorkEmails(tt.emails...)}
		var buf [1]string
		if got := workEmailKeys(u, buf[:]); !slices.Equal(got, tt.want) {
			t.Errorf("%v: keys %q, want %q", tt.emails, got, tt.want)
		}
		for _, e := range tt.hasEmail {
			if !hasWorkEmail(u, Fold(e)) {
				t.Errorf("%v: hasWorkEmail(%q) false", tt.emails, e)
			}
		}
		if hasWorkEmail(u, Fold("nobody@x")) {
			t.Errorf("%v: hasWorkEmail(nobody) true", tt.emails)
		}
	}
}

// TestWorkEmailsOfOlderRecords: an idrecon older than the work email list
// kept a user's first work email alone in WorkEmail, and its state file,
// etcd state and writes a mirror applies still hold such users. Every work
// email of theirs, in their stored attributes, must find them as soon as they
// are in the store, not only once they are written again; and when written
// again, the addresses they lose must stop finding them.
func TestWorkEmailsOfOlderRecords(t *testing.T) {
	// older is ann as an older idrecon stored her: the attributes hold her
	// work emails, WorkEmail the first (an empty value was taken too).
	older := func(emails string) *User {
		return &User{ID: "u1", UserName: "ann@contoso.com", WorkEmail: "a@contoso.com", Active: true,
			Attributes: json.RawMessage(`{"emails":[` + emails + `],"userName":"ann@contoso.com"}`)}
	}
	const several = `{"primary":true,"type":"work","value":"a@contoso.com"},{"type":"home","value":"h@x"},{"type":"Work","value":"b@fabrikam.com"},{"type":"work","value":"ann@contoso.com"}`
	ins := func(tx *Txn, u *User) error { return tx.Insert(TableUsers, u) }
	for _, tt := range []struct {
		name string
		put  func(*Store, *User) error
	}{
		{"loaded by LoadUser (state file, backup)", func(st *Store, u *User) error {
			return st.Load(func(tx *Txn) error { return tx.LoadUser(u) })
		}},
		{"loaded by Insert (snapshot, etcd)", func(st *Store, u *User) error {
			return st.Load(func(tx *Txn) error { return ins(tx, u) })
		}},
		{"written (a mirror applying an older daemon's write)", func(st *Store, u *User) error {
			return st.Update(context.Background(), func(tx *Txn) error { return ins(tx, u) })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newStore(t, Options{})
			if err := tt.put(st, older(several)); err != nil {
				t.Fatal(err)
			}
			finds := func(email string) bool {
				t.Helper()
				us, err := st.Read().UsersByWorkEmail(email)
				if err != nil {
					t.Fatal(err)
				}
				return len(us) == 1 && us[0].ID == "u1"
			}
			for _, e := range []string{"a@contoso.com", "B@fabrikam.com", "ann@contoso.com"} {
				if !finds(e) {
					t.Errorf("work email %s does not find the user", e)
				}
			}
			if finds("h@x") {
				t.Error("a home email finds the user")
			}
			// Written again with one work email: the others let go.
			u := older(`{"type":"work","value":"a@contoso.com"}`)
			if err := st.Update(context.Background(), func(tx *Txn) error { return ins(tx, u) }); err != nil {
				t.Fatal(err)
			}
			if finds("b@fabrikam.com") || !finds("a@contoso.com") {
				t.Error("after the rewrite, the work emails found are not the user's")
			}
		})
	}
}
