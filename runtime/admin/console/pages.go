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

type listData[T any] struct {
	Query  string
	Active string // "", "true" or "false" (users only)
	Items  []T
	// Next is the URL of the following page, "" on the last.
	Next string
	// First is set on a page after the first.
	First string
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

// pageURLs are the links to the first and the following page of a listing.
func pageURLs(base, q, active, after, next string) (first, following string) {
	v := url.Values{}
	if q != "" {
		v.Set("q", q)
	}
	if active != "" {
		v.Set("active", active)
	}
	if after != "" {
		first = base
		if len(v) > 0 {
			first += "?" + v.Encode()
		}
	}
	if next != "" {
		v.Set("after", next)
		following = base + "?" + v.Encode()
	}
	return first, following
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
	d := listData[access.UserSummary]{Query: q, Active: active, Items: items}
	d.First, d.Next = pageURLs(Path+"users", q, active, after, next)
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
	d := listData[access.GroupSummary]{Query: q, Items: items}
	d.First, d.Next = pageURLs(Path+"groups", q, "", after, next)
	return "groups", d, nil
}

type userData struct {
	access.UserSummary
	Roles    []access.RoleGrant
	Versions []access.VersionGrant
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
	return "user", userData{UserSummary: sum, Roles: e.Roles(), Versions: e.Versions()}, nil
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
	Reach *access.Reach
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
	d.Reach, err = access.WhoCanReach(txn, d.App, d.Version)
	switch {
	case errors.Is(err, access.ErrUnknownApplication):
		return "", nil, notFound("application", d.App)
	case errors.Is(err, access.ErrUnknownVersion):
		return "", nil, notFound("version", d.App+"/"+d.Version)
	case err != nil:
		return "", nil, err
	}
	return "reach", d, nil
}
