package saml

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/spec"
)

// TestLoginFloodLeavesSignInOpen: one client starting 50,000 sign-ins
// (GET /saml/login costs it nothing) must not keep anyone else from signing
// in; it used to fill a 10,000-entry table and get everyone a 503.
func TestLoginFloodLeavesSignInOpen(t *testing.T) {
	// Unsigned AuthnRequests: signing 50,000 would only time RSA.
	if raceDetector {
		// It counts requests and races nothing; with -race they are sixty
		// times slower. make test runs it again without -race.
		t.Skip("50,000 requests under -race")
	}
	e := newEnv(t, withoutSPSigning)
	for i := range 50_000 {
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, e.ts.URL+"/saml/login", nil))
		if w.Code != http.StatusFound {
			t.Fatalf("login %d: status %d", i, w.Code)
		}
	}
	irt, relay := e.login("/me")
	if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in after the flood: status %d (%s)", resp.StatusCode, e.lastResult())
	}
	if r, _ := e.get("/me"); r.StatusCode != http.StatusOK {
		t.Fatalf("/me after sign-in: %d", r.StatusCode)
	}
}

// TestPendingSignInsOfOneBrowser: a browser keeps its newest
// maxPendingPerBrowser sign-ins, each of which completes in any order (tabs),
// and its older ones are forgotten.
func TestPendingSignInsOfOneBrowser(t *testing.T) {
	e := newEnv(t)
	type started struct{ irt, relay string }
	var all []started
	for range maxPendingPerBrowser + 2 {
		irt, relay := e.login("/")
		all = append(all, started{irt, relay})
	}
	for _, s := range all[:2] {
		expectRejected(t, e, e.post(encode(t, e.good(s.irt)), s.relay), CodeUnknownRequest)
	}
	kept := all[2:]
	for i := len(kept) - 1; i >= 0; i-- { // newest first, as tabs may
		if resp := e.post(encode(t, e.good(kept[i].irt)), kept[i].relay); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in %d of %d: status %d (%s)", i, len(kept), resp.StatusCode, e.lastResult())
		}
	}
}

// TestPendingCookieIsSealed: a pending cookie that was altered, or sealed
// by another server, names no sign-in.
func TestPendingCookieIsSealed(t *testing.T) {
	tamper := map[string]func(e, other *env, v string) string{
		"altered": func(_, _ *env, v string) string {
			b := []byte(v)
			b[len(b)/2] ^= 1
			return string(b)
		},
		"truncated": func(_, _ *env, v string) string { return v[:len(v)-2] },
		"garbage":   func(_, _ *env, v string) string { return "not-a-sealed-value" },
		"another server's": func(_, other *env, _ string) string {
			other.login("/")
			return cookieOf(t, other, other.cookies().pending)
		},
	}
	for name, fn := range tamper {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, withoutSPSigning)
			other := newEnv(t, withoutSPSigning)
			irt, relay := e.login("/")
			setCookie(t, e, e.cookies().pending, fn(e, other, cookieOf(t, e, e.cookies().pending)))
			expectRejected(t, e, e.post(encode(t, e.good(irt)), relay), CodeWrongBrowser)
		})
	}
}

// TestSessionsPerUser: one user signing in over and over keeps at most
// maxSessionsPerUser sessions, their newest; nobody else is affected. The
// sign-ins are real (each a signed response through the ACS), so there are
// three times the cap of them rather than thousands; TestSessionTable takes
// 5,000 of one user through the table the ACS writes.
func TestSessionsPerUser(t *testing.T) {
	e := newEnv(t)
	var first, last string
	const n = 3 * maxSessionsPerUser
	for i := range n {
		e.client.Jar, _ = cookiejar.New(nil) // a new browser each time
		irt, relay := e.login("/")
		if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in %d: status %d (%s)", i, resp.StatusCode, e.lastResult())
		}
		e.clock.Add(time.Millisecond) // sessions of one user expire in order
		last = cookieOf(t, e, e.cookies().session)
		if i == 0 {
			first = last
		}
	}
	if got := e.sessionTable().len(); got != maxSessionsPerUser {
		t.Fatalf("%d sessions after %d sign-ins of one user, want %d", got, n, maxSessionsPerUser)
	}
	for cookie, want := range map[string]int{first: http.StatusFound, last: http.StatusOK} {
		e.client.Jar, _ = cookiejar.New(nil)
		setCookie(t, e, e.cookies().session, cookie)
		if r, _ := e.get("/me"); r.StatusCode != want {
			t.Errorf("/me with session %s…: %d, want %d", cookie[:8], r.StatusCode, want)
		}
	}

	e.client.Jar, _ = cookiejar.New(nil)
	irt, relay := e.login("/")
	dave := e.good(irt)
	dave.NameID = "dave@contoso.example"
	if resp := e.post(encode(t, dave), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("another user's sign-in: status %d (%s)", resp.StatusCode, e.lastResult())
	}
	if _, page := e.get("/me"); !strings.Contains(page, "dave@contoso.example") {
		t.Fatalf("/me does not show dave: %s", page)
	}
}

// TestSessionTable: 5,000 sessions of one user leave maxSessionsPerUser of
// them, the newest, and another user's sign-in is kept.
func TestSessionTable(t *testing.T) {
	e := newEnv(t)
	now := time.Unix(1_000_000, 0)
	for i := range 5_000 {
		if !e.sessionTable().add(fmt.Sprint("alice-", i), Session{UserName: "alice@contoso.example"}, now.Add(time.Hour+time.Duration(i)), now) {
			t.Fatalf("session %d refused", i)
		}
	}
	if !e.sessionTable().add("dave", Session{UserName: "dave@contoso.example"}, now.Add(time.Hour), now) {
		t.Fatal("another user's session refused")
	}
	if got := e.sessionTable().len(); got != maxSessionsPerUser+1 {
		t.Fatalf("%d sessions, want %d of alice and dave's", got, maxSessionsPerUser)
	}
	for id, want := range map[string]bool{"alice-0": false, "alice-4983": false, "alice-4984": true, "alice-4999": true, "dave": true} {
		if _, ok := e.sessionTable().get(id, now); ok != want {
			t.Errorf("session %s kept: %v, want %v", id, ok, want)
		}
	}
}

// TestReplayCacheForgets: a replayed assertion is refused while it could be
// presented, and its entry is dropped once it could not.
func TestReplayCacheForgets(t *testing.T) {
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	o := e.good("")
	r := encode(t, o)
	if resp := e.post(r, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use: %d (%s)", resp.StatusCode, e.lastResult())
	}
	expectRejected(t, e, e.post(r, ""), CodeReplay)
	if got := e.replayTable().len(); got != 1 {
		t.Fatalf("replay cache holds %d, want 1", got)
	}
	// Past the assertion's NotOnOrAfter and the skew, another sign-in
	// sweeps the entry out.
	e.clock.Add(2 * time.Hour)
	if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("later sign-in: %d (%s)", resp.StatusCode, e.lastResult())
	}
	if got := e.replayTable().len(); got != 1 {
		t.Fatalf("replay cache holds %d after the first assertion lapsed, want 1", got)
	}
}

// TestTTLMapNeverRefuses: a full map drops what expires soonest, a full
// group its own soonest, and expired entries go as new ones come.
func TestTTLMapNeverRefuses(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	at := func(s int) time.Time { return now.Add(time.Duration(s) * time.Second) }
	m := newTTLMap[string](3).grouped(2, func(v string) string { return v[:1] })
	for i, k := range []string{"a1", "a2", "a3"} {
		if !m.add(k, k, at(10+i), now) {
			t.Fatalf("add %s refused", k)
		}
	}
	if _, ok := m.get("a1", now); ok {
		t.Fatal("group a holds three")
	}
	m.add("b1", "b1", at(100), now)
	m.add("c1", "c1", at(5), now)
	if got := m.len(); got != 3 {
		t.Fatalf("len %d, want 3", got)
	}
	if _, ok := m.get("a2", now); ok {
		t.Fatal("the soonest-expiring entry was kept in a full map")
	}
	if m.add("b1", "b1", at(200), now) {
		t.Fatal("an unexpired entry was replaced")
	}
	m.add("d1", "d1", at(300), at(50)) // a3 and c1 have expired by then
	if got := m.len(); got != 2 {
		t.Fatalf("len %d after expiry, want 2 (b1, d1)", got)
	}
}

var withoutSPSigning = func(sp *spec.SamlServiceProvider) { sp.SPSigningCertificate = ""; sp.SignAuthnRequests = false }

func cookieOf(t *testing.T, e *env, name string) string {
	t.Helper()
	u, _ := url.Parse(e.ts.URL + "/")
	for _, c := range e.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no cookie %s", name)
	return ""
}

func setCookie(t *testing.T, e *env, name, value string) {
	t.Helper()
	u, _ := url.Parse(e.ts.URL + "/")
	e.client.Jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Path: "/"}})
}

// TestPendingCookieAcrossDaemons: two daemons configured alike (the same SP
// signing key and baseURL) open each other's pending cookies, so a sign-in
// started on one completes on the other behind a load balancer.
func TestPendingCookieAcrossDaemons(t *testing.T) {
	a, b := newEnv(t), newEnv(t)
	b.setSpec(func(sp *spec.SamlServiceProvider) { sp.BaseURL = a.ts.URL }) // both behind a's address
	irt, relay := a.login("/me")
	b.client = a.client // the same browser
	o := b.good(irt)
	o.Recipient = a.acsURL()
	if resp := b.post(encode(t, o), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("ACS on the other daemon: %d (%s)", resp.StatusCode, b.lastResult())
	}
}

// countingSessions counts the reads of a SessionStore.
type countingSessions struct {
	SessionStore
	gets atomic.Int64
}

func (c *countingSessions) Get(ctx context.Context, id string) (Session, bool, error) {
	c.gets.Add(1)
	return c.SessionStore.Get(ctx, id)
}

// TestForgedSessionCookieAsksNoStore: a session cookie no daemon of the
// store minted is refused without reading the store. With etcd every read
// of a session not cached is a quorum read, and any client can send
// cookies; a cookie minted by a daemon sharing the key is read as before.
func TestForgedSessionCookieAsksNoStore(t *testing.T) {
	e := newEnv(t)
	sessions := &countingSessions{SessionStore: e.srv.sessions}
	e.srv.sessions = sessions
	irt, relay := e.login("/")
	if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d (%s)", resp.StatusCode, e.lastResult())
	}
	good := cookieOf(t, e, e.cookies().session)
	random, tag, ok := strings.Cut(good, ".")
	if !ok || len(tag) < 4 {
		t.Fatalf("session cookie %s… carries no tag", good[:8])
	}
	other := newSessionIDs(bytes.Repeat([]byte{7}, 32)).mint()
	flip := func(s string) string {
		b := []byte(s)
		b[3] ^= 'A' ^ 'B'
		return string(b)
	}
	for name, cookie := range map[string]string{
		"unsigned, as daemons before minted them": randomToken(),
		"tag altered":         random + "." + flip(tag),
		"random part altered": flip(random) + "." + tag,
		"tag of another key":  other,
		"tag cut short":       random + "." + tag[:10],
		"tag alone":           "." + tag,
		"not base64":          strings.Repeat("*", 43) + "." + tag,
	} {
		t.Run(name, func(t *testing.T) {
			e.client.Jar, _ = cookiejar.New(nil)
			setCookie(t, e, e.cookies().session, cookie)
			before := sessions.gets.Load()
			if r, _ := e.get("/me"); r.StatusCode != http.StatusFound {
				t.Errorf("/me: %d, want %d (sign in)", r.StatusCode, http.StatusFound)
			}
			if n := sessions.gets.Load() - before; n != 0 {
				t.Errorf("the store was read %d times for a forged cookie", n)
			}
		})
	}
	e.client.Jar, _ = cookiejar.New(nil)
	setCookie(t, e, e.cookies().session, good)
	before := sessions.gets.Load()
	if r, _ := e.get("/me"); r.StatusCode != http.StatusOK {
		t.Fatalf("/me with the minted cookie: %d, want 200", r.StatusCode)
	}
	if sessions.gets.Load() == before {
		t.Fatal("the minted cookie was not read from the store")
	}
}

// TestUntaggedSessionsEndWithTheirWindow: a cookie minted before cookies
// carried a tag is read from the store until UntaggedSessionsUntil, when
// every session stored then has expired, and refused unread after it.
func TestUntaggedSessionsEndWithTheirWindow(t *testing.T) {
	e := newEnv(t)
	sessions := &countingSessions{SessionStore: e.srv.sessions}
	e.srv.sessions = sessions
	e.srv.untaggedUntil = e.clock.Now().Add(time.Hour)
	id := randomToken()
	if err := sessions.Add(context.Background(), id, Session{UserName: "alice@contoso.example", UserID: "u1", NameID: "alice@contoso.example"}, e.clock.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	setCookie(t, e, e.cookies().session, id)
	if r, _ := e.get("/me"); r.StatusCode != http.StatusOK {
		t.Fatalf("/me with an untagged session inside the window: %d, want 200", r.StatusCode)
	}
	e.clock.Add(time.Hour)
	before := sessions.gets.Load()
	if r, _ := e.get("/me"); r.StatusCode != http.StatusFound {
		t.Fatalf("/me with an untagged session after the window: %d, want %d", r.StatusCode, http.StatusFound)
	}
	if n := sessions.gets.Load() - before; n != 0 {
		t.Errorf("the store was read %d times after the window", n)
	}
}

// TestPendingCookieFitsBrowsers: browsers drop a cookie of more than 4096
// bytes, keeping the one before, so a pending cookie grown past that by
// long returnTo paths (deep links with long queries, a few tabs) loses the
// sign-in just started: its response is then refused as unknown. The
// newest sign-in always fits, and a returnTo too long to keep lands home.
func TestPendingCookieFitsBrowsers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		returnTo string
		want     string // where the last sign-in lands
	}{
		{"long deep links", "/me?q=" + strings.Repeat("a", 1000), "/me?q=" + strings.Repeat("a", 1000)},
		{"returnTo beyond any cookie", "/me?q=" + strings.Repeat("a", 8000), "/"},
		// Short enough, but six bytes a character once JSON-escaped.
		{"returnTo that grows in the cookie", "/me?q=" + strings.Repeat("<", 2000), "/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			u, _ := url.Parse(e.ts.URL + "/")
			var irt, relay string
			for range maxPendingPerBrowser {
				irt, relay = e.login(tc.returnTo)
				for _, ck := range e.client.Jar.Cookies(u) {
					if ck.Name == e.cookies().pending && len(ck.Name)+1+len(ck.Value) > 4096 {
						t.Fatalf("pending cookie of %d bytes", len(ck.Name)+1+len(ck.Value))
					}
				}
			}
			resp := e.post(encode(t, e.good(irt)), relay)
			resp.Body.Close()
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
				t.Fatalf("sign-in: %d to %q (%s), want %q", resp.StatusCode, resp.Header.Get("Location"), e.lastResult(), tc.want)
			}
		})
	}
}
