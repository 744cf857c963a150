package etcdstate

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// batch collects the etcd operations of one store batch. A key is written
// at most once per transaction (etcd refuses a branch that puts or deletes
// one key twice), so later changes to a key replace earlier ones.
type batch struct {
	s     *State
	ops   []clientv3.Op
	cmps  []clientv3.Cmp
	puts  []string
	dels  []string
	index map[string]int // key → its position in ops
	// names are the name index keys the batch changes, in the order it
	// first touched them (see rename, putNames).
	names    map[string]*nameOp
	nameKeys []string
	// groupsGone are the groups the batch deletes (see compareGroupsGone).
	groupsGone []string
	members    []memberOp
	applies    bool // the batch applies a spec revision (writes the applied-revision meta)
	// local: the batch holds what etcd does not carry back (a resource's
	// resolved secrets), so the store must make it visible itself.
	local bool
}

// add turns one store change into etcd operations.
func (b *batch) add(c *memdb.Change) error {
	switch c.Table {
	case store.TableUsers:
		return b.user(c)
	case store.TableGroups:
		return b.group(c)
	case store.TableMembers:
		return b.membersRow(c)
	case store.TableResources:
		obj := c.After
		if obj == nil {
			obj = c.Before
		}
		r, ok := obj.(*store.Resource)
		if !ok {
			return fmt.Errorf("etcdstate: resources change holds %T", obj)
		}
		b.local = true
		return b.object(b.s.resourceKey(r.Kind, r.Name), c)
	case store.TableMeta:
		obj := c.After
		if obj == nil {
			obj = c.Before
		}
		m, ok := obj.(*store.Meta)
		if !ok {
			return fmt.Errorf("etcdstate: meta change holds %T", obj)
		}
		if m.Key == store.MetaAppliedRevision {
			b.applies = true
		}
		return b.object(b.s.objectKey(store.TableMeta, m.Key), c)
	}
	// memberOf and userIndexes are derived from the rows; other tables
	// stay in memory.
	return nil
}

// object puts c.After's record under key, or deletes key.
func (b *batch) object(key string, c *memdb.Change) error {
	if c.After == nil {
		b.write(key, nil)
		return nil
	}
	val, err := record.Encode(c.Table, c.After)
	if err != nil {
		return fmt.Errorf("etcdstate: %w", err)
	}
	b.write(key, val)
	return nil
}

// write puts val under key (deletes it when val is nil), comparing the
// key's revision with the mirror's.
func (b *batch) write(key string, val []byte) {
	b.put(key, val, clientv3.Compare(clientv3.ModRevision(key), "=", b.s.compareRev(key)), true)
}

// put adds the operation on key to the batch, guarded by cmp (the first
// one given for the key); mirrored says the mirror holds the key, so its
// revision is recorded once the batch committed.
func (b *batch) put(key string, val []byte, cmp clientv3.Cmp, mirrored bool) {
	op := clientv3.OpDelete(key)
	if val != nil {
		op = clientv3.OpPut(key, string(val))
	}
	if b.index == nil {
		b.index = map[string]int{}
	}
	if i, seen := b.index[key]; seen {
		b.ops[i] = op
	} else {
		b.index[key] = len(b.ops)
		b.ops = append(b.ops, op)
		b.cmps = append(b.cmps, cmp)
	}
	if !mirrored {
		return
	}
	b.puts = slices.DeleteFunc(b.puts, func(k string) bool { return k == key })
	b.dels = slices.DeleteFunc(b.dels, func(k string) bool { return k == key })
	if val != nil {
		b.puts = append(b.puts, key)
	} else {
		b.dels = append(b.dels, key)
	}
}

func (b *batch) user(c *memdb.Change) error {
	before, _ := c.Before.(*store.User)
	after, _ := c.After.(*store.User)
	obj := after
	if obj == nil {
		obj = before
	}
	if obj == nil {
		return nil
	}
	rename(b, before, after, func(u *store.User) string { return b.s.userNameKey(u.UserName) }, func(u *store.User) string { return u.ID })
	key := b.s.objectKey(store.TableUsers, obj.ID)
	if after == nil {
		b.deleted(key, obj.ID)
	}
	return b.object(key, c)
}

func (b *batch) group(c *memdb.Change) error {
	before, _ := c.Before.(*store.Group)
	after, _ := c.After.(*store.Group)
	obj := after
	if obj == nil {
		obj = before
	}
	if obj == nil {
		return nil
	}
	rename(b, before, after, func(g *store.Group) string { return b.s.groupNameKey(g.DisplayName) }, func(g *store.Group) string { return g.ID })
	key := b.s.objectKey(store.TableGroups, obj.ID)
	if after == nil {
		b.deleted(key, obj.ID)
		if b.s.compareRev(key) > 0 {
			b.groupsGone = append(b.groupsGone, obj.ID)
			// A batch's later transactions put memberships without
			// writing the header compareGroupsGone compares: a mirror
			// holding the first but not a later one would leave the
			// later one's memberships, of a group that is gone.
			b.changedSince(b.s.memberKey(obj.ID, ""))
		}
	}
	return b.object(key, c)
}

// deleted adds the compare that keeps the delete of a user or group (id,
// its record at key) from leaving memberships behind. The batch deletes
// the memberships the mirror holds (the store's DeleteMemberships); one
// another daemon added since, which the mirror does not hold yet, would
// stay, of an object that is gone. Each membership has a key in its
// member's range (see memberOp), so a key there that changed after the
// revision the mirror reflects fails the delete as stale: the mirror
// catches up and the delete runs again, with the membership. An add
// committed after the delete fails instead, on its compare that the
// member exists. Objects the mirror does not hold (created in this very
// batch) are known to no other daemon, so no one can add them.
//
// Applied is at most the revision the store reflects (the watch advances
// it after the store applied the events), so the compare errs only
// towards a needless retry: this daemon's own writes the store made
// visible before the watch brought them.
func (b *batch) deleted(key, id string) {
	if b.s.compareRev(key) == 0 {
		return
	}
	b.changedSince(b.s.memberOfKey(id, ""))
}

// changedSince adds the compare that no key under prefix changed after the
// revision the store reflects.
func (b *batch) changedSince(prefix string) {
	b.cmps = append(b.cmps, clientv3.Compare(clientv3.ModRevision(prefix), "<", b.s.Applied()+1).WithPrefix())
}

// compareGroupsGone adds, for each group the batch deletes, the compare
// that the group's members header is as the mirror holds it: the first
// member another daemon adds to a group the mirror holds no members row of
// creates the header, and the delete, which writes no header then, would
// leave it and the membership behind. A batch that writes the header
// compares it already.
func (b *batch) compareGroupsGone() {
	for _, id := range b.groupsGone {
		key := b.s.objectKey(store.TableMembers, id)
		if _, ok := b.index[key]; !ok {
			b.cmps = append(b.cmps, clientv3.Compare(clientv3.ModRevision(key), "=", b.s.compareRev(key)))
		}
	}
}

// rename moves an object's name index key: the old one goes if it still
// names the object, the new one is put if no object holds it. The index
// keys are compared by content, not by revision, so the mirror need not
// hold them. The operations wait for names, since another object of the
// batch may take the name this one gives up, or give up the one it takes.
func rename[T any](b *batch, before, after *T, nameKey func(*T) string, id func(*T) string) {
	var from, to string
	if before != nil {
		from = nameKey(before)
	}
	if after != nil {
		to = nameKey(after)
	}
	if from == to {
		return
	}
	if from != "" {
		b.name(from).from = id(before)
	}
	if to != "" {
		b.name(to).to = id(after)
	}
}

// nameOp is what a batch does with one name index key: the id of the
// object that gives the name up, which the key must still hold, and the id
// of the one that takes it. A batch holds one change per object, each
// from the state before the batch to the state after it, so at most one
// object gives a name up (the one holding it) and one takes it.
type nameOp struct{ from, to string }

func (b *batch) name(key string) *nameOp {
	if op, ok := b.names[key]; ok {
		return op
	}
	if b.names == nil {
		b.names = map[string]*nameOp{}
	}
	op := &nameOp{}
	b.names[key] = op
	b.nameKeys = append(b.nameKeys, key)
	return op
}

// putNames adds one operation per name index key the batch changes. A name
// handed from one object to another in the batch (a swap, a user deleted
// and its userName taken by a new one) is one put of the taker's id,
// compared with the giver's: etcd takes one operation per key, and the
// giver's compare and the taker's ("no one holds it") cannot both hold.
func (b *batch) putNames() {
	for _, key := range b.nameKeys {
		switch op := b.names[key]; {
		case op.from != "" && op.to != "":
			b.put(key, []byte(op.to), clientv3.Compare(clientv3.Value(key), "=", op.from), false)
		case op.from != "":
			b.put(key, nil, clientv3.Compare(clientv3.Value(key), "=", op.from), false)
		default:
			b.put(key, []byte(op.to), clientv3.Compare(clientv3.Version(key), "=", 0), false)
		}
	}
}

func (b *batch) membersRow(c *memdb.Change) error {
	before, _ := c.Before.(*store.Members)
	after, _ := c.After.(*store.Members)
	var old, cur idset.Set
	gid := ""
	if before != nil {
		old, gid = before.IDs, before.GroupID
	}
	if after != nil {
		cur, gid = after.IDs, after.GroupID
	}
	if gid == "" {
		return nil
	}
	added, removed := idset.Diff(old, cur)
	// The store checked that the group and every member added exist, but
	// on this daemon's mirror, which may not yet hold another daemon's
	// delete of them; neither delete writes the group's header (the
	// deleted user was not a member yet, the group had none), so only
	// these compares keep etcd from holding a membership of an object that
	// is gone. Objects the mirror does not hold yet (created in this very
	// batch) are not compared: the batch itself creates them.
	if len(added) > 0 {
		if k := b.s.objectKey(store.TableGroups, gid); b.s.compareRev(k) > 0 {
			b.cmps = append(b.cmps, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		}
	}
	for _, id := range added {
		op := memberOp{key: b.s.memberKey(gid, id), of: b.s.memberOfKey(id, gid), group: b.s.objectKey(store.TableGroups, gid), header: b.s.objectKey(store.TableMembers, gid), member: id}
		for _, table := range []string{store.TableUsers, store.TableGroups} {
			if k := b.s.objectKey(table, id); b.s.compareRev(k) > 0 {
				op.must = k
				break
			}
		}
		b.members = append(b.members, op)
	}
	for _, id := range removed {
		b.members = append(b.members, memberOp{key: b.s.memberKey(gid, id), of: b.s.memberOfKey(id, gid), member: id, del: true})
	}
	return b.object(b.s.objectKey(store.TableMembers, gid), c)
}

// markMade sets, once every change is in, the made key of each member
// added that the mirror does not hold: the batch creates it (the store
// checked it exists), and a transaction after the batch's first compares
// that it still does (see exist).
func (b *batch) markMade() {
	for i := range b.members {
		m := &b.members[i]
		if m.del || m.must != "" {
			continue
		}
		for _, table := range []string{store.TableUsers, store.TableGroups} {
			k := b.s.objectKey(table, m.member)
			if j, ok := b.index[k]; ok && b.ops[j].IsPut() {
				m.made = k
				break
			}
		}
	}
}
