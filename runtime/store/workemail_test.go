package store

import (
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
