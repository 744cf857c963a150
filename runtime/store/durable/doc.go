// Package durable keeps idrecon's runtime state on disk, so that nothing the
// daemon acknowledged (a SCIM user Entra was told was created, a membership
// change) is lost across restarts, crashes or power loss.
//
// A DB is a bbolt file in the data dir (FileName). It is the runtime store's
// store.Journal: the store's committer hands it each batch of changes, Commit
// writes them in one bbolt transaction and returns only after fsync, and only
// then does the store make the batch visible and answer its writers. One fsync
// thus serves a whole batch (group commit). At start-up LoadInto fills a fresh
// store from the file and refuses to start (ErrCorrupt) on a damaged file
// instead of serving an empty directory to Entra.
//
// Records are versioned and checksummed (see internal/record), and the file
// carries a format version, so a newer idrecon reads an older data dir. Only
// the store's known tables are persisted; a table added to the store schema
// without a bucket here stays in memory (Commit logs it once).
//
// Certificate private keys are never written to disk: a loaded
// spec.Certificate has a nil PrivateKey, and it is resolved again from its
// PrivateKeyFrom reference when the reconciler next writes the certificate.
//
// WriteBackup streams a consistent snapshot of a running store in a
// self-describing format; Restore installs such a backup as a new state file,
// offline and atomically.
//
// Only the daemon's wiring knows this package: the store sees nothing but its
// small Journal interface, start-up calls LoadInto, and the admin API and CLI
// call WriteBackup and Restore. A replicated backend (etcd, Raft) slots in
// later by implementing store.Journal and a loader of its own, without
// touching the SCIM, SAML or admin code.
package durable
