package peer

import (
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/elimity-com/scim"
	"github.com/scim2/filter-parser/v2"
)

// groups is the resource handler of /Groups.
type groups struct {
	s    *store
	fold func(string) string // the displayName index's key
}

// render returns group g with its members, unless the request excluded
// them as Entra's lookups do.
func (h groups) render(r *http.Request, id string, g *group) scim.Resource {
	if r != nil && slices.ContainsFunc(strings.Split(r.URL.Query().Get("excludedAttributes"), ","), func(a string) bool {
		return strings.EqualFold(strings.TrimSpace(a), "members")
	}) {
		return resource(id, g.attrs, g.created, g.modified)
	}
	attrs := make(scim.ResourceAttributes, len(g.attrs)+1)
	for k, v := range g.attrs {
		attrs[k] = v
	}
	members := make([]any, 0, len(g.members))
	for m := range g.members {
		members = append(members, map[string]any{"value": m})
	}
	attrs["members"] = members
	return resource(id, attrs, g.created, g.modified)
}

// memberIDs returns the ids of a members value: a list of {"value": id}.
func memberIDs(v any) ([]string, error) {
	l, ok := v.([]any)
	if !ok && v != nil {
		return nil, invalidValue("members must be a list")
	}
	ids := make([]string, 0, len(l))
	for _, e := range l {
		m, _ := e.(map[string]any)
		id, _ := m["value"].(string)
		if id == "" {
			return nil, invalidValue("a member without a value")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// addMembers adds users ids to group gid; each must exist.
func (s *store) addMembers(gid string, g *group, ids []string) error {
	for _, id := range ids {
		if _, ok := s.users.byID[id]; !ok {
			return invalidValue("no user %s", id)
		}
	}
	for _, id := range ids {
		g.members[id] = struct{}{}
		u := s.users.byID[id]
		if u.groups == nil {
			u.groups = map[string]struct{}{}
		}
		u.groups[gid] = struct{}{}
	}
	return nil
}

func (s *store) removeMember(gid string, g *group, id string) {
	delete(g.members, id)
	if u, ok := s.users.byID[id]; ok {
		delete(u.groups, gid)
	}
}

func (h groups) Create(r *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	ids, err := memberIDs(attrs["members"])
	if err != nil {
		return scim.Resource{}, err
	}
	delete(attrs, "members")
	id, now := newID(), time.Now()
	g := &group{attrs: attrs, members: map[string]struct{}{}, created: now, modified: now}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.addMembers(id, g, ids); err != nil {
		return scim.Resource{}, err
	}
	s.groups.put(id, g)
	s.byGroup.add(h.fold(str(attrs, "displayName")), id)
	return h.render(r, id, g), nil
}

func (h groups) Get(r *http.Request, id string) (scim.Resource, error) {
	h.s.mu.RLock()
	defer h.s.mu.RUnlock()
	g, ok := h.s.groups.byID[id]
	if !ok {
		return scim.Resource{}, notFound(id)
	}
	return h.render(r, id, g), nil
}

func (h groups) GetAll(r *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	s := h.s
	find := func() ([]string, bool) {
		return lookup(p.FilterValidator, "displayName", h.fold, func(k string) []string { return s.byGroup[k] })
	}
	attrs := func(g *group) scim.ResourceAttributes { return h.render(nil, "", g).Attributes }
	render := func(id string, g *group) scim.Resource { return h.render(r, id, g) }
	return list(s, &s.groups, p, find, attrs, render), nil
}

func (h groups) Replace(r *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	ids, err := memberIDs(attrs["members"])
	if err != nil {
		return scim.Resource{}, err
	}
	delete(attrs, "members")
	s := h.s
	g, unlock, err := lockFor(s, &s.groups, id)
	if err != nil {
		return scim.Resource{}, err
	}
	defer unlock()
	if err := h.setMembers(id, g, ids); err != nil {
		return scim.Resource{}, err
	}
	h.setAttrs(id, g, attrs)
	return h.render(r, id, g), nil
}

func (h groups) setMembers(id string, g *group, ids []string) error {
	for m := range g.members {
		h.s.removeMember(id, g, m)
	}
	return h.s.addMembers(id, g, ids)
}

func (h groups) setAttrs(id string, g *group, attrs scim.ResourceAttributes) {
	if o, n := h.fold(str(g.attrs, "displayName")), h.fold(str(attrs, "displayName")); o != n {
		h.s.byGroup.remove(o, id)
		h.s.byGroup.add(n, id)
	}
	g.attrs, g.modified = attrs, time.Now()
}

func (h groups) Delete(r *http.Request, id string) error {
	s := h.s
	g, unlock, err := lockFor(s, &s.groups, id)
	if err != nil {
		return err
	}
	defer unlock()
	for m := range g.members {
		s.removeMember(id, g, m)
	}
	s.byGroup.remove(h.fold(str(g.attrs, "displayName")), id)
	s.groups.del(id)
	return nil
}

// Patch applies add, remove and replace of members (a list of values, or
// remove by members[value eq "id"]) and replace of displayName and
// externalId. It answers 204: Entra reads nothing back.
func (h groups) Patch(r *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	ops, err := operations(ops)
	if err != nil {
		return scim.Resource{}, err
	}
	s := h.s
	g, unlock, err := lockFor(s, &s.groups, id)
	if err != nil {
		return scim.Resource{}, err
	}
	defer unlock()
	// Check every operation before applying any, so a failed PATCH
	// changes nothing.
	type change struct {
		op   scim.PatchOperation
		ids  []string
		attr string
	}
	changes := make([]change, 0, len(ops))
	for _, op := range ops {
		p := op.Path
		if p == nil || p.AttributePath.URIPrefix != nil || p.SubAttribute != nil || p.AttributePath.SubAttribute != nil {
			return scim.Resource{}, invalidPath("%s %v is not supported", op.Op, p)
		}
		c := change{op: op}
		switch name := strings.ToLower(p.AttributePath.AttributeName); {
		case name == "members" && p.ValueExpression != nil && op.Op == scim.PatchOperationRemove:
			// members[value eq "id"]
			e, ok := p.ValueExpression.(*filter.AttributeExpression)
			v, isStr := "", false
			if ok {
				v, isStr = e.CompareValue.(string)
			}
			if !isStr || e.Operator != filter.EQ || !strings.EqualFold(e.AttributePath.String(), "value") {
				return scim.Resource{}, invalidPath("%s %v is not supported", op.Op, p)
			}
			c.ids, c.attr = []string{v}, "members"
		case name == "members" && p.ValueExpression == nil:
			if c.ids, err = memberIDs(op.Value); err != nil {
				return scim.Resource{}, err
			}
			for _, m := range c.ids {
				if _, ok := s.users.byID[m]; !ok && op.Op != scim.PatchOperationRemove {
					return scim.Resource{}, invalidValue("no user %s", m)
				}
			}
			c.attr = "members"
		case (name == "displayname" || name == "externalid") && p.ValueExpression == nil && op.Op != scim.PatchOperationRemove:
			if _, ok := op.Value.(string); !ok {
				return scim.Resource{}, invalidValue("%s must be a string", p)
			}
			c.attr = map[string]string{"displayname": "displayName", "externalid": "externalId"}[name]
		default:
			return scim.Resource{}, invalidPath("%s %v is not supported", op.Op, p)
		}
		changes = append(changes, c)
	}
	attrs := g.attrs
	for _, c := range changes {
		switch {
		case c.attr != "members":
			attrs = clone(attrs, "")
			attrs[c.attr] = c.op.Value
		case c.op.Op == scim.PatchOperationRemove && c.op.Value == nil && c.op.Path.ValueExpression == nil:
			_ = h.setMembers(id, g, nil)
		case c.op.Op == scim.PatchOperationRemove:
			for _, m := range c.ids {
				s.removeMember(id, g, m)
			}
		case c.op.Op == scim.PatchOperationReplace:
			_ = h.setMembers(id, g, c.ids)
		default:
			_ = s.addMembers(id, g, c.ids)
		}
	}
	h.setAttrs(id, g, attrs)
	return scim.Resource{}, nil
}
