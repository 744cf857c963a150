// Package peer is the "library peer" idrecon-load measures idrecon against:
// an in-memory SCIM 2.0 server built on github.com/elimity-com/scim, the
// way a team would write one with that library (Users with the enterprise
// extension, Groups, a bearer token in front). It exists so that idrecon's
// throughput and memory can be read side by side with a plain server in one
// run; it keeps the indexes any real server keeps for the lookups Entra
// makes, so that the comparison is fair, and nothing more.
package peer

import (
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	scimfilter "github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	"github.com/scim2/filter-parser/v2"
)

// BasePath is where New serves SCIM: the library answers under /v2.
const BasePath = "/scim/v2"

// allowStrings lets the library take "False" for active, as Entra sends it
// without aadOptscim062020: the library refuses it otherwise, and the
// switch is one for the whole process.
var allowStrings sync.Once

// New returns the server's handler: SCIM under BasePath, for requests with
// "Authorization: Bearer token".
func New(token string) (http.Handler, error) {
	allowStrings.Do(func() { schema.SetAllowStringValues(true) })
	st := newStore()
	userSchema, groupSchema := schema.CoreUserSchema(), schema.CoreGroupSchema()
	srv, err := scim.NewServer(&scim.ServerArgs{
		// MaxResults caps count: the read-back asks for pages of 1000.
		ServiceProviderConfig: &scim.ServiceProviderConfig{MaxResults: 1000, SupportFiltering: true, SupportPatch: true},
		ResourceTypes: []scim.ResourceType{{
			ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
			Schema:           userSchema,
			SchemaExtensions: []scim.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
			Handler:          users{st, foldFor(userSchema, "userName")},
		}, {
			ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups",
			Schema:  groupSchema,
			Handler: groups{st, foldFor(groupSchema, "displayName")},
		}},
	})
	if err != nil {
		return nil, err
	}
	want := []byte("Bearer " + token)
	inner := http.StripPrefix(strings.TrimSuffix(BasePath, "/v2"), srv)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"Unauthorized","status":"401"}`)
			return
		}
		inner.ServeHTTP(w, r)
	}), nil
}

// foldFor returns a key function for an index on attribute name of s:
// lower case when the schema says the attribute is not case exact.
func foldFor(s schema.Schema, name string) func(string) string {
	for _, a := range s.Attributes {
		if strings.EqualFold(a.Name(), name) && !a.CaseExact() {
			return strings.ToLower
		}
	}
	return func(v string) string { return v }
}

// user and group are stored resources. attrs is copy-on-write: an update
// stores a new map, so the library may render one after the lock is gone.
type user struct {
	attrs             scim.ResourceAttributes
	created, modified time.Time
	groups            map[string]struct{} // the groups listing the user
}

type group struct {
	attrs             scim.ResourceAttributes // members aside
	members           map[string]struct{}
	created, modified time.Time
}

// table holds resources by id, in creation order for paging.
type table[T any] struct {
	byID  map[string]*T
	order []string // with ids of deleted resources until compacted
	dead  int
}

func (t *table[T]) put(id string, v *T) { t.byID[id] = v; t.order = append(t.order, id) }

func (t *table[T]) del(id string) {
	delete(t.byID, id)
	if t.dead++; t.dead > len(t.order)/2 {
		t.compact()
	}
}

func (t *table[T]) compact() {
	live := t.order[:0]
	for _, id := range t.order {
		if _, ok := t.byID[id]; ok {
			live = append(live, id)
		}
	}
	clear(t.order[len(live):])
	t.order, t.dead = live, 0
}

// index maps an attribute value (folded when not case exact) to ids.
type index map[string][]string

func (x index) add(key, id string) {
	if key != "" {
		x[key] = append(x[key], id)
	}
}

func (x index) remove(key, id string) {
	ids := x[key]
	for i, v := range ids {
		if v == id {
			ids[i] = ids[len(ids)-1]
			ids = ids[:len(ids)-1]
			break
		}
	}
	if len(ids) == 0 {
		delete(x, key)
	} else {
		x[key] = ids
	}
}

type store struct {
	mu         sync.RWMutex
	users      table[user]
	groups     table[group]
	byUserName map[string]string // userName is unique
	byExtID    index             // users' externalId
	byGroup    index             // groups' displayName
}

func newStore() *store {
	return &store{
		users:      table[user]{byID: map[string]*user{}},
		groups:     table[group]{byID: map[string]*group{}},
		byUserName: map[string]string{},
		byExtID:    index{},
		byGroup:    index{},
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6], b[8] = b[6]&0x0f|0x40, b[8]&0x3f|0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func str(attrs scim.ResourceAttributes, name string) string {
	s, _ := attrs[name].(string)
	return s
}

func resource(id string, attrs scim.ResourceAttributes, created, modified time.Time) scim.Resource {
	return scim.Resource{ID: id, Attributes: attrs, Meta: scim.Meta{Created: &created, LastModified: &modified}}
}

// lookup returns the ids an indexed equality filter selects, or ok false
// when the filter is not one the indexes answer.
func lookup(v *scimfilter.Validator, attr string, fold func(string) string, ix func(string) []string) (ids []string, ok bool) {
	if v == nil {
		return nil, false
	}
	e, isAttr := v.GetFilter().(*filter.AttributeExpression)
	if !isAttr || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || !strings.EqualFold(e.AttributePath.AttributeName, attr) {
		return nil, false
	}
	s, isStr := e.CompareValue.(string)
	if !isStr {
		return nil, false
	}
	return ix(fold(s)), true
}

// page cuts ids to the 1-based startIndex and count of p.
func page(ids []string, p scim.ListRequestParams) []string {
	start := min(max(p.StartIndex, 1)-1, len(ids))
	return ids[start:min(start+max(p.Count, 0), len(ids))]
}

// list answers a list request on t: from the ids find gives when an index
// answers the filter, by a scan with the library's filter validator
// otherwise.
func list[T any](s *store, t *table[T], p scim.ListRequestParams, find func() ([]string, bool), attrs func(*T) scim.ResourceAttributes, render func(string, *T) scim.Resource) scim.Page {
	s.mu.RLock()
	if t.dead > 0 && p.FilterValidator == nil {
		// Drop the deleted ids once rather than skip them on every page.
		s.mu.RUnlock()
		s.mu.Lock()
		t.compact()
		s.mu.Unlock()
		s.mu.RLock()
	}
	defer s.mu.RUnlock()
	ids, indexed := find()
	if !indexed && p.FilterValidator == nil && t.dead == 0 {
		ids, indexed = t.order, true
	}
	if !indexed {
		ids = nil
		for _, id := range t.order {
			if v, ok := t.byID[id]; ok && (p.FilterValidator == nil || p.FilterValidator.PassesFilter(attrs(v)) == nil) {
				ids = append(ids, id)
			}
		}
	}
	out := scim.Page{TotalResults: len(ids), Resources: []scim.Resource{}}
	for _, id := range page(ids, p) {
		out.Resources = append(out.Resources, render(id, t.byID[id]))
	}
	return out
}

func notFound(id string) error { return scimerrors.ScimErrorResourceNotFound(id) }

// lockFor takes s's write lock and returns t's object id. Without one it
// releases the lock and answers not found; else the caller calls unlock.
func lockFor[T any](s *store, t *table[T], id string) (v *T, unlock func(), err error) {
	s.mu.Lock()
	v, ok := t.byID[id]
	if !ok {
		s.mu.Unlock()
		return nil, nil, notFound(id)
	}
	return v, s.mu.Unlock, nil
}

func invalidPath(format string, args ...any) error {
	e := scimerrors.ScimErrorInvalidPath
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

func invalidValue(format string, args ...any) error {
	e := scimerrors.ScimErrorInvalidValue
	e.Detail = fmt.Sprintf(format, args...)
	return e
}

// clone copies attrs one level deep, and the nested map or list of
// attribute attr (its elements too), so that an update leaves the stored map as it was.
func clone(attrs scim.ResourceAttributes, attr string) scim.ResourceAttributes {
	out := make(scim.ResourceAttributes, len(attrs)+1)
	for k, v := range attrs {
		out[k] = v
	}
	switch v := attrs[attr].(type) {
	case map[string]any:
		m := make(map[string]any, len(v)+1)
		for k, x := range v {
			m[k] = x
		}
		out[attr] = m
	case []any:
		l := make([]any, len(v))
		for i, x := range v {
			if m, ok := x.(map[string]any); ok {
				c := make(map[string]any, len(m))
				for k, y := range m {
					c[k] = y
				}
				x = c
			}
			l[i] = x
		}
		out[attr] = l
	}
	return out
}

// operations expands the value-map form of replace and add (no path, a
// map of paths to values) into one operation per path.
func operations(ops []scim.PatchOperation) ([]scim.PatchOperation, error) {
	var out []scim.PatchOperation
	for _, op := range ops {
		m, isMap := op.Value.(map[string]any)
		if op.Path != nil || !isMap || op.Op == scim.PatchOperationRemove {
			out = append(out, op)
			continue
		}
		for k, v := range m {
			p, err := filter.ParsePath([]byte(k))
			if err != nil {
				return nil, invalidPath("%q: %v", k, err)
			}
			out = append(out, scim.PatchOperation{Op: op.Op, Path: &p, Value: v})
		}
	}
	return out, nil
}

// matches reports whether the element m of a multi-valued attribute passes
// the value expression of a path, of the form `sub eq "value"` (case
// insensitively, as type and value are not case exact in the schemas).
func matches(e filter.Expression, m map[string]any) (bool, error) {
	a, ok := e.(*filter.AttributeExpression)
	if !ok || a.Operator != filter.EQ || a.AttributePath.SubAttribute != nil {
		return false, invalidPath("unsupported value filter %v", e)
	}
	want, _ := a.CompareValue.(string)
	got, _ := m[a.AttributePath.AttributeName].(string)
	return strings.EqualFold(got, want), nil
}
