package durable

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
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
	// Repairs are the objects LoadInto renamed so that no two names fold
	// equal (see Repair).
	Repairs []Repair
}

// Repair is an object LoadInto renamed: a user or group whose name folds
// equal (store.Fold) to that of another, which an idrecon that folded names
// with strings.ToLower could write. The daemon must not refuse such a state,
// and neither object may be lost, so the one created first (then the lowest
// id) keeps the name and each other one is renamed "<name> (duplicate
// <id>)". The repair is logged and audited (audit.StateRepaired) and
// persisted, so the next start finds nothing to repair.
type Repair struct {
	Table  string // store.TableGroups or store.TableUsers
	ID     string // the renamed object
	From   string // its name in the file
	To     string // its name now
	Holder string // the object that kept the name
	obj    any    // the renamed object, to persist
}

// LogValue logs the counts as a group.
func (s Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("users", s.Users), slog.Int("groups", s.Groups), slog.Int("memberships", s.Memberships),
		slog.Int("resources", s.Resources), slog.Int("meta", s.Meta), slog.Int64("fileBytes", s.FileBytes),
		slog.Duration("elapsed", s.Elapsed), slog.Int("repairs", len(s.Repairs)))
}

func (s *Stats) count(table string) *int {
	switch table {
	case store.TableResources:
		return &s.Resources
	case store.TableUsers:
		return &s.Users
	case store.TableGroups:
		return &s.Groups
	case store.TableMeta:
		return &s.Meta
	}
	return nil // members headers: one per group with members; Memberships says more
}

// LoadInto fills st, which must be fresh (nothing written yet), with
// everything the file holds, bypassing st's journal. Every record's checksum
// is verified and every member list must belong to an existing group and
// name existing members; any failure returns an error wrapping ErrCorrupt
// and leaves st empty, so the daemon stops instead of serving partial state.
// Names that fold equal are not a failure: LoadInto renames all but one of
// them (see Repair) and reports the repairs in Stats.
func (db *DB) LoadInto(st *store.Store) (Stats, error) {
	start := time.Now()
	// Batches committed since Open are in the log; at start-up, with the
	// log replayed by Open, there are none and this costs nothing.
	if err := db.flush(); err != nil {
		return Stats{}, err
	}
	stopReading := db.readAhead()
	stats, err := db.load(st, false)
	if errors.Is(err, store.ErrUserNameTaken) {
		// The store finds a userName taken twice when it indexes the
		// loaded users, after fill returned; a file rarely holds one, so
		// only then are the users sorted by name and the load run again.
		stats, err = db.load(st, true)
	}
	stopReading()
	if errors.Is(err, store.ErrUserNameTaken) && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: users: %w", ErrCorrupt, err)
	}
	if err != nil {
		return Stats{}, err
	}
	db.persistRepairs(stats.Repairs)
	db.releasePages(true)
	stats.Elapsed = time.Since(start)
	db.log.Info("state loaded", "path", db.path, "stats", stats)
	return stats, nil
}

// readAhead reads the state file from start to end in the background while
// the load walks it, and returns a func that stops the reading and waits
// for it. The load visits bbolt's pages in key order, not in their order in
// the file, so on a cold cache (every start is cold: the load drops the
// file's pages after it) each page it reaches is a small read of its own;
// read in file order, in large reads, the file is in the cache before the
// load gets there (BenchmarkLoadInto, and the README's start-up figures).
func (db *DB) readAhead() (stop func()) {
	f, err := os.Open(db.path)
	if err != nil {
		return func() {}
	}
	var stopped atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer f.Close()
		buf := make([]byte, readAheadChunk)
		for !stopped.Load() {
			if _, err := f.Read(buf); err != nil {
				return
			}
		}
	}()
	return func() {
		stopped.Store(true)
		<-done
	}
}

// readAheadChunk is the size of readAhead's reads.
const readAheadChunk = 4 << 20

// load runs fill in one read transaction of the file and one Load of st;
// renameUsers makes fill rename users whose names fold equal.
func (db *DB) load(st *store.Store, renameUsers bool) (Stats, error) {
	var stats Stats
	err := db.bolt.View(func(tx *bolt.Tx) error {
		stats.FileBytes = tx.Size()
		return st.Load(func(t *store.Txn) error {
			return fill(tx, t, &stats, renameUsers)
		})
	})
	return stats, err
}

// persistRepairs logs each repair, for the audit trail, and writes the
// renamed objects through the log; the store takes no write before
// LoadInto returns, so this Commit runs alone. A failure to write is
// logged, not returned: st holds the repaired state already, and the next
// start repeats the same repairs on the same file.
func (db *DB) persistRepairs(repairs []Repair) {
	if len(repairs) == 0 {
		return
	}
	changes := make(memdb.Changes, len(repairs))
	for i, r := range repairs {
		// Only ids: the names are personal data, and the ids find them.
		db.log.Warn("state repaired", "table", r.Table, "id", r.ID, "holder", r.Holder,
			"reason", "name folds equal to the holder's; renamed with the suffix (duplicate <id>)")
		db.audit.Record(audit.StateRepaired{Table: r.Table, ID: r.ID, Holder: r.Holder})
		changes[i] = memdb.Change{Table: r.Table, After: r.obj}
	}
	if err := db.Commit(changes); err != nil {
		db.log.Error("state repairs not persisted; the next start repeats them", "err", err)
	}
}

// fill reads every bucket into t. A fault or panic reading a damaged file is
// reported as ErrCorrupt.
func fill(tx *bolt.Tx, t *store.Txn, stats *Stats, renameUsers bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: reading state file: %v", ErrCorrupt, p)
		}
	}()
	defer setPanicOnFault()()
	var rows map[string]*store.Members
	var users, groups []any
	for _, table := range record.Tables {
		b := tx.Bucket([]byte(table))
		if b == nil {
			return fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, table)
		}
		if table == record.MemberLists {
			// Streamed: a list is read chunk by chunk into its row.
			if stats.Memberships, err = fillMemberLists(b, rows, users, groups); err != nil {
				return err
			}
			continue
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
			if rows, err = memberRows(t, objs); err != nil {
				return err
			}
			continue
		case store.TableGroups:
			groups = objs
			if err := uniqueNames(table, objs, &stats.Repairs); err != nil {
				return err
			}
		case store.TableUsers:
			users = objs
			if renameUsers {
				if err := uniqueNames(table, objs, &stats.Repairs); err != nil {
					return err
				}
			}
		}
		for _, obj := range objs {
			if err := insert(t, table, obj); err != nil {
				return err
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(rows)) {
		if err := t.Insert(store.TableMembers, rows[id]); err != nil {
			return fmt.Errorf("%w: members of %s: %w", ErrCorrupt, id, err)
		}
	}
	return t.RebuildMemberOf()
}

// memberRows returns a members row, without ids yet, for each header
// record, by group id. Each must belong to an existing group.
func memberRows(t *store.Txn, headers []any) (map[string]*store.Members, error) {
	rows := make(map[string]*store.Members, len(headers))
	for _, obj := range headers {
		h := obj.(*store.Members)
		g, err := t.GroupByID(h.GroupID)
		if err != nil {
			return nil, fmt.Errorf("durable: load members: %w", err)
		}
		if g == nil {
			return nil, fmt.Errorf("%w: members of %q: no such group", ErrCorrupt, h.GroupID)
		}
		rows[g.ID] = &store.Members{GroupID: g.ID, Version: h.Version, Modified: h.Modified}
	}
	return rows, nil
}

// fillMemberLists reads the member chunks into their groups' rows and
// returns how many member ids they hold. A group's chunks come in the
// order of their first ids; their ids must rise throughout, so the rows
// need no sort, and every id must name one of the users or groups loaded,
// which the SCIM server maintains. A chunk of a group without a members
// header is damage: the two are written together.
func fillMemberLists(b *bolt.Bucket, rows map[string]*store.Members, users, groups []any) (int, error) {
	var ids map[string]string
	lists := make(map[string]*idset.Builder)
	n := 0
	c := b.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if ids == nil {
			ids = memberIDs(users, groups)
		}
		obj, err := record.Decode(record.MemberLists, v)
		if err != nil {
			return 0, fmt.Errorf("%w: member chunk %q: %w", ErrCorrupt, k, err)
		}
		chunk := obj.(*record.MemberChunk)
		if want, _ := record.Key(record.MemberLists, chunk); !bytes.Equal(want, k) {
			return 0, fmt.Errorf("%w: member chunk %q is stored under the wrong key", ErrCorrupt, k)
		}
		row := rows[chunk.GroupID]
		if row == nil {
			return 0, fmt.Errorf("%w: member chunk %q: group %q has no members header", ErrCorrupt, k, chunk.GroupID)
		}
		list := lists[row.GroupID]
		if list == nil {
			list = &idset.Builder{}
			lists[row.GroupID] = list
		}
		if list.Len() > 0 && list.Last() >= chunk.IDs[0] {
			return 0, fmt.Errorf("%w: member chunk %q overlaps the one before it", ErrCorrupt, k)
		}
		for _, id := range chunk.IDs {
			member, ok := ids[id]
			if !ok {
				return 0, fmt.Errorf("%w: membership of %q in group %q: no such user or group", ErrCorrupt, id, chunk.GroupID)
			}
			list.Add(member)
		}
		n += len(chunk.IDs)
	}
	for group, list := range lists {
		rows[group].IDs = list.Set()
	}
	return n, nil
}

// memberIDs maps the id of every loaded user and group to itself, the
// string the store holds: a member id is checked against it, and the rows
// share the stored strings rather than keep the chunks' copies. One map
// lookup per membership costs a fraction of a lookup in the store's
// indexes, which dominated the load of a file with many memberships.
func memberIDs(users, groups []any) map[string]string {
	ids := make(map[string]string, len(users)+len(groups))
	for _, obj := range groups {
		g := obj.(*store.Group)
		ids[g.ID] = g.ID
	}
	// Users go last: of a user and a group with the same id, the member
	// is the user.
	for _, obj := range users {
		u := obj.(*store.User)
		ids[u.ID] = u.ID
	}
	return ids
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
