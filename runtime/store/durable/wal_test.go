package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// crash abandons db as a killed process would: the log stays as written,
// and nothing more is checkpointed.
func crash(t *testing.T, db *DB) {
	t.Helper()
	db.wal.closeOnce.Do(func() {
		close(db.wal.stop)
		<-db.wal.done
		if db.wal.active != nil {
			db.wal.active.f.Close()
		}
		if err := db.bolt.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func segments(t *testing.T, path string) []uint64 {
	t.Helper()
	seqs, err := listSegments(path)
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

// insertUsers is the change of a write that creates users ids.
func insertUsers(ids ...string) memdb.Changes {
	var c memdb.Changes
	for _, id := range ids {
		c = append(c, memdb.Change{Table: store.TableUsers, After: user(id, id+"@example.com")})
	}
	return c
}

// loadUsers opens the state file at path, loads it and returns the ids of
// its users.
func loadUsers(t *testing.T, path string) []string {
	t.Helper()
	db := openDB(t, path)
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range dump(t, st.Read())[store.TableUsers] {
		ids = append(ids, u.(*store.User).ID)
	}
	return ids
}

// writeLog creates a state file at path and leaves beside it the log of a
// process that died before any checkpoint: segment i+1 holds one frame per
// id in segments[i], each creating that user. It returns the offsets of
// each segment's frames, and the segment's size last.
func writeLog(t *testing.T, path string, segments ...[]string) [][]int64 {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	var offsets [][]int64
	for i, ids := range segments {
		s, err := createSegment(path, uint64(i+1), nil)
		if err != nil {
			t.Fatal(err)
		}
		var offs []int64
		for _, id := range ids {
			ops, err := batchOps(insertUsers(id), func(string) {})
			if err != nil {
				t.Fatal(err)
			}
			frame, err := appendFrame(nil, ops)
			if err != nil {
				t.Fatal(err)
			}
			offs = append(offs, s.size)
			if err := s.append(frame); err != nil {
				t.Fatal(err)
			}
		}
		offsets = append(offsets, append(offs, s.size))
		s.f.Close()
	}
	return offsets
}

// patch overwrites segment seq of path at off (from the end when negative).
func patch(t *testing.T, path string, seq uint64, off int64, fn func(b []byte)) {
	t.Helper()
	name := segmentName(path, seq)
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += int64(len(b))
	}
	fn(b[off:])
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReplayAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	st := newStore(t, db)
	populate(t, st)
	update(t, st, func(tx *store.Txn) error {
		u, _ := tx.UserByID("u2")
		u2 := *u
		u2.Active, u2.Version = false, 2
		return tx.Insert(store.TableUsers, &u2)
	})
	update(t, st, func(tx *store.Txn) error {
		if err := tx.DeleteMemberships("u1", t0); err != nil {
			return err
		}
		_, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u1")
		return err
	})
	update(t, st, func(tx *store.Txn) error {
		return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: "rev-2"})
	})
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	st.Close()
	crash(t, db)

	seqs := segments(t, path)
	if len(seqs) == 0 {
		t.Fatal("the writes are not in the log; the test proves nothing")
	}
	fi, err := os.Stat(segmentName(path, seqs[0]))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("log segment mode %v, want 0600", fi.Mode().Perm())
	}
	db2 := openDB(t, path)
	if seqs := segments(t, path); len(seqs) != 0 {
		t.Fatalf("Open left log segments %v", seqs)
	}
	got := newStore(t, db2)
	if _, err := db2.LoadInto(got); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, got, want)
}

func TestTornTailIsDropped(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, offs []int64)
		want   []string
	}{
		{"cut in the last frame's payload", func(t *testing.T, path string, offs []int64) {
			truncate(t, segmentName(path, 1), offs[3]-5)
		}, []string{"u1", "u2"}},
		{"cut in the last frame's header", func(t *testing.T, path string, offs []int64) {
			truncate(t, segmentName(path, 1), offs[2]+5)
		}, []string{"u1", "u2"}},
		{"flipped bit in the last frame", func(t *testing.T, path string, offs []int64) {
			patch(t, path, 1, offs[3]-3, func(b []byte) { b[0] ^= 0x10 })
		}, []string{"u1", "u2"}},
		{"last frame's header never written", func(t *testing.T, path string, offs []int64) {
			patch(t, path, 1, offs[2], func(b []byte) { clear(b[:frameHeaderLen]) })
		}, []string{"u1", "u2"}},
		{"last frame never written", func(t *testing.T, path string, offs []int64) {
			patch(t, path, 1, offs[2], func(b []byte) { clear(b) })
		}, []string{"u1", "u2"}},
		{"garbage after the last frame", func(t *testing.T, path string, offs []int64) {
			appendFile(t, segmentName(path, 1), bytes.Repeat([]byte{0xa5}, 100))
		}, []string{"u1", "u2", "u3"}},
		{"next segment's header cut", func(t *testing.T, path string, offs []int64) {
			writeFile(t, segmentName(path, 2), segmentHeader(2)[:10])
		}, []string{"u1", "u2", "u3"}},
		{"next segment's header never written", func(t *testing.T, path string, offs []int64) {
			writeFile(t, segmentName(path, 2), make([]byte, segmentHeaderLen))
		}, []string{"u1", "u2", "u3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			offs := writeLog(t, path, []string{"u1", "u2", "u3"})
			tt.damage(t, path, offs[0])
			if got := loadUsers(t, path); !slices.Equal(got, tt.want) {
				t.Fatalf("loaded users %v, want %v", got, tt.want)
			}
			if seqs := segments(t, path); len(seqs) != 0 {
				t.Fatalf("Open left log segments %v", seqs)
			}
		})
	}
}

func TestDamagedLogStopsStartUp(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, offs [][]int64)
		want   error
	}{
		{"flipped bit in the first frame", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 2, offs[1][0]+frameHeaderLen+3, func(b []byte) { b[0] ^= 0x01 })
		}, ErrCorrupt},
		{"flipped bit in the first frame's length", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 2, offs[1][0], func(b []byte) { b[1] ^= 0x01 })
		}, ErrCorrupt},
		{"middle frame zeroed", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 2, offs[1][1], func(b []byte) { clear(b[:offs[1][2]-offs[1][1]]) })
		}, ErrCorrupt},
		{"last frame of an earlier segment cut", func(t *testing.T, path string, offs [][]int64) {
			truncate(t, segmentName(path, 1), offs[0][2]-1)
		}, ErrCorrupt},
		{"flipped bit at the end of an earlier segment", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 1, offs[0][2]-1, func(b []byte) { b[0] ^= 0x01 })
		}, ErrCorrupt},
		{"garbage after an earlier segment", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 1, offs[0][2], func(b []byte) { b[0] = 0xa5 })
		}, ErrCorrupt},
		{"garbage after an earlier segment's zeros", func(t *testing.T, path string, offs [][]int64) {
			appendFile(t, segmentName(path, 1), []byte{1})
		}, ErrCorrupt},
		{"damaged header of an earlier segment", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 1, 0, func(b []byte) { b[0] = 'I' })
		}, ErrCorrupt},
		{"segment under another's name", func(t *testing.T, path string, offs [][]int64) {
			if err := os.Rename(segmentName(path, 2), segmentName(path, 3)); err != nil {
				t.Fatal(err)
			}
			writeFile(t, segmentName(path, 2), segmentHeader(3))
		}, ErrCorrupt},
		{"missing segment", func(t *testing.T, path string, offs [][]int64) {
			if err := os.Rename(segmentName(path, 2), segmentName(path, 3)); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt},
		{"segment of a newer format", func(t *testing.T, path string, offs [][]int64) {
			patch(t, path, 1, 0, func(b []byte) {
				h := b[:segmentHeaderLen]
				binary.BigEndian.PutUint32(h[len(logMagic):], FormatVersion+1)
				binary.BigEndian.PutUint32(h[segmentHeaderLen-4:], crc32.Checksum(h[:segmentHeaderLen-4], castagnoli))
			})
		}, ErrNewerFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			offs := writeLog(t, path, []string{"u1", "u2"}, []string{"u3", "u4", "u5"})
			tt.damage(t, path, offs)
			before := readFile(t, path)
			_, err := Open(path, Options{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %v, want %v", err, tt.want)
			}
			t.Log(err)
			if !bytes.Equal(readFile(t, path), before) {
				t.Fatal("Open on a damaged log changed the state file")
			}
		})
	}
}

func TestLogWithoutStateFileStopsStartUp(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeLog(t, path, []string{"u1"})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open = %v, want ErrCorrupt", err)
	}
}

// A segment applied before the process died, but not yet removed, must not
// be applied again over the segments after it.
func TestAppliedSegmentIsSkipped(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeLog(t, path, []string{"u1"})
	stale := readFile(t, segmentName(path, 1))
	db := openDB(t, path) // applies and removes segment 1
	renamed := user("u1", "renamed@example.com")
	if err := db.Commit(memdb.Changes{{Table: store.TableUsers, Before: user("u1", "u1@example.com"), After: renamed}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	writeFile(t, segmentName(path, 1), stale)

	db = openDB(t, path)
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Read().UserByID("u1"); u == nil || u.UserName != renamed.UserName {
		t.Fatalf("user u1 = %+v, want the later write", u)
	}
	if seqs := segments(t, path); len(seqs) != 0 {
		t.Fatalf("Open left log segments %v", seqs)
	}
}

func TestLastPerKey(t *testing.T) {
	put := func(table, key, val string) op { return op{table, []byte(key), []byte(val)} }
	del := func(table, key string) op { return op{table: table, key: []byte(key)} }
	got := lastPerKey([]op{
		put("users", "b", "1"), put("groups", "a", "1"), put("users", "a", "1"),
		del("users", "b"), put("users", "a", "2"), del("users", "c"), put("users", "b", "2"),
		put("users", "c", "1"), del("users", "c"),
	})
	want := []op{put("groups", "a", "1"), put("users", "a", "2"), put("users", "b", "2"), del("users", "c")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lastPerKey = %q, want %q", got, want)
	}
}

func TestCheckpointDuringWritesLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{SegmentBytes: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := newStore(t, db)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				id := fmt.Sprintf("w%d-%d", w, i)
				err := st.Update(t.Context(), func(tx *store.Txn) error {
					return tx.Insert(store.TableUsers, user(id, id+"@example.com"))
				})
				if err == nil && i%3 == 0 {
					// Rewrite and delete earlier users, so replay order
					// matters.
					err = st.Update(t.Context(), func(tx *store.Txn) error {
						u, _ := tx.UserByID(id)
						u2 := *u
						u2.Version++
						if err := tx.Insert(store.TableUsers, &u2); err != nil {
							return err
						}
						_, err := tx.DeleteAll(store.TableUsers, store.IndexID, fmt.Sprintf("w%d-%d", w, i-1))
						return err
					})
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// The writes filled far more segments than may wait, so the
	// checkpointer applied some while they went on.
	if appliedSeq(t, db) == 0 {
		t.Fatal("no segment was checkpointed")
	}
	if n := len(segments(t, path)); n > maxSealed+1 {
		t.Fatalf("%d log segments on disk, want at most %d", n, maxSealed+1)
	}
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	st.Close()
	crash(t, db)

	db = openDB(t, path)
	got := newStore(t, db)
	if _, err := db.LoadInto(got); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, got, want)
}

func appliedSeq(t *testing.T, db *DB) uint64 {
	t.Helper()
	var seq uint64
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketInfo).Get(keyLogApplied); v != nil {
			seq = binary.BigEndian.Uint64(v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return seq
}

func TestCloseLeavesNoLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	db, err := Open(path, Options{SegmentBytes: 1 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := db.Commit(insertUsers(fmt.Sprintf("u%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if len(segments(t, path)) == 0 {
		t.Fatal("nothing in the log; the test proves nothing")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{FileName}) {
		t.Fatalf("data dir after Close holds %q, want only the state file", names)
	}
	if got := loadUsers(t, path); len(got) != 20 {
		t.Fatalf("loaded %d users, want 20", len(got))
	}
}

// holdCheckpoints stops checkpoints until the returned func is called, and
// fills the log with full segments until Commit has to wait.
func holdCheckpoints(t *testing.T, db *DB) (release func()) {
	t.Helper()
	db.wal.checkpointing.Lock()
	for i := range maxSealed {
		if err := db.Commit(insertUsers(fmt.Sprintf("early%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return db.wal.checkpointing.Unlock
}

func TestCommitWaitsForLaggingCheckpoint(t *testing.T) {
	// Every batch fills its segment.
	db, err := Open(filepath.Join(t.TempDir(), FileName), Options{SegmentBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	release := holdCheckpoints(t, db)
	done := make(chan error, 1)
	go func() { done <- db.Commit(insertUsers("late")) }()
	select {
	case err := <-done:
		release()
		t.Fatalf("Commit returned (%v) with %d segments waiting for the checkpointer", err, maxSealed)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCommitFailsWhileCheckpointFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{SegmentBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	release := holdCheckpoints(t, db)
	// A segment that vanished cannot be checkpointed.
	if err := os.Remove(segmentName(path, 1)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.Commit(insertUsers("late")) }()
	release()
	if err := <-done; !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Commit = %v, want the checkpoint's error", err)
	}
}

func TestCommitRejectsEmptyKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	if err := db.Commit(insertUsers("u1", "")); err == nil {
		t.Fatal("Commit accepted a user without an id")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := loadUsers(t, path); len(got) != 0 {
		t.Fatalf("a failed Commit wrote users %v", got)
	}
}

func TestRestoreReplacesLog(t *testing.T) {
	backup, _ := backupOf(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	writeLog(t, path, []string{"old1", "old2"})
	if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
		t.Fatal(err)
	}
	if names := dirNames(t, dir); !slices.Equal(names, []string{FileName}) {
		t.Fatalf("data dir after Restore holds %q, want only the state file", names)
	}
	if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("restored users %v, want the backup's u1 and u2", got)
	}
}

// segmentOf returns the bytes of segment 1 holding one frame per id, each
// creating that user, and the frames' offsets.
func segmentOf(t testing.TB, ids ...string) ([]byte, []int) {
	t.Helper()
	data := segmentHeader(1)
	var offs []int
	for _, id := range ids {
		ops, err := batchOps(insertUsers(id), func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		offs = append(offs, len(data))
		if data, err = appendFrame(data, ops); err != nil {
			t.Fatal(err)
		}
	}
	return data, offs
}

func TestEveryCutOfTheLastFrameIsDropped(t *testing.T) {
	data, offs := segmentOf(t, "u1", "u2")
	for n := offs[1]; n < len(data); n++ {
		p, err := parseSegment("seg", data[:n], 1, FormatVersion, true)
		if err != nil {
			t.Fatalf("cut at %d: %v", n, err)
		}
		// Zeros at the end are what append writes ahead of the frames:
		// they are not counted as dropped.
		want := len(bytes.TrimRight(data[offs[1]:n], "\x00"))
		if p.frames != 1 || p.torn != want {
			t.Fatalf("cut at %d: %d frames, %d bytes dropped; want 1 frame, %d bytes", n, p.frames, p.torn, want)
		}
	}
	for n := range segmentHeaderLen {
		if p, err := parseSegment("seg", data[:n], 1, FormatVersion, true); err != nil || p.frames != 0 {
			t.Fatalf("header cut at %d: %d frames, %v", n, p.frames, err)
		}
	}
}

// FuzzLastSegment parses a last segment of an intact frame and arbitrary
// bytes: it must keep the intact frame and drop the rest, or refuse with
// ErrCorrupt, and never panic.
func FuzzLastSegment(f *testing.F) {
	data, offs := segmentOf(f, "u0", "u1")
	frame := data[offs[1]:]
	f.Add([]byte{})
	f.Add(frame)
	f.Add(frame[:len(frame)/2])
	f.Add(append(bytes.Clone(frame), frame...))
	f.Add(append(bytes.Clone(frame[:7]), frame...))
	for _, ops := range memberOpsSeeds(f) {
		delta, err := appendFrame(nil, ops)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(delta)
		f.Add(append(bytes.Clone(frame), delta...))
	}
	prefix := data[:offs[1]]
	f.Fuzz(func(t *testing.T, tail []byte) {
		data := append(bytes.Clone(prefix), tail...)
		p, err := parseSegment("seg", data, 1, FormatVersion, true)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parse = %v, want success or ErrCorrupt", err)
			}
			return
		}
		if p.frames == 0 || string(p.ops[0].key) != "u0" {
			t.Fatalf("the intact first frame was lost: %d frames", p.frames)
		}
		if p.torn > len(tail) {
			t.Fatalf("dropped %d bytes of a %d-byte tail", p.torn, len(tail))
		}
		if _, _, err := segmentWrites(FormatVersion, p.ops); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("segment writes = %v, want success or ErrCorrupt", err)
		}
	})
}

// memberOpsSeeds returns batches of members ops as Commit logs them: deltas
// that add and remove ids, and a row deleted.
func memberOpsSeeds(tb testing.TB) [][]op {
	tb.Helper()
	rows := []*store.Members{
		{GroupID: "g1", Version: 1, Modified: t0},
		{GroupID: "g1", IDs: idset.Of("u1", "u2", "u3"), Version: 2, Modified: t0},
		{GroupID: "g1", IDs: idset.Of("u2", "u4"), Version: 3, Modified: t0},
	}
	var out [][]op
	for i, after := range rows {
		c := memdb.Change{Table: store.TableMembers, After: after}
		if i > 0 {
			c.Before = rows[i-1]
		}
		ops, err := batchOps(memdb.Changes{c}, func(string) {})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, ops)
	}
	ops, err := batchOps(memdb.Changes{{Table: store.TableMembers, Before: rows[2]}}, func(string) {})
	if err != nil {
		tb.Fatal(err)
	}
	return append(out, slices.Concat(out[1], ops, out[0]))
}

// sealFrame appends payload to b as an intact frame, whatever it holds.
func sealFrame(b, payload []byte) []byte {
	h := make([]byte, frameHeaderLen)
	binary.BigEndian.PutUint32(h[0:], uint32(len(payload)))
	binary.BigEndian.PutUint32(h[4:], crc32.Checksum(payload, castagnoli))
	binary.BigEndian.PutUint32(h[8:], crc32.Checksum(h[:8], castagnoli))
	return append(append(b, h...), payload...)
}

// FuzzSegmentOps seals arbitrary payloads into intact frames, so that they
// reach the op decoder and the members delta decoder past the checksums: a
// segment must parse and split into its writes or be refused with
// ErrCorrupt, never panic. What parses must encode back to the same ops,
// and a group's net member changes must come out sorted, one per id.
func FuzzSegmentOps(f *testing.F) {
	for _, ops := range append(memberOpsSeeds(f), []op{{table: store.TableUsers, key: []byte("u1")}}) {
		frame, err := appendFrame(nil, ops)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(frame[frameHeaderLen:])
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		data := sealFrame(segmentHeader(1), payload)
		p, err := parseSegment("seg", data, 1, FormatVersion, false)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parse = %v, want success or ErrCorrupt", err)
			}
			return
		}
		frame, err := appendFrame(nil, p.ops)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeOps(nil, frame[frameHeaderLen:])
		if err != nil || !reflect.DeepEqual(again, p.ops) {
			t.Fatalf("ops do not survive a round trip: %v\n%q\n%q", err, p.ops, again)
		}
		_, groups, err := segmentWrites(FormatVersion, p.ops)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("segment writes = %v, want success or ErrCorrupt", err)
			}
			return
		}
		for id, g := range groups {
			net := netChanges(g.changes)
			for i := 1; i < len(net); i++ {
				if net[i-1].id >= net[i].id {
					t.Fatalf("group %q: net changes out of order: %v", id, net)
				}
			}
		}
	})
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, name string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// A checkpoint that fails for a while (a full disk under the state file)
// makes writes fail as unavailable once the log is full, never wait for
// good nor half-apply; the store keeps serving what it holds, and writes
// are taken again once the checkpointer's retry succeeds. Here the
// checkpoint fails because its segment cannot be read for a while.
func TestWritesResumeWhenCheckpointRecovers(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{SegmentBytes: 1}) // every batch fills its segment
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := newStore(t, db)
	addAda(t, st)
	// ada's segment is checkpointed before checkpoints are held: still
	// waiting, it would leave holdCheckpoints one segment too many.
	if err := db.flush(); err != nil {
		t.Fatal(err)
	}
	release := holdCheckpoints(t, db)
	first := segmentName(path, segments(t, path)[0])
	if err := os.Rename(first, first+".away"); err != nil {
		t.Fatal(err)
	}
	release()
	// Once the checkpointer has failed, a write needing a new segment
	// fails at once.
	err = st.Update(t.Context(), createBob("bob-1", false))
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write while the log is full and checkpoints fail = %v, want store.ErrUnavailable", err)
	}
	if u, _ := st.Read().UserByID("bob-1"); u != nil {
		t.Fatal("the store holds a write that failed")
	}
	if u, _ := st.Read().UserByID("ada"); u == nil {
		t.Fatal("the store lost ada while checkpoints fail")
	}
	if err := os.Rename(first+".away", first); err != nil {
		t.Fatal(err)
	}
	// The checkpointer retries on its own; poll for the write to go
	// through rather than guess how long that takes.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err = st.Update(t.Context(), createBob("bob-1", false))
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("write after the checkpoint recovered = %v", err)
		}
		runtime.Gosched()
	}
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// holdCheckpoints committed early0 and early1 past the store.
	if got, want := loadUsers(t, path), []string{"ada", "bob-1", "early0", "early1"}; !slices.Equal(got, want) {
		t.Fatalf("users after the outage: %v, want %v", got, want)
	}
}
