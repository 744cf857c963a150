package scim

import (
	"fmt"
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
