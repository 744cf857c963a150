package access_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

// lister lists one page of names: users or groups.
type lister struct {
	kind string
	add  func(w *world, name string, active bool)
	// list returns a page's names and the next cursor; calls counts the
	// rows the filter was asked about.
	list func(w *world, after string, limit int, sub string, active *bool, calls *int) ([]string, string)
}

var listers = []lister{
	{"users",
		func(w *world, name string, active bool) { w.user(name, active) },
		func(w *world, after string, limit int, sub string, active *bool, calls *int) ([]string, string) {
			w.t.Helper()
			f := access.UserFilter(sub, active)
			page, next, err := access.ListUsers(w.st.Read(), after, limit, func(u *store.User) bool { *calls++; return f(u) })
			if err != nil {
				w.t.Fatal(err)
			}
			names := []string{}
			for _, u := range page {
				names = append(names, u.UserName)
			}
			return names, next
		}},
	{"groups",
		func(w *world, name string, _ bool) { w.group(name) },
		func(w *world, after string, limit int, sub string, _ *bool, calls *int) ([]string, string) {
			w.t.Helper()
			f := access.GroupFilter(sub)
			page, next, err := access.ListGroups(w.st.Read(), after, limit, func(g *store.Group) bool { *calls++; return f(g) })
			if err != nil {
				w.t.Fatal(err)
			}
			names := []string{}
			for _, g := range page {
				names = append(names, g.DisplayName)
			}
			return names, next
		}},
}

// walk follows the cursors from the first page to the last and returns
// every page, and how many rows the filter was asked about for each.
func walk(t *testing.T, w *world, l lister, limit int, sub string, active *bool) (pages [][]string, calls []int) {
	t.Helper()
	after := ""
	for range 20 {
		n := 0
		page, next := l.list(w, after, limit, sub, active, &n)
		pages, calls = append(pages, page), append(calls, n)
		if next == "" {
			return pages, calls
		}
		after = next
	}
	t.Fatalf("more than 20 pages: %v", pages)
	return nil, nil
}

// TestFilteredPaging: a filtered listing offers a next page only when a
// row matching the filter follows, so no "Next page" leads to an empty
// one; and a page looks at no more rows than it must.
func TestFilteredPaging(t *testing.T) {
	yes, no := true, false
	many := func(prefix string, n int) []string {
		out := []string{}
		for i := range n {
			out = append(out, fmt.Sprintf("%s-%03d", prefix, i))
		}
		return out
	}
	tests := []struct {
		name  string
		rows  []string // in listing order; matching rows contain "dev"
		limit int
		sub   string
		want  [][]string
		// maxCalls bounds the filter calls of each page (0: unchecked).
		maxCalls []int
	}{
		{name: "one page of matches, then rows that do not match",
			rows: []string{"a-dev", "b-dev", "c-ops", "d-ops", "e-ops"}, limit: 2, sub: "dev",
			want: [][]string{{"a-dev", "b-dev"}}},
		{name: "one page of matches, then a match",
			rows: []string{"a-dev", "b-dev", "c-dev"}, limit: 2, sub: "dev",
			want: [][]string{{"a-dev", "b-dev"}, {"c-dev"}}},
		{name: "one page of matches, then a match after rows that do not match",
			rows: slices.Concat([]string{"a-dev", "b-dev", "c-ops", "d-dev"}, many("e-ops", 50)), limit: 2, sub: "dev",
			want: [][]string{{"a-dev", "b-dev"}, {"d-dev"}},
			// Page 1 looks ahead only as far as the next match; the last
			// page must look at every row left to know none matches.
			maxCalls: []int{4, 52}},
		{name: "two pages exactly, rows that do not match between and after",
			rows: []string{"a-dev", "b-ops", "c-dev", "d-ops", "e-dev", "f-dev", "g-ops"}, limit: 2, sub: "dev",
			want: [][]string{{"a-dev", "c-dev"}, {"e-dev", "f-dev"}}},
		{name: "fewer matches than a page",
			rows: []string{"a-dev", "b-ops", "c-ops"}, limit: 2, sub: "dev",
			want: [][]string{{"a-dev"}}},
		{name: "no match",
			rows: []string{"a-ops", "b-ops"}, limit: 2, sub: "dev",
			want: [][]string{{}}},
		{name: "unfiltered, exactly one page",
			rows: []string{"a-dev", "b-ops"}, limit: 2,
			want: [][]string{{"a-dev", "b-ops"}}, maxCalls: []int{2}},
		{name: "unfiltered, one row more than a page",
			rows: []string{"a-dev", "b-ops", "c-ops"}, limit: 2,
			want: [][]string{{"a-dev", "b-ops"}, {"c-ops"}}, maxCalls: []int{3, 1}},
	}
	for _, l := range listers {
		t.Run(l.kind, func(t *testing.T) {
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					w := newWorld(t)
					for _, name := range tc.rows {
						l.add(w, name, true)
					}
					pages, calls := walk(t, w, l, tc.limit, tc.sub, nil)
					if !slices.EqualFunc(pages, tc.want, slices.Equal) {
						t.Fatalf("pages %q, want %q", pages, tc.want)
					}
					for i, most := range tc.maxCalls {
						if i < len(calls) && calls[i] > most {
							t.Errorf("page %d asked the filter about %d rows, want at most %d", i+1, calls[i], most)
						}
					}
				})
			}
		})
	}
	// The users' active filter pages the same way.
	t.Run("users/active filter", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			active *bool
			want   [][]string
		}{
			{"active", &yes, [][]string{{"a", "b"}}},
			{"inactive", &no, [][]string{{"c", "d"}, {"e"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				w := newWorld(t)
				for _, u := range []struct {
					name   string
					active bool
				}{{"a", true}, {"b", true}, {"c", false}, {"d", false}, {"e", false}} {
					w.user(u.name, u.active)
				}
				if pages, _ := walk(t, w, listers[0], 2, "", tc.active); !slices.EqualFunc(pages, tc.want, slices.Equal) {
					t.Fatalf("pages %q, want %q", pages, tc.want)
				}
			})
		}
	})
}
