package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
)

// rootPageOffset returns where the root page of the state file at path
// (per its newest meta page) starts, and the file's page size.
func rootPageOffset(t *testing.T, path string) (off int64, pageSize int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	ps := int(ne.Uint32(b[pageHeaderLen+8:]))
	m0, m1 := b[pageHeaderLen:pageHeaderLen+metaLen], b[ps+pageHeaderLen:ps+pageHeaderLen+metaLen]
	m := m0
	if ne.Uint64(m1[48:]) > ne.Uint64(m0[48:]) {
		m = m1
	}
	return int64(ne.Uint64(m[16:])) * int64(ps), ps
}

// damageRoot overwrites the root page of the state file at path as damage
// does. bbolt keeps no page checksums, so nothing notices before it reads
// the page.
var damageRoot = []struct {
	name   string
	damage func(page []byte)
}{
	{"bad page flags", func(p []byte) { p[8] = 0xff }},
	{"bad element count", func(p []byte) { binary.NativeEndian.PutUint16(p[10:], 0xffff) }},
	{"garbage elements", func(p []byte) {
		for i := pageHeaderLen; i < len(p); i++ {
			p[i] = 0xa5
		}
	}},
}

func patchRoot(t *testing.T, path string, damage func([]byte)) {
	t.Helper()
	off, ps := rootPageOffset(t, path)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := make([]byte, ps)
	if _, err := f.ReadAt(page, off); err != nil {
		t.Fatal(err)
	}
	damage(page)
	if _, err := f.WriteAt(page, off); err != nil {
		t.Fatal(err)
	}
}

// noPanic runs fn and turns a panic into a test failure.
func noPanic(t *testing.T, fn func() error) (err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("panic on a damaged state file: %v", p)
		}
	}()
	return fn()
}

func TestDamagedPageIsErrCorruptNotPanic(t *testing.T) {
	for _, tt := range damageRoot {
		t.Run("open/"+tt.name, func(t *testing.T) {
			path := writeState(t)
			patchRoot(t, path, tt.damage)
			err := noPanic(t, func() error { return openAndLoad(t, path) })
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("start-up on a damaged state file = %v, want ErrCorrupt", err)
			}
			// The lock went with the failed Open: a fixed file can be opened.
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			openDB(t, path)
		})
		t.Run("checkpoint/"+tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			db, err := Open(path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			for i := range 3 {
				if err := db.Commit(insertUsers(fmt.Sprintf("u%d", i))); err != nil {
					t.Fatal(err)
				}
			}
			patchRoot(t, path, tt.damage)
			// A running daemon reads the damaged page when it next
			// checkpoints, which a panic would crash.
			err = noPanic(t, db.flush)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("checkpoint into a damaged state file = %v, want ErrCorrupt", err)
			}
		})
	}
}

// A state file whose info bucket is gone (a flipped bit in its name in the
// root page does that) is not a new file: taken for one, it is given the
// current format, and an older file's membership records are then never
// migrated, nor loaded.
func TestFileWithoutInfoBucketIsCorrupt(t *testing.T) {
	for format := 2; format <= FormatVersion; format++ {
		t.Run(fmt.Sprintf("format %d", format), func(t *testing.T) {
			path := writeState(t)
			if format < FormatVersion {
				downgrade(t, path, format)
			}
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketInfo) }); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := openAndLoad(t, path); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("start-up on a file without its info bucket = %v, want ErrCorrupt", err)
			}
		})
	}
}

// The store splits a batch the journal reports store.ErrTooLarge for into
// its writes, so that one write too large does not fail the writes that
// happened to share its batch.
func TestCommitOverFrameLimitIsErrTooLarge(t *testing.T) {
	old := maxFrameLen
	maxFrameLen = 512
	t.Cleanup(func() { maxFrameLen = old })
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	if err := db.Commit(insertUsers("u1")); err != nil {
		t.Fatalf("a batch under the limit: %v", err)
	}
	var ids []string
	for i := range 20 {
		ids = append(ids, fmt.Sprintf("big%02d", i))
	}
	if err := db.Commit(insertUsers(ids...)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Commit of a batch over the log's limit = %v, want store.ErrTooLarge", err)
	}
	if err := db.Commit(insertUsers("u2")); err != nil {
		t.Fatalf("a batch after the refused one: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if got := loadUsers(t, path); !slices.Equal(got, []string{"u1", "u2"}) {
		t.Fatalf("loaded users %v, want u1 and u2", got)
	}
}

// TestOpenCreatesNestedDataDir: Open makes the data dir and its missing
// parents (syncing each new entry's parent), and opens an existing one.
func TestOpenCreatesNestedDataDir(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "state.db")
	for range 2 {
		db, err := Open(path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if st, err := os.Stat(filepath.Dir(path)); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, %v; want mode 0700", st, err)
	}
}
