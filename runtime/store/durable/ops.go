package durable

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable/internal/record"
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

// membersOps persists a members row change as its header record (version
// and time) plus one membership record per member added or removed: a
// hundred members added to a group of a hundred thousand write a hundred
// small records, not the whole list.
func membersOps(ops []op, c *memdb.Change) ([]op, error) {
	ops, err := objectOps(ops, c)
	if err != nil {
		return nil, err
	}
	var before, after []string
	var groupID string
	if m, ok := c.Before.(*store.Members); ok {
		before, groupID = m.IDs, m.GroupID
	}
	if m, ok := c.After.(*store.Members); ok {
		after, groupID = m.IDs, m.GroupID
	}
	membership := func(member string, add bool) error {
		m := &store.Membership{GroupID: groupID, MemberID: member}
		key, err := record.Key(record.Memberships, m)
		if err != nil {
			return err
		}
		o := op{table: record.Memberships, key: key}
		if add {
			if o.val, err = record.Encode(record.Memberships, m); err != nil {
				return err
			}
		}
		ops = append(ops, o)
		return nil
	}
	// Both lists are sorted: walk them together.
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		var err error
		switch {
		case j == len(after) || (i < len(before) && before[i] < after[j]):
			err = membership(before[i], false)
			i++
		case i == len(before) || after[j] < before[i]:
			err = membership(after[j], true)
			j++
		default:
			i++
			j++
		}
		if err != nil {
			return nil, fmt.Errorf("membership of group %s: %w", groupID, err)
		}
	}
	return ops, nil
}
