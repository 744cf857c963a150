package durable

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// Member lists are cut into chunks of chunkIDs ids. A checkpoint rewrites
// only the chunks a segment's changes fall in: a chunk that grows past
// twice the size is split, and one that shrinks under half of it is merged
// with the chunk after it, so chunk sizes stay within bounds without a
// rewrite of the whole list. A variable, so tests can cut lists small.
var chunkIDs = 128

// chunks cuts sorted ids into runs of about chunkIDs ids, evenly, so no run
// is much shorter than the others. It returns ids itself when it is short
// enough to stay one chunk.
func chunks(ids []string) [][]string {
	if len(ids) == 0 {
		return nil
	}
	if len(ids) <= 2*chunkIDs {
		return [][]string{ids}
	}
	n := (len(ids) + chunkIDs - 1) / chunkIDs
	out := make([][]string, 0, n)
	for i := range n {
		out = append(out, ids[i*len(ids)/n:(i+1)*len(ids)/n])
	}
	return out
}

// memberChange says whether a segment leaves id in a group (in) or not;
// seq orders the changes of a group as the log does.
type memberChange struct {
	id  string
	seq int
	in  bool
}

// groupChanges is what a segment does to one group's members row, as its
// deltas say in log order.
type groupChanges struct {
	// last is the last delta, whose header the row ends with; nil when the
	// row ends deleted.
	last *record.MemberDelta
	// cleared is set when the row was deleted: the list starts empty.
	cleared bool
	// changes are the ids added and removed since the row was last
	// deleted, in log order.
	changes []memberChange
}

// memberDeltas collects the deltas of a format 3 segment's members ops by
// group, and returns the other ops, which are plain bucket writes. Deltas
// are decoded and checked here, so a segment that cannot be applied is
// found before anything is.
func memberDeltas(ops []op) (plain []op, groups map[string]*groupChanges, err error) {
	groups = map[string]*groupChanges{}
	plain = ops[:0:0]
	for _, o := range ops {
		if o.table != store.TableMembers {
			plain = append(plain, o)
			continue
		}
		g := groups[string(o.key)]
		if g == nil {
			g = &groupChanges{}
			groups[string(o.key)] = g
		}
		if o.val == nil {
			*g = groupChanges{cleared: true, changes: g.changes[:0]}
			continue
		}
		d, err := decodeDelta(o)
		if err != nil {
			return nil, nil, err
		}
		g.last = d
		for _, id := range d.Remove {
			g.changes = append(g.changes, memberChange{id: id, seq: len(g.changes)})
		}
		for _, id := range d.Add {
			g.changes = append(g.changes, memberChange{id: id, seq: len(g.changes), in: true})
		}
	}
	return plain, groups, nil
}

func decodeDelta(o op) (*record.MemberDelta, error) {
	obj, err := record.Decode(record.MemberDeltas, o.val)
	if err != nil {
		return nil, fmt.Errorf("%w: members delta %q: %w", ErrCorrupt, o.key, err)
	}
	d := obj.(*record.MemberDelta)
	if d.GroupID != string(o.key) {
		return nil, fmt.Errorf("%w: members delta for group %q is logged under %q", ErrCorrupt, d.GroupID, o.key)
	}
	return d, nil
}

// applyMembers writes what a segment does to the members rows: each group
// touched has its header written and its member list merged once, however
// many deltas the segment holds for it. Groups go in key order, like every
// other write of a checkpoint.
func applyMembers(tx *bolt.Tx, groups map[string]*groupChanges) error {
	if len(groups) == 0 {
		return nil
	}
	headers, lists := tx.Bucket([]byte(store.TableMembers)), tx.Bucket([]byte(record.MemberLists))
	if headers == nil || lists == nil {
		return fmt.Errorf("%w: the members buckets are missing", ErrCorrupt)
	}
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		if err := applyGroup(headers, lists, id, groups[id]); err != nil {
			return fmt.Errorf("members of group %q: %w", id, err)
		}
	}
	return nil
}

func applyGroup(headers, lists *bolt.Bucket, group string, g *groupChanges) error {
	if g.last == nil {
		if err := headers.Delete([]byte(group)); err != nil {
			return err
		}
		return deleteChunks(lists, group)
	}
	header, err := record.Encode(store.TableMembers, &store.Members{GroupID: group, Version: g.last.Version, Modified: g.last.Modified})
	if err != nil {
		return err
	}
	if err := headers.Put([]byte(group), header); err != nil {
		return err
	}
	if g.cleared {
		if err := deleteChunks(lists, group); err != nil {
			return err
		}
	}
	return mergeChunks(lists, group, netChanges(g.changes))
}

// netChanges returns the last change of each id, sorted by id: for a set,
// only the last add or remove of an id counts.
func netChanges(changes []memberChange) []memberChange {
	slices.SortFunc(changes, func(a, b memberChange) int {
		return cmp.Or(strings.Compare(a.id, b.id), cmp.Compare(a.seq, b.seq))
	})
	out := changes[:0]
	for i, c := range changes {
		if i+1 < len(changes) && changes[i+1].id == c.id {
			continue
		}
		out = append(out, c)
	}
	return out
}

// storedChunk is a member chunk as the bucket holds it.
type storedChunk struct {
	key, val []byte
	first    string // its first id, from the key
}

// groupChunks returns group's chunks in key order. A cursor is not to be
// trusted across writes to its bucket, so the chunks are listed first and
// callers decode the values they need before they write.
func groupChunks(lists *bolt.Bucket, group string) []storedChunk {
	prefix := record.ChunkPrefix(group)
	var out []storedChunk
	c := lists.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		out = append(out, storedChunk{key: bytes.Clone(k), val: v, first: string(k[len(prefix):])})
	}
	return out
}

func deleteChunks(lists *bolt.Bucket, group string) error {
	for _, c := range groupChunks(lists, group) {
		if err := lists.Delete(c.key); err != nil {
			return err
		}
	}
	return nil
}

// mergeChunks applies changes (sorted by id, one per id) to group's member
// chunks. A change goes to the chunk whose range holds its id: from the
// chunk's first id to the next chunk's (the first chunk's range starts
// below every id). Untouched chunks are neither read nor written.
func mergeChunks(lists *bolt.Bucket, group string, changes []memberChange) error {
	if len(changes) == 0 {
		return nil
	}
	stored := groupChunks(lists, group)
	var dels [][]byte
	var puts [][]string
	// pending holds the ids of rewritten chunks not yet cut: a short one
	// waits to be merged with the chunk after it.
	var pending []string
	rewriting := false
	for i, c := range stored {
		end := len(changes)
		if i+1 < len(stored) {
			next := stored[i+1].first
			end, _ = slices.BinarySearchFunc(changes, next, func(c memberChange, id string) int { return strings.Compare(c.id, id) })
		}
		mine := changes[:end]
		changes = changes[end:]
		if len(mine) == 0 && !rewriting {
			continue
		}
		ids, err := decodeChunk(group, c)
		if err != nil {
			return err
		}
		dels = append(dels, c.key)
		pending = append(pending, applyChanges(ids, mine)...)
		rewriting = len(pending) > 0 && len(pending) < chunkIDs/2
		if !rewriting {
			puts = append(puts, chunks(pending)...)
			pending = nil
		}
	}
	if len(stored) == 0 {
		pending = applyChanges(nil, changes)
	}
	puts = append(puts, chunks(pending)...)
	// Deletes first: a rewritten chunk may keep its key.
	for _, k := range dels {
		if err := lists.Delete(k); err != nil {
			return err
		}
	}
	for _, ids := range puts {
		if err := putChunk(lists, group, ids); err != nil {
			return err
		}
	}
	return nil
}

// decodeChunk decodes a stored chunk of group and checks it is stored
// under its own key.
func decodeChunk(group string, c storedChunk) ([]string, error) {
	obj, err := record.Decode(record.MemberLists, c.val)
	if err != nil {
		return nil, fmt.Errorf("%w: member chunk %q: %w", ErrCorrupt, c.key, err)
	}
	chunk := obj.(*record.MemberChunk)
	if chunk.GroupID != group || chunk.IDs[0] != c.first {
		return nil, fmt.Errorf("%w: member chunk %q is stored under the wrong key", ErrCorrupt, c.key)
	}
	return chunk.IDs, nil
}

func putChunk(lists *bolt.Bucket, group string, ids []string) error {
	val, err := record.Encode(record.MemberLists, &record.MemberChunk{GroupID: group, IDs: ids})
	if err != nil {
		return err
	}
	return lists.Put(record.ChunkKey(group, ids[0]), val)
}

// applyChanges returns sorted ids with changes (sorted by id, one per id)
// applied, as a new slice.
func applyChanges(ids []string, changes []memberChange) []string {
	out := make([]string, 0, len(ids)+len(changes))
	i := 0
	for _, c := range changes {
		for i < len(ids) && ids[i] < c.id {
			out = append(out, ids[i])
			i++
		}
		if i < len(ids) && ids[i] == c.id {
			i++
		}
		if c.in {
			out = append(out, c.id)
		}
	}
	return append(out, ids[i:]...)
}

// migrateMemberships turns the membership records of a format 1 or 2 file
// into member lists, and gives a group that has members but no header (a
// format 1 file has none) one at version 0. The records come in key order,
// which is group by group, each group's members sorted.
func migrateMemberships(tx *bolt.Tx) error {
	legacy := tx.Bucket([]byte(record.Memberships))
	headers, lists := tx.Bucket([]byte(store.TableMembers)), tx.Bucket([]byte(record.MemberLists))
	if legacy == nil || headers == nil || lists == nil {
		return fmt.Errorf("%w: migrate memberships: a bucket is missing", ErrCorrupt)
	}
	var group string
	var ids []string
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		for _, c := range chunks(ids) {
			if err := putChunk(lists, group, c); err != nil {
				return fmt.Errorf("durable: migrate members of %q: %w", group, err)
			}
		}
		if headers.Get([]byte(group)) == nil {
			h, err := record.Encode(store.TableMembers, &store.Members{GroupID: group})
			if err == nil {
				err = headers.Put([]byte(group), h)
			}
			if err != nil {
				return fmt.Errorf("durable: migrate members of %q: %w", group, err)
			}
		}
		ids = ids[:0]
		return nil
	}
	c := legacy.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		m, err := decodeMembership(k, v)
		if err != nil {
			return err
		}
		if m.GroupID != group {
			if err := flush(); err != nil {
				return err
			}
			group = m.GroupID
		}
		if n := len(ids); n > 0 && ids[n-1] >= m.MemberID {
			return fmt.Errorf("%w: membership record %q out of order", ErrCorrupt, k)
		}
		ids = append(ids, m.MemberID)
	}
	if err := flush(); err != nil {
		return err
	}
	if err := tx.DeleteBucket([]byte(record.Memberships)); err != nil {
		return fmt.Errorf("durable: migrate memberships: %w", err)
	}
	return nil
}

func decodeMembership(k, v []byte) (*store.Membership, error) {
	obj, err := record.Decode(record.Memberships, v)
	if err != nil {
		return nil, fmt.Errorf("%w: membership record %q: %w", ErrCorrupt, k, err)
	}
	m := obj.(*store.Membership)
	if want, _ := record.Key(record.Memberships, m); !bytes.Equal(want, k) {
		return nil, fmt.Errorf("%w: membership record %q is stored under the wrong key", ErrCorrupt, k)
	}
	return m, nil
}
