package durable

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
)

// mappedResident is how much of the file at path is resident in this
// process's mappings of it, from /proc/self/smaps.
func mappedResident(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	var total int64
	inFile := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) >= 5 && strings.Contains(fields[0], "-"):
			inFile = len(fields) >= 6 && fields[len(fields)-1] == path
		case inFile && len(fields) == 3 && fields[0] == "Rss:":
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}

// TestLoadReleasesTheMappedFile: loading reads every page of the state
// file through bbolt's mapping; once the state is in the store those pages
// leave the process, and the file still serves reads and writes.
func TestLoadReleasesTheMappedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	writeUsers(t, path, 20_000)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db := openDB(t, path)
	st := newStore(t, db)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	if got := mappedResident(t, path); got > fi.Size()/8 {
		t.Errorf("after the load %d of %d bytes of the file are resident", got, fi.Size())
	}
	// Reading it all again brings the pages back: the measure sees them.
	err = db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(_, _ []byte) error { return nil })
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := mappedResident(t, path); got < fi.Size()/2 {
		t.Fatalf("a full read left only %d of %d bytes resident: the measure is wrong", got, fi.Size())
	}
	db.releasePages(false)
	if got := mappedResident(t, path); got > fi.Size()/8 {
		t.Errorf("after a release %d of %d bytes are resident", got, fi.Size())
	}
	update(t, st, func(txn *store.Txn) error { return txn.Insert(store.TableUsers, user("after", "after@example.com")) })
	st2, _ := reopen(t, st, db)
	if u, err := st2.Read().UserByID("after"); err != nil || u == nil {
		t.Fatalf("the write after the release: %v, %v", u, err)
	}
	if n := len(dump(t, st2.Read())[store.TableUsers]); n != 20_001 {
		t.Errorf("%d users after reopening, want 20001", n)
	}
}
