package durable

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// op is one write to a table's bucket: val nil deletes key.
type op struct {
	table    string
	key, val []byte
}

// batchOps turns a batch of store changes into the writes that persist it.
// Everything about what is persisted, and how, is decided here. Changes to
// tables this package does not know are skipped and reported to unknown.
func batchOps(changes memdb.Changes, unknown func(table string)) ([]op, error) {
	var ops []op
	for i := range changes {
		c := &changes[i]
		var err error
		switch {
		case c.Table == store.TableMemberOf || c.Table == store.TableUserIndexes:
			// Derived from the members and users rows; rebuilt on load.
		case !slices.Contains(record.Tables, c.Table):
			unknown(c.Table)
		case c.Table == store.TableMembers:
			ops, err = membersOps(ops, c)
		default:
			ops, err = objectOps(ops, c)
		}
		if err != nil {
			return nil, err
		}
	}
	return ops, nil
}

// objectOps persists a change as a put or delete of the object's record.
func objectOps(ops []op, c *memdb.Change) ([]op, error) {
	obj := c.After
	if obj == nil {
		obj = c.Before
	}
	if obj == nil {
		return ops, nil // inserted and deleted within the batch
	}
	key, err := record.Key(c.Table, obj)
	if err != nil {
		return nil, err
	}
	if c.Deleted() {
		return append(ops, op{table: c.Table, key: key}), nil
	}
	val, err := record.Encode(c.Table, c.After)
	if err != nil {
		return nil, err
	}
	return append(ops, op{table: c.Table, key: key, val: val}), nil
}

// membersOps persists a members row change as one op under the group id:
// a delete when the row goes, else a delta record with the row's new header
// and the ids the change adds and removes. A hundred members added to a
// group of a hundred thousand log a hundred ids, not the whole list; the
// checkpointer merges the deltas into the group's member chunks.
func membersOps(ops []op, c *memdb.Change) ([]op, error) {
	before, _ := c.Before.(*store.Members)
	after, _ := c.After.(*store.Members)
	switch {
	case after != nil:
	case before != nil:
		return append(ops, op{table: c.Table, key: []byte(before.GroupID)}), nil
	default:
		return ops, nil // inserted and deleted within the batch
	}
	d := &record.MemberDelta{GroupID: after.GroupID, Version: after.Version, Modified: after.Modified}
	if before != nil {
		d.Add, d.Remove = idset.Diff(before.IDs, after.IDs)
	} else {
		d.Add = after.IDs.Slice()
	}
	// The checkpointer keys chunks by group and first id: a key bbolt
	// would refuse must fail the batch now, not the checkpoint later.
	for _, id := range d.Add {
		if n := len(record.ChunkKey(d.GroupID, id)); n > bolt.MaxKeySize {
			return nil, fmt.Errorf("members of group %.64q: member id of %d bytes: %w", d.GroupID, len(id), berrors.ErrKeyTooLarge)
		}
	}
	key, err := record.Key(record.MemberDeltas, d)
	if err != nil {
		return nil, err
	}
	val, err := record.Encode(record.MemberDeltas, d)
	if err != nil {
		return nil, fmt.Errorf("members of group %s: %w", d.GroupID, err)
	}
	return append(ops, op{table: c.Table, key: key, val: val}), nil
}
