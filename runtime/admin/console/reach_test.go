package console

import (
	"context"
	"fmt"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

var reachRow = regexp.MustCompile(`<td rowspan="\d+"><a href="/console/users/([^"]+)">`)

// TestReachPaging gives webgoat/1.0 to more users than a page holds and
// follows the who-can-reach page's next links: each page is bounded, says
// the total, keeps the version chosen, and together they list every user
// once, in userName order.
func TestReachPaging(t *testing.T) {
	e := newEnv(t, consoleRole)
	testers := e.group(t, "Testers")
	var ids []string
	e.update(t, func(tx *store.Txn) error {
		for i := range PageSize + 5 {
			u, err := tx.UserByName("user" + pad(i) + "@contoso.example")
			if err != nil || u == nil {
				return fmt.Errorf("user %d: %v", i, err)
			}
			ids = append(ids, u.ID)
		}
		return tx.ChangeMembers(testers, ids, nil, time.Time{})
	})
	e.write(t, "testers.yaml", doc("AccessAssignment", "testers", "  subject: {group: Testers}\n  roles: [Developer]\n  applicationVersions: [webgoat/1.0]\n"))
	e.reconcile(t)
	want, err := access.WhoCanReach(e.st.Read(), "webgoat", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	total := len(want.Users) // alice, bob and the testers
	if total <= PageSize {
		t.Fatalf("%d users reach the version, want more than a page", total)
	}

	c := e.signedIn(t, "alice@contoso.example")
	var seen []string
	next := e.adminURL + Path + "reach?app=webgoat&version=1.0"
	for pages := 0; next != ""; pages++ {
		if pages > total/PageSize+1 {
			t.Fatal("more pages than users")
		}
		resp, body := get(t, c, next)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d\n%s", next, resp.StatusCode, body)
		}
		if !strings.Contains(body, fmt.Sprintf("webgoat/1.0: %d users", total)) {
			t.Errorf("page %d does not say the total %d", pages+1, total)
		}
		rows := reachRow.FindAllStringSubmatch(body, -1)
		if len(rows) == 0 || len(rows) > PageSize {
			t.Fatalf("page %d shows %d users, want 1 to %d", pages+1, len(rows), PageSize)
		}
		for _, r := range rows {
			seen = append(seen, r[1])
		}
		if pages > 0 && !strings.Contains(body, `id="first" href="/console/reach?app=webgoat&amp;version=1.0"`) {
			t.Errorf("page %d has no link to the first page", pages+1)
		}
		next = ""
		if m := nextLink.FindStringSubmatch(body); m != nil {
			next = e.adminURL + strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(next, "app=webgoat") || !strings.Contains(next, "version=1.0") {
				t.Errorf("next link %s drops the version", next)
			}
		}
	}
	if len(seen) != total {
		t.Fatalf("saw %d users over the pages, want %d", len(seen), total)
	}
	for i, u := range want.Users {
		if seen[i] != u.UserName {
			t.Fatalf("user %d is %s, want %s (userName order, each once)", i, seen[i], u.UserName)
		}
	}

	// A cursor past everyone who still reaches it (they lost access since).
	_, body := get(t, c, e.adminURL+Path+"reach?app=webgoat&version=1.0&after=zzz")
	for _, w := range []string{fmt.Sprintf("webgoat/1.0: %d users", total), "No user follows the previous page", `id="first"`} {
		if !strings.Contains(body, w) {
			t.Errorf("page past the end lacks %q", w)
		}
	}
	if strings.Contains(body, "Nobody can reach it") || strings.Contains(body, `id="next"`) {
		t.Error("page past the end says nobody reaches the version, or links further")
	}
}

// reachStore is a store where 100,000 users reach webgoat/1.0 through
// the group Everyone.
func reachStore(b *testing.B) *store.Store {
	b.Helper()
	const users = 100_000
	st, err := store.New(store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	err = st.Load(func(tx *store.Txn) error {
		ins := func(table string, v any) {
			if err == nil {
				err = tx.Insert(table, v)
			}
		}
		for name, r := range spec.BuiltinRoles {
			ins(store.TableResources, &store.Resource{Kind: spec.KindRole, Name: name, Spec: &r})
		}
		ins(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: "webgoat", Spec: &spec.Application{Versions: []string{"1.0"}}})
		ins(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: "everyone",
			Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Everyone"}, Roles: []string{"Developer"}, ApplicationVersions: []string{"webgoat/1.0"}}})
		ins(store.TableGroups, &store.Group{ID: "g-everyone", DisplayName: "Everyone"})
		ids := make([]string, users)
		for i := range ids {
			ids[i] = fmt.Sprintf("u-%06d", i)
			ins(store.TableUsers, &store.User{ID: ids[i], UserName: fmt.Sprintf("user%06d@contoso.com", i), Active: true})
		}
		if err != nil {
			return err
		}
		if err = tx.ChangeMembers("g-everyone", ids, nil, time.Time{}); err != nil {
			return err
		}
		_, err = access.SyncBindings(tx)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkReachPage builds and renders the who-can-reach page of a version
// that 100,000 users reach (its first page).
func BenchmarkReachPage(b *testing.B) {
	s := &Server{cfg: Config{Store: reachStore(b), Now: time.Now}}
	r := &request{Request: httptest.NewRequestWithContext(context.Background(), "GET", Path+"reach?app=webgoat&version=1.0", nil)}
	var out countWriter
	for b.Loop() {
		name, data, err := s.reach(r)
		if err != nil {
			b.Fatal(err)
		}
		out = 0
		if err := pages.ExecuteTemplate(&out, name, view{Title: "t", Nav: name, User: "u", Data: data, Home: Path}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(out), "html-bytes")
}

// BenchmarkReachCount is the part of BenchmarkReachPage that the total
// needs whatever the page shows: every user who reaches the version,
// checked and sorted.
func BenchmarkReachCount(b *testing.B) {
	st := reachStore(b)
	for b.Loop() {
		if _, err := access.WhoCanReach(st.Read(), "webgoat", "1.0"); err != nil {
			b.Fatal(err)
		}
	}
}

// countWriter counts what is written to it.
type countWriter int

func (w *countWriter) Write(p []byte) (int, error) { *w += countWriter(len(p)); return len(p), nil }

// TestPageOf pages a sorted answer from cursors that are a listed name in
// another case, a name no longer listed, and past the end.
func TestPageOf(t *testing.T) {
	var names []string
	for i := range PageSize + 3 {
		names = append(names, "n"+pad(i*2)) // even numbers: n001 is not listed
	}
	id := func(s string) string { return s }
	tests := []struct {
		after string
		first string
		n     int
		next  string
	}{
		{"", "n000", PageSize, "n" + pad((PageSize-1)*2)},
		{"N000", "n002", PageSize, "n" + pad(PageSize*2)},
		{"n001", "n002", PageSize, "n" + pad(PageSize*2)},
		{"n" + pad(PageSize*2), "n" + pad((PageSize+1)*2), 2, ""},
		{"zzz", "", 0, ""},
	}
	for _, tt := range tests {
		page, next := pageOf(names, tt.after, id)
		if len(page) != tt.n || next != tt.next || (len(page) > 0 && page[0] != tt.first) {
			t.Errorf("after %q: %d from %v, next %q; want %d from %s, next %q", tt.after, len(page), page[:min(1, len(page))], next, tt.n, tt.first, tt.next)
		}
	}
}
