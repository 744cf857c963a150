package durable

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
			renameFile = func(string, string, bool) error { return errDisk }
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

// Restore writes into a temporary file and renames it to the state file's
// path. Into a data dir with no state file nothing is locked meanwhile: a
// daemon started then creates a state file there and acknowledges writes.
// Replacing that file would unlink it under the daemon, and the writes it
// acknowledged would be gone at its next start.
func TestRestoreRefusesStateFileCreatedMeanwhile(t *testing.T) {
	backup, _ := backupOf(t)
	for _, tt := range []struct {
		name string
		opts []RestoreOption
	}{
		{"without overwrite", nil},
		// The operator let Restore replace a file it found; this one
		// it did not find.
		{"with overwrite into an empty data dir", []RestoreOption{Overwrite()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			var daemon *DB
			var st *store.Store
			old := renameFile
			renameFile = func(from, to string, replace bool) error {
				var err error
				if daemon, err = Open(path, Options{}); err != nil {
					t.Fatal(err)
				}
				st = newStore(t, daemon)
				update(t, st, func(tx *Txn) error { return tx.Insert(tableUsers, user("acked", "acked@example.com")) })
				return old(from, to, replace)
			}
			t.Cleanup(func() { renameFile = old })
			err := Restore(bytes.NewReader(backup), path, tt.opts...)
			if daemon == nil {
				t.Fatal("Restore did not reach its rename")
			}
			if !errors.Is(err, ErrExists) {
				t.Errorf("Restore = %v, want ErrExists", err)
			}
			// The daemon writes on after the restore, and stops.
			update(t, st, func(tx *Txn) error { return tx.Insert(tableUsers, user("later", "later@example.com")) })
			st.Close()
			if err := daemon.Close(); err != nil {
				t.Errorf("the daemon's Close: %v", err)
			}
			if got := loadUsers(t, path); !slices.Equal(got, []string{"acked", "later"}) {
				t.Fatalf("users after the daemon's restart: %v, want its acked and later", got)
			}
			if got := dirNames(t, filepath.Dir(path)); !slices.Equal(got, []string{FileName}) {
				t.Fatalf("data dir holds %q, want only the daemon's state file", got)
			}
		})
	}
}

// Without Overwrite, Restore refuses a data dir holding the log of a lost
// state file. A log that appears once that was checked, while the backup is
// read, must be refused too, not recorded as applied and removed.
func TestRestoreRefusesLogAppearedMeanwhile(t *testing.T) {
	backup, _ := backupOf(t)
	lost := filepath.Join(t.TempDir(), FileName)
	writeLog(t, lost, []string{"lost1"})
	seqs := segments(t, lost)
	path := filepath.Join(t.TempDir(), FileName)
	r := &atEOF{r: bytes.NewReader(backup), fn: func() {
		for _, seq := range seqs {
			writeFile(t, segmentName(path, seq), readFile(t, segmentName(lost, seq)))
		}
	}}
	if err := Restore(r, path); !errors.Is(err, ErrExists) {
		t.Errorf("Restore = %v, want ErrExists", err)
	}
	if got := segments(t, path); !slices.Equal(got, seqs) {
		t.Fatalf("log segments after the restore: %v, want %v", got, seqs)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("refused restore left a state file: %v", err)
	}
	if got := dirNames(t, filepath.Dir(path)); len(got) != len(seqs) {
		t.Fatalf("data dir holds %q, want only the log", got)
	}
}

// atEOF is r that calls fn once when r is drained.
type atEOF struct {
	r    io.Reader
	fn   func()
	done bool
}

func (a *atEOF) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err == io.EOF && !a.done {
		a.done = true
		a.fn()
	}
	return n, err
}

// A daemon that opened the old state file just before Restore replaced it
// waits for the lock Restore holds on that file. Once it has it, the file is
// no longer the state file: served from, it would lose every write at the
// daemon's next start. It must open the restored file instead.
func TestOpenWaitingForARestoreOpensTheRestoredFile(t *testing.T) {
	backup, _ := backupOf(t) // users u1 and u2
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, db)
	update(t, st, func(tx *Txn) error { return tx.Insert(tableUsers, user("old", "old@example.com")) })
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	opened := make(chan struct{}, 1)
	oldOpen := openStateFile
	openStateFile = func(name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := oldOpen(name, flag, perm)
		if name == path {
			select {
			case opened <- struct{}{}:
			default:
			}
		}
		return f, err
	}
	t.Cleanup(func() { openStateFile = oldOpen })
	type daemon struct {
		db  *DB
		err error
	}
	started := make(chan daemon, 1)
	oldRename := renameFile
	renameFile = func(from, to string, replace bool) error {
		go func() {
			db, err := Open(path, Options{Timeout: time.Minute})
			started <- daemon{db, err}
		}()
		<-opened // the daemon holds the old file, and waits for its lock
		return oldRename(from, to, replace)
	}
	t.Cleanup(func() { renameFile = oldRename })
	if err := Restore(bytes.NewReader(backup), path, Overwrite()); err != nil {
		t.Fatal(err)
	}
	d := <-started
	if d.err != nil {
		t.Fatal(d.err)
	}
	defer d.db.Close()
	got := newStore(t, d.db)
	if _, err := d.db.LoadInto(got); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range dump(t, got.Read())[store.TableUsers] {
		ids = append(ids, u.(*store.User).ID)
	}
	if !slices.Equal(ids, []string{"u1", "u2"}) {
		t.Fatalf("the daemon serves users %v, want the restored u1 and u2", ids)
	}
}

// Where renameat2 cannot refuse an existing name, a hard link does.
func TestLinkNoReplace(t *testing.T) {
	dir := t.TempDir()
	from, to := filepath.Join(dir, "from"), filepath.Join(dir, "to")
	writeFile(t, from, []byte("restored"))
	writeFile(t, to, []byte("daemon's"))
	if err := linkNoReplace(from, to); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("linkNoReplace onto a file = %v, want fs.ErrExist", err)
	}
	if got := string(readFile(t, to)); got != "daemon's" {
		t.Fatalf("target holds %q after a refused link", got)
	}
	if err := os.Remove(to); err != nil {
		t.Fatal(err)
	}
	if err := linkNoReplace(from, to); err != nil {
		t.Fatal(err)
	}
	if got := dirNames(t, dir); !slices.Equal(got, []string{"to"}) {
		t.Fatalf("dir holds %q, want only to", got)
	}
	if got := string(readFile(t, to)); got != "restored" {
		t.Fatalf("target holds %q, want the restored file", got)
	}
}
