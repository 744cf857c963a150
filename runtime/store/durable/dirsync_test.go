package durable

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// recordDirSyncs makes syncDir record the directories it syncs, and
// returns a func that lists them.
func recordDirSyncs(t *testing.T) (synced func() []string) {
	t.Helper()
	old := syncDir
	var mu sync.Mutex
	var dirs []string
	syncDir = func(dir string) error {
		mu.Lock()
		dirs = append(dirs, filepath.Clean(dir))
		mu.Unlock()
		return old(dir)
	}
	t.Cleanup(func() { syncDir = old })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(dirs)
	}
}

// callerMadeDataDir makes a data dir, and a new parent of it, as the daemon
// (os.MkdirAll before Open) and the CLI (before Restore) do, and returns
// the state file's path and the dirs whose entries are new.
func callerMadeDataDir(t *testing.T) (path string, parents []string) {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "a", "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, FileName), []string{root, filepath.Join(root, "a")}
}

func wantSynced(t *testing.T, what string, synced, want []string) {
	t.Helper()
	for _, d := range want {
		if !slices.Contains(synced, d) {
			t.Errorf("%s synced %v, never %s: a power cut can lose the new dir in it, and the state with it", what, synced, d)
		}
	}
}

// TestDataDirMadeByCallerIsSynced: whoever made the data dir, its entry and
// those of its parents are durable before a write is acknowledged or a
// restore reported done.
func TestDataDirMadeByCallerIsSynced(t *testing.T) {
	t.Run("open", func(t *testing.T) {
		path, parents := callerMadeDataDir(t)
		synced := recordDirSyncs(t)
		db := openDB(t, path)
		if err := db.Commit(insertUsers("u1")); err != nil {
			t.Fatal(err)
		}
		wantSynced(t, "Open and Commit", synced(), parents)
	})
	t.Run("restore", func(t *testing.T) {
		backup, _ := backupOf(t)
		path, parents := callerMadeDataDir(t)
		synced := recordDirSyncs(t)
		if err := Restore(bytes.NewReader(backup), path); err != nil {
			t.Fatal(err)
		}
		wantSynced(t, "Restore", synced(), parents)
	})
}
