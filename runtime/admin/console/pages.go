package console

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// PageSize is how many users or groups a listing page shows.
const PageSize = 50

// rowNames is how many of a user's groups a row of the users listing
// names; the user's page pages through them all.
const rowNames = 10

type overviewData struct {
	admin.StatusResponse
	// Components are the readiness checks, by name.
	Components [][2]string
	// Behind is set while the revision seen is not the one applied.
	Behind bool
}

func (s *Server) overview(*request) (string, any, error) {
	st, err := s.cfg.Status()
	if err != nil {
		return "", nil, err
	}
	d := overviewData{StatusResponse: st, Behind: st.SeenRevision != "" && st.SeenRevision != st.AppliedRevision}
	for name, v := range st.Components {
		d.Components = append(d.Components, [2]string{name, v})
	}
	slices.SortFunc(d.Components, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return "overview", d, nil
}

func (s *Server) history(*request) (string, any, error) {
	return "history", s.cfg.Reconciler.History(), nil
}

type planData struct {
	Plan *reconcile.Plan
	// Text is the plan as idrecon plan prints it.
	Text string
}

func (s *Server) plan(r *request) (string, any, error) {
	p, err := s.cfg.Reconciler.CurrentPlan(r.Context())
	if errors.Is(err, reconcile.ErrNoRevision) {
		return "plan", planData{}, nil
	}
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	if err := p.WriteText(&b); err != nil {
		return "", nil, err
	}
	return "plan", planData{Plan: p, Text: b.String()}, nil
}

func (s *Server) drift(*request) (string, any, error) {
	st, err := s.cfg.Status()
	if err != nil {
		return "", nil, err
	}
	return "drift", st, nil
}

// pager is the paging links of a listing page. Every listing pages the
// same way: in the order of a unique folded name (store.Fold), from the
// cursor in the after parameter (the key of the previous page's last
// row), PageSize rows at a time.
type pager struct {
	// Next is the URL of the following page, "" on the last.
	Next string
	// First is set on a page after the first.
	First string
}

// pageLinks are the links to the first and the following page of a
// listing at base whose other parameters are keep (empty ones are left
// out); after is this page's cursor and next the following page's, "" on
// the last page.
func pageLinks(base string, keep url.Values, after, next string) pager {
	v := url.Values{}
	for k, vs := range keep {
		if len(vs) > 0 && vs[0] != "" {
			v.Set(k, vs[0])
		}
	}
	var p pager
	if after != "" {
		p.First = base
		if len(v) > 0 {
			p.First += "?" + v.Encode()
		}
	}
	if next != "" {
		v.Set("after", next)
		p.Next = base + "?" + v.Encode()
	}
	return p
}

// pageOf is the page of items, sorted by the folded key of each, that
// follows the cursor after, and the cursor of the following page ("" when
// none follows). It is the listing paging of an answer that comes whole.
func pageOf[T any](items []T, after string, key func(T) string) (page []T, next string) {
	after = store.Fold(after)
	i := 0
	if after != "" {
		i, _ = slices.BinarySearchFunc(items, after, func(it T, k string) int {
			if c := strings.Compare(store.Fold(key(it)), k); c != 0 {
				return c
			}
			return -1 // the cursor row itself was on the previous page
		})
	}
	page = items[i:min(i+PageSize, len(items))]
	if i+len(page) < len(items) {
		next = store.Fold(key(page[len(page)-1]))
	}
	return page, next
}

type listData[T any] struct {
	Query  string
	Active string // "", "true" or "false" (users only)
	Items  []T
	Pager  pager
}

// listParams reads q, active and after; active must be "", "true" or
// "false".
func listParams(r *request) (q, active, after string, activeFlag *bool, err error) {
	v := r.URL.Query()
	q, active, after = v.Get("q"), v.Get("active"), v.Get("after")
	switch active {
	case "":
	case "true", "false":
		b := active == "true"
		activeFlag = &b
	default:
		return "", "", "", nil, &pageError{Status: http.StatusBadRequest, Title: "Bad filter", Text: "active is true, false or empty."}
	}
	return q, active, after, activeFlag, nil
}

func (s *Server) users(r *request) (string, any, error) {
	q, active, after, flag, err := listParams(r)
	if err != nil {
		return "", nil, err
	}
	items, next, err := access.ListUsers(s.cfg.Store.Read(), after, PageSize, access.UserFilter(q, flag))
	if err != nil {
		return "", nil, err
	}
	d := listData[access.UserSummary]{Query: q, Active: active, Items: items,
		Pager: pageLinks(Path+"users", url.Values{"q": {q}, "active": {active}}, after, next)}
	return "users", d, nil
}

func (s *Server) groups(r *request) (string, any, error) {
	q, _, after, _, err := listParams(r)
	if err != nil {
		return "", nil, err
	}
	items, next, err := access.ListGroups(s.cfg.Store.Read(), after, PageSize, access.GroupFilter(q))
	if err != nil {
		return "", nil, err
	}
	d := listData[access.GroupSummary]{Query: q, Items: items,
		Pager: pageLinks(Path+"groups", url.Values{"q": {q}}, after, next)}
	return "groups", d, nil
}

type userData struct {
	// UserSummary's Groups are one page of the user's groups.
	access.UserSummary
	Roles    []access.RoleGrant
	Versions []access.VersionGrant
	// GroupCount counts the user's groups on every page.
	GroupCount int
	GroupPager pager
}

// shortList is the first rowNames of a listing row's names, and how many
// it leaves out.
type shortList struct {
	Names []string
	More  int
}

func few(names []string) shortList {
	n := min(len(names), rowNames)
	return shortList{Names: names[:n], More: len(names) - n}
}

func notFound(what, name string) *pageError {
	return &pageError{Status: http.StatusNotFound, Title: "Not found", Text: fmt.Sprintf("There is no %s %q.", what, name)}
}

func (s *Server) user(r *request) (string, any, error) {
	txn := s.cfg.Store.Read()
	name := nameOf(r, "userName")
	u, err := txn.UserByName(name)
	if err != nil {
		return "", nil, err
	}
	if u == nil {
		return "", nil, notFound("user", name)
	}
	sum, err := access.SummarizeUser(txn, u)
	if err != nil {
		return "", nil, err
	}
	e, err := access.ForUser(txn, u.UserName)
	if err != nil {
		return "", nil, err
	}
	// Entra, not the spec, decides how many groups a user is in: they are
	// paged as a listing is.
	slices.SortFunc(sum.Groups, func(a, b string) int { return cmp.Compare(store.Fold(a), store.Fold(b)) })
	after := r.URL.Query().Get("after")
	groups, next := pageOf(sum.Groups, after, func(g string) string { return g })
	d := userData{UserSummary: sum, Roles: e.Roles(), Versions: e.Versions(), GroupCount: len(sum.Groups)}
	d.Groups = groups
	base, keep := Path+"users/"+url.PathEscape(u.UserName), url.Values{}
	if u.UserName == "." || u.UserName == ".." {
		base, keep = Path+"users/", url.Values{"name": {u.UserName}}
	}
	d.GroupPager = pageLinks(base, keep, after, next)
	return "user", d, nil
}

func (s *Server) group(r *request) (string, any, error) {
	txn := s.cfg.Store.Read()
	name := nameOf(r, "displayName")
	g, err := txn.GroupByName(name)
	if err != nil {
		return "", nil, err
	}
	if g == nil {
		return "", nil, notFound("group", name)
	}
	sum, err := access.SummarizeGroup(txn, g)
	if err != nil {
		return "", nil, err
	}
	return "group", sum, nil
}

type application struct {
	Name     string
	Versions []string
}

type reachData struct {
	Applications []application
	App, Version string
	// Reach is the answer for App/Version, nil before one is chosen.
	Reach *reachPage
}

// reachPage is one page of the users who can reach a version.
type reachPage struct {
	Application, Version string
	// Total counts the users on every page.
	Total int
	Users []access.ReachingUser
	Pager pager
}

func (s *Server) reach(r *request) (string, any, error) {
	txn := s.cfg.Store.Read()
	res, err := txn.Resources(spec.KindApplication)
	if err != nil {
		return "", nil, err
	}
	d := reachData{App: r.URL.Query().Get("app"), Version: r.URL.Query().Get("version")}
	for _, res := range res {
		if a, ok := res.Spec.(*spec.Application); ok {
			d.Applications = append(d.Applications, application{Name: res.Name, Versions: a.Versions})
		}
	}
	slices.SortFunc(d.Applications, func(a, b application) int { return cmp.Compare(store.Fold(a.Name), store.Fold(b.Name)) })
	if d.App == "" && d.Version == "" {
		return "reach", d, nil
	}
	after := r.URL.Query().Get("after")
	page, err := access.WhoCanReachPage(txn, d.App, d.Version, after, PageSize)
	switch {
	case errors.Is(err, access.ErrUnknownApplication):
		return "", nil, notFound("application", d.App)
	case errors.Is(err, access.ErrUnknownVersion):
		return "", nil, notFound("version", d.App+"/"+d.Version)
	case err != nil:
		return "", nil, err
	}
	d.Reach = &reachPage{Application: page.Application, Version: page.Version, Total: page.Total, Users: page.Users,
		Pager: pageLinks(Path+"reach", url.Values{"app": {d.App}, "version": {d.Version}}, after, page.Next)}
	return "reach", d, nil
}
