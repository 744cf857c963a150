package durable

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable/internal/record"
)

// Stats describes what LoadInto loaded.
type Stats struct {
	Resources   int
	Users       int
	Groups      int
	Memberships int
	Meta        int
	// FileBytes is the state file's size.
	FileBytes int64
	Elapsed   time.Duration
}

// LogValue logs the counts as a group.
func (s Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("users", s.Users), slog.Int("groups", s.Groups), slog.Int("memberships", s.Memberships),
		slog.Int("resources", s.Resources), slog.Int("meta", s.Meta), slog.Int64("fileBytes", s.FileBytes),
		slog.Duration("elapsed", s.Elapsed))
}

func (s *Stats) count(table string) *int {
	switch table {
	case store.TableResources:
		return &s.Resources
	case store.TableUsers:
		return &s.Users
	case store.TableGroups:
		return &s.Groups
	case record.Memberships:
		return &s.Memberships
	case store.TableMeta:
		return &s.Meta
	}
	return nil // members rows: one per group with members; Memberships says more
}

// LoadInto fills st, which must be fresh (nothing written yet), with
// everything the file holds, bypassing st's journal. Every record's checksum
// is verified and every membership must reference an existing group and
// member; any failure returns an error wrapping ErrCorrupt and leaves st
// empty, so the daemon stops instead of serving partial state.
func (db *DB) LoadInto(st *store.Store) (Stats, error) {
	start := time.Now()
	// Batches committed since Open are in the log; at start-up, with the
	// log replayed by Open, there are none and this costs nothing.
	if err := db.flush(); err != nil {
		return Stats{}, err
	}
	var stats Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		stats.FileBytes = tx.Size()
		return st.Load(func(t *store.Txn) error {
			return fill(tx, t, &stats)
		})
	})
	if errors.Is(err, store.ErrUserNameTaken) && !errors.Is(err, ErrCorrupt) {
		// The store finds a userName taken twice when it indexes the
		// loaded users, after fill returned.
		err = fmt.Errorf("%w: users: %w", ErrCorrupt, err)
	}
	if err != nil {
		return Stats{}, err
	}
	stats.Elapsed = time.Since(start)
	db.log.Info("state loaded", "path", db.path, "stats", stats)
	return stats, nil
}

// fill reads every bucket into t. A fault or panic reading a damaged file is
// reported as ErrCorrupt.
func fill(tx *bolt.Tx, t *store.Txn, stats *Stats) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: reading state file: %v", ErrCorrupt, p)
		}
	}()
	defer setPanicOnFault()()
	var headers, memberships []any
	for _, table := range record.Tables {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, table)
		}
		objs, err := decodeBucket(b, table)
		if err != nil {
			return err
		}
		if n := stats.count(table); n != nil {
			*n = len(objs)
		}
		switch table {
		case store.TableMembers:
			headers = objs
			continue
		case record.Memberships:
			memberships = objs
			continue
		case store.TableGroups:
			if err := insertByName(t, table, objs); err != nil {
				return err
			}
			continue
		}
		for _, obj := range objs {
			if err := insert(t, table, obj); err != nil {
				return err
			}
		}
	}
	return fillMembers(t, headers, memberships)
}

// fillMembers builds the members rows from their header records and the
// membership records, and derives the reverse index. Every membership must
// name an existing group and an existing user or group as member, which
// the SCIM server maintains.
func fillMembers(t *store.Txn, headers, memberships []any) error {
	rows := make(map[string]*store.Members, len(headers))
	for _, obj := range headers {
		h := obj.(*store.Members)
		g, err := t.GroupByID(h.GroupID)
		if err != nil {
			return fmt.Errorf("durable: load members: %w", err)
		}
		if g == nil {
			return fmt.Errorf("%w: members of %q: no such group", ErrCorrupt, h.GroupID)
		}
		rows[g.ID] = &store.Members{GroupID: g.ID, Version: h.Version, Modified: h.Modified}
	}
	for _, obj := range memberships {
		m := obj.(*store.Membership)
		// Rows exist only for groups already found: look a group up once,
		// not once per member.
		row := rows[m.GroupID]
		if row == nil {
			g, err := t.GroupByID(m.GroupID)
			if err != nil {
				return fmt.Errorf("durable: load memberships: %w", err)
			}
			if g == nil {
				return fmt.Errorf("%w: membership of %q in group %q: no such group", ErrCorrupt, m.MemberID, m.GroupID)
			}
			// A file written before members rows had headers.
			row = &store.Members{GroupID: g.ID}
			rows[g.ID] = row
		}
		member, err := memberID(t, m.MemberID)
		if err != nil {
			return err
		}
		if member == "" {
			return fmt.Errorf("%w: membership of %q in group %q: no such user or group", ErrCorrupt, m.MemberID, m.GroupID)
		}
		row.IDs = append(row.IDs, member)
	}
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		row := rows[id]
		row.IDs = sortedIDs(row.IDs)
		if err := t.Insert(store.TableMembers, row); err != nil {
			return fmt.Errorf("%w: members of %s: %w", ErrCorrupt, id, err)
		}
	}
	return t.RebuildMemberOf()
}

// memberID returns the stored id of the user or group id ("" when neither
// exists), so every members row shares the id strings of the rows.
func memberID(t *store.Txn, id string) (string, error) {
	u, err := t.UserByID(id)
	if err != nil {
		return "", fmt.Errorf("durable: load memberships: %w", err)
	}
	if u != nil {
		return u.ID, nil
	}
	g, err := t.GroupByID(id)
	if err != nil {
		return "", fmt.Errorf("durable: load memberships: %w", err)
	}
	if g != nil {
		return g.ID, nil
	}
	return "", nil
}

// decodeBucket decodes every record of table's bucket, checking each is
// stored under its own key (the checksum covers the value only).
func decodeBucket(b *bolt.Bucket, table string) ([]any, error) {
	var objs []any
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		obj, err := record.Decode(table, v)
		if err != nil {
			return nil, fmt.Errorf("%w: %s record %q: %w", ErrCorrupt, table, k, err)
		}
		want, err := record.Key(table, obj)
		if err != nil {
			return nil, fmt.Errorf("%w: %s record %q: %w", ErrCorrupt, table, k, err)
		}
		if !bytes.Equal(want, k) {
			return nil, fmt.Errorf("%w: %s record %q is stored under the wrong key", ErrCorrupt, table, k)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// insert inserts one decoded object into t.
func insert(t *store.Txn, table string, obj any) error {
	var err error
	if u, ok := obj.(*store.User); ok {
		// Every user is stored once, under its id: no earlier version.
		err = t.LoadUser(u)
	} else {
		err = t.Insert(table, obj)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, table, err)
	}
	return nil
}

// insertByName inserts groups in the order of their displayName,
// lower-cased as its index keys are. In that order a name taken twice sits
// next to itself: memdb does not enforce unique secondary indexes (an
// insert silently takes the entry over, hiding the other row from lookups),
// so the check is made here, without a lookup per row. Users come in the
// file's id order, the order of their only radix index; the store refuses
// a userName taken twice (store.ErrUserNameTaken).
func insertByName(t *store.Txn, table string, objs []any) error {
	type named struct {
		key string
		obj any
	}
	rows := make([]named, len(objs))
	for i, obj := range objs {
		g, ok := obj.(*store.Group)
		if !ok {
			return fmt.Errorf("%w: %s: unexpected %T", ErrCorrupt, table, obj)
		}
		rows[i] = named{strings.ToLower(g.DisplayName), g}
	}
	slices.SortFunc(rows, func(a, b named) int { return strings.Compare(a.key, b.key) })
	for i, r := range rows {
		if i > 0 && rows[i-1].key == r.key {
			return fmt.Errorf("%w: %s: displayName %q is also taken by group %q", ErrCorrupt, table,
				r.obj.(*store.Group).DisplayName, rows[i-1].obj.(*store.Group).ID)
		}
		if err := insert(t, table, r.obj); err != nil {
			return err
		}
	}
	return nil
}

// sortedIDs is a members row's ids as loaded: records come in key order,
// which sorts a group's members by id, but a sort makes no assumption.
func sortedIDs(ids []string) []string {
	slices.Sort(ids)
	return slices.Compact(ids)
}
