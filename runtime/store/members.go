package store

import (
	"fmt"
	"slices"
	"time"

	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/runtime/store/internal/hamt"
)

// MembersOf returns group groupID's members row, or nil when it has none.
func (t *Txn) MembersOf(groupID string) (*Members, error) {
	raw, err := t.First(TableMembers, IndexID, groupID)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Members), nil
}

// MemberIDsOf returns the ids of the direct members of group groupID.
func (t *Txn) MemberIDsOf(groupID string) (idset.Set, error) {
	m, err := t.MembersOf(groupID)
	if err != nil || m == nil {
		return idset.Set{}, err
	}
	return m.IDs, nil
}

// MembershipsPending reports whether t is a write that changed memberships
// its batch has not stored yet: GroupIDsOf then answers from those changes,
// not from the stored index readers share.
func (t *Txn) MembershipsPending() bool { return t.memberOfChanged }

// GroupIDsOf returns the ids of the groups memberID is a direct member of,
// sorted. The slice is shared with the store and must not be modified.
func (t *Txn) GroupIDsOf(memberID string) ([]string, error) {
	idx, err := t.reverse()
	if err != nil {
		return nil, err
	}
	_, groups, _ := idx.Lookup(memberID)
	return groups, nil
}

// IsMember reports whether memberID is a direct member of groupID.
func (t *Txn) IsMember(groupID, memberID string) (bool, error) {
	ids, err := t.MemberIDsOf(groupID)
	if err != nil {
		return false, err
	}
	return ids.Contains(memberID), nil
}

// ChangeMembers adds add to and removes remove from group groupID's direct
// members, keeping the reverse index (GroupIDsOf) in step, and stamps the
// change with now. Ids already in (add) or not in (remove) the group are
// ignored; an id in both lists is added. It does not check that the ids
// exist: callers validate with Members before they mutate, and pass the
// strings Members returned as add.
func (t *Txn) ChangeMembers(groupID string, add, remove []string, now time.Time) error {
	return t.editMembers(groupID, add, remove, func(row *Members) {
		// row is a copy of the old one, so its version is the old one's
		// (0 for a new row).
		row.Version, row.Modified = row.Version+1, now
	})
}

// editMembers applies add and remove to group groupID's members row and
// the reverse index, stamping the changed row with stamp. A change that
// adds and removes nothing writes nothing.
func (t *Txn) editMembers(groupID string, add, remove []string, stamp func(row *Members)) error {
	cur, err := t.MembersOf(groupID)
	if err != nil {
		return fmt.Errorf("look up members of %s: %w", groupID, err)
	}
	row := &Members{GroupID: groupID}
	if cur != nil {
		*row = *cur
	}
	wanted := slices.Compact(slices.Sorted(slices.Values(add)))
	remove = subtract(missing(row.IDs, remove, false), wanted)
	add = missing(row.IDs, wanted, true)
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	row.IDs = row.IDs.Edit(add, remove)
	stamp(row)
	// A group without members keeps its row: the row carries the version.
	if err := t.Insert(TableMembers, row); err != nil {
		return fmt.Errorf("insert members of %s: %w", groupID, err)
	}
	for _, id := range add {
		if err := t.changeMemberOf(id, groupID, true); err != nil {
			return err
		}
	}
	for _, id := range remove {
		if err := t.changeMemberOf(id, groupID, false); err != nil {
			return err
		}
	}
	return nil
}

// DeleteMemberships removes every membership id takes part in: as a member
// of groups and, when id is a group, as the group (its members row goes).
func (t *Txn) DeleteMemberships(id string, now time.Time) error {
	groups, err := t.GroupIDsOf(id)
	if err != nil {
		return err
	}
	for _, g := range slices.Clone(groups) {
		if err := t.ChangeMembers(g, nil, []string{id}, now); err != nil {
			return err
		}
	}
	m, err := t.MembersOf(id)
	if err != nil || m == nil {
		return err
	}
	for member := range m.IDs.All() {
		if err := t.changeMemberOf(member, id, false); err != nil {
			return err
		}
	}
	if err := t.Delete(TableMembers, m); err != nil {
		return fmt.Errorf("delete members of %s: %w", id, err)
	}
	return nil
}

// memberOfIndex is the only row of TableMemberOf: member id → the sorted
// ids of the groups it is a direct member of. A persistent hash map in one
// row, rather than a row per member, because Entra changes memberships a
// hundred at a time: a row per member cost a radix-tree insert (a copied
// path of nodes, each with its own watch channel) per membership, which
// dominated the store's single writer. A batch of writes edits the map in
// place (see hamt) and stores it once; readers keep their snapshot's map.
type memberOfIndex struct {
	Key    string
	groups *hamt.Map[[]string]
	count  int // memberships: the length of every list in groups
}

const memberOfKey = "all"

// groupsOf is the reverse membership index as a transaction sees it: the
// stored map, or a write's edit of it.
type groupsOf interface {
	Lookup(member string) (string, []string, bool)
}

// Members returns the store's own strings for ids, in order, for those
// that are a user or a group, and the ids that are neither. Writers pass
// these strings to ChangeMembers so that an id is one string however many
// groups hold it: ids arrive in request bodies, a fresh string per
// membership, and a million memberships were a million small objects for
// the collector to visit on every cycle. The indexes are looked up once
// for all ids: Entra sends members a hundred at a time.
func (t *Txn) Members(ids []string) (held, unknown []string, err error) {
	idx, err := t.reverse()
	if err != nil {
		return nil, nil, err
	}
	users, err := t.visibleUsers()
	if err != nil {
		return nil, nil, err
	}
	held = make([]string, 0, len(ids))
	for _, id := range ids {
		// An id that is a member somewhere exists: deleting a user or
		// group removes its memberships in the same write. The reverse
		// index answers in a fraction of a row lookup, and Entra puts each
		// user in many groups.
		if h, _, ok := idx.Lookup(id); ok {
			held = append(held, h)
			continue
		}
		if u, ok := users.get(id); ok {
			held = append(held, u.ID)
			continue
		}
		g, err := t.GroupByID(id)
		if err != nil {
			return nil, nil, err
		}
		if g == nil {
			unknown = append(unknown, id)
			continue
		}
		held = append(held, g.ID)
	}
	return held, unknown, nil
}

// reverse returns the transaction's reverse membership index: the pending
// edit of a write that changed it, or the stored one.
func (t *Txn) reverse() (groupsOf, error) {
	if t.memberOf != nil {
		return t.memberOf, nil
	}
	stored, err := t.storedMemberOf()
	if err != nil {
		return nil, err
	}
	return stored.groups, nil
}

func (t *Txn) storedMemberOf() (*memberOfIndex, error) {
	raw, err := t.First(TableMemberOf, IndexID, memberOfKey)
	if err != nil {
		return nil, fmt.Errorf("look up memberships: %w", err)
	}
	if raw == nil {
		return &memberOfIndex{Key: memberOfKey, groups: &hamt.Map[[]string]{}}, nil
	}
	return raw.(*memberOfIndex), nil
}

// changeMemberOf adds groupID to (or removes it from) member's groups in
// the pending reverse index.
func (t *Txn) changeMemberOf(member, groupID string, add bool) error {
	idx, err := t.editMemberOf()
	if err != nil {
		return err
	}
	old, _ := idx.Get(member)
	groups, changed := toggle(old, groupID, add)
	if !changed {
		return nil
	}
	// A write that fails after this must poison its batch like any other.
	t.writes++
	t.memberOfChanged = true
	if add {
		t.memberships++
	} else {
		t.memberships--
	}
	if len(groups) == 0 {
		idx.Delete(member)
	} else {
		idx.Set(member, groups)
	}
	return nil
}

// editMemberOf returns the write's edit of the reverse index, starting it
// from the stored index on first use. Starting an edit changes nothing.
func (t *Txn) editMemberOf() (*hamt.Editor[[]string], error) {
	if t.memberOf == nil {
		stored, err := t.storedMemberOf()
		if err != nil {
			return nil, err
		}
		t.memberOf, t.memberships = stored.groups.Edit(), stored.count
	}
	return t.memberOf, nil
}

// flush stores the pending derived indexes. The committer calls it once per
// batch, before the batch's changes are taken.
func (t *Txn) flush() error {
	if t.users != nil {
		if err := t.users.store(t); err != nil {
			return err
		}
		t.users = nil
	}
	if err := t.flushGroupCount(); err != nil {
		return err
	}
	if !t.memberOfChanged {
		return nil
	}
	if err := t.Insert(TableMemberOf, &memberOfIndex{Key: memberOfKey, groups: t.memberOf.Map(), count: t.memberships}); err != nil {
		return fmt.Errorf("store memberships: %w", err)
	}
	t.memberOf, t.memberOfChanged = nil, false
	return nil
}

// RebuildMemberOf derives the reverse membership index from the members
// rows, for a store filled with Load.
func (t *Txn) RebuildMemberOf() error {
	it, err := t.Get(TableMembers, IndexID)
	if err != nil {
		return fmt.Errorf("rebuild memberships: %w", err)
	}
	lists := make(map[string][]string)
	count := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		m := raw.(*Members)
		for id := range m.IDs.All() {
			lists[id] = append(lists[id], m.GroupID)
			count++
		}
	}
	e := (&hamt.Map[[]string]{}).Edit()
	for id, groups := range lists {
		// Members rows come in group id order, so each list is sorted.
		e.Set(id, slices.Clip(groups))
	}
	t.memberOf, t.memberOfChanged, t.memberships = e, true, count
	return nil
}

// toggle returns sorted ids with id added (or removed) as a new slice, and
// whether that changed anything; ids is shared with snapshots, never
// modified.
func toggle(ids []string, id string, add bool) ([]string, bool) {
	i, found := slices.BinarySearch(ids, id)
	switch {
	case add && !found:
		return slices.Insert(slices.Clip(ids), i, id), true
	case !add && found:
		return slices.Delete(slices.Clone(ids), i, i+1), true
	}
	return ids, false
}

// missing returns the sorted, distinct ids of list that are absent from
// set (absent false: present in it).
func missing(set idset.Set, list []string, absent bool) []string {
	var out []string
	for _, id := range list {
		if set.Contains(id) != absent {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// subtract returns sorted a without the elements of sorted b.
func subtract(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := a[:0:0]
	for _, id := range a {
		if _, found := slices.BinarySearch(b, id); !found {
			out = append(out, id)
		}
	}
	return out
}

// MirrorMembers applies another replica's membership changes: like
// ChangeMembers, but the row's version and time stay as they are (they
// arrive separately, as the row's header, see MirrorMembersHeader), and a
// group without a row gets one at version 0.
func (t *Txn) MirrorMembers(groupID string, add, remove []string) error {
	return t.editMembers(groupID, add, remove, func(*Members) {})
}

// MirrorMembersHeader sets group groupID's membership version and time as
// another replica committed them, keeping its member ids.
func (t *Txn) MirrorMembersHeader(groupID string, version uint64, modified time.Time) error {
	cur, err := t.MembersOf(groupID)
	if err != nil {
		return fmt.Errorf("look up members of %s: %w", groupID, err)
	}
	row := &Members{GroupID: groupID, Version: version, Modified: modified}
	if cur != nil {
		row.IDs = cur.IDs
	}
	return t.Insert(TableMembers, row)
}

// MirrorDropMembers removes group groupID's members row and its members'
// reverse entries, as another replica did when the group went.
func (t *Txn) MirrorDropMembers(groupID string) error {
	m, err := t.MembersOf(groupID)
	if err != nil || m == nil {
		return err
	}
	for member := range m.IDs.All() {
		if err := t.changeMemberOf(member, groupID, false); err != nil {
			return err
		}
	}
	return t.Delete(TableMembers, m)
}
