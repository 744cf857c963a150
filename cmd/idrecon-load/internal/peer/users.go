package peer

import (
	"net/http"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
)

// users is the resource handler of /Users.
type users struct {
	s    *store
	fold func(string) string // the userName index's key
}

func exact(v string) string { return v }

func (h users) render(id string, u *user) scim.Resource {
	return resource(id, u.attrs, u.created, u.modified)
}

func (h users) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	id, now, name := newID(), time.Now(), h.fold(str(attrs, "userName"))
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.byUserName[name]; taken {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	u := &user{attrs: attrs, created: now, modified: now}
	s.users.put(id, u)
	s.byUserName[name] = id
	s.byExtID.add(str(attrs, "externalId"), id)
	return h.render(id, u), nil
}

func (h users) Get(r *http.Request, id string) (scim.Resource, error) {
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	u, ok := h.s.users.byID[id]
	if !ok {
		return scim.Resource{}, notFound(id)
	}
	return h.render(id, u), nil
}

func (h users) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	s := h.s
	find := func() ([]string, bool) {
		if ids, ok := lookup(p.FilterValidator, "userName", h.fold, func(k string) []string {
			if id, ok := s.byUserName[k]; ok {
				return []string{id}
			}
			return nil
		}); ok {
			return ids, true
		}
		return lookup(p.FilterValidator, "externalId", exact, func(k string) []string { return s.byExtID[k] })
	}
	return list(s, &s.users, p, find, func(u *user) scim.ResourceAttributes { return u.attrs }, h.render), nil
}

func (h users) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	s := h.s
	u, unlock, err := lockFor(s, &s.users, id)
	if err != nil {
		return scim.Resource{}, err
	}
	defer unlock()
	if err := h.reindex(id, u.attrs, attrs); err != nil {
		return scim.Resource{}, err
	}
	u.attrs, u.modified = attrs, time.Now()
	return h.render(id, u), nil
}

// reindex moves user id's index entries from old to new attributes; it
// fails, changing nothing, when new takes another user's userName.
func (h users) reindex(id string, old, new scim.ResourceAttributes) error {
	s := h.s
	if o, n := h.fold(str(old, "userName")), h.fold(str(new, "userName")); o != n {
		if _, taken := s.byUserName[n]; taken {
			return scimerrors.ScimErrorUniqueness
		}
		delete(s.byUserName, o)
		s.byUserName[n] = id
	}
	if o, n := str(old, "externalId"), str(new, "externalId"); o != n {
		s.byExtID.remove(o, id)
		s.byExtID.add(n, id)
	}
	return nil
}

func (h users) Delete(r *http.Request, id string) error {
	s := h.s
	u, unlock, err := lockFor(s, &s.users, id)
	if err != nil {
		return err
	}
	defer unlock()
	for gid := range u.groups {
		delete(s.groups.byID[gid].members, id)
	}
	delete(s.byUserName, h.fold(str(u.attrs, "userName")))
	s.byExtID.remove(str(u.attrs, "externalId"), id)
	s.users.del(id)
	return nil
}

func (h users) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	ops, err := operations(ops)
	if err != nil {
		return scim.Resource{}, err
	}
	s := h.s
	u, unlock, err := lockFor(s, &s.users, id)
	if err != nil {
		return scim.Resource{}, err
	}
	defer unlock()
	attrs := u.attrs
	for _, op := range ops {
		if attrs, err = patchUser(attrs, op); err != nil {
			return scim.Resource{}, err
		}
	}
	if err := h.reindex(id, u.attrs, attrs); err != nil {
		return scim.Resource{}, err
	}
	u.attrs, u.modified = attrs, time.Now()
	return h.render(id, u), nil
}

// userSingular are the singular attributes a PATCH may set, by lower-case
// name.
var userSingular = map[string]string{"active": "active", "displayname": "displayName", "externalid": "externalId"}

// patchUser applies op (add or replace) to attrs, returning new
// attributes. It supports the paths Entra sends: active, displayName,
// externalId, name.givenName and name.familyName, and
// emails[type eq "work"].value.
func patchUser(attrs scim.ResourceAttributes, op scim.PatchOperation) (scim.ResourceAttributes, error) {
	p := op.Path
	if op.Op == scim.PatchOperationRemove || p == nil {
		return nil, invalidPath("%s without a path is not supported", op.Op)
	}
	if u := p.AttributePath.URIPrefix; u != nil && *u != "urn:ietf:params:scim:schemas:core:2.0:User" {
		return nil, invalidPath("%s is not supported", p)
	}
	name, sub := strings.ToLower(p.AttributePath.AttributeName), strings.ToLower(p.AttributePath.SubAttributeName())
	switch {
	case p.ValueExpression == nil && sub == "" && userSingular[name] != "":
		out := clone(attrs, "")
		out[userSingular[name]] = op.Value
		return out, nil
	case p.ValueExpression == nil && name == "name" && (sub == "givenname" || sub == "familyname"):
		out := clone(attrs, "name")
		m, _ := out["name"].(map[string]any)
		if m == nil {
			m = map[string]any{}
			out["name"] = m
		}
		m[map[string]string{"givenname": "givenName", "familyname": "familyName"}[sub]] = op.Value
		return out, nil
	case name == "emails" && p.ValueExpression != nil && strings.EqualFold(p.SubAttributeName(), "value"):
		out := clone(attrs, "emails")
		l, _ := out["emails"].([]any)
		hit := false
		for _, e := range l {
			m, _ := e.(map[string]any)
			ok, err := matches(p.ValueExpression, m)
			if err != nil {
				return nil, err
			}
			if ok {
				m["value"], hit = op.Value, true
			}
		}
		if !hit {
			e := scimerrors.ScimErrorNoTarget
			e.Detail = "no email matches " + p.String()
			return nil, e
		}
		return out, nil
	}
	return nil, invalidPath("%s %s is not supported", op.Op, p)
}
