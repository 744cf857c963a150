package durable

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// smallChunks cuts member lists into chunks of n ids for the test, so a few
// dozen members span several chunks.
func smallChunks(t *testing.T, n int) {
	t.Helper()
	old := chunkIDs
	chunkIDs = n
	t.Cleanup(func() { chunkIDs = old })
}

// downgrade turns the state file at path into one of an older format, as
// that idrecon wrote it: a membership record per direct membership and,
// for format 1, no members headers.
func downgrade(t *testing.T, path string, format int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		legacy, err := tx.CreateBucket([]byte(record.Memberships))
		if err != nil {
			return err
		}
		err = eachChunk(tx, func(chunk *record.MemberChunk) error {
			for _, id := range chunk.IDs {
				if err := putMembership(legacy, chunk.GroupID, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.DeleteBucket([]byte(record.MemberLists)); err != nil {
			return err
		}
		if format < 2 {
			if err := tx.DeleteBucket([]byte(store.TableMembers)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketInfo).Put(keyFormat, []byte(strconv.Itoa(format)))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// eachChunk calls fn with every member chunk of the file, in key order.
func eachChunk(tx *bolt.Tx, fn func(*record.MemberChunk) error) error {
	c := tx.Bucket([]byte(record.MemberLists)).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		obj, err := record.Decode(record.MemberLists, v)
		if err != nil {
			return err
		}
		if err := fn(obj.(*record.MemberChunk)); err != nil {
			return err
		}
	}
	return nil
}

func putMembership(b *bolt.Bucket, group, member string) error {
	m := &store.Membership{GroupID: group, MemberID: member}
	key, err := record.Key(record.Memberships, m)
	if err != nil {
		return err
	}
	val, err := record.Encode(record.Memberships, m)
	if err != nil {
		return err
	}
	return b.Put(key, val)
}

// loadState opens the state file at path, checks its member chunks and
// returns what it loads.
func loadState(t *testing.T, path string) (*store.Store, *DB) {
	t.Helper()
	db := openDB(t, path)
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	checkChunks(t, db)
	return st, db
}

// checkChunks checks the member chunks keep their bounds: a group's chunks
// hold at most twice chunkIDs ids, all but its last at least half of it, and
// each belongs to a group with a header.
func checkChunks(t *testing.T, db *DB) {
	t.Helper()
	err := db.bolt.View(func(tx *bolt.Tx) error {
		headers := tx.Bucket([]byte(store.TableMembers))
		var sizes []int
		var group string
		check := func() {
			for i, n := range sizes {
				if n > 2*chunkIDs || (i < len(sizes)-1 && n < chunkIDs/2) {
					t.Errorf("group %q: chunk sizes %v out of bounds for %d ids a chunk", group, sizes, chunkIDs)
					return
				}
			}
		}
		err := eachChunk(tx, func(chunk *record.MemberChunk) error {
			if chunk.GroupID != group {
				check()
				group, sizes = chunk.GroupID, nil
				if headers.Get([]byte(group)) == nil {
					t.Errorf("group %q has member chunks but no header", group)
				}
			}
			sizes = append(sizes, len(chunk.IDs))
			return nil
		})
		check()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// memberBase fills st with users u00..u59, groups g1..g3, g1 with the
// first 20 users and g2 with 10 of them, g3 without members.
func memberBase(t *testing.T, st *store.Store) {
	t.Helper()
	update(t, st, func(tx *store.Txn) error {
		for i := range 60 {
			if err := tx.Insert(store.TableUsers, user(uid(i), uid(i)+"@example.com")); err != nil {
				return err
			}
		}
		for _, g := range []string{"g1", "g2", "g3"} {
			if err := tx.Insert(store.TableGroups, &store.Group{ID: g, DisplayName: g, Created: t0, Modified: t0, Version: 1}); err != nil {
				return err
			}
		}
		if err := tx.ChangeMembers("g1", uids(0, 20), nil, t0); err != nil {
			return err
		}
		return tx.ChangeMembers("g2", uids(20, 30), nil, t0)
	})
}

func uid(i int) string { return fmt.Sprintf("u%02d", i) }

// uids returns the ids of users from to to-1.
func uids(from, to int) []string {
	var ids []string
	for i := from; i < to; i++ {
		ids = append(ids, uid(i))
	}
	return ids
}

// changeMembers is a write that changes g's members.
func changeMembers(g string, add, remove []string) func(*store.Txn) error {
	return func(tx *store.Txn) error { return tx.ChangeMembers(g, add, remove, t0.Add(time.Hour)) }
}

// deleteGroup is a write that deletes group g and its memberships.
func deleteGroup(g string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if err := tx.DeleteMemberships(g, t0); err != nil {
			return err
		}
		_, err := tx.DeleteAll(store.TableGroups, store.IndexID, g)
		return err
	}
}

// createGroup is a write that creates group g with members.
func createGroup(g string, members []string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if err := tx.Insert(store.TableGroups, &store.Group{ID: g, DisplayName: g, Created: t0, Modified: t0, Version: 1}); err != nil {
			return err
		}
		return tx.ChangeMembers(g, members, nil, t0)
	}
}

// TestMemberDeltas writes member changes, each its own batch and all in
// one log segment, onto a state file whose member lists span several
// chunks, and checks the file loads the same state whether the segment is
// checkpointed (Close) or replayed after a crash.
func TestMemberDeltas(t *testing.T) {
	tests := []struct {
		name   string
		writes []func(*store.Txn) error
	}{
		{"several deltas to one group", []func(*store.Txn) error{
			changeMembers("g1", uids(40, 45), nil),
			changeMembers("g1", nil, uids(0, 3)),
			changeMembers("g1", uids(30, 32), uids(10, 12)),
			changeMembers("g1", []string{"u03"}, nil),
		}},
		{"add then remove of the same id", []func(*store.Txn) error{
			changeMembers("g1", []string{"u50"}, nil),
			changeMembers("g1", nil, []string{"u50"}),
		}},
		{"remove then add of the same id", []func(*store.Txn) error{
			changeMembers("g1", nil, []string{"u05"}),
			changeMembers("g1", []string{"u05"}, nil),
		}},
		{"ids before the first and after the last chunk", []func(*store.Txn) error{
			changeMembers("g2", []string{"g3", "u59", "u00"}, nil),
		}},
		{"every member removed", []func(*store.Txn) error{
			changeMembers("g1", nil, uids(0, 20)),
		}},
		{"list grows to many chunks", []func(*store.Txn) error{
			changeMembers("g3", uids(0, 60), nil),
			changeMembers("g3", nil, uids(10, 50)),
		}},
		{"group deleted then recreated", []func(*store.Txn) error{
			deleteGroup("g1"),
			createGroup("g1", uids(15, 25)),
			changeMembers("g1", uids(50, 52), []string{"u16"}),
		}},
		{"delta then the row deleted", []func(*store.Txn) error{
			changeMembers("g2", uids(40, 50), nil),
			deleteGroup("g2"),
		}},
		{"row deleted then a new group's deltas", []func(*store.Txn) error{
			deleteGroup("g2"),
			createGroup("g4", []string{"g1", "u01"}),
			changeMembers("g4", uids(30, 40), []string{"u01"}),
		}},
		{"user deleted from every group", []func(*store.Txn) error{
			changeMembers("g2", []string{"u05"}, nil),
			func(tx *store.Txn) error {
				if err := tx.DeleteMemberships("u05", t0); err != nil {
					return err
				}
				_, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u05")
				return err
			},
		}},
	}
	for _, tt := range tests {
		for _, crashed := range []bool{false, true} {
			name := tt.name + "/checkpoint"
			if crashed {
				name = tt.name + "/replay"
			}
			t.Run(name, func(t *testing.T) {
				smallChunks(t, 4)
				path := filepath.Join(t.TempDir(), FileName)
				db := openDB(t, path)
				st := newStore(t, db)
				memberBase(t, st)
				// The base goes into the state file as chunks; the
				// writes stay in the log.
				if err := db.flush(); err != nil {
					t.Fatal(err)
				}
				for _, w := range tt.writes {
					update(t, st, w)
				}
				want := newStore(t, nil)
				loadFrom(t, want, st.Snapshot())
				st.Close()
				if crashed {
					crash(t, db)
					if len(segments(t, path)) == 0 {
						t.Fatal("the writes are not in the log; the test proves nothing")
					}
				} else if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				got, _ := loadState(t, path)
				assertSameState(t, got, want)
			})
		}
	}
}

// TestMemberListsMatchStore makes random member changes with checkpoints
// running beside them, crashes, and checks the file loads what the store
// held: the merge of deltas into chunks against the store's own lists.
func TestMemberListsMatchStore(t *testing.T) {
	smallChunks(t, 4)
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{SegmentBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := newStore(t, db)
	memberBase(t, st)
	r := rand.New(rand.NewPCG(7, 11))
	pick := func(n int) []string {
		var ids []string
		for range n {
			ids = append(ids, uid(r.IntN(60)))
		}
		return ids
	}
	groups := []string{"g1", "g2", "g3"}
	for range 300 {
		g := groups[r.IntN(len(groups))]
		switch n := r.IntN(20); {
		case n == 0:
			update(t, st, deleteGroup(g))
			update(t, st, createGroup(g, pick(r.IntN(30))))
		case n < 10:
			update(t, st, changeMembers(g, pick(r.IntN(12)), nil))
		default:
			update(t, st, changeMembers(g, pick(r.IntN(4)), pick(r.IntN(12))))
		}
	}
	if appliedSeq(t, db) == 0 {
		t.Fatal("no segment was checkpointed")
	}
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	st.Close()
	crash(t, db)
	got, _ := loadState(t, path)
	assertSameState(t, got, want)
}

func TestChunks(t *testing.T) {
	smallChunks(t, 4)
	for n := range 40 {
		ids := uids(0, n)
		got := chunks(ids)
		if joined := slices.Concat(got...); !slices.Equal(joined, ids) && n > 0 {
			t.Fatalf("chunks of %d ids join to %v", n, joined)
		}
		for _, c := range got {
			if len(c) == 0 || len(c) > 2*chunkIDs || (len(got) > 1 && len(c) < chunkIDs/2) {
				t.Fatalf("chunks of %d ids have sizes out of bounds: %v", n, got)
			}
		}
	}
}

func TestApplyChanges(t *testing.T) {
	add := func(id string) memberChange { return memberChange{id: id, in: true} }
	del := func(id string) memberChange { return memberChange{id: id} }
	tests := []struct {
		ids     []string
		changes []memberChange
		want    []string
	}{
		{nil, nil, nil},
		{nil, []memberChange{add("a"), del("b")}, []string{"a"}},
		{[]string{"b", "d"}, []memberChange{add("a"), add("c"), add("e")}, []string{"a", "b", "c", "d", "e"}},
		{[]string{"b", "d"}, []memberChange{del("b"), del("d")}, nil},
		{[]string{"b", "d"}, []memberChange{add("b"), del("c")}, []string{"b", "d"}},
	}
	for _, tt := range tests {
		if got := applyChanges(tt.ids, tt.changes); !slices.Equal(got, tt.want) {
			t.Errorf("applyChanges(%v, %v) = %v, want %v", tt.ids, tt.changes, got, tt.want)
		}
	}
	var changes []memberChange
	for i, c := range []memberChange{add("b"), del("a"), del("b"), add("a"), add("c")} {
		c.seq = i
		changes = append(changes, c)
	}
	want := []memberChange{{id: "a", seq: 3, in: true}, {id: "b", seq: 2}, {id: "c", seq: 4, in: true}}
	if got := netChanges(changes); !slices.Equal(got, want) {
		t.Errorf("netChanges = %v, want %v", got, want)
	}
}

// TestOpensOlderStateFiles turns a state file back into each older format
// and checks Open migrates it in place and it loads the same state (format
// 1 had no membership versions: they come back as 0).
func TestOpensOlderStateFiles(t *testing.T) {
	for format := 1; format < FormatVersion; format++ {
		t.Run(fmt.Sprintf("format %d", format), func(t *testing.T) {
			smallChunks(t, 4)
			path := filepath.Join(t.TempDir(), FileName)
			db := openDB(t, path)
			st := newStore(t, db)
			memberBase(t, st)
			populate(t, st)
			want, db := reopen(t, st, db)
			wantDump := asFormat(format, withoutPrivateKeys(dump(t, want.Read())))
			want.Close()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			downgrade(t, path, format)

			got, db := loadState(t, path)
			assertSameDump(t, dump(t, got.Read()), wantDump)
			if err := db.bolt.View(func(tx *bolt.Tx) error {
				if f := string(tx.Bucket(bucketInfo).Get(keyFormat)); f != strconv.Itoa(FormatVersion) {
					t.Errorf("format after migration = %s, want %d", f, FormatVersion)
				}
				if tx.Bucket([]byte(record.Memberships)) != nil {
					t.Error("migration left the membership records")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestFailedMigrationChangesNothing(t *testing.T) {
	tests := []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"damaged membership record", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(record.Memberships))
			k, v := b.Cursor().First()
			v = bytes.Clone(v)
			v[len(v)-1] ^= 1
			return b.Put(bytes.Clone(k), v)
		}},
		{"membership record under the wrong key", func(tx *bolt.Tx) error {
			b := tx.Bucket([]byte(record.Memberships))
			_, v := b.Cursor().First()
			return b.Put(record.ChunkKey("g1", "u99"), bytes.Clone(v))
		}},
		{"membership bucket missing", func(tx *bolt.Tx) error {
			return tx.DeleteBucket([]byte(record.Memberships))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeState(t)
			downgrade(t, path, 2)
			bdb, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = bdb.Update(tt.damage)
			bdb.Close()
			if err != nil {
				t.Fatal(err)
			}
			before := readFile(t, path)
			if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Fatal("a failed migration changed the state file")
			}
		})
	}
}

// format2Ops returns the ops a format 2 idrecon logged for changes: a
// members change is its header record plus a membership record put or
// deleted per member added or removed.
func format2Ops(t *testing.T, changes memdb.Changes) []op {
	t.Helper()
	var ops []op
	for i := range changes {
		c := &changes[i]
		if !slices.Contains(record.Tables, c.Table) {
			continue // derived, not persisted
		}
		var err error
		if ops, err = objectOps(ops, c); err != nil {
			t.Fatal(err)
		}
		if c.Table != store.TableMembers {
			continue
		}
		var before, after idset.Set
		var group string
		if m, ok := c.Before.(*store.Members); ok {
			before, group = m.IDs, m.GroupID
		}
		if m, ok := c.After.(*store.Members); ok {
			after, group = m.IDs, m.GroupID
		}
		added, removed := idset.Diff(before, after)
		for _, id := range slices.Concat(added, removed) {
			m := &store.Membership{GroupID: group, MemberID: id}
			key, _ := record.Key(record.Memberships, m)
			o := op{table: record.Memberships, key: key}
			if slices.Contains(added, id) {
				if o.val, err = record.Encode(record.Memberships, m); err != nil {
					t.Fatal(err)
				}
			}
			ops = append(ops, o)
		}
	}
	return ops
}

// TestReplaysFormat2Log leaves the log of a format 2 idrecon that died
// before its checkpoint beside its state file, and checks Open replays it
// in format 2 and then migrates the file.
func TestReplaysFormat2Log(t *testing.T) {
	path := writeState(t)
	db := openDB(t, path)
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t, path, 2)
	applied := appliedSeqOf(t, path)

	// The same writes, through a store, give the changes to log and the
	// state to expect.
	var batches []memdb.Changes
	mem, err := store.New(store.Options{OnCommit: func(c memdb.Changes) { batches = append(batches, c) }})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	loadFrom(t, mem, st.Snapshot())
	for _, w := range []func(*store.Txn) error{
		changeMembers("g1", []string{"u2", "bulk-3-7"}, []string{"u1"}),
		changeMembers("g2", []string{"bulk-0-0"}, nil),
		deleteGroup("g1"),
		createGroup("g1", []string{"u1", "u2"}),
	} {
		update(t, mem, w)
	}
	data := segmentHeaderOf(applied+1, 2)
	for _, c := range batches {
		if data, err = appendFrame(data, format2Ops(t, c)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, segmentName(path, applied+1), data)

	got, _ := loadState(t, path)
	assertSameState(t, got, mem)
	if seqs := segments(t, path); len(seqs) != 0 {
		t.Fatalf("Open left log segments %v", seqs)
	}
}

func appliedSeqOf(t *testing.T, path string) uint64 {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	db := &DB{bolt: bdb}
	return appliedSeq(t, db)
}

// TestBadDeltaStopsReplay logs a members op whose value is not a delta, in
// an intact frame, before another segment: replay must refuse the log
// before it applies any of it.
func TestBadDeltaStopsReplay(t *testing.T) {
	tests := []struct {
		name string
		op   op
	}{
		{"not a record", op{table: store.TableMembers, key: []byte("g1"), val: []byte("garbage")}},
		{"a header, not a delta", func() op {
			val, err := record.Encode(store.TableMembers, &store.Members{GroupID: "g1", Version: 2})
			if err != nil {
				t.Fatal(err)
			}
			return op{table: store.TableMembers, key: []byte("g1"), val: val}
		}()},
		{"delta of another group", func() op {
			val, err := record.Encode(record.MemberDeltas, &record.MemberDelta{GroupID: "g2", Add: []string{"u1"}})
			if err != nil {
				t.Fatal(err)
			}
			return op{table: store.TableMembers, key: []byte("g1"), val: val}
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeLog(t, path, []string{"u1"}, []string{"u2"})
			frame, err := appendFrame(nil, []op{tt.op})
			if err != nil {
				t.Fatal(err)
			}
			appendFile(t, segmentName(path, 2), frame)
			before := readFile(t, path)
			_, err = Open(path, Options{})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want ErrCorrupt", err)
			}
			if !bytes.Equal(readFile(t, path), before) {
				t.Fatal("Open on a bad log changed the state file")
			}
		})
	}
}

func TestCommitRejectsHugeMemberID(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	st := newStore(t, db)
	memberBase(t, st)
	huge := strings.Repeat("x", bolt.MaxKeySize)
	err := st.Update(t.Context(), changeMembers("g1", []string{huge, "u40"}, nil))
	if !errors.Is(err, berrors.ErrKeyTooLarge) {
		t.Fatalf("Update = %v, want ErrKeyTooLarge", err)
	}
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := loadState(t, path)
	if ok, _ := got.Read().IsMember("g1", "u40"); ok {
		t.Fatal("a failed write's membership was persisted")
	}
}

// TestBackupHoldsMemberChunks checks a backup of big groups restores them,
// chunked as the state file keeps them.
func TestBackupHoldsMemberChunks(t *testing.T) {
	smallChunks(t, 4)
	db := openDB(t, filepath.Join(t.TempDir(), FileName))
	st := newStore(t, db)
	memberBase(t, st)
	update(t, st, changeMembers("g3", uids(0, 60), nil))
	var buf bytes.Buffer
	if err := WriteBackup(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := Restore(&buf, path); err != nil {
		t.Fatal(err)
	}
	got, _ := loadState(t, path)
	assertSameState(t, got, st)
}

func TestWrittenBackupFormat(t *testing.T) {
	backup, _ := backupOf(t)
	hr := &hashingReader{r: bufio.NewReader(bytes.NewReader(backup)), h: crc32.New(castagnoli)}
	hdr, err := readBackupHeader(hr)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Format != FormatVersion || !slices.Equal(hdr.Tables, record.Tables) {
		t.Fatalf("backup header %+v, want format %d and tables %v", hdr, FormatVersion, record.Tables)
	}
}
