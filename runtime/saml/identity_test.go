package saml

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testclock"
	"github.com/idrecon/idrecon/runtime/store"
)

// sessionCheck is one of the ways a session is resolved to a user and
// checked: the SP's own pages, the front door and console hand-off
// (SessionUser), and Session. Each reports whether the browser is still
// signed in, as whom.
type sessionCheck struct {
	name  string
	check func(e *env) (user string, signedIn bool)
}

var sessionChecks = []sessionCheck{
	{"home page", func(e *env) (string, bool) {
		e.t.Helper()
		r, _ := e.get("/")
		switch r.StatusCode {
		case http.StatusOK:
			return "(page)", true
		case http.StatusFound, http.StatusForbidden:
			return "", false
		}
		e.t.Fatalf("/ status %d", r.StatusCode)
		return "", false
	}},
	{"SessionUser (front door, console hand-off)", func(e *env) (string, bool) {
		e.t.Helper()
		return e.srv.SessionUser(e.cookieRequest())
	}},
	{"Session", func(e *env) (string, bool) {
		e.t.Helper()
		d, ok := e.srv.Session(e.cookieRequest())
		return d.UserName, ok
	}},
}

// cookieRequest is a request to the SP carrying the browser's cookies, for
// the checks that are methods rather than pages.
func (e *env) cookieRequest() *http.Request {
	e.t.Helper()
	u, err := url.Parse(e.ts.URL + "/")
	if err != nil {
		e.t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, u.String(), nil)
	for _, c := range e.client.Jar.Cookies(u) {
		r.AddCookie(c)
	}
	return r
}

// deleteUser deletes the user with id over the store, as a SCIM DELETE does.
func deleteUser(id string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if err := tx.DeleteMemberships(id, time.Time{}); err != nil {
			return err
		}
		_, err := tx.DeleteAll(store.TableUsers, store.IndexID, id)
		return err
	}
}

// createUser provisions a user, as a SCIM POST does.
func createUser(u store.User) func(*store.Txn) error {
	return func(tx *store.Txn) error { return tx.Insert(store.TableUsers, &u) }
}

func steps(fns ...func(*store.Txn) error) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		for _, f := range fns {
			if err := f(tx); err != nil {
				return err
			}
		}
		return nil
	}
}

// identityChanges are SCIM changes to alice (id u1, signed in) that leave
// a user named alice@contoso.example with access; reused says whether
// that user is another one than the session was issued to.
var identityChanges = []struct {
	name   string
	change func(*store.Txn) error
	reused bool
}{
	{"deleted and created again with the same userName", steps(
		deleteUser("u1"),
		createUser(store.User{ID: "u9", UserName: "alice@contoso.example", Active: true}),
	), true},
	{"userName reused after a rename (Entra UPN reuse)", steps(
		createUser(store.User{ID: "u1", UserName: "alice.left@contoso.example", Active: false}),
		createUser(store.User{ID: "u9", UserName: "Alice@Contoso.example", Active: true}),
	), true},
	{"deleted, created again, then the name held by a third user", steps(
		deleteUser("u1"),
		createUser(store.User{ID: "u9", UserName: "alice@contoso.example", Active: true}),
		deleteUser("u9"),
		createUser(store.User{ID: "u10", UserName: "alice@contoso.example", Active: true}),
	), true},
	{"updated in place (same id)", createUser(store.User{ID: "u1", UserName: "alice@contoso.example", ExternalID: "alice-2", Active: true}), false},
	{"userName case changed (same id)", createUser(store.User{ID: "u1", UserName: "ALICE@contoso.example", Active: true}), false},
}

// TestSessionFollowsTheUserNotTheName: a session is the user's it was
// issued to (their SCIM id), not whoever holds the userName later. When
// alice is deleted and a new SCIM user is created with her userName before
// her session's next request, every check of the session refuses it, and
// it stays ended; a change to the same user keeps it.
func TestSessionFollowsTheUserNotTheName(t *testing.T) {
	for _, ch := range identityChanges {
		t.Run(ch.name, func(t *testing.T) {
			t.Parallel()
			for _, check := range sessionChecks {
				t.Run(check.name, func(t *testing.T) {
					t.Parallel()
					e := newEnv(t)
					e.signIn()
					if _, ok := check.check(e); !ok {
						t.Fatal("not signed in right after sign-in")
					}
					e.update(ch.change)
					user, ok := check.check(e)
					if ch.reused && ok {
						t.Fatalf("the session of the deleted user carries on as the new user with that name (signed in as %q)", user)
					}
					if !ch.reused && !ok {
						t.Fatal("the session ended though its user only changed")
					}
					if ch.reused {
						// Ended, not refused once: no later check, of any
						// kind, finds it.
						for _, again := range sessionChecks {
							if user, ok := again.check(e); ok {
								t.Fatalf("after the refusal, %s still finds the session (as %q)", again.name, user)
							}
						}
					}
				})
			}
		})
	}
}

// TestUnboundSessionBindsOnFirstCheck: a session stored without the user's
// id (by a daemon that predates it; see Server.liveSession) keeps working,
// and is bound to the user who holds its userName when it is first
// checked, so a later delete and re-create ends it.
func TestUnboundSessionBindsOnFirstCheck(t *testing.T) {
	for _, check := range sessionChecks {
		t.Run(check.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.unboundSession("alice@contoso.example")
			if _, ok := check.check(e); !ok {
				t.Fatal("a session stored without the user's id no longer works")
			}
			e.update(identityChanges[0].change)
			if user, ok := check.check(e); ok {
				t.Fatalf("the unbound session carries on as the new user (as %q)", user)
			}
		})
	}
}

// TestUnboundSessionOfAGoneUser: an unbound session whose userName no user
// holds when it is first checked cannot be bound to its user: it ends, and
// a user created later with that name does not inherit it.
func TestUnboundSessionOfAGoneUser(t *testing.T) {
	for _, first := range sessionChecks {
		t.Run(first.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.unboundSession("alice@contoso.example")
			e.update(deleteUser("u1"))
			if user, ok := first.check(e); ok {
				t.Fatalf("the session of a gone user is signed in (as %q)", user)
			}
			e.update(createUser(store.User{ID: "u9", UserName: "alice@contoso.example", Active: true}))
			for _, check := range sessionChecks {
				if user, ok := check.check(e); ok {
					t.Fatalf("%s: the new alice inherited the unbound session of the deleted one (as %q)", check.name, user)
				}
			}
		})
	}
}

// TestMemSessionsBind: the in-process store binds an unbound session once,
// keeps a bound one's user, and binds no session that is gone.
func TestMemSessionsBind(t *testing.T) {
	c := testclock.New(time.Unix(1_800_000_000, 0))
	tests := []struct {
		name   string
		stored *Session // nil: none
		expiry time.Duration
		wantOK bool
		wantID string
	}{
		{"unbound", &Session{UserName: "ann"}, time.Hour, true, "new"},
		{"bound", &Session{UserName: "ann", UserID: "first"}, time.Hour, true, "first"},
		{"expired", &Session{UserName: "ann"}, -time.Second, false, ""},
		{"missing", nil, 0, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemSessions(c.Now)
			if tc.stored != nil {
				m.m.add("id", *tc.stored, c.Now().Add(tc.expiry), c.Now().Add(tc.expiry-time.Minute))
			}
			se, ok, err := m.Bind(t.Context(), "id", "new")
			if err != nil || ok != tc.wantOK || se.UserID != tc.wantID {
				t.Fatalf("Bind = %+v, %v, %v; want ok %v, UserID %q", se, ok, err, tc.wantOK, tc.wantID)
			}
			if got, ok, _ := m.Get(t.Context(), "id"); ok && got.UserID != tc.wantID {
				t.Fatalf("stored after Bind: %+v, want UserID %q", got, tc.wantID)
			}
		})
	}
}

// unboundSession stores a session for userName as a daemon that predates
// the session's user id did, and gives the browser its cookie.
func (e *env) unboundSession(userName string) {
	e.t.Helper()
	id := e.srv.sessionIDs.mint()
	err := e.srv.sessions.Add(context.Background(), id, Session{UserName: userName, NameID: userName}, e.clock.Now().Add(time.Hour))
	if err != nil {
		e.t.Fatal(err)
	}
	u, err := url.Parse(e.ts.URL + "/")
	if err != nil {
		e.t.Fatal(err)
	}
	e.client.Jar.SetCookies(u, []*http.Cookie{{Name: e.cookies().session, Value: id, Path: "/"}})
}
