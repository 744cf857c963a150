package samletcd_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const ann = "ann@contoso.com"

// identityStore is the runtime store the daemons of these tests share (as
// daemons on one etcd cluster see the same SCIM users): the SAML
// configuration, IdP-initiated sign-in allowed, and ann (id u1) with a
// role.
func identityStore(t *testing.T, idpKey *testidp.Key) *store.Store {
	t.Helper()
	md, err := testidp.Metadata(testidp.MetadataOptions{Tenant: sloTenant, Keys: []*testidp.Key{idpKey}, SignWith: idpKey})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := md.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	c := idpKey.Cert
	update(t, db, func(tx *store.Txn) error {
		for _, r := range []*store.Resource{
			{Kind: spec.KindCertificate, Name: "entra", Spec: &spec.Certificate{Usage: spec.UsageSamlIDPSigning, DER: c.Raw, Subject: c.Subject.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter}},
			{Kind: spec.KindSamlServiceProvider, Name: "sso", Spec: &spec.SamlServiceProvider{
				Enabled:           true,
				EntityID:          sloBaseURL + "/saml",
				BaseURL:           sloBaseURL,
				AllowIDPInitiated: true,
				IDP:               spec.SamlIDP{MetadataXML: raw, SigningCertificates: []string{"entra"}},
			}},
			{Kind: spec.KindRole, Name: "Developer", Spec: &spec.Role{}},
			{Kind: spec.KindAccessAssignment, Name: "ann", Spec: &spec.AccessAssignment{Subject: spec.Subject{User: ann}, Roles: []string{"Developer"}}},
		} {
			if err := tx.Insert(store.TableResources, r); err != nil {
				return err
			}
		}
		return tx.Insert(store.TableUsers, &store.User{ID: "u1", UserName: ann, Active: true})
	})
	return db
}

func update(t *testing.T, db *store.Store, fn func(*store.Txn) error) {
	t.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// recreateAnn deletes ann over SCIM and provisions a new user with her
// userName, as Entra does when a UPN is reused.
func recreateAnn(tx *store.Txn) error {
	if _, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u1"); err != nil {
		return err
	}
	return tx.Insert(store.TableUsers, &store.User{ID: "u9", UserName: ann, Active: true})
}

// spDaemon is one daemon's SAML SP on the shared store db, its sessions in
// st's etcd; observe, if not nil, hears the outcome of every SAML message.
func spDaemon(t *testing.T, st *samletcd.Store, db *store.Store, now func() time.Time, observe func(string)) *httptest.Server {
	t.Helper()
	// As the daemon does at start.
	key, err := st.PendingKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	untagged, err := st.UntaggedSessionsUntil(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := saml.NewServer(db, saml.Options{
		Logger:                slog.New(slog.DiscardHandler),
		Sessions:              st,
		Replay:                st,
		Logouts:               st,
		PendingKey:            key,
		UntaggedSessionsUntil: untagged,
		Now:                   now,
		Authorizer:            saml.AccessAuthorizer{Store: db},
		Observer:              observe,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts
}

// postAssertion posts an IdP-initiated, signed assertion for ann, issued
// at issued, to the daemon and returns the answer and its body.
func postAssertion(t *testing.T, ts *httptest.Server, idpKey *testidp.Key, issued time.Time) (*http.Response, []byte) {
	t.Helper()
	doc, err := testidp.Response(testidp.ResponseOptions{
		Now: issued, Tenant: sloTenant, Recipient: sloBaseURL + "/saml/acs", Audiences: []string{sloBaseURL + "/saml"},
		NameID: ann, Key: idpKey, SignAssertion: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := testidp.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := noRedirects.PostForm(ts.URL+"/saml/acs", url.Values{"SAMLResponse": {enc}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// signInAt posts an IdP-initiated, signed assertion for ann to the daemon
// and returns the session cookie's value.
func signInAt(t *testing.T, ts *httptest.Server, idpKey *testidp.Key, now time.Time) string {
	t.Helper()
	resp, b := postAssertion(t, ts, idpKey, now)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: status %d: %s", resp.StatusCode, b)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "idrecon_session" && c.Value != "" {
			return c.Value
		}
	}
	t.Fatal("sign-in set no session cookie")
	return ""
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signedIn asks the daemon for the signed-in page with the session cookie:
// true on the page, false on a redirect to sign in or a refusal.
func signedIn(t *testing.T, ts *httptest.Server, session string) bool {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: "idrecon_session", Value: session})
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return true
	case http.StatusFound, http.StatusForbidden:
		return false
	}
	t.Fatalf("/me: status %d", resp.StatusCode)
	return false
}

func sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "/t/saml/session/" + hex.EncodeToString(sum[:])
}

// storedRecord reads a session's record straight from etcd.
func storedRecord(t *testing.T, cli *clientv3.Client, id string) map[string]any {
	t.Helper()
	resp, err := cli.Get(context.Background(), sessionKey(id))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(resp.Kvs[0].Value, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// fixedClock returns a time the test's daemons all see as now, a clock
// that tells it, and an IdP key valid around it.
func fixedClock(t *testing.T) (time.Time, func() time.Time, *testidp.Key) {
	t.Helper()
	now := time.Now().Truncate(time.Second)
	key, err := testidp.NewKey(now.Add(-time.Hour), now.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return now, func() time.Time { return now }, key
}

// TestSessionFollowsTheUserAcrossDaemons: a session made on one daemon
// records the SCIM id of its user in etcd; once that user is deleted and a
// new one created with the same userName, every daemon refuses it, the one
// that made it and one that only read it.
func TestSessionFollowsTheUserAcrossDaemons(t *testing.T) {
	now, clock, idpKey := fixedClock(t)
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	db := identityStore(t, idpKey)
	a := spDaemon(t, daemonStore(t, c.Client(t), 5*time.Second), db, clock, nil)
	b := spDaemon(t, daemonStore(t, c.Client(t), 5*time.Second), db, clock, nil)

	session := signInAt(t, a, idpKey, now)
	for name, d := range map[string]*httptest.Server{"the daemon that made it": a, "another": b} {
		if !signedIn(t, d, session) {
			t.Fatalf("%s: not signed in after sign-in", name)
		}
	}
	if rec := storedRecord(t, cli, session); rec["id"] != "u1" {
		t.Errorf("the etcd record %v does not name the user's SCIM id u1", rec)
	}
	update(t, db, recreateAnn)
	for name, d := range map[string]*httptest.Server{"another": b, "the daemon that made it": a} {
		if signedIn(t, d, session) {
			t.Fatalf("%s: the session of the deleted ann carries on as the new one", name)
		}
	}
	if rec := storedRecord(t, cli, session); rec != nil {
		t.Errorf("the refused session is still in etcd: %v", rec)
	}
}

// TestSessionStoredByAnOlderDaemon: a session record without the user's id
// (written before the id was recorded) keeps working on every daemon; the
// first check binds it to the user holding its userName then, in etcd, so
// it ends on every daemon, even one that cached the record unbound, once
// that user is deleted and another created with the name.
func TestSessionStoredByAnOlderDaemon(t *testing.T) {
	now, clock, idpKey := fixedClock(t)
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	db := identityStore(t, idpKey)

	// What an older daemon wrote before this release started: no "id",
	// and a cookie without a tag.
	const session = "older-daemon-session-0123456789abcdef-01234"
	lease, err := cli.Grant(context.Background(), 3600)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{"u":%q,"n":%q,"i":"_idx","e":%d}`, ann, ann, now.Add(time.Hour).Unix())
	if _, err := cli.Put(context.Background(), sessionKey(session), old, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	stA, stB := daemonStore(t, c.Client(t), 5*time.Second), daemonStore(t, c.Client(t), 5*time.Second)
	a, b := spDaemon(t, stA, db, clock, nil), spDaemon(t, stB, db, clock, nil)
	// b reads it (and caches it) before any daemon has bound it.
	if se, ok, err := stB.Get(context.Background(), session); err != nil || !ok || se.UserName != ann {
		t.Fatalf("b reads the older record: %+v, %v, %v", se, ok, err)
	}
	if !signedIn(t, a, session) {
		t.Fatal("a session an older daemon stored no longer works")
	}
	rec := storedRecord(t, cli, session)
	if rec["id"] != "u1" || rec["u"] != ann || rec["i"] != "_idx" {
		t.Fatalf("after the first check, the etcd record is %v; want it bound to u1, the rest kept", rec)
	}
	if resp, err := cli.Get(context.Background(), sessionKey(session)); err != nil || resp.Kvs[0].Lease != int64(lease.ID) {
		t.Fatalf("binding moved the record off its lease: %v, %v", resp, err)
	}
	if !signedIn(t, b, session) {
		t.Fatal("the daemon that cached the unbound record refuses the bound session")
	}
	update(t, db, recreateAnn)
	for name, d := range map[string]*httptest.Server{"the daemon that cached it unbound": b, "the daemon that bound it": a} {
		if signedIn(t, d, session) {
			t.Fatalf("%s: the session of the deleted ann carries on as the new one", name)
		}
	}
	if rec := storedRecord(t, cli, session); rec != nil {
		t.Errorf("the refused session is still in etcd: %v", rec)
	}
}

// putOlderRecord writes session id as a daemon that predates the user id
// did, expiring at expires, on a lease.
func putOlderRecord(t *testing.T, cli *clientv3.Client, id string, expires time.Time) {
	t.Helper()
	lease, err := cli.Grant(context.Background(), 3600)
	if err != nil {
		t.Fatal(err)
	}
	old := fmt.Sprintf(`{"u":%q,"n":%q,"e":%d}`, ann, ann, expires.Unix())
	if _, err := cli.Put(context.Background(), sessionKey(id), old, clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
}

// TestBind: Bind adds the user id to a record without one, keeps the id a
// record has (the first binding wins), and binds no session that is gone.
func TestBind(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	now := time.Now().Truncate(time.Second)
	a, b := daemonStore(t, c.Client(t), 5*time.Second), daemonStore(t, c.Client(t), 5*time.Second)
	ctx := context.Background()
	tests := []struct {
		name   string
		setup  func(t *testing.T, id string)
		wantOK bool
		wantID string
	}{
		{"record of an older daemon", func(t *testing.T, id string) { putOlderRecord(t, cli, id, now.Add(time.Hour)) }, true, "u1"},
		{"record with an id", func(t *testing.T, id string) {
			if err := a.Add(ctx, id, saml.Session{UserName: ann, UserID: "u0", NameID: ann}, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}, true, "u0"},
		{"expired record", func(t *testing.T, id string) { putOlderRecord(t, cli, id, now.Add(-time.Minute)) }, false, ""},
		{"signed out", func(t *testing.T, id string) {
			putOlderRecord(t, cli, id, now.Add(time.Hour))
			if err := b.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		}, false, ""},
		{"no record", func(*testing.T, string) {}, false, ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("bind-%d", i)
			tc.setup(t, id)
			se, ok, err := a.Bind(ctx, id, "u1")
			if err != nil || ok != tc.wantOK || se.UserID != tc.wantID {
				t.Fatalf("Bind = %+v, %v, %v; want ok %v, UserID %q", se, ok, err, tc.wantOK, tc.wantID)
			}
			// A second binding, on another daemon, changes nothing.
			se, ok, err = b.Bind(ctx, id, "u2")
			if err != nil || ok != tc.wantOK || se.UserID != tc.wantID {
				t.Fatalf("second Bind = %+v, %v, %v; want ok %v, UserID %q", se, ok, err, tc.wantOK, tc.wantID)
			}
			for name, s := range map[string]*samletcd.Store{"a": a, "b": b} {
				if got, ok, err := s.Get(ctx, id); err != nil || ok != tc.wantOK || got.UserID != tc.wantID {
					t.Fatalf("%s: Get after Bind = %+v, %v, %v", name, got, ok, err)
				}
			}
			if rec := storedRecord(t, cli, id); tc.wantOK && rec["id"] != tc.wantID {
				t.Fatalf("etcd record %v, want id %q", rec, tc.wantID)
			}
		})
	}
}

// TestBindRaces: daemons binding one unbound session at once agree on one
// user id, and a binding racing a sign-out never brings the session back.
func TestBindRaces(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	now := time.Now().Truncate(time.Second)
	stores := []*samletcd.Store{daemonStore(t, c.Client(t), 5*time.Second), daemonStore(t, c.Client(t), 5*time.Second)}
	ctx := context.Background()

	t.Run("concurrent binds", func(t *testing.T) {
		putOlderRecord(t, cli, "race", now.Add(time.Hour))
		const n = 16
		got := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				se, ok, err := stores[i%2].Bind(ctx, "race", fmt.Sprintf("u%d", i))
				if err == nil && !ok {
					err = fmt.Errorf("session gone")
				}
				got[i], errs[i] = se.UserID, err
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil || got[i] != got[0] {
				t.Fatalf("bind %d: %q, %v; bind 0: %q", i, got[i], errs[i], got[0])
			}
		}
		if rec := storedRecord(t, cli, "race"); rec["id"] != got[0] {
			t.Fatalf("etcd holds %v, the binds answered %q", rec, got[0])
		}
	})

	t.Run("bind racing a sign-out", func(t *testing.T) {
		for i := range 20 {
			id := fmt.Sprintf("signed-out-%d", i)
			putOlderRecord(t, cli, id, now.Add(time.Hour))
			var wg sync.WaitGroup
			wg.Go(func() {
				if _, _, err := stores[0].Bind(ctx, id, "u1"); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if err := stores[1].Delete(ctx, id); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if rec := storedRecord(t, cli, id); rec != nil {
				t.Fatalf("round %d: the signed-out session is back in etcd: %v", i, rec)
			}
		}
	})
}
