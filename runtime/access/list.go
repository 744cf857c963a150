package access

import (
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/store"
)

// MaxPage bounds a page of ListUsers or ListGroups.
const MaxPage = 500

// UserSummary describes one user for admin listings.
type UserSummary struct {
	ID         string   `json:"id"`
	UserName   string   `json:"userName"`
	ExternalID string   `json:"externalId,omitempty"`
	Active     bool     `json:"active"`
	HasAccess  bool     `json:"hasAccess"`
	Groups     []string `json:"groups"`   // displayNames, sorted
	Roles      []string `json:"roles"`    // effective roles, sorted
	Versions   []string `json:"versions"` // effective "app/version", sorted
}

// GroupSummary describes one group for admin listings.
type GroupSummary struct {
	ID          string   `json:"id"`
	DisplayName string   `json:"displayName"`
	ExternalID  string   `json:"externalId,omitempty"`
	Members     int      `json:"members"`
	Assignments []string `json:"assignments"` // assignments applying to the group, sorted
	Roles       []string `json:"roles"`       // roles the group grants, sorted
	Versions    []string `json:"versions"`    // "app/version" the group grants, sorted
}

// SummarizeUser summarises u.
func SummarizeUser(txn *store.Txn, u *store.User) (UserSummary, error) {
	snap := snapshot(txn)
	c, err := catalogOf(snap)
	if err != nil {
		return UserSummary{}, err
	}
	return summarizeUser(snap, c, u)
}

func summarizeUser(txn *store.Txn, c *catalog, u *store.User) (UserSummary, error) {
	e, err := effectiveOf(txn, c, u)
	if err != nil {
		return UserSummary{}, err
	}
	s := UserSummary{
		ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, Active: u.Active, HasAccess: e.HasAccess(),
		Groups: []string{}, Roles: e.RoleNames(), Versions: e.VersionNames(),
	}
	if s.Roles == nil {
		s.Roles = []string{}
	}
	if s.Versions == nil {
		s.Versions = []string{}
	}
	gids, err := txn.GroupIDsOf(u.ID)
	if err != nil {
		return UserSummary{}, fmt.Errorf("look up groups of %s: %w", u.UserName, err)
	}
	for _, gid := range gids {
		g, err := txn.GroupByID(gid)
		if err != nil {
			return UserSummary{}, fmt.Errorf("look up group: %w", err)
		}
		if g != nil {
			s.Groups = append(s.Groups, g.DisplayName)
		}
	}
	slices.Sort(s.Groups)
	return s, nil
}

// SummarizeGroup summarises g.
func SummarizeGroup(txn *store.Txn, g *store.Group) (GroupSummary, error) {
	snap := snapshot(txn)
	c, err := catalogOf(snap)
	if err != nil {
		return GroupSummary{}, err
	}
	return summarizeGroup(snap, c, g)
}

func summarizeGroup(txn *store.Txn, c *catalog, g *store.Group) (GroupSummary, error) {
	s := GroupSummary{
		ID: g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID,
		Assignments: []string{}, Roles: []string{}, Versions: []string{},
	}
	members, err := txn.MemberIDsOf(g.ID)
	if err != nil {
		return GroupSummary{}, fmt.Errorf("count members of %s: %w", g.DisplayName, err)
	}
	s.Members = members.Len()
	var buf []byte
	grants, err := c.grantsOf(txn, g, &buf)
	if err != nil {
		return GroupSummary{}, fmt.Errorf("look up grants of %s: %w", g.DisplayName, err)
	}
	for _, gr := range grants {
		s.Assignments = append(s.Assignments, gr.name)
		s.Roles = append(s.Roles, gr.roles...)
		for _, v := range gr.versions {
			s.Versions = append(s.Versions, v.app+"/"+v.version)
		}
	}
	for _, l := range []*[]string{&s.Assignments, &s.Roles, &s.Versions} {
		slices.Sort(*l)
		*l = slices.Compact(*l)
	}
	return s, nil
}

// UserFilter is the filter of the users listing: the userName contains
// substring, case-insensitively, and, when active is set, the user's
// active flag equals it.
func UserFilter(substring string, active *bool) func(*store.User) bool {
	sub := store.Fold(substring)
	return func(u *store.User) bool {
		return (active == nil || u.Active == *active) && strings.Contains(store.Fold(u.UserName), sub)
	}
}

// GroupFilter is the filter of the groups listing: the displayName
// contains substring, case-insensitively.
func GroupFilter(substring string) func(*store.Group) bool {
	sub := store.Fold(substring)
	return func(g *store.Group) bool { return strings.Contains(store.Fold(g.DisplayName), sub) }
}

// ListUsers returns up to limit users (at most MaxPage) in userName order
// (case-insensitive) that come after the cursor after ("" for the first
// page) and that filter accepts (nil accepts all). next is the cursor of the
// following page, "" when no user after this page is accepted, so a
// following page is never empty. Only one page of users is summarised; the
// filter alone is asked about the users after it up to the next accepted
// one (see scan).
func ListUsers(txn *store.Txn, after string, limit int, filter func(*store.User) bool) (page []UserSummary, next string, err error) {
	snap := snapshot(txn)
	c, err := catalogOf(snap)
	if err != nil {
		return nil, "", err
	}
	page = []UserSummary{}
	users, err := snap.UsersByName(after)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	rows := func(yield func(any, error) bool) {
		for u, err := range users {
			if !yield(u, err) {
				return
			}
		}
	}
	next, err = scan(rows, after, limit,
		func(raw any) string { return store.Fold(raw.(*store.User).UserName) },
		func(raw any) bool { return filter == nil || filter(raw.(*store.User)) },
		func(raw any) error {
			s, err := summarizeUser(snap, c, raw.(*store.User))
			page = append(page, s)
			return err
		})
	return page, next, err
}

// ListGroups is ListUsers for groups, in displayName order.
func ListGroups(txn *store.Txn, after string, limit int, filter func(*store.Group) bool) (page []GroupSummary, next string, err error) {
	snap := snapshot(txn)
	c, err := catalogOf(snap)
	if err != nil {
		return nil, "", err
	}
	page = []GroupSummary{}
	it, err := snap.LowerBound(store.TableGroups, store.IndexName, after)
	if err != nil {
		return nil, "", fmt.Errorf("list groups: %w", err)
	}
	rows := func(yield func(any, error) bool) {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if !yield(raw, nil) {
				return
			}
		}
	}
	next, err = scan(rows, after, limit,
		func(raw any) string { return store.Fold(raw.(*store.Group).DisplayName) },
		func(raw any) bool { return filter == nil || filter(raw.(*store.Group)) },
		func(raw any) error {
			s, err := summarizeGroup(snap, c, raw.(*store.Group))
			page = append(page, s)
			return err
		})
	return page, next, err
}

// scan walks rows in the order of a unique, folded name (store.Fold),
// starting at the cursor, and takes the rows that match until limit were
// taken. It returns the cursor of the next page (the key of the last row
// taken) only when a matching row follows: once the page is full it looks
// on, asking match alone (no summary is made), until the first matching
// row or the end. So a page costs limit summaries plus a match test of
// each row from the cursor to the first match after the page; the rows
// between the last one taken and that match are tested again by the next
// page, which starts at the cursor (so a row created there meanwhile is
// listed). Only the last page, or one followed by a long run of rows that
// do not match, tests the rest of the table, and it has to: nothing else
// says whether a match is left.
func scan(rows iter.Seq2[any, error], after string, limit int, keyOf func(any) string, match func(any) bool, take func(any) error) (string, error) {
	if limit <= 0 || limit > MaxPage {
		limit = MaxPage
	}
	after = store.Fold(after)
	taken := 0
	last := ""
	for raw, err := range rows {
		if err != nil {
			return "", err
		}
		key := keyOf(raw)
		if after != "" && key == after {
			continue // the cursor row was on the previous page
		}
		if !match(raw) {
			continue
		}
		if taken == limit {
			return last, nil // a match follows the full page
		}
		if err := take(raw); err != nil {
			return "", err
		}
		taken++
		last = key
	}
	return "", nil
}
