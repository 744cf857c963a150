package scim

import (
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

func TestParallelCreateSameUserName(t *testing.T) { forModes(t, testParallelCreateSameUserName) }

func testParallelCreateSameUserName(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	statuses := make([]int, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "Parallel@Contoso.com"
			switch i % 3 {
			case 1:
				name = strings.ToLower(name)
			case 2:
				name = strings.ToUpper(name)
			}
			statuses[i] = e.do("POST", "/Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"`+name+`"}`).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != 19 {
		t.Fatalf("statuses %v, want one 201 and nineteen 409", count)
	}
	if got := e.must(200, "GET", "/Users", "").json(t); got["totalResults"] != 1.0 {
		t.Fatalf("stored %v users", got["totalResults"])
	}
}

func TestParallelMemberAdds(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := newEnv(t, m.flag, defaultConfig())
			gid := e.createGroup("Everyone", "all")
			var users []string
			for i := range 60 {
				users = append(users, e.createUser(fmt.Sprintf("p%d@contoso.com", i), "x", "x@contoso.com"))
			}
			var wg sync.WaitGroup
			errs := make(chan string, len(users))
			for i := 0; i < len(users); i += 3 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := e.do("PATCH", "/Groups/"+gid, ops(`{"op":"Add","path":"members","value":`+memberList(users[i:i+3]...)+`}`))
					if r.status != 204 {
						errs <- fmt.Sprintf("status %d: %s", r.status, r.body)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if got := members(t, e, gid); !sameIDs(got, users) {
				t.Fatalf("%d members, want %d", len(got), len(users))
			}
		})
	}
}

// TestPooledBuffersAreNotShared: request bodies and responses live in
// pooled buffers; concurrent creates, reads and list pages must each get
// their own, so every response names the user it was asked about.
func TestPooledBuffersAreNotShared(t *testing.T) {
	e := newEnv(t, true, defaultConfig())
	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan string, 4*n)
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("pool%02d@contoso.com", i)
			ids[i] = e.createUser(name, fmt.Sprintf("ext%02d", i), name)
		})
	}
	wg.Wait()
	for round := range 3 {
		for i := range n {
			wg.Go(func() {
				name := fmt.Sprintf("pool%02d@contoso.com", i)
				var got any
				switch round {
				case 0:
					got = e.must(200, "GET", "/Users/"+ids[i], "").json(t)["userName"]
				case 1:
					got = dig(e.must(200, "GET", "/Users?filter="+url.QueryEscape(`userName eq "`+name+`"`), "").json(t), "Resources", 0, "userName")
				case 2:
					r := e.must(200, "PATCH", "/Users/"+ids[i], ops(`{"op":"replace","path":"name.givenName","value":"`+name+`"}`)).json(t)
					got = dig(r, "name", "givenName")
				}
				if got != name {
					errs <- fmt.Sprintf("round %d: user %d answered %v", round, i, got)
				}
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := e.must(200, "GET", "/Users?count=100", "").json(t); got["totalResults"] != float64(n) || len(got["Resources"].([]any)) != n {
		t.Fatalf("list: totalResults %v, %d resources", got["totalResults"], len(got["Resources"].([]any)))
	}
}
