package durable

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// A backup taken while writers run and the log is checkpointed under them
// holds every write acknowledged before it began, and no write in part: it
// is the store's state as of one batch, whatever the log and the state file
// hold at that moment.
func TestBackupDuringWritesAndCheckpoints(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	// A few batches fill a segment, so checkpoints run during the backup.
	db, err := Open(path, Options{SegmentBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := newStore(t, db)
	const workers = 4
	out := &outcomes{acked: map[string]string{}, unknown: map[string]string{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				name, group := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("g%d", i%3)
				err := st.Update(context.Background(), createUser(name, group))
				out.record(name, group, err == nil)
			}
		})
	}
	// Wait until writes flow and a few segments have gone through the
	// checkpointer.
	deadline := time.Now().Add(60 * time.Second)
	for {
		out.mu.Lock()
		n := len(out.acked)
		out.mu.Unlock()
		if n >= 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d writes acknowledged", n)
		}
		runtime.Gosched()
	}
	out.mu.Lock()
	before := make(map[string]string, len(out.acked))
	for name, group := range out.acked {
		before[name] = group
	}
	out.mu.Unlock()
	var buf bytes.Buffer
	if err := WriteBackup(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	cancel()
	wg.Wait()

	restored := filepath.Join(t.TempDir(), FileName)
	if err := Restore(&buf, restored); err != nil {
		t.Fatal(err)
	}
	rdb := openDB(t, restored)
	got := newStore(t, nil)
	if _, err := rdb.LoadInto(got); err != nil {
		t.Fatal(err)
	}
	tx := got.Read()
	holdsWhole(t, tx, before, out, "the backup")
	t.Logf("%d writes acknowledged before the backup, %d users in it", len(before), len(dump(t, tx)[store.TableUsers]))
}

// A data dir whose state file is gone but whose log is left (acknowledged
// writes of a daemon that crashed) is not empty: a restore without
// Overwrite must not drop that log.
func TestRestoreRefusesLeftLogWithoutOverwrite(t *testing.T) {
	backup, _ := backupOf(t)
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	writeLog(t, path, []string{"old1"})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	files := dirNames(t, dir)
	if err := Restore(bytes.NewReader(backup), path); !errors.Is(err, ErrExists) {
		t.Fatalf("Restore onto a data dir holding a log = %v, want ErrExists", err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, files) {
		t.Fatalf("refused restore changed the data dir from %q to %q", files, got)
	}
	// With Overwrite the operator says the log may go.
	if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
		t.Fatal(err)
	}
	if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("restored users %v, want the backup's u1 and u2", got)
	}
}

// A checkpoint whose segment could not be removed applies it again on its
// next attempt: member deltas applied twice must leave what applying them
// once does, never a member twice or a removed one back.
func TestSegmentAppliedTwiceChangesNothing(t *testing.T) {
	smallChunks(t, 4)
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	st := newStore(t, db)
	memberBase(t, st)
	if err := db.flush(); err != nil {
		t.Fatal(err)
	}
	for _, w := range []func(*store.Txn) error{
		changeMembers("g1", uids(40, 45), uids(0, 3)),
		changeMembers("g1", nil, []string{"u41"}),
		changeMembers("g3", uids(0, 30), nil),
		changeMembers("g3", nil, uids(10, 20)),
		deleteGroup("g2"),
	} {
		update(t, st, w)
	}
	want := newStore(t, nil)
	loadFrom(t, want, st.Snapshot())
	st.Close()
	seqs := segments(t, path)
	if len(seqs) != 1 {
		t.Fatalf("log segments %v, want one", seqs)
	}
	data := readFile(t, segmentName(path, seqs[0]))
	if err := db.flush(); err != nil {
		t.Fatal(err)
	}
	p, err := parseSegment("again", data, seqs[0], FormatVersion, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.applySegment(seqs[0], FormatVersion, p.ops); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	got, db2 := loadState(t, path)
	checkChunks(t, db2)
	assertSameState(t, got, want)
}

// Restore holds the state file's lock to the end, so that no daemon starts
// on the data dir while it is replaced: also after the rename, while the
// old log is removed, as a daemon started then would write its first
// segments where the removal finds them.
func TestRestoreHoldsLockAfterRename(t *testing.T) {
	backup, _ := backupOf(t)
	for _, tt := range []struct {
		name  string
		state func(t *testing.T, path string)
	}{
		{"over a state file", func(t *testing.T, path string) { writeLog(t, path, []string{"old1"}) }},
		{"into an empty data dir", func(*testing.T, string) {}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			tt.state(t, path)
			var openErr error
			old := renameFile
			renameFile = func(from, to string, replace bool) error {
				if err := old(from, to, replace); err != nil {
					return err
				}
				// A daemon starting right after the rename.
				db, err := Open(path, Options{Timeout: 50 * time.Millisecond})
				if err == nil {
					db.Close()
				}
				openErr = err
				return nil
			}
			t.Cleanup(func() { renameFile = old })
			if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
				t.Fatal(err)
			}
			if !errors.Is(openErr, ErrLocked) {
				t.Fatalf("Open of the restored file before Restore returned = %v, want ErrLocked", openErr)
			}
		})
	}
}
