package durable_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
)

// The daemon's start-up: open the state file, make it the store's journal,
// load what it holds, then serve. Close the store before the file.
func Example() {
	dataDir, err := os.MkdirTemp("", "idrecon-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dataDir)

	db, err := durable.Open(durable.Path(dataDir), durable.Options{})
	if err != nil {
		log.Fatal(err) // ErrLocked: another daemon runs on dataDir
	}
	st, err := store.New(store.Options{Journal: db})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := db.LoadInto(st); err != nil {
		log.Fatal(err) // ErrCorrupt: restore a backup
	}

	// Update returns only once the write is on disk.
	err = st.Update(context.Background(), func(tx *store.Txn) error {
		return tx.Insert(store.TableUsers, &store.User{ID: "u1", UserName: "ada@example.com", Active: true})
	})
	if err != nil {
		log.Fatal(err)
	}

	// GET /backup, while the store keeps serving.
	var backup bytes.Buffer
	if err := durable.WriteBackup(&backup, st.Snapshot()); err != nil {
		log.Fatal(err)
	}
	st.Close()
	db.Close()

	// idrecon restore FILE --data-dir D, with the daemon stopped.
	restoreDir := filepath.Join(dataDir, "restored")
	if err := durable.Restore(&backup, durable.Path(restoreDir)); err != nil {
		log.Fatal(err)
	}
	db, err = durable.Open(durable.Path(restoreDir), durable.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	st, err = store.New(store.Options{Journal: db})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	stats, err := db.LoadInto(st)
	if err != nil {
		log.Fatal(err)
	}
	u, _ := st.Read().UserByName("ADA@example.com")
	fmt.Println(stats.Users, u.ID)
	// Output: 1 u1
}
