package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/patch"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// memberDelta is a group PATCH that only adds and removes listed members —
// what Entra sends for every membership change. It changes the members row
// without rewriting the group, and its cost grows with the batch and the
// group's size only by a copy of the member list: the write runs on the
// store's single committer.
type memberDelta struct {
	ids []string
	add map[string]bool // id → true to add, false to remove (last op wins)
	// checked is set when precheck found every member to add, and held
	// then has the store's string for each id to add, by index of ids.
	checked snapshotCheck
	held    []string
}

// newMemberDelta returns ok false when ops do anything else (rename, replace
// or remove all members); those take the general path.
func newMemberDelta(ops []patch.Operation) (*memberDelta, bool, error) {
	d := &memberDelta{add: map[string]bool{}}
	members := schema.Group.Attr("members")
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
			d.set(id, false)
			continue
		}
		if (op.Op != "add" && op.Op != "remove") || !op.HasValue {
			return nil, false, nil
		}
		list, ok := op.Value.([]any)
		if !ok {
			list = []any{op.Value}
		}
		named := 0
		for _, e := range list {
			id, ok := plainMember(e)
			if !ok {
				// Anything but Entra's shape is normalised as the general
				// path would, one element at a time.
				v, err := schema.Value(members, []any{e})
				if err != nil {
					return nil, true, err
				}
				if v == nil {
					continue
				}
				m, _ := v.([]any)[0].(map[string]any)
				if id, ok = m["value"].(string); !ok || id == "" {
					return nil, true, scimerr.New(scimerr.InvalidValue, "every member needs a value (the member's id)")
				}
			}
			d.set(id, op.Op == "add")
			named++
		}
		if op.Op == "remove" && named == 0 {
			// Removing "" or [] must neither remove every member nor
			// succeed having removed none, as patch.Apply also answers.
			return nil, true, scimerr.New(scimerr.InvalidValue, "remove of members with a value needs the members to remove")
		}
	}
	return d, true, nil
}

// entraMemberPatch is a PATCH body that only adds or removes listed members
// with the "members" path, each as {"value": id} or {"$ref": null,
// "value": id}: every membership change Entra sends. Decoding it into
// structs rather than maps of maps saves most of what decoding a 100-member
// PATCH allocated (BenchmarkGroupMemberBatch).
type entraMemberPatch struct {
	Schemas    []string `json:"schemas"`
	Operations []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value []struct {
			Ref   nullRef `json:"$ref"`
			Value string  `json:"value"`
		} `json:"value"`
	} `json:"Operations"`
}

// nullRef accepts only a JSON null.
type nullRef struct{}

var errNotNull = errors.New("not null")

func (*nullRef) UnmarshalJSON(b []byte) error {
	if string(b) != "null" {
		return errNotNull
	}
	return nil
}

// entraMemberDelta returns the member delta of body when it has exactly the
// shape of entraMemberPatch, ok false otherwise: any other body, valid or
// not, goes the general way, which also words the errors. The two agree on
// every body this accepts (see FuzzMemberPatchPaths).
func entraMemberDelta(body []byte) (*memberDelta, bool) {
	if !utf8.Valid(body) || !entraKeys(body) || unpairedSurrogate(body) != "" || scanMembers(body) != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var p entraMemberPatch
	if dec.Decode(&p) != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	if !slices.ContainsFunc(p.Schemas, func(s string) bool { return strings.EqualFold(s, patch.URIPatchOp) }) {
		return nil, false
	}
	if len(p.Operations) == 0 || len(p.Operations) > patch.MaxOperations {
		return nil, false
	}
	n := 0
	for _, op := range p.Operations {
		n += len(op.Value)
	}
	d := &memberDelta{ids: make([]string, 0, n), add: make(map[string]bool, n)}
	for _, op := range p.Operations {
		add := strings.EqualFold(op.Op, "add")
		if (!add && !strings.EqualFold(op.Op, "remove")) || !strings.EqualFold(strings.TrimSpace(op.Path), "members") || len(op.Value) == 0 {
			return nil, false
		}
		for _, m := range op.Value {
			if m.Value == "" {
				return nil, false
			}
			d.set(m.Value, add)
		}
	}
	return d, true
}

// entraKeys reports whether every object key in body is spelt exactly as
// Entra spells it ("schemas", "Operations", "op", "path", "value",
// "$ref"). The struct decoder matches keys case-insensitively, and would
// take the last of "value" and "VALUE" where the general path refuses the
// body (schema.DistinctNames): any other spelling goes the general way.
// It jumps from colon to colon: a key's closing quote is the only
// unescaped quote a colon can follow (inside a string every quote is
// escaped), and a key without backslashes holds no quote.
func entraKeys(body []byte) bool {
	for i := 0; ; {
		c := bytes.IndexByte(body[i:], ':')
		if c < 0 {
			return true
		}
		c += i
		i = c + 1
		j := c - 1
		for j >= 0 && (body[j] == ' ' || body[j] == '\t' || body[j] == '\n' || body[j] == '\r') {
			j--
		}
		if j < 0 || body[j] != '"' {
			continue // a colon inside a string
		}
		bs := 0
		for k := j - 1; k >= 0 && body[k] == '\\'; k-- {
			bs++
		}
		switch {
		case bs%2 == 1:
			continue // an escaped quote: inside a string
		case bs > 0:
			return false // a key ending in an escape is not Entra's
		}
		open := bytes.LastIndexByte(body[:j], '"')
		if open < 0 {
			return false
		}
		switch string(body[open+1 : j]) {
		case "schemas", "Operations", "op", "path", "value", "$ref":
		default:
			return false
		}
	}
}

// set records that id is to be added (or removed); the last op wins.
func (d *memberDelta) set(id string, add bool) {
	if _, seen := d.add[id]; !seen {
		d.ids = append(d.ids, id)
	}
	d.add[id] = add
}

// plainMember returns the id of a member as Entra sends it,
// {"value": id} or {"$ref": null, "value": id}, which schema.Value would
// turn into {"value": id}; ok false for any other shape. Normalising a
// hundred members was a seventh of a member PATCH's cost.
func plainMember(e any) (string, bool) {
	m, ok := e.(map[string]any)
	if !ok || len(m) > 2 {
		return "", false
	}
	id, ok := m["value"].(string)
	if !ok || id == "" {
		return "", false
	}
	if len(m) == 2 {
		if ref, has := m["$ref"]; !has || ref != nil {
			return "", false
		}
	}
	return id, true
}

// apply changes group id's memberships inside a write and returns the
// group's row, and whether it changed any: adding members already there and
// removing absent ones writes nothing. It validates everything before it
// mutates.
func (d *memberDelta) apply(s *Server, r *request, txn *store.Txn, id string) (*store.Group, bool, error) {
	g, err := txn.GroupByID(id)
	if err != nil {
		return nil, false, err
	}
	if g == nil {
		return nil, false, errNotFound("Group", id)
	}
	view, cur, err := groupView(txn, g)
	if err != nil {
		return nil, false, err
	}
	if err := checkIfMatch(r, view.Version); err != nil {
		return nil, false, err
	}
	checked := d.checked.holds(txn)
	var added, removed []string
	for i, m := range d.ids {
		member := cur.Contains(m)
		switch {
		case d.add[m] && !member:
			if checked {
				m = d.held[i]
			}
			added = append(added, m)
		case !d.add[m] && member:
			removed = append(removed, m)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return g, false, nil
	}
	if !checked {
		if added, err = resolveMembers(txn, id, added); err != nil {
			return nil, false, err
		}
	}
	if err := s.opts.Limits.room(txn, grows(0, 0, len(added)-len(removed))); err != nil {
		return nil, false, err
	}
	return g, true, txn.ChangeMembers(id, added, removed, s.opts.Now())
}

// precheck validates the members to add on a read snapshot, outside the
// store's single writer, and looks up the store's strings for them: a
// hundred id lookups per PATCH are most of a member write's cost. The write
// then re-checks only if users or groups changed in between. A failure is
// left to the write to report, against current data.
func (d *memberDelta) precheck(txn *store.Txn, groupID string) {
	var add []string
	for _, m := range d.ids {
		if d.add[m] {
			add = append(add, m)
		}
	}
	users, err := txn.Unchanged(store.TableUsers)
	if err != nil {
		return
	}
	groups, err := txn.Unchanged(store.TableGroups)
	if err != nil {
		return
	}
	held, err := resolveMembers(txn, groupID, add)
	if err != nil {
		return
	}
	d.held = make([]string, len(d.ids))
	for i, m := range d.ids {
		if d.add[m] {
			d.held[i], held = held[0], held[1:]
		}
	}
	d.checked = snapshotCheck{users: users, groups: groups}
}

// snapshotCheck remembers the users and groups tables a check ran against.
type snapshotCheck struct {
	users, groups <-chan struct{}
}

// holds reports whether txn sees the same users and groups as the check.
func (c snapshotCheck) holds(txn *store.Txn) bool {
	if c.users == nil {
		return false
	}
	users, err := txn.Unchanged(store.TableUsers)
	if err != nil || users != c.users {
		return false
	}
	groups, err := txn.Unchanged(store.TableGroups)
	return err == nil && groups == c.groups
}

func (s *Server) patchMembers(w http.ResponseWriter, r *request, id string, d *memberDelta) error {
	d.precheck(s.st.Read(), id)
	var view *store.Group
	var members idset.Set
	wrote := false
	err := s.st.Update(r.Context(), func(txn *store.Txn) error {
		g, changed, err := d.apply(s, r, txn, id)
		// Set on every run: the write may run again, on other state.
		wrote = changed
		if err != nil {
			return err
		}
		view, members, err = groupView(txn, g)
		return err
	})
	if wrote {
		s.audit(r, "patch", "Group", id, err)
	}
	if err != nil {
		return err
	}
	var list []string
	if wantsPatched(r) {
		list = members.Slice()
	}
	return s.patched(w, r, view, list)
}
