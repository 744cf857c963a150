package console

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// TestGroupsOfAUserAreBounded: how many groups a user is in is up to
// Entra, not the spec, so neither the users listing (a row per user) nor
// the user's page may show them all at once. The listing shows a few and
// links to the user's page, which pages through them all.
func TestGroupsOfAUserAreBounded(t *testing.T) {
	e := newEnv(t, consoleRole)
	many := 2*PageSize + 3
	var gids []string
	for i := range many {
		gids = append(gids, e.group(t, fmt.Sprintf("Team %03d", i)))
	}
	dots := e.user(t, "..", true) // its page's links carry its name in the query
	for _, gid := range gids {
		e.update(t, func(tx *store.Txn) error {
			u, err := tx.UserByName("bob@contoso.example")
			if err != nil {
				return err
			}
			return tx.ChangeMembers(gid, []string{u.ID, dots}, nil, time.Time{})
		})
	}
	c := e.signedIn(t, "alice@contoso.example")
	team := regexp.MustCompile(`Team \d{3}`)

	resp, body := get(t, c, e.adminURL+Path+"users?q=bob")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("users: %d\n%s", resp.StatusCode, body)
	}
	if n := len(team.FindAllString(body, -1)); n > rowNames {
		t.Errorf("the users listing names %d of bob's groups in his row, want at most %d", n, rowNames)
	}
	if want := fmt.Sprintf(`<a href="/console/users/bob@contoso.example">and %d more</a>`, many-rowNames); !strings.Contains(body, want) {
		t.Errorf("the users listing lacks %q", want)
	}

	for _, first := range []string{"users/bob@contoso.example", "users/?name=.."} {
		pageThrough(t, c, e.adminURL, e.adminURL+Path+first, many)
	}
}

// pageThrough follows a user's page through its groups, numbered Team 000
// onwards, and checks that it names each once, a page at a time.
func pageThrough(t *testing.T, c *http.Client, origin, next string, many int) {
	t.Helper()
	team := regexp.MustCompile(`Team \d{3}`)
	seen, start := map[string]bool{}, next
	for pages := 0; next != ""; pages++ {
		if pages > many/PageSize+1 {
			t.Fatal("more pages than groups")
		}
		resp, body := get(t, c, next)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d\n%s", next, resp.StatusCode, body)
		}
		if !strings.Contains(body, fmt.Sprintf("%d groups", many)) {
			t.Errorf("%s does not say how many groups the user is in", next)
		}
		names := team.FindAllString(body, -1)
		if len(names) > PageSize {
			t.Fatalf("%s names %d groups", next, len(names))
		}
		for _, n := range names {
			seen[n] = true
		}
		next = ""
		if m := nextLink.FindStringSubmatch(body); m != nil {
			next = origin + html.UnescapeString(m[1])
		}
	}
	if len(seen) != many {
		t.Errorf("the pages from %s named %d groups, want %d", start, len(seen), many)
	}
}
