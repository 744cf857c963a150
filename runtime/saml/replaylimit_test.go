package saml

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/spec"
)

// fillReplay records n messages of user in e's replay cache, under the
// keys key makes of their IDs, the first expiring at soonest and the
// others at later, as sign-ins (or logouts) would have.
func (e *env) fillReplay(user string, key func(issuer, id string) string, n int, soonest, later time.Time) {
	e.t.Helper()
	for i := range n {
		exp := later
		if i == 0 {
			exp = soonest
		}
		first, err := e.srv.replay.FirstUse(context.Background(), user, key("filler", fmt.Sprintf("%s-%d", user, i)), exp)
		if !first || err != nil {
			e.t.Fatalf("filler record %d of %s: %v, %v", i, user, first, err)
		}
	}
}

// expectTooMany expects the refusal of a user past MaxSignInsPerUser: 429,
// Retry-After saying when their soonest record lapses.
func expectTooMany(t *testing.T, e *env, resp *http.Response, page string, until time.Time) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests || e.lastResult() != CodeTooManySignIns {
		t.Fatalf("status %d result %q, want 429 %q: %s", resp.StatusCode, e.lastResult(), CodeTooManySignIns, page)
	}
	want := strconv.Itoa(int(until.Sub(e.clock.Now()) / time.Second))
	if got := resp.Header.Get("Retry-After"); got != want {
		t.Errorf("Retry-After %q, want %q (when the soonest record lapses)", got, want)
	}
}

// TestSignInsPerUser: a user holding MaxSignInsPerUser records in the
// replay cache (an account signing in over and over, each time with a
// fresh assertion) is refused, told when to try again, and leaves no
// record or session behind; another user signs in meanwhile; once the
// soonest record lapses the user signs in again. The user is told apart as
// sessions are (store.Fold of the name the SP finds users by). The records
// but the last are made directly, as TestSessionTable makes its sessions.
func TestSignInsPerUser(t *testing.T) {
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	now := e.clock.Now()
	soonest := now.Add(30 * time.Minute)
	e.fillReplay("Alice@Contoso.example", assertionReplayKey, MaxSignInsPerUser-1, soonest, now.Add(3*time.Hour))

	if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in within the bound: %d (%s)", resp.StatusCode, e.lastResult())
	}
	if got := e.replayTable().len(); got != MaxSignInsPerUser {
		t.Fatalf("replay cache holds %d, want %d", got, MaxSignInsPerUser)
	}
	sessions := e.sessionTable().len()

	e.client.Jar, _ = cookiejar.New(nil)
	refused := encode(t, e.good(""))
	resp := e.post(refused, "")
	page := body(t, resp)
	expectTooMany(t, e, resp, page, soonest)
	if !strings.Contains(page, "Too many sign-ins") {
		t.Errorf("the refusal's page does not say why: %s", page)
	}
	if got := e.replayTable().len(); got != MaxSignInsPerUser {
		t.Errorf("replay cache holds %d after the refusal, want %d: the refused assertion was recorded", got, MaxSignInsPerUser)
	}
	if got := e.sessionTable().len(); got != sessions {
		t.Errorf("%d sessions after the refusal, want %d", got, sessions)
	}

	// Another user signs in.
	dave := e.good("")
	dave.NameID = "dave@contoso.example"
	if resp := e.post(encode(t, dave), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another user's sign-in: %d (%s)", resp.StatusCode, e.lastResult())
	}

	// Just before the soonest record lapses, still refused; then the user
	// signs in again, once.
	e.clock.Add(soonest.Sub(e.clock.Now()) - time.Second)
	resp = e.post(encode(t, e.good("")), "")
	expectTooMany(t, e, resp, body(t, resp), soonest)
	e.clock.Add(time.Second)
	if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in once the soonest record lapsed: %d (%s)", resp.StatusCode, e.lastResult())
	}
	resp = e.post(encode(t, e.good("")), "")
	body(t, resp)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a second sign-in with one record lapsed: %d (%s), want 429", resp.StatusCode, e.lastResult())
	}
}

// TestLogoutRequestsPerUser: the IdP's LogoutRequests naming one user are
// bounded the same way, and apart from the user's sign-ins: past the bound
// a LogoutRequest is refused (429, nothing ended) while the user's
// sign-ins go on, and once the soonest record lapses it is obeyed.
func TestLogoutRequestsPerUser(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	now := e.clock.Now()
	soonest := now.Add(time.Minute)
	e.fillReplay(logoutRequestReplayUser("ALICE@contoso.example"), logoutRequestReplayKey, MaxSignInsPerUser, soonest, now.Add(5*time.Minute))
	r, page := e.get("/saml/slo?" + e.idpLogoutQuery(nil))
	expectTooMany(t, e, r, page, soonest)
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("a refused LogoutRequest ended the session")
	}
	e.client.Jar, _ = cookiejar.New(nil)
	e.signIn()
	e.clock.Add(time.Minute)
	r, page = e.get("/saml/slo?" + e.idpLogoutQuery(nil))
	e.expectLogout(r, page, "")
}

// TestSignInsFullLogoutRequestObeyed: a user whose sign-ins fill their
// bound is still logged out by the IdP; the two kinds of record are
// counted apart, or one account looping sign-ins could keep its sessions
// past every IdP logout.
func TestSignInsFullLogoutRequestObeyed(t *testing.T) {
	e := newEnv(t)
	e.signIn()
	now := e.clock.Now()
	e.fillReplay("ALICE@contoso.example", assertionReplayKey, MaxSignInsPerUser-1, now.Add(time.Hour), now.Add(time.Hour))
	if _, err := e.srv.replay.FirstUse(context.Background(), "alice@contoso.example", "over", now.Add(time.Hour)); !errors.As(err, new(*TooManyError)) {
		t.Fatalf("the user's sign-ins are not at their bound: %v", err)
	}
	r, page := e.get("/saml/slo?" + e.idpLogoutQuery(nil))
	e.expectLogout(r, page, "")
}
