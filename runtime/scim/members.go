package scim

import (
	"fmt"
	"net/http"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/patch"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
)

// memberDelta is a group PATCH that only adds and removes listed members —
// what Entra sends for every membership change. It is applied against the
// memberships index directly, so its cost grows with the batch, not with
// the group: the write runs on the store's single committer.
type memberDelta struct {
	ids []string
	add map[string]bool // id → true to add, false to remove (last op wins)
}

// newMemberDelta returns ok false when ops do anything else (rename, replace
// or remove all members); those take the general path.
func newMemberDelta(ops []patch.Operation) (*memberDelta, bool, error) {
	d := &memberDelta{add: map[string]bool{}}
	members := schema.Group.Attr("members")
	set := func(id string, add bool) {
		if _, seen := d.add[id]; !seen {
			d.ids = append(d.ids, id)
		}
		d.add[id] = add
	}
	for _, op := range ops {
		if op.Path == "" {
			return nil, false, nil
		}
		p, err := filter.ParsePath(op.Path, schema.GroupType)
		if err != nil || p.Attr.Attr != members || p.Attr.Sub != nil {
			return nil, false, nil
		}
		if p.Filter != nil {
			// members[value eq "…"]: remove that one member.
			id, ok := p.Creates["value"].(string)
			if op.Op != "remove" || !ok || len(p.Creates) != 1 {
				return nil, false, nil
			}
			set(id, false)
			continue
		}
		if (op.Op != "add" && op.Op != "remove") || !op.HasValue {
			return nil, false, nil
		}
		v, err := schema.Value(members, op.Value)
		if err != nil {
			return nil, true, err
		}
		list, _ := v.([]any)
		for _, e := range list {
			m, _ := e.(map[string]any)
			id, ok := m["value"].(string)
			if !ok || id == "" {
				return nil, true, scimerr.New(scimerr.InvalidValue, "every member needs a value (the member's id)")
			}
			set(id, op.Op == "add")
		}
	}
	return d, true, nil
}

// apply changes group id's memberships inside a write. It validates
// everything before it mutates.
func (d *memberDelta) apply(s *Server, r *request, txn *store.Txn, id string) error {
	g, err := txn.GroupByID(id)
	if err != nil {
		return err
	}
	if g == nil {
		return errNotFound("Group", id)
	}
	if err := checkIfMatch(r, g.Version); err != nil {
		return err
	}
	var added []string
	var removed []any
	for _, m := range d.ids {
		cur, err := txn.First(store.TableMemberships, store.IndexID, id, m)
		if err != nil {
			return err
		}
		switch {
		case d.add[m] && cur == nil:
			added = append(added, m)
		case !d.add[m] && cur != nil:
			removed = append(removed, cur)
		}
	}
	if err := checkMembers(txn, id, added); err != nil {
		return err
	}
	if len(added) == 0 && len(removed) == 0 {
		return nil
	}
	ng := *g
	ng.Modified, ng.Version = s.opts.Now(), g.Version+1
	if err := txn.Insert(store.TableGroups, &ng); err != nil {
		return fmt.Errorf("insert group: %w", err)
	}
	for _, m := range added {
		if err := txn.Insert(store.TableMemberships, &store.Membership{GroupID: id, MemberID: m}); err != nil {
			return fmt.Errorf("insert membership: %w", err)
		}
	}
	for _, m := range removed {
		if err := txn.Delete(store.TableMemberships, m); err != nil {
			return fmt.Errorf("delete membership: %w", err)
		}
	}
	return nil
}

func (s *Server) patchMembers(w http.ResponseWriter, r *request, id string, d *memberDelta) error {
	err := s.st.Update(r.Context(), func(txn *store.Txn) error { return d.apply(s, r, txn, id) })
	if err != nil {
		return err
	}
	s.audit(r, "patch", "Group", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
