package durable

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
)

var errDisk = errors.New("injected: input/output error")

// failLog makes the log's next syncs fail (every one, with syncs < 0)
// and, with undo, the truncates that cut a failed append back, until the
// returned func is called: a disk that loses a write and then refuses to
// let it be undone.
func failLog(t *testing.T, syncs int, undo bool) (heal func()) {
	t.Helper()
	oldSync, oldTruncate := syncLog, truncateLog
	var n atomic.Int64
	syncLog = func(f *os.File) error {
		if syncs < 0 || n.Add(1) <= int64(syncs) {
			return errDisk
		}
		return oldSync(f)
	}
	if undo {
		truncateLog = func(*os.File, int64) error { return errDisk }
	}
	heal = func() { syncLog, truncateLog = oldSync, oldTruncate }
	t.Cleanup(heal)
	return heal
}

// crashImage copies the state file at path and its log into a new data dir,
// as a crash now would leave them on disk, and returns the copy's path.
// Checkpoints must be held, so that nothing writes the files meanwhile.
func crashImage(t *testing.T, path string) string {
	t.Helper()
	image := filepath.Join(t.TempDir(), FileName)
	writeFile(t, image, readFile(t, path))
	for _, seq := range segments(t, path) {
		writeFile(t, segmentName(image, seq), readFile(t, segmentName(path, seq)))
	}
	return image
}

// addAda acknowledges user ada, member of group leads.
func addAda(t *testing.T, st *store.Store) {
	t.Helper()
	update(t, st, func(tx *store.Txn) error {
		if err := tx.Insert(store.TableUsers, user("ada", "ada@example.com")); err != nil {
			return err
		}
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "leads", DisplayName: "Leads", Created: t0, Modified: t0, Version: 1}); err != nil {
			return err
		}
		return tx.ChangeMembers("leads", []string{"ada"}, nil, t0)
	})
}

// createBob creates user id named bob and adds him to leads, taking ada out
// with out.
func createBob(id string, out bool) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if err := tx.Insert(store.TableUsers, user(id, "bob@example.com")); err != nil {
			return err
		}
		var remove []string
		if out {
			remove = []string{"ada"}
		}
		return tx.ChangeMembers("leads", []string{id}, remove, t0)
	}
}

// loadImage starts on the data dir of the state file at path, as the
// daemon does, and returns what it loaded.
func loadImage(t *testing.T, path string) (*store.Store, Stats) {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("the daemon does not start: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	st := newStore(t, nil)
	stats, err := db.LoadInto(st)
	if err != nil {
		t.Fatalf("the state does not load: %v", err)
	}
	return st, stats
}

// A batch whose sync failed and whose undo failed too is answered as
// failed, and the store does not hold it; the writes acknowledged after it
// are computed without it. After a crash, the replay must not apply it
// under them: here the failed write created bob and took ada out of Leads,
// and the client's retry, acknowledged, created bob again under another id
// and added him to Leads. The failed frame may be on disk whole, or in part
// (a page of it written back, another not). The log records where the
// broken segment's acknowledged frames end at once, or, while the disk
// refuses that too, before the next write is acknowledged.
func TestFailedUndoIsNotReplayed(t *testing.T) {
	for _, tt := range []struct {
		name   string
		syncs  int // how many syncs fail
		damage func(t *testing.T, image string, failedAt int64)
	}{
		{"failed frame whole, cut at once", 1, func(*testing.T, string, int64) {}},
		{"failed frame whole, cut by the next write", -1, func(*testing.T, string, int64) {}},
		{"failed frame in part, cut at once", 1, func(t *testing.T, image string, failedAt int64) {
			patch(t, image, 1, failedAt+frameHeaderLen+5, func(b []byte) { b[0] ^= 0x01 })
		}},
		{"failed frame in part, cut by the next write", -1, func(t *testing.T, image string, failedAt int64) {
			patch(t, image, 1, failedAt+frameHeaderLen+5, func(b []byte) { b[0] ^= 0x01 })
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, db, st := withAda(t)
			// A crash comes before the checkpointer gets to the broken
			// segment (on a failing disk, its checkpoints may fail too).
			db.wal.checkpointing.Lock()
			held := true
			defer func() {
				if held {
					db.wal.checkpointing.Unlock()
				}
			}()
			db.wal.mu.Lock()
			failedAt := db.wal.active.size
			db.wal.mu.Unlock()

			heal := failLog(t, tt.syncs, true)
			err := st.Update(t.Context(), createBob("bob-1", true))
			heal()
			if err == nil {
				t.Fatal("a write whose sync failed was acknowledged")
			}
			t.Logf("failed write: %v", err)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Errorf("failed write = %v, want store.ErrUnavailable", err)
			}
			if u, _ := st.Read().UserByID("bob-1"); u != nil {
				t.Fatal("the store holds a write that failed")
			}
			update(t, st, createBob("bob-2", false))
			want := newStore(t, nil)
			loadFrom(t, want, st.Snapshot())

			image := crashImage(t, path)
			tt.damage(t, image, failedAt)
			got, stats := loadImage(t, image)
			for _, r := range stats.Repairs {
				t.Errorf("load repaired %s %s: %q -> %q (kept by %s)", r.Table, r.ID, r.From, r.To, r.Holder)
			}
			assertSameState(t, got, want)

			// A clean restart: the checkpointer applies the broken
			// segment up to its cut.
			held = false
			db.wal.checkpointing.Unlock()
			got, _ = reopen(t, st, db)
			assertSameState(t, got, want)
		})
	}
}

// While the disk refuses to record where a broken segment ends, every
// write fails as unavailable: acknowledged, it would be replayed after the
// failed batch. A crash then may bring the failed batch back, as the last
// write of the log, which no acknowledged write contradicts. Once the cut
// is recorded, writes are acknowledged again, and the failed batch is gone
// for good.
func TestWritesFailUntilCutIsRecorded(t *testing.T) {
	path, db, st := withAda(t)
	db.wal.checkpointing.Lock()
	defer db.wal.checkpointing.Unlock()

	heal := failLog(t, -1, true)
	if err := st.Update(t.Context(), createBob("bob-1", true)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("failed write = %v, want store.ErrUnavailable", err)
	}
	for _, id := range []string{"carol", "dave"} {
		err := st.Update(t.Context(), func(tx *store.Txn) error {
			return tx.Insert(store.TableUsers, user(id, id+"@example.com"))
		})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("write %s before the cut is recorded = %v, want store.ErrUnavailable", id, err)
		}
	}
	if seqs := segments(t, path); !slices.Equal(seqs, []uint64{1}) {
		t.Fatalf("log segments %v during the outage, want only the broken one", seqs)
	}
	got, _ := loadImage(t, crashImage(t, path))
	var ids []string
	for _, u := range dump(t, got.Read())[store.TableUsers] {
		ids = append(ids, u.(*store.User).ID)
	}
	if !slices.Equal(ids, []string{"ada"}) && !slices.Equal(ids, []string{"ada", "bob-1"}) {
		t.Fatalf("users after a crash during the outage: %v, want ada and maybe the failed bob-1", ids)
	}

	heal()
	update(t, st, createBob("bob-2", false))
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	got, _ = loadImage(t, crashImage(t, path))
	assertSameState(t, got, want)
}

// When the undo works, a failed append leaves no trace, and the segment
// goes on: the next frame is written where the failed one was.
func TestFailedAppendIsUndone(t *testing.T) {
	path, db, st := withAda(t)
	db.wal.checkpointing.Lock()
	defer db.wal.checkpointing.Unlock()

	heal := failLog(t, 1, false)
	if err := st.Update(t.Context(), createBob("bob-1", true)); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("failed write = %v, want store.ErrUnavailable", err)
	}
	heal()
	db.wal.mu.Lock()
	seq, broken, size := db.wal.active.seq, db.wal.active.broken, db.wal.active.size
	db.wal.mu.Unlock()
	if seq != 1 || broken {
		t.Fatalf("after an undone append: active segment %d, broken %v; want segment 1 going on", seq, broken)
	}
	if fi, err := os.Stat(segmentName(path, 1)); err != nil || fi.Size() != size {
		t.Fatalf("segment after the undo: %v, %v; want %d bytes", fi, err, size)
	}
	update(t, st, createBob("bob-2", false))
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	got, _ := loadImage(t, crashImage(t, path))
	assertSameState(t, got, want)
}

// frameOf returns the frame that creates users ids.
func frameOf(t *testing.T, ids ...string) []byte {
	t.Helper()
	ops, err := batchOps(insertUsers(ids...), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := appendFrame(nil, ops)
	if err != nil {
		t.Fatal(err)
	}
	return frame
}

// Replay applies a segment up to the cut the next segment starts with, and
// refuses a cut that does not fit the log.
func TestReplayStopsAtCut(t *testing.T) {
	tests := []struct {
		name string
		// seg2 returns segment 2, given where segment 1's synced frames end.
		seg2 func(size int64) []byte
		want error
	}{
		{"cut drops the failed batch", func(size int64) []byte {
			return append(appendCut(segmentHeader(2), cut{1, size}), frameOf(t, "u3")...)
		}, nil},
		{"cut past the end of its segment", func(size int64) []byte {
			return appendCut(segmentHeader(2), cut{1, size + 2*fillAhead})
		}, ErrCorrupt},
		{"cut past the last frame", func(size int64) []byte {
			return appendCut(segmentHeader(2), cut{1, size + 4096})
		}, ErrCorrupt},
		{"cut inside a frame", func(size int64) []byte {
			return appendCut(segmentHeader(2), cut{1, size - 3})
		}, ErrCorrupt},
		{"cut frame after a batch", func(size int64) []byte {
			return appendCut(append(segmentHeader(2), frameOf(t, "u3")...), cut{1, size})
		}, ErrCorrupt},
		{"cut of another segment", func(size int64) []byte {
			return appendCut(segmentHeader(2), cut{2, size})
		}, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			offs := writeLog(t, path, []string{"u1", "u2"})
			size := offs[0][2]
			// The batch that failed, whole after the synced frames.
			appendFile(t, segmentName(path, 1), frameOf(t, "failed"))
			writeFile(t, segmentName(path, 2), tt.seg2(size))
			if tt.want != nil {
				_, err := Open(path, Options{})
				if !errors.Is(err, tt.want) {
					t.Fatalf("Open = %v, want %v", err, tt.want)
				}
				t.Log(err)
				return
			}
			if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
				t.Fatalf("loaded users %v, want u1, u2 and u3", got)
			}
		})
	}
	// The first append to a segment can break it too.
	t.Run("cut of a segment without frames", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), FileName)
		writeLog(t, path, nil)
		appendFile(t, segmentName(path, 1), frameOf(t, "failed"))
		writeFile(t, segmentName(path, 2), append(appendCut(segmentHeader(2), cut{1, int64(segmentHeaderLen)}), frameOf(t, "u3")...))
		if got := loadUsers(t, path); !slices.Equal(got, []string{"u3"}) {
			t.Fatalf("loaded users %v, want u3", got)
		}
	})
	// A cut of a segment applied before the process died is moot.
	t.Run("cut of an applied segment", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), FileName)
		writeLog(t, path, []string{"u1", "u2"})
		db := openDB(t, path) // applies and removes segment 1
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		writeFile(t, segmentName(path, 2), append(appendCut(segmentHeader(2), cut{1, 1 << 20}), frameOf(t, "u3")...))
		if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2", "u3"}) {
			t.Fatalf("loaded users %v, want u1, u2 and u3", got)
		}
	})
}

// A userName can hold any bytes, an intact frame among them: header,
// checksums and ops creating a user. Replay reads frames one after another
// from the segment's header, so such bytes are only ever part of a frame's
// payload; when the frame holding them is torn, they are never applied.
// With the torn frame's header intact they are skipped with its payload,
// and the tear is dropped as any other; with the header torn too, where
// the frame ended is unknown, and they make the tear look like damage
// followed by a frame: start-up is refused (ErrCorrupt), nothing applied.
//
// Stale frames cannot follow a tear either: a segment file is created
// empty (O_TRUNC) under a number never used before, the zeros ahead of the
// frames are written, not preallocated or recycled, an undone append is
// truncated away and synced, and a broken segment is cut (above).
func TestCraftedFrameIsNeverReplayed(t *testing.T) {
	crafted := "x" + string(frameOf(t, "mallory")) + strings.Repeat("y", 64)
	tests := []struct {
		name   string
		damage func(t *testing.T, path string, at int64)
		want   []string
		err    error
	}{
		{"frame intact", func(*testing.T, string, int64) {}, []string{"crafted", "u1"}, nil},
		{"payload torn after the crafted bytes", func(t *testing.T, path string, at int64) {
			patch(t, path, 1, at+frameHeaderLen+int64(len(crafted))+20, func(b []byte) { b[0] ^= 0x01 })
		}, []string{"u1"}, nil},
		{"header torn", func(t *testing.T, path string, at int64) {
			patch(t, path, 1, at, func(b []byte) { clear(b[:frameHeaderLen]) })
		}, nil, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			db := openDB(t, path)
			if err := db.Commit(insertUsers("u1")); err != nil {
				t.Fatal(err)
			}
			db.wal.mu.Lock()
			at := db.wal.active.size
			db.wal.mu.Unlock()
			if err := db.Commit(memdb.Changes{{Table: store.TableUsers, After: user("crafted", crafted)}}); err != nil {
				t.Fatal(err)
			}
			crash(t, db)
			tt.damage(t, path, at)
			if tt.err != nil {
				if _, err := Open(path, Options{}); !errors.Is(err, tt.err) {
					t.Fatalf("Open = %v, want %v", err, tt.err)
				}
				return
			}
			got, _ := loadImage(t, path)
			var ids []string
			for _, raw := range dump(t, got.Read())[store.TableUsers] {
				u := raw.(*store.User)
				ids = append(ids, u.ID)
				if u.ID == "crafted" && u.UserName != crafted {
					t.Errorf("crafted userName came back as %q", u.UserName)
				}
			}
			if !slices.Equal(ids, tt.want) {
				t.Fatalf("loaded users %v, want %v", ids, tt.want)
			}
		})
	}
}

// withAda opens a state file in a new folder with a store holding ada.
func withAda(t *testing.T) (path string, db *DB, st *store.Store) {
	t.Helper()
	path = filepath.Join(t.TempDir(), FileName)
	db = openDB(t, path)
	st = newStore(t, db)
	addAda(t, st)
	return path, db, st
}

// Why start-up is refused when a torn frame's header is lost and its
// payload holds a crafted frame (TestCraftedFrameIsNeverReplayed, "header
// torn"): the bytes can be exactly those of damage in the middle of the
// log, which must be reported and must not cost the acknowledged frames
// after it. A crash in the append of one frame can leave any of its pages
// unwritten, and an unwritten page reads as the zeros written ahead of the
// frames: here the pages with the header and the payload's start are lost,
// and the one with the crafted frame is written. Lose instead, to media
// damage, every byte of an acknowledged frame exactly as long as the bytes
// before the crafted one, followed by an acknowledged frame equal to it:
// the segment is the same, byte for byte. Replay cannot tell which
// happened, so it may neither drop the tail (the second history loses an
// acknowledged frame) nor apply it (the first applies the crafted one).
// Only a frame format that clients cannot forge (a checksum keyed by a
// secret of the segment) would let replay tell them apart.
func TestTornHeaderWithCraftedFrameIsLikeMidLogDamage(t *testing.T) {
	evil := frameOf(t, "mallory")
	crafted := "x" + string(evil) + strings.Repeat("y", 64)
	prefix := append(segmentHeader(1), frameOf(t, "u1")...)

	// The crash: the frame creating the crafted user, torn as above.
	ops, err := batchOps(memdb.Changes{{Table: store.TableUsers, After: user("crafted", crafted)}}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	frame, err := appendFrame(nil, ops)
	if err != nil {
		t.Fatal(err)
	}
	torn := append(bytes.Clone(prefix), frame...)
	at := len(prefix) + bytes.Index(frame, evil)
	clear(torn[len(prefix):at])
	clear(torn[at+len(evil):])

	// The damage: an acknowledged frame as long as the lost bytes, zeroed,
	// then the frame creating mallory, acknowledged.
	var filler []byte
	for n := 0; len(filler) != at-len(prefix); n++ {
		if n > at {
			t.Fatalf("no meta frame is %d bytes long", at-len(prefix))
		}
		ops, err := batchOps(memdb.Changes{{Table: store.TableMeta, After: &store.Meta{Key: "k", Value: strings.Repeat("v", n)}}}, func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		if filler, err = appendFrame(nil, ops); err != nil {
			t.Fatal(err)
		}
	}
	damaged := slices.Concat(prefix, make([]byte, len(filler)), evil, make([]byte, len(torn)-at-len(evil)))

	if !bytes.Equal(torn, damaged) {
		t.Fatal("the two histories left different segments; the test proves nothing")
	}
	if _, err := parseSegment("seg", torn, 1, FormatVersion, true); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("parse = %v, want ErrCorrupt", err)
	}
}

// diskFull makes the log's writes fail with ENOSPC past free bytes beyond
// the end of the active segment's frames, until the returned func is
// called.
func diskFull(t *testing.T, db *DB, free int64) (heal func()) {
	t.Helper()
	db.wal.mu.Lock()
	// The zeros written ahead are used up: the next frame needs more.
	a := db.wal.active
	if err := a.f.Truncate(a.size); err != nil {
		t.Fatal(err)
	}
	a.filled = a.size
	limit := a.size + free
	db.wal.mu.Unlock()
	old := writeSegment
	writeSegment = func(f *os.File, b []byte, off int64) (int, error) {
		if off+int64(len(b)) <= limit {
			return old(f, b, off)
		}
		n, _ := old(f, b[:max(0, limit-off)], off)
		return n, syscall.ENOSPC
	}
	heal = func() { writeSegment = old }
	t.Cleanup(heal)
	return heal
}

// A full disk fails a write cleanly (unavailable, nothing of it kept, the
// store serving what it holds) and a write that fits in the space left is
// taken: the zeros the log writes ahead of its frames are only there to
// spare fdatasync a journal commit, and must not refuse a write the disk
// has room for.
func TestDiskFullFailsWritesCleanly(t *testing.T) {
	for _, tt := range []struct {
		name  string
		free  int64 // bytes left on the disk past the log's frames
		taken bool
	}{
		{"no space", 0, false},
		{"room for the frame, not for the zeros ahead", 16 << 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path, db, st := withAda(t)
			db.wal.checkpointing.Lock()
			defer db.wal.checkpointing.Unlock()
			heal := diskFull(t, db, tt.free)
			err := st.Update(t.Context(), createBob("bob-1", true))
			if tt.taken != (err == nil) {
				t.Fatalf("write with %d bytes free = %v, want taken %v", tt.free, err, tt.taken)
			}
			if err != nil && !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("write on a full disk = %v, want store.ErrUnavailable", err)
			}
			if u, _ := st.Read().UserByID("ada"); u == nil {
				t.Fatal("the store lost ada on a full disk")
			}
			heal()
			// Space is back: writes are taken again.
			update(t, st, func(tx *store.Txn) error {
				return tx.Insert(store.TableUsers, user("carol", "carol@example.com"))
			})
			want := newStore(t, nil)
			loadFrom(t, want, st.Snapshot())
			got, _ := loadImage(t, crashImage(t, path))
			assertSameState(t, got, want)
		})
	}
}
