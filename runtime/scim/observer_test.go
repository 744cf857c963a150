package scim

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func TestObserver(t *testing.T) {
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &env{t: t, st: st, base: spec.DefaultScimBasePath}
	e.setConfig(defaultConfig())
	var mu sync.Mutex
	var seen []string
	srv := NewServer(st, Options{Observer: func(route string, status int, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		if d < 0 {
			t.Errorf("negative duration")
		}
		seen = append(seen, route+" "+http.StatusText(status))
	}})
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@b.c"}`},
		{"GET", "/Users", ""},
		{"GET", "/Nope", ""},
		{"GET", "/ServiceProviderConfig", ""},
	} {
		r := httptest.NewRequest(req.method, spec.DefaultScimBasePath+req.path, strings.NewReader(req.body))
		r.Header.Set("Authorization", "Bearer "+testToken)
		srv.ServeHTTP(httptest.NewRecorder(), r)
	}
	want := []string{"users.create Created", "users.list OK", "unknown Not Found", "discovery OK"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("observed %v, want %v", seen, want)
	}
}

func TestMemberAddThenRemoveInOnePatch(t *testing.T) { forModes(t, testMemberAddThenRemoveInOnePatch) }

func testMemberAddThenRemoveInOnePatch(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	a := e.createUser("a@contoso.com", "a", "a@contoso.com")
	b := e.createUser("b@contoso.com", "b", "b@contoso.com")
	gid := e.createGroup("G", "g")
	e.must(204, "PATCH", "/Groups/"+gid, ops(
		`{"op":"add","path":"members","value":`+memberList(a, b)+`}`,
		`{"op":"remove","path":"members[value eq \"`+a+`\"]"}`))
	if got := members(t, e, gid); !sameIDs(got, []string{b}) {
		t.Fatalf("members %v, want only %s", got, b)
	}
	g := e.must(200, "GET", "/Groups/"+gid, "").json(t)
	if dig(g, "meta", "version") != `W/"2"` {
		t.Fatalf("version %v after one membership change", dig(g, "meta", "version"))
	}
	// A PATCH that changes nothing keeps the version.
	e.must(204, "PATCH", "/Groups/"+gid, ops(`{"op":"add","path":"members","value":`+memberList(b)+`}`))
	if g := e.must(200, "GET", "/Groups/"+gid, "").json(t); dig(g, "meta", "version") != `W/"2"` {
		t.Fatalf("no-op PATCH bumped the version: %v", dig(g, "meta", "version"))
	}
}
