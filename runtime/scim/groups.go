package scim

import (
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/patch"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// groupState is a group as PATCH and PUT see it: its attributes and its
// member ids.
type groupState struct {
	displayName string
	externalID  string
	members     []string
}

func groupFromDoc(doc map[string]any) (groupState, error) {
	var g groupState
	g.displayName, _ = doc["displayName"].(string)
	if strings.TrimSpace(g.displayName) == "" {
		return g, scimerr.New(scimerr.InvalidValue, "displayName is required")
	}
	g.externalID, _ = doc["externalId"].(string)
	list, _ := doc["members"].([]any)
	seen := make(map[string]bool, len(list))
	for _, e := range list {
		m, _ := e.(map[string]any)
		v, ok := m["value"].(string)
		if !ok || v == "" {
			return g, scimerr.New(scimerr.InvalidValue, "every member needs a value (the member's id)")
		}
		if !seen[v] {
			seen[v] = true
			g.members = append(g.members, v)
		}
	}
	return g, nil
}

func (g groupState) doc() map[string]any {
	doc := map[string]any{"displayName": g.displayName}
	if g.externalID != "" {
		doc["externalId"] = g.externalID
	}
	if len(g.members) > 0 {
		list := make([]any, len(g.members))
		for i, m := range g.members {
			list[i] = map[string]any{"value": m}
		}
		doc["members"] = list
	}
	return doc
}

func errGroupNameTaken(name, id string) error {
	return &scimerr.Error{Status: http.StatusConflict, ScimType: scimerr.Uniqueness,
		Detail: fmt.Sprintf("displayName %q is already used by group %s (displayName is unique, case-insensitively)", name, id)}
}

// resolveMembers returns the store's strings for ids (see
// store.Txn.Members), or fails with invalidValue naming every id that is
// neither a user nor a group.
func resolveMembers(txn *store.Txn, groupID string, ids []string) ([]string, error) {
	if slices.Contains(ids, groupID) {
		return nil, scimerr.New(scimerr.InvalidValue, "a group cannot be a member of itself")
	}
	held, unknown, err := txn.Members(ids)
	if err != nil {
		return nil, err
	}
	if len(unknown) > 0 {
		return nil, scimerr.New(scimerr.InvalidValue, "unknown member ids: %s", strings.Join(unknown, ", "))
	}
	return held, nil
}

// writeGroup stores next as the group's state: the group record g and the
// membership changes against cur (nil for a new group). It validates
// everything — members, displayName uniqueness against cur's name — before
// it mutates.
func writeGroup(txn *store.Txn, limits Limits, g *store.Group, cur *groupState, next groupState) error {
	have := map[string]bool{}
	if cur != nil {
		for _, m := range cur.members {
			have[m] = true
		}
	}
	want := make(map[string]bool, len(next.members))
	var added []string
	for _, m := range next.members {
		want[m] = true
		if !have[m] {
			added = append(added, m)
		}
	}
	added, err := resolveMembers(txn, g.ID, added)
	if err != nil {
		return err
	}
	// Any changed displayName is looked up, one that differs in case only
	// too: the lookup folds as the index does, so it alone decides.
	if cur == nil || next.displayName != cur.displayName {
		if other, err := txn.GroupByName(next.displayName); err != nil {
			return err
		} else if other != nil && other.ID != g.ID {
			return errGroupNameTaken(next.displayName, other.ID)
		}
	}
	var removed []string
	for m := range have {
		if !want[m] {
			removed = append(removed, m)
		}
	}
	newGroups := 0
	if cur == nil {
		newGroups = 1
	}
	if err := limits.room(txn, grows(0, newGroups, len(added)-len(removed))); err != nil {
		return err
	}
	if err := txn.Insert(store.TableGroups, g); err != nil {
		return fmt.Errorf("insert group: %w", err)
	}
	return txn.ChangeMembers(g.ID, added, removed, g.Modified)
}

// groupView returns g as SCIM shows it, with its members: meta.version and
// lastModified count membership changes too, which the members row keeps
// apart from the group row.
func groupView(txn *store.Txn, g *store.Group) (*store.Group, idset.Set, error) {
	m, err := txn.MembersOf(g.ID)
	if err != nil || m == nil {
		return g, idset.Set{}, err
	}
	v := *g
	v.Version += m.Version
	if m.Modified.After(v.Modified) {
		v.Modified = m.Modified
	}
	return &v, m.IDs, nil
}

func (s *Server) groupBody(w http.ResponseWriter, r *request) (groupState, error) {
	body, err := s.readObject(w, r)
	if err != nil {
		return groupState{}, err
	}
	if err := checkSchemas(body, schema.URIGroup); err != nil {
		return groupState{}, err
	}
	doc, err := schema.Normalize(schema.GroupType, body)
	if err != nil {
		return groupState{}, err
	}
	return groupFromDoc(doc)
}

func (s *Server) createGroup(w http.ResponseWriter, r *request, _ string) error {
	next, err := s.groupBody(w, r)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	g := &store.Group{ID: newID(), DisplayName: next.displayName, ExternalID: next.externalID, Created: now, Modified: now, Version: 1}
	if len(next.members) > 0 {
		if err := r.settle(); err != nil {
			return err
		}
	}
	var out *store.Group
	err = r.create(func() error {
		return s.st.Update(r.Context(), func(txn *store.Txn) error {
			if err := writeGroup(txn, s.opts.Limits, g, nil, next); err != nil {
				return err
			}
			out, _, err = groupView(txn, g)
			return err
		})
	})
	s.audit(r, "create", "Group", g.ID, err)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.baseURL+"/Groups/"+g.ID)
	return s.writeGroup(w, r, http.StatusCreated, out, next.members)
}

func (s *Server) writeGroup(w http.ResponseWriter, r *request, status int, g *store.Group, members []string) error {
	w.Header().Set("ETag", etag(g.Version))
	p := parseProjection(r.query, schema.GroupType)
	if members == nil {
		members = []string{}
	}
	if p != nil {
		b, err := json.Marshal(p.apply(groupMap(r.baseURL, g, members, p.wants("members"))))
		if err != nil {
			return err
		}
		writeRaw(w, status, b)
		return nil
	}
	b := r.buffer()
	*b = appendGroup(*b, r.baseURL, g, members, true)
	writeRaw(w, status, *b)
	return nil
}

func (s *Server) getGroup(w http.ResponseWriter, r *request, id string) error {
	txn := s.st.Read()
	g, err := txn.GroupByID(id)
	if err != nil {
		return err
	}
	if g == nil {
		return errNotFound("Group", id)
	}
	g, members, err := groupView(txn, g)
	if err != nil {
		return err
	}
	if notModified(w, r, g.Version) {
		return nil
	}
	var list []string
	if parseProjection(r.query, schema.GroupType).wants("members") {
		list = members.Slice()
	}
	return s.writeGroup(w, r, http.StatusOK, g, list)
}

// updateGroup runs change on the current group state inside a write, and
// reports whether the write stored anything: a state equal to the stored
// one is not written, so its version and lastModified stay.
func (s *Server) updateGroup(r *request, id string, change func(cur groupState) (groupState, error)) (out *store.Group, members []string, wrote bool, err error) {
	err = s.st.Update(r.Context(), func(txn *store.Txn) error {
		// The write may run again, on other state: only its last run's
		// decision counts.
		wrote = false
		g, err := txn.GroupByID(id)
		if err != nil {
			return err
		}
		if g == nil {
			return errNotFound("Group", id)
		}
		view, ids, err := groupView(txn, g)
		if err != nil {
			return err
		}
		if err := checkIfMatch(r, view.Version); err != nil {
			return err
		}
		cur := groupState{displayName: g.DisplayName, externalID: g.ExternalID, members: ids.Slice()}
		next, err := change(cur)
		if err != nil {
			return err
		}
		members = next.members
		if next.displayName == cur.displayName && next.externalID == cur.externalID && sameSet(cur.members, next.members) {
			out = view
			return nil
		}
		ng := *g
		ng.DisplayName, ng.ExternalID, ng.Modified, ng.Version = next.displayName, next.externalID, s.opts.Now(), g.Version+1
		if err := writeGroup(txn, s.opts.Limits, &ng, &cur, next); err != nil {
			return err
		}
		wrote = true
		out, _, err = groupView(txn, &ng)
		return err
	})
	return out, members, wrote, err
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(x, y)
}

func (s *Server) replaceGroup(w http.ResponseWriter, r *request, id string) error {
	next, err := s.groupBody(w, r)
	if err != nil {
		return err
	}
	g, members, wrote, err := s.updateGroup(r, id, func(groupState) (groupState, error) { return next, nil })
	if wrote {
		s.audit(r, "replace", "Group", id, err)
	}
	if err != nil {
		return err
	}
	return s.writeGroup(w, r, http.StatusOK, g, members)
}

func (s *Server) patchGroup(w http.ResponseWriter, r *request, id string) error {
	raw, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if d, ok := entraMemberDelta(raw); ok {
		return s.patchMembers(w, r, id, d)
	}
	body, err := decodeObject(raw)
	if err != nil {
		return err
	}
	ops, err := patch.Parse(body)
	if err != nil {
		return err
	}
	if d, ok, err := newMemberDelta(ops); err != nil {
		return err
	} else if ok {
		return s.patchMembers(w, r, id, d)
	}
	g, members, wrote, err := s.updateGroup(r, id, func(cur groupState) (groupState, error) {
		doc := cur.doc()
		if err := patch.Apply(doc, ops, schema.GroupType); err != nil {
			return groupState{}, err
		}
		return groupFromDoc(doc)
	})
	if wrote {
		s.audit(r, "patch", "Group", id, err)
	}
	if err != nil {
		return err
	}
	return s.patched(w, r, g, members)
}

// wantsPatched reports whether a group PATCH must answer with the group:
// RFC 7644 §3.5.2 lets it answer 204 unless the request names attributes
// to return.
func wantsPatched(r *request) bool {
	q := r.query
	return param(q, "attributes") != "" || param(q, "excludedAttributes") != ""
}

// patched answers a successful group PATCH: 204, or the group as
// wantsPatched asks.
func (s *Server) patched(w http.ResponseWriter, r *request, g *store.Group, members []string) error {
	if !wantsPatched(r) {
		w.Header().Set("ETag", etag(g.Version))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return s.writeGroup(w, r, http.StatusOK, g, members)
}

func (s *Server) deleteGroup(w http.ResponseWriter, r *request, id string) error {
	return s.deleteObject(w, r, "Group", store.TableGroups, id, func(txn *store.Txn) (any, uint64, error) {
		g, err := txn.GroupByID(id)
		if g == nil || err != nil {
			return nil, 0, err
		}
		view, _, err := groupView(txn, g)
		return g, view.Version, err
	})
}

// groupCandidates is userCandidates for groups; the members index answers
// "which groups is this id a member of".
func groupCandidates(txn *store.Txn, f *filter.Filter) (seq iter.Seq[*store.Group], exact bool, plan string, err error) {
	fromIDs := func(ids []string) iter.Seq[*store.Group] {
		slices.Sort(ids)
		return func(yield func(*store.Group) bool) {
			for _, id := range ids {
				g, err := txn.GroupByID(id)
				if err == nil && g != nil && !yield(g) {
					return
				}
			}
		}
	}
	if f == nil {
		seq, err := rows[*store.Group](txn, store.TableGroups, store.IndexID)
		return seq, true, "all", err
	}
	terms, single := f.Terms()
	for _, key := range []string{"id", "displayName", "members", "externalId"} {
		for _, t := range terms {
			if t.Key != key {
				continue
			}
			switch key {
			case "id":
				return fromIDs([]string{t.Value}), single, key, nil
			case "displayName":
				g, err := txn.GroupByName(t.Value)
				var ids []string
				if g != nil {
					ids = []string{g.ID}
				}
				return fromIDs(ids), single, key, err
			case "members":
				ids, err := txn.GroupIDsOf(t.Value)
				return fromIDs(ids), single, key, err
			case "externalId":
				seq, err := rows[*store.Group](txn, store.TableGroups, store.IndexExternalID, t.Value)
				return seq, single, key, err
			}
		}
	}
	seq, err = rows[*store.Group](txn, store.TableGroups, store.IndexID)
	return seq, false, "scan", err
}

// allGroups pages through every group for unfiltered lists.
var allGroups = pager{
	count: (*store.Txn).GroupCount,
	after: func(txn *store.Txn, id string) (iter.Seq2[listed, error], error) {
		groups, err := txn.GroupsAfter(id)
		return groupItems(txn, groups), err
	},
}

func (s *Server) listGroups(w http.ResponseWriter, r *request, _ string) error {
	return s.list(w, r, schema.GroupType, &allGroups, func(txn *store.Txn, f *filter.Filter) (iter.Seq2[listed, error], bool, error) {
		seq, exact, _, err := groupCandidates(txn, f)
		return groupItems(txn, seq), exact, err
	})
}

// groupItems yields each group of seq with its members, as lists show it.
func groupItems(txn *store.Txn, seq iter.Seq[*store.Group]) iter.Seq2[listed, error] {
	return func(yield func(listed, error) bool) {
		if seq == nil {
			return
		}
		for g := range seq {
			v, members, err := groupView(txn, g)
			if !yield(groupItem{v, members}, err) || err != nil {
				return
			}
		}
	}
}
