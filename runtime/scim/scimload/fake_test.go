package scimload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fake is a SCIM server that answers every request of a cycle, read-back
// included, as a correct server would, but for the faults a test sets.
type fake struct {
	// fault, when set, may answer a request itself: it returns false to
	// let the fake answer it.
	fault func(w http.ResponseWriter, r *http.Request, body []byte) bool
	// page, when set, may change a page of a read-back before it is sent.
	page func(resource string, page []map[string]any) []map[string]any
	n    atomic.Int64 // requests answered

	mu     sync.Mutex
	next   int
	order  []string                  // ids in creation order
	users  map[string]map[string]any // by id: userName, active, name.givenName
	groups map[string]map[string]bool
}

const fakeToken = "fake-token"

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.n.Add(1)
	if r.Header.Get("Authorization") != "Bearer "+fakeToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if f.fault != nil && f.fault(w, r, body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users == nil {
		f.users, f.groups = map[string]map[string]any{}, map[string]map[string]bool{}
	}
	w.Header().Set("Content-Type", "application/scim+json")
	path := strings.TrimPrefix(r.URL.Path, "/scim")
	resource, id, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	q := r.URL.Query()
	var in struct {
		UserName   string
		Operations []struct {
			Op, Path string
			Value    any
		}
	}
	_ = json.Unmarshal(body, &in)
	switch {
	case r.Method == "GET" && id == "" && q.Has("filter"):
		fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":0,"Resources":[]}`)
	case r.Method == "GET" && id == "":
		var all []map[string]any
		for _, id := range f.order {
			if u, ok := f.users[id]; ok && resource == "Users" {
				all = append(all, map[string]any{"id": id, "userName": u["userName"], "active": u["active"], "name": map[string]any{"givenName": u["givenName"]}})
			}
			if g, ok := f.groups[id]; ok && resource == "Groups" {
				members := []map[string]any{}
				for m := range g {
					members = append(members, map[string]any{"value": m})
				}
				all = append(all, map[string]any{"id": id, "members": members})
			}
		}
		start, _ := strconv.Atoi(q.Get("startIndex"))
		count, _ := strconv.Atoi(q.Get("count"))
		start = min(max(start, 1)-1, len(all))
		page := all[start:min(start+count, len(all))]
		if f.page != nil {
			page = f.page(resource, slices.Clone(page))
		}
		b, _ := json.Marshal(map[string]any{"totalResults": len(all), "Resources": page})
		w.Write(b)
	case r.Method == "POST" && id == "":
		f.next++
		id := fmt.Sprintf("id-%d", f.next)
		f.order = append(f.order, id)
		if resource == "Users" {
			f.users[id] = map[string]any{"userName": in.UserName, "active": true, "givenName": "Load"}
		} else {
			f.groups[id] = map[string]bool{}
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q}`, id)
	case r.Method == "PATCH" && f.groups[id] != nil:
		for _, op := range in.Operations {
			l, _ := op.Value.([]any)
			for _, m := range l {
				v, _ := m.(map[string]any)["value"].(string)
				f.groups[id][v] = true
			}
		}
		w.WriteHeader(http.StatusNoContent)
	case r.Method == "PATCH" && f.users[id] != nil:
		u := f.users[id]
		for _, op := range in.Operations {
			switch v := op.Value.(type) {
			case map[string]any:
				if g, ok := v["name.givenName"]; ok {
					u["givenName"] = g
				}
			default:
				switch op.Path {
				case "active":
					u["active"] = !(v == false || v == "False")
				case "name.givenName":
					u["givenName"] = v
				}
			}
		}
		fmt.Fprintf(w, `{"id":%q}`, id)
	case r.Method == "DELETE" && f.users[id] != nil:
		delete(f.users, id)
		for _, g := range f.groups {
			delete(g, id)
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func startFake(t *testing.T, f *fake) string {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL + "/scim"
}

func runFake(t *testing.T, f *fake, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg.URL, cfg.Token = startFake(t, f), fakeToken
	res, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func report(res *Result) string {
	var b strings.Builder
	res.Print(&b)
	return b.String()
}

// cycle is a small cycle with every kind of request and the read-back.
var cycle = Config{Users: 30, Groups: 3, MembersPerGroup: 10, Concurrency: 4, UpdateEvery: 3, DisableEvery: 4, DeleteEvery: 5}

// TestFakeIsClean: without faults, the fake passes a cycle.
func TestFakeIsClean(t *testing.T) {
	for _, flag := range []bool{false, true} {
		cfg := cycle
		cfg.Flag = flag
		res := runFake(t, &fake{}, cfg)
		if res.Errors != 0 || len(res.Problems) != 0 || !slices.ContainsFunc(res.Kinds, func(s Stats) bool { return s.Kind == "verify.groups" }) {
			t.Fatalf("flag %v: a correct server reported as failing:\n%s", flag, report(res))
		}
	}
}

// TestRunChecksBodies: a server that answers the expected status with a
// body that is not what it must be has failed the request, as Entra would
// see it, even when no later request or read-back would notice (the
// README's burst onto a filled store runs without either).
func TestRunChecksBodies(t *testing.T) {
	burst := Config{Users: 10, Concurrency: 2, FirstUser: 1000}
	groupsOnly := Config{Users: 1, Groups: 4, Concurrency: 2, NoReadBack: true}
	for _, c := range []struct {
		name  string
		cfg   Config
		fault func(w http.ResponseWriter, r *http.Request, body []byte) bool
	}{
		{"user created without an id", burst, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/Users") {
				return false
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"store unavailable"}`)
			return true
		}},
		{"group created without an id", groupsOnly, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method != "POST" || !strings.HasSuffix(r.URL.Path, "/Groups") {
				return false
			}
			w.WriteHeader(http.StatusCreated)
			return true
		}},
		{"group lookup not a list", groupsOnly, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method != "GET" || !strings.HasSuffix(r.URL.Path, "/Groups") {
				return false
			}
			fmt.Fprint(w, `<html>maintenance</html>`)
			return true
		}},
		{"group lookup finds the group before its create", groupsOnly, func(w http.ResponseWriter, r *http.Request, _ []byte) bool {
			if r.Method != "GET" || !strings.HasSuffix(r.URL.Path, "/Groups") {
				return false
			}
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"totalResults":1,"Resources":[{"id":"old","displayName":"x"}]}`)
			return true
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := runFake(t, &fake{fault: c.fault}, c.cfg)
			if res.Errors == 0 && len(res.Problems) == 0 {
				t.Errorf("no error, no problem:\n%s", report(res))
			}
		})
	}
}

// TestReadBackSeesEveryUserAndGroupOnce: the read-back fails a server that
// lists a user or group twice in place of another, as a paging bug does:
// the count is right, the end state is not.
func TestReadBackSeesEveryUserAndGroupOnce(t *testing.T) {
	for _, resource := range []string{"Users", "Groups"} {
		t.Run(resource, func(t *testing.T) {
			f := &fake{page: func(r string, page []map[string]any) []map[string]any {
				if r == resource && len(page) > 1 {
					page[len(page)-1] = page[0]
				}
				return page
			}}
			res := runFake(t, f, cycle)
			if res.Errors == 0 && len(res.Problems) == 0 {
				t.Errorf("a read-back that lists one of the %s twice and leaves one out passed:\n%s", resource, report(res))
			}
		})
	}
}

// TestReadBackSeesUsersDisabledByMistake: the read-back fails a server
// that lists as inactive users the cycle never disabled.
func TestReadBackSeesUsersDisabledByMistake(t *testing.T) {
	f := &fake{page: func(r string, page []map[string]any) []map[string]any {
		for _, u := range page {
			if r == "Users" {
				u["active"] = false
			}
		}
		return page
	}}
	res := runFake(t, f, cycle)
	if res.Errors == 0 && len(res.Problems) == 0 {
		t.Errorf("a read-back with every user inactive passed, %d of %d disabled:\n%s", cycle.Users/cycle.DisableEvery, cycle.Users, report(res))
	}
}
