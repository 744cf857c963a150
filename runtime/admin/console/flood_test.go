package console

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// handoffHarness drives one console's sign-in in process, with the SAML
// user taken from a header, so a test can sign in thousands of times.
type handoffHarness struct {
	con     *Server
	handoff http.Handler
	host    string
}

const samlUserHeader = "X-Test-Saml-User"

func newHandoffHarness(t *testing.T, e *env) *handoffHarness {
	t.Helper()
	const host = "console.test:9090"
	con, err := New(Config{Store: e.st, Reconciler: e.rec, Status: e.con.cfg.Status,
		SAMLUser: func(r *http.Request) (string, string, bool) {
			u := r.Header.Get(samlUserHeader)
			return u, "session-of-" + u, u != ""
		},
		URL: "http://" + host + Path, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &handoffHarness{con: con, handoff: con.Handoff(), host: host}
}

// start opens the console without a session and follows the hand-off as
// user; it returns the browser's state cookie and the code minted for it.
func (h *handoffHarness) start(t *testing.T, user string) (state, code string) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+h.host+Path, nil)
	rec := httptest.NewRecorder()
	h.con.ServeHTTP(rec, req)
	ck := cookieNamed(rec.Result(), h.con.stateName)
	if rec.Code != http.StatusSeeOther || ck == nil {
		t.Fatalf("sign-in start: %d, state cookie %v", rec.Code, ck)
	}
	req = httptest.NewRequest("GET", "http://main.test"+HandoffPath+"?state="+url.QueryEscape(ck.Value), nil)
	req.Header.Set(samlUserHeader, user)
	rec = httptest.NewRecorder()
	h.handoff.ServeHTTP(rec, req)
	loc, err := url.Parse(rec.Header().Get("Location"))
	if rec.Code != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("hand-off of %s: %d %q", user, rec.Code, rec.Header().Get("Location"))
	}
	return ck.Value, loc.Query().Get("code")
}

// redeem exchanges code with the state cookie; it returns the status and
// the session cookie (nil unless one was set).
func (h *handoffHarness) redeem(t *testing.T, state, code string) (int, *http.Cookie) {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+h.host+Path+"auth?code="+url.QueryEscape(code), nil)
	req.AddCookie(&http.Cookie{Name: h.con.stateName, Value: state})
	rec := httptest.NewRecorder()
	h.con.ServeHTTP(rec, req)
	return rec.Code, cookieNamed(rec.Result(), h.con.sessionName)
}

// signIn signs user in and returns the session cookie.
func (h *handoffHarness) signIn(t *testing.T, user string) *http.Cookie {
	t.Helper()
	state, code := h.start(t, user)
	status, ck := h.redeem(t, state, code)
	if status != http.StatusOK || ck == nil {
		t.Fatalf("sign-in of %s: %d, session cookie %v", user, status, ck)
	}
	return ck
}

// open returns the status of the overview with session ck.
func (h *handoffHarness) open(t *testing.T, ck *http.Cookie) int {
	t.Helper()
	req := httptest.NewRequest("GET", "http://"+h.host+Path, nil)
	req.AddCookie(ck)
	rec := httptest.NewRecorder()
	h.con.ServeHTTP(rec, req)
	return rec.Code
}

// TestOneUserCannotCrowdOutOthers: codes and sessions are kept in tables
// shared by every console user. One user holding the console role who
// signs in over and over (a script with their SAML cookie) must not push
// another user's pending code or session out of them: no client can deny
// service to others by filling a shared table.
func TestOneUserCannotCrowdOutOthers(t *testing.T) {
	e := newEnv(t, consoleRole)
	e.write(t, "assignments-more.yaml", doc("AccessAssignment", "second-admin", "  subject: {user: dave@contoso.example}\n  roles: [Administrator]\n"))
	e.reconcile(t)
	e.user(t, "dave@contoso.example", true)
	const flooder, victim = "alice@contoso.example", "dave@contoso.example"

	tests := []struct {
		name string
		// victim is what the victim holds before the flood; check after it.
		victim func(t *testing.T, h *handoffHarness) func(t *testing.T)
		flood  func(t *testing.T, h *handoffHarness)
	}{
		{"pending code", func(t *testing.T, h *handoffHarness) func(t *testing.T) {
			state, code := h.start(t, victim)
			return func(t *testing.T) {
				if status, ck := h.redeem(t, state, code); status != http.StatusOK || ck == nil {
					t.Errorf("%s's code after %s minted %d: %d, want a session", victim, flooder, maxCodes, status)
				}
			}
		}, func(t *testing.T, h *handoffHarness) {
			for range maxCodes {
				h.start(t, flooder)
			}
		}},
		{"session", func(t *testing.T, h *handoffHarness) func(t *testing.T) {
			ck := h.signIn(t, victim)
			return func(t *testing.T) {
				if status := h.open(t, ck); status != http.StatusOK {
					t.Errorf("%s's session after %s signed in %d times: %d, want 200", victim, flooder, maxSessions, status)
				}
			}
		}, func(t *testing.T, h *handoffHarness) {
			var last *http.Cookie
			for range maxSessions {
				last = h.signIn(t, flooder)
			}
			if status := h.open(t, last); status != http.StatusOK {
				t.Errorf("%s's newest session: %d, want 200", flooder, status)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHandoffHarness(t, e)
			check := tt.victim(t, h)
			tt.flood(t, h)
			check(t)
		})
	}
}
