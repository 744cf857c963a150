package durable

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// backupOf returns a backup of a populated store and the store itself.
func backupOf(t *testing.T) ([]byte, *DB) {
	t.Helper()
	db := openDB(t, filepath.Join(t.TempDir(), FileName))
	st := newStore(t, db)
	populate(t, st)
	var buf bytes.Buffer
	if err := WriteBackup(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), db
}

func TestBackupRestoresSameState(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), FileName))
	st := newStore(t, db)
	populate(t, st)
	snap := st.Snapshot()
	// Writes after the snapshot must not leak into the backup.
	update(t, st, func(tx *Txn) error { return tx.Insert(tableUsers, user("late", "late@example.com")) })
	var buf bytes.Buffer
	if err := WriteBackup(&buf, snap); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "restored", FileName)
	if err := Restore(&buf, path); err != nil {
		t.Fatal(err)
	}
	restored := openDB(t, path)
	got := newStore(t, restored)
	if _, err := restored.LoadInto(got); err != nil {
		t.Fatal(err)
	}
	want := newStore(t, nil)
	loadFrom(t, want, snap)
	assertSameState(t, got, want)
	if u, _ := got.Read().UserByID("late"); u != nil {
		t.Fatal("backup holds a write made after its snapshot")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("restore left %d files in the data dir, want only the state file", len(entries))
	}
}

func TestRestoreRefuses(t *testing.T) {
	backup, live := backupOf(t)
	flip := func(i int) []byte {
		b := bytes.Clone(backup)
		b[i] ^= 0x40
		return b
	}
	existing := func(t *testing.T) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), FileName)
		if err := os.WriteFile(path, []byte("old state"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	fresh := func(t *testing.T) string { return filepath.Join(t.TempDir(), FileName) }
	tests := []struct {
		name   string
		backup []byte
		target func(t *testing.T) string
		opts   []RestoreOption
		want   error
	}{
		{"existing file", backup, existing, nil, ErrExists},
		{"file held by a running daemon", backup, func(*testing.T) string { return live.path }, []RestoreOption{Overwrite()}, ErrLocked},
		{"empty", nil, fresh, nil, ErrCorrupt},
		{"not a backup", []byte("PK\x03\x04 something else entirely"), fresh, nil, ErrCorrupt},
		{"truncated", backup[:len(backup)/2], fresh, nil, ErrCorrupt},
		{"trailer cut", backup[:len(backup)-3], fresh, nil, ErrCorrupt},
		{"flipped bit in a record", flip(len(backup) / 2), fresh, nil, ErrCorrupt},
		{"flipped bit in the checksum", flip(len(backup) - 1), fresh, nil, ErrCorrupt},
		{"trailing garbage", append(bytes.Clone(backup), 'x'), fresh, nil, ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.target(t)
			before, _ := os.ReadFile(path)
			// A running daemon's data dir also holds its log.
			files := dirNames(t, filepath.Dir(path))
			err := Restore(bytes.NewReader(tt.backup), path, tt.opts...)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Restore = %v, want %v", err, tt.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Fatal("a refused restore changed the target")
			}
			if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, files) {
				t.Errorf("refused restore changed the data dir from %q to %q", files, got)
			}
		})
	}
}

// dirNames lists the names in dir, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestRestoreOverwrite(t *testing.T) {
	backup, _ := backupOf(t)
	path := writeState(t)
	if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
		t.Fatal(err)
	}
	db := openDB(t, path)
	st := newStore(t, db)
	stats, err := db.LoadInto(st)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Users != 2 || stats.Groups != 2 || stats.Memberships != 2 || stats.Resources != 6 || stats.Meta != 1 {
		t.Fatalf("restored %+v, want the backup's 2 users, 2 groups, 2 memberships, 6 resources, 1 meta", stats)
	}
}

// FuzzRestore feeds Restore arbitrary streams: a backup is a file an operator
// hands over, so Restore must refuse damage cleanly and never install a file
// the daemon would not start on.
func FuzzRestore(f *testing.F) {
	db, err := Open(filepath.Join(f.TempDir(), FileName), Options{})
	if err != nil {
		f.Fatal(err)
	}
	defer db.Close()
	st, err := store.New(store.Options{Journal: db})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), func(tx *store.Txn) error {
		if err := tx.Insert(store.TableUsers, user("u1", "ada@example.com")); err != nil {
			return err
		}
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g1", DisplayName: "Leads"}); err != nil {
			return err
		}
		return tx.ChangeMembers("g1", []string{"u1"}, nil, time.Time{})
	}); err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteBackup(&buf, st.Snapshot()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(backupMagic))
	f.Fuzz(func(t *testing.T, backup []byte) {
		path := filepath.Join(t.TempDir(), FileName)
		if err := Restore(bytes.NewReader(backup), path); err != nil {
			if _, serr := os.Stat(path); serr == nil {
				t.Fatalf("failed restore (%v) left a state file", err)
			}
			return
		}
		if err := openAndLoad(t, path); err != nil && !errors.Is(err, errLoadedNothing) {
			t.Fatalf("restored state does not load: %v", err)
		}
	})
}

var updateGolden = flag.Bool("update", false, "rewrite testdata/backup-v1.bin")

// TestRestoreV1Backup restores a backup written by the first backup format,
// so backups kept from an older idrecon stay restorable.
// TestRestoreOlderBackups restores the golden backup of every format: a
// newer idrecon must read them all. Format 1 had no membership versions, so
// groups come back with their membership version at 0.
func TestRestoreOlderBackups(t *testing.T) {
	for format := 1; format <= FormatVersion; format++ {
		t.Run(fmt.Sprintf("v%d", format), func(t *testing.T) {
			golden := filepath.Join("testdata", fmt.Sprintf("backup-v%d.bin", format))
			db := openDB(t, filepath.Join(t.TempDir(), FileName))
			want := newStore(t, db)
			populate(t, want)
			if *updateGolden && format == FormatVersion {
				var buf bytes.Buffer
				if err := WriteBackup(&buf, want.Snapshot()); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			f, err := os.Open(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			defer f.Close()
			path := filepath.Join(t.TempDir(), FileName)
			if err := Restore(f, path); err != nil {
				t.Fatal(err)
			}
			restored := openDB(t, path)
			got := newStore(t, restored)
			if _, err := restored.LoadInto(got); err != nil {
				t.Fatal(err)
			}
			w := asFormat(format, withoutPrivateKeys(dump(t, want.Read())))
			assertSameDump(t, dump(t, got.Read()), w)
		})
	}
}

// A restore onto the data dir of a daemon that crashed replaces a state
// file whose log still holds acknowledged writes. Restore is one atomic
// step at the rename: should it fail or crash before, the old state must
// start whole, log included (else the writes in the log are lost, and the
// operator who was told the restore failed starts on an older state); after
// it, the old log must never be replayed onto the restored file (else the
// daemon starts on a mix of the two states that no history had).
func TestRestoreIsAtomicWithTheOldLog(t *testing.T) {
	backup, _ := backupOf(t) // users u1 and u2
	for _, tt := range []struct {
		name  string
		crash func(t *testing.T, path string, oldLog map[uint64][]byte) error
		want  []string
	}{
		{"rename fails", func(t *testing.T, path string, _ map[uint64][]byte) error {
			t.Helper()
			old := renameFile
			renameFile = func(string, string) error { return errDisk }
			defer func() { renameFile = old }()
			return Restore(bytes.NewReader(backup), path, Overwrite())
		}, []string{"old1", "old2", "old3"}},
		{"crash after the rename, before the log is removed", func(t *testing.T, path string, oldLog map[uint64][]byte) error {
			t.Helper()
			if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
				t.Fatal(err)
			}
			// What the crash left: the removals were not yet made.
			for seq, b := range oldLog {
				writeFile(t, segmentName(path, seq), b)
			}
			return nil
		}, []string{"u1", "u2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			writeLog(t, path, []string{"old1", "old2"}, []string{"old3"})
			oldLog := map[uint64][]byte{}
			for _, seq := range segments(t, path) {
				oldLog[seq] = readFile(t, segmentName(path, seq))
			}
			err := tt.crash(t, path, oldLog)
			t.Logf("restore: %v", err)
			if got := loadUsers(t, path); !slices.Equal(got, tt.want) {
				t.Fatalf("users after the restore: %v, want %v", got, tt.want)
			}
		})
	}
}
