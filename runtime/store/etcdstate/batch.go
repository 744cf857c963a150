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
	s       *State
	ops     []clientv3.Op
	cmps    []clientv3.Cmp
	puts    []string
	dels    []string
	index   map[string]int // key → its position in ops
	members []memberOp
	applies bool // the batch applies a spec revision (writes the applied-revision meta)
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
	return b.object(b.s.objectKey(store.TableUsers, obj.ID), c)
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
	return b.object(b.s.objectKey(store.TableGroups, obj.ID), c)
}

// rename moves an object's name index key: the old one goes if it still
// names the object, the new one is put if no object holds it. The index
// keys are compared by content, not by revision, so the mirror need not
// hold them.
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
		b.put(from, nil, clientv3.Compare(clientv3.Value(from), "=", id(before)), false)
	}
	if to != "" {
		b.put(to, []byte(id(after)), clientv3.Compare(clientv3.Version(to), "=", 0), false)
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
		op := memberOp{key: b.s.memberKey(gid, id)}
		for _, table := range []string{store.TableUsers, store.TableGroups} {
			if k := b.s.objectKey(table, id); b.s.compareRev(k) > 0 {
				op.must = k
				break
			}
		}
		b.members = append(b.members, op)
	}
	for _, id := range removed {
		b.members = append(b.members, memberOp{key: b.s.memberKey(gid, id), del: true})
	}
	return b.object(b.s.objectKey(store.TableMembers, gid), c)
}
