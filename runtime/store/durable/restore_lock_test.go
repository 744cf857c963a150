package durable

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// backupOfUsers returns a backup of a store holding only users ids.
func backupOfUsers(t *testing.T, ids ...string) []byte {
	t.Helper()
	st := newStore(t, openDB(t, filepath.Join(t.TempDir(), FileName)))
	update(t, st, func(tx *store.Txn) error {
		for _, id := range ids {
			if err := tx.Insert(store.TableUsers, user(id, id+"@example.com")); err != nil {
				return err
			}
		}
		return nil
	})
	var buf bytes.Buffer
	if err := WriteBackup(&buf, st.Snapshot()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// restoreTemps lists the names in dir that are restore leftovers of the
// state file there.
func restoreTemps(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range dirNames(t, dir) {
		if strings.HasPrefix(name, FileName+".restore-") {
			out = append(out, name)
		}
	}
	return out
}

// Two restores into one data dir would both write, and each rename its
// file into place and remove the old log: the one that started second
// must fail, saying why, and leave the first to finish alone.
func TestRestoreRefusesConcurrentRestore(t *testing.T) {
	first, _ := backupOf(t) // users u1 and u2
	second := backupOfUsers(t, "other")
	for _, tt := range []struct {
		name  string
		state func(t *testing.T, path string)
	}{
		{"into an empty data dir", func(*testing.T, string) {}},
		{"over a lost state file's log", func(t *testing.T, path string) {
			writeLog(t, path, []string{"old1"})
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"over a state file", func(t *testing.T, path string) { writeLog(t, path, []string{"old1"}) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			tt.state(t, path)
			var secondErr error
			ran := false
			old := renameFile
			renameFile = func(from, to string, replace bool) error {
				if !ran {
					ran = true
					done := make(chan error)
					go func() { done <- Restore(bytes.NewReader(second), path, Overwrite()) }()
					secondErr = <-done
				}
				return old(from, to, replace)
			}
			t.Cleanup(func() { renameFile = old })
			if err := Restore(bytes.NewReader(first), path, Overwrite()); err != nil {
				t.Errorf("the first restore: %v", err)
			}
			if !ran {
				t.Fatal("the first restore did not reach its rename")
			}
			t.Logf("the second restore: %v", secondErr)
			if !errors.Is(secondErr, ErrLocked) {
				t.Errorf("the second restore = %v, want ErrLocked", secondErr)
			} else if msg := secondErr.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "another restore") {
				t.Errorf("the second restore's error %q does not name the data dir and another restore", msg)
			}
			if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2"}) {
				t.Errorf("users after both restores: %v, want the first one's u1 and u2", got)
			}
			if got := dirNames(t, dir); !slices.Equal(got, []string{FileName}) {
				t.Errorf("data dir holds %q, want only the state file", got)
			}
		})
	}
}

// A restore killed halfway leaves its temporary file, and the log that
// verifying it started: the next restore or the next start removes them,
// and nothing else.
func TestRestoreLeftoversRemoved(t *testing.T) {
	backup, _ := backupOf(t)
	for _, tt := range []struct {
		name string
		next func(t *testing.T, path string) error
	}{
		{"by the next restore", func(t *testing.T, path string) error {
			return Restore(bytes.NewReader(backup), path, Overwrite())
		}},
		{"by the next start", func(t *testing.T, path string) error {
			db, err := Open(path, Options{})
			if err != nil {
				return err
			}
			return db.Close()
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			// Named as Restore names it.
			f, err := os.CreateTemp(dir, FileName+".restore-*")
			if err != nil {
				t.Fatal(err)
			}
			tmp := f.Name()
			f.Close()
			writeFile(t, tmp, []byte("half a state file"))
			writeFile(t, segmentName(tmp, 1), segmentHeader(1))
			if got := restoreTemps(t, dir); len(got) != 2 {
				t.Fatalf("leftovers %q, want the file and its segment", got)
			}
			// Not a restore's: an operator's notes, another file's.
			kept := []string{"audit.log", FileName + ".restore-notes", "other.db.restore-1"}
			for _, name := range kept {
				writeFile(t, filepath.Join(dir, name), []byte("kept"))
			}
			if err := tt.next(t, path); err != nil {
				t.Fatal(err)
			}
			want := slices.Sorted(slices.Values(append(kept, FileName)))
			if got := dirNames(t, dir); !slices.Equal(got, want) {
				t.Fatalf("data dir holds %q, want %q", got, want)
			}
		})
	}
}

// restoreChildEnv, when set, makes TestRestoreHelperProcess a child that
// restores into the data dir it names and stalls halfway through the
// backup (restoreBackupEnv names its file) until it is killed.
const (
	restoreChildEnv  = "IDRECON_DURABLE_RESTORE_DIR"
	restoreBackupEnv = "IDRECON_DURABLE_RESTORE_BACKUP"
)

// TestRestoreHelperProcess is the child of
// TestRestoreLeftoverOfARunningRestoreStays. It prints "stalled" once the
// backup's first half is read, then waits on its stdin.
func TestRestoreHelperProcess(t *testing.T) {
	dir := os.Getenv(restoreChildEnv)
	if dir == "" {
		t.Skip("helper process for the restore tests")
	}
	backup, err := os.ReadFile(os.Getenv(restoreBackupEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "backup:", err)
		os.Exit(3)
	}
	r := io.MultiReader(bytes.NewReader(backup[:len(backup)/2]), &stallReader{})
	err = Restore(r, Path(dir), Overwrite())
	fmt.Fprintln(os.Stderr, "restore:", err)
	os.Exit(3)
}

// stallReader says "stalled" on stdout, then blocks until stdin closes.
type stallReader struct{ once sync.Once }

func (s *stallReader) Read(p []byte) (int, error) {
	s.once.Do(func() { fmt.Println("stalled") })
	io.Copy(io.Discard, os.Stdin)
	return 0, io.ErrUnexpectedEOF
}

// startRestoreChild runs TestRestoreHelperProcess on dir and waits until its
// restore is writing.
func startRestoreChild(t *testing.T, dir, backupFile string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreHelperProcess$")
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+dir, restoreBackupEnv+"="+backupFile)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	stalled := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "stalled" {
				stalled <- true
				break
			}
		}
		io.Copy(io.Discard, stdout)
		close(stalled)
	}()
	select {
	case ok := <-stalled:
		if !ok {
			cmd.Wait()
			t.Fatalf("child exited before its restore stalled: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("child's restore did not stall: %s", stderr.String())
	}
	return cmd
}

// The temporary file of a restore that runs in another process is no
// leftover: neither a second restore nor a daemon starting may remove it,
// and the second restore must fail. Once that process is killed (kill -9
// leaves its file for good), the next start removes it.
func TestRestoreLeftoverOfARunningRestoreStays(t *testing.T) {
	if os.Getenv(restoreChildEnv) != "" {
		t.Skip("running as the helper process")
	}
	backup, _ := backupOf(t)
	backupFile := filepath.Join(t.TempDir(), "backup")
	writeFile(t, backupFile, backup)
	dir := t.TempDir()
	path := Path(dir)
	child := startRestoreChild(t, dir, backupFile)
	temps := restoreTemps(t, dir)
	if len(temps) == 0 {
		t.Fatalf("data dir holds %q, want the running restore's temporary file", dirNames(t, dir))
	}

	err := Restore(bytes.NewReader(backup), path, Overwrite())
	t.Logf("restore beside the running one: %v", err)
	if !errors.Is(err, ErrLocked) {
		t.Errorf("restore beside a running one = %v, want ErrLocked", err)
	} else if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "another restore") {
		t.Errorf("error %q does not name the data dir and another restore", err)
	}
	if got := restoreTemps(t, dir); !slices.Equal(got, temps) {
		t.Errorf("a second restore changed the running restore's files from %q to %q", temps, got)
	}

	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := restoreTemps(t, dir); !slices.Equal(got, temps) {
		t.Errorf("a daemon's start changed the running restore's files from %q to %q", temps, got)
	}

	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if got := restoreTemps(t, dir); len(got) == 0 {
		t.Fatal("the killed restore left nothing to remove")
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := restoreTemps(t, dir); len(got) != 0 {
		t.Errorf("the start after the restore was killed left %q", got)
	}
}

// TestRestoreOfNoBackupSaysSo: a file that is no backup is ErrCorrupt to a
// caller deciding by it, and its message blames the backup, once, not a
// state.
func TestRestoreOfNoBackupSaysSo(t *testing.T) {
	err := Restore(strings.NewReader("garbage"), Path(t.TempDir()))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Restore(garbage) = %v, want ErrCorrupt", err)
	}
	if msg := err.Error(); msg != "durable: restore: not an idrecon backup" {
		t.Errorf("Restore(garbage) says %q", msg)
	}
}
