package durable

import (
	"bytes"
	"fmt"
	"log/slog"
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
	case store.TableMemberships:
		return &s.Memberships
	}
	return &s.Meta
}

// LoadInto fills st, which must be fresh (nothing written yet), with
// everything the file holds, bypassing st's journal. Every record's checksum
// is verified and every membership must reference an existing group and
// member; any failure returns an error wrapping ErrCorrupt and leaves st
// empty, so the daemon stops instead of serving partial state.
func (db *DB) LoadInto(st *store.Store) (Stats, error) {
	start := time.Now()
	var stats Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		stats.FileBytes = tx.Size()
		return st.Load(func(t *store.Txn) error {
			return fill(tx, t, &stats)
		})
	})
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
	for _, table := range record.Tables {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, table)
		}
		objs, err := decodeBucket(b, table)
		if err != nil {
			return err
		}
		if table == store.TableUsers {
			// Radix trees fill far cheaper in key order: the file gives
			// users in id order, which leaves the userName and (usually
			// equal) workEmail indexes random. Sorting by userName costs
			// less than it saves.
			slices.SortFunc(objs, func(a, b any) int {
				return strings.Compare(a.(*store.User).UserName, b.(*store.User).UserName)
			})
		}
		for _, obj := range objs {
			if err := insert(t, table, obj); err != nil {
				return err
			}
		}
		*stats.count(table) = len(objs)
	}
	return checkReferences(t)
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
	// memdb does not enforce unique secondary indexes (an insert silently
	// takes the entry over), so a clash would hide a user from lookups.
	if err := checkUnique(t, obj); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, table, err)
	}
	if err := t.Insert(table, obj); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrCorrupt, table, err)
	}
	return nil
}

func checkUnique(t *store.Txn, obj any) error {
	switch o := obj.(type) {
	case *store.User:
		other, err := t.UserByName(o.UserName)
		if err == nil && other != nil {
			err = fmt.Errorf("userName %q is also taken by user %q", o.UserName, other.ID)
		}
		return err
	case *store.Group:
		other, err := t.GroupByName(o.DisplayName)
		if err == nil && other != nil {
			err = fmt.Errorf("displayName %q is also taken by group %q", o.DisplayName, other.ID)
		}
		return err
	}
	return nil
}

// checkReferences verifies that every membership names an existing group
// and an existing user or group as member, which the SCIM server maintains.
func checkReferences(t *store.Txn) error {
	it, err := t.Get(store.TableMemberships, store.IndexID)
	if err != nil {
		return fmt.Errorf("durable: check memberships: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		m := raw.(*store.Membership)
		g, err := t.GroupByID(m.GroupID)
		if err != nil {
			return fmt.Errorf("durable: check memberships: %w", err)
		}
		if g == nil {
			return fmt.Errorf("%w: membership of %q in group %q: no such group", ErrCorrupt, m.MemberID, m.GroupID)
		}
		u, err := t.UserByID(m.MemberID)
		if err != nil {
			return fmt.Errorf("durable: check memberships: %w", err)
		}
		if u != nil {
			continue
		}
		if g, err = t.GroupByID(m.MemberID); err != nil {
			return fmt.Errorf("durable: check memberships: %w", err)
		}
		if g == nil {
			return fmt.Errorf("%w: membership of %q in group %q: no such user or group", ErrCorrupt, m.MemberID, m.GroupID)
		}
	}
	return nil
}
