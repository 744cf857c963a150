package durable

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// FileName is the state file's name inside the data dir.
const FileName = "state.db"

// FormatVersion is the version of the file layout (buckets and keys) this
// idrecon writes. Records carry their own version on top. Log segments
// record the FormatVersion of their writer: they hold bucket writes in that
// layout, which Open replays before it migrates the file.
//
//  1. Members as membership records, one per direct membership.
//  2. A header record per members row (the membership version) beside them.
//  3. Member lists: a group's members in chunks, logged as deltas.
const FormatVersion = 3

// memberListsFormat is the format that replaced membership records by
// member lists.
const memberListsFormat = 3

// initialMmapSize is 1 GiB of address space on 64-bit systems, none on
// 32-bit ones where it is scarce.
const initialMmapSize = 1 << 30 * (strconv.IntSize / 64)

// Errors callers test with errors.Is.
var (
	// ErrCorrupt means the state file (or a backup) is damaged: a record
	// fails its checksum, the file is truncated, or the data breaks the
	// store's invariants. The daemon must not start on it; restore a backup.
	ErrCorrupt = errors.New("durable: state is corrupt")
	// ErrLocked means another process holds the state file.
	ErrLocked = errors.New("durable: state file is in use by another process")
	// ErrNewerFormat means a newer idrecon wrote the state file.
	ErrNewerFormat = errors.New("durable: state file was written by a newer idrecon")
	// ErrExists means Restore would overwrite an existing state file.
	ErrExists = errors.New("durable: state file already exists")
)

// bucketInfo holds file-level bookkeeping; the other buckets are named after
// the store's tables.
var (
	bucketInfo = []byte("idrecon")
	keyFormat  = []byte("format")
)

// Options configure Open. The zero value is usable.
type Options struct {
	// Timeout bounds the wait for the file lock (default 1s), so a second
	// daemon on the same data dir fails with ErrLocked instead of hanging.
	Timeout time.Duration
	// Logger receives open and load events (default: discard).
	Logger *slog.Logger
	// Audit records the repairs a load makes (default audit.Discard).
	Audit audit.Recorder
	// SegmentBytes is the size at which the write-ahead log starts a new
	// segment and checkpoints the full one into the state file in the
	// background (default 64 MiB). A checkpoint holds its segment in memory,
	// and a crash leaves up to three segments to replay at the next start.
	SegmentBytes int64
}

// DB is an open state file. It implements store.Journal.
type DB struct {
	bolt  *bolt.DB
	path  string
	log   *slog.Logger
	audit audit.Recorder
	// unpersisted remembers tables Commit skipped, to warn once per table.
	// Only Commit touches it, and the store calls Commit from one goroutine.
	unpersisted map[string]bool
	wal         writeAheadLog
	metrics     *metrics
}

var _ store.Journal = (*DB)(nil)

// Path returns the state file's path in dataDir.
func Path(dataDir string) string { return filepath.Join(dataDir, FileName) }

// Open opens (creating if needed, mode 0600) the state file at path, taking
// an exclusive lock on it. It first removes what restores killed before they
// finished left beside it, unless a restore is running there.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Audit == nil {
		opts.Audit = audit.Discard
	}
	if err := makeDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("durable: create data dir: %w", err)
	}
	removeRestoreLeftovers(path, opts.Logger)
	bdb, err := openBolt(path, opts.Timeout, false)
	if err != nil {
		return nil, err
	}
	db := &DB{bolt: bdb, path: path, log: opts.Logger, audit: opts.Audit, unpersisted: map[string]bool{}, metrics: newMetrics()}
	if err := db.start(opts.SegmentBytes); err != nil {
		bdb.Close()
		return nil, err
	}
	db.log.Info("state file opened", "path", path)
	return db, nil
}

// start replays the log, checks or migrates the file and starts the log.
func (db *DB) start(segmentBytes int64) (err error) {
	// These are the first reads of the file's pages beyond its meta pages.
	defer recoverCorrupt(db.path, &err)
	defer setPanicOnFault()()
	if err := db.replayLog(); err != nil {
		return err
	}
	if err := db.init(); err != nil {
		return err
	}
	return db.startLog(segmentBytes)
}

// recoverCorrupt, deferred, turns a panic into ErrCorrupt in *err. bbolt
// keeps no page checksums: on a damaged page it fails an assertion or
// indexes out of range, which must stop the daemon with a clear error, not
// crash it. bbolt rolls back the transaction it panicked in.
func recoverCorrupt(path string, err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("%w: reading %s: %v", ErrCorrupt, path, p)
	}
}

// openStateFile opens the file bbolt opens. A variable, so that tests can
// act once a state file is open but not yet locked.
var openStateFile = os.OpenFile

// openBolt opens a bbolt file after checking it is not truncated. Faults
// reading a damaged file become ErrCorrupt instead of crashing the process.
func openBolt(path string, timeout time.Duration, noSync bool) (*bolt.DB, error) {
	deadline := time.Now().Add(timeout)
	for {
		db, file, err := openBoltOnce(path, timeout, noSync)
		if err != nil {
			return nil, err
		}
		// bbolt locks the file it opened, and a restore can replace the
		// file at path while the lock is waited for (its own lock is on
		// the file it replaces). Served from then, the file is unlinked,
		// and all written to it is lost at the next start.
		at, err := isFileAt(file, path)
		if err != nil || at {
			if err != nil {
				db.Close()
				return nil, fmt.Errorf("durable: open %s: %w", path, err)
			}
			return db, nil
		}
		db.Close()
		if timeout = time.Until(deadline); timeout <= 0 {
			return nil, fmt.Errorf("%w: %s was replaced while opening it (is a restore running on this data dir?)", ErrLocked, path)
		}
	}
}

// isFileAt says whether f is the file that path names.
func isFileAt(f *os.File, path string) (bool, error) {
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	at, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(fi, at), nil
}

// openBoltOnce is openBolt without the check that the file it locked is
// still the one at path; file is the file bbolt opened.
func openBoltOnce(path string, timeout time.Duration, noSync bool) (db *bolt.DB, file *os.File, err error) {
	if err := checkFile(path); err != nil {
		return nil, nil, err
	}
	// bbolt opens the file before it can fail on its content; keep the
	// handle so a panic on a damaged file still releases the lock.
	defer func() {
		if p := recover(); p != nil {
			if file != nil {
				file.Close()
			}
			db, file, err = nil, nil, fmt.Errorf("%w: open %s: %v", ErrCorrupt, path, p)
		}
	}()
	defer setPanicOnFault()()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// The freelist is written with every commit (one page more per
		// fsync) rather than rebuilt at open: the rebuild reads the whole
		// file, 18 s of a 1,000,000-user start-up on a busy machine.
		FreelistType: bolt.FreelistMapType,
		// Every time the file outgrows its mapping bbolt copies the dirty
		// nodes out and maps it again; checkpoints into a growing file
		// spent a fifth of their time there. Address space, not memory.
		InitialMmapSize: initialMmapSize,
		NoSync:          noSync,
		OpenFile: func(name string, flag int, mode os.FileMode) (*os.File, error) {
			f, err := openStateFile(name, flag, mode)
			file = f
			return f, err
		},
	})
	switch {
	case err == nil:
		return db, file, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, fmt.Errorf("%w: %s (is another idrecon running on this data dir?)", ErrLocked, path)
	case errors.As(err, new(*fs.PathError)):
		return nil, nil, fmt.Errorf("durable: open %s: %w", path, err)
	}
	return nil, nil, fmt.Errorf("%w: open %s: %w", ErrCorrupt, path, err)
}

// init creates the buckets of a new file, checks the format of an old one
// and migrates it to FormatVersion, all in one transaction: a migration
// that fails leaves the file as it was.
func (db *DB) init() error {
	return db.bolt.Update(func(tx *bolt.Tx) error {
		// Only a new file lacks the info bucket. Taken for new, a file
		// that lost it would be given this format unmigrated, and the
		// membership records of an older one would be dropped unread.
		if tx.Bucket(bucketInfo) == nil {
			if err := tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				return fmt.Errorf("%w: %s: bucket %s is missing, bucket %s is not", ErrCorrupt, db.path, bucketInfo, name)
			}); err != nil {
				return err
			}
		}
		info, err := tx.CreateBucketIfNotExists(bucketInfo)
		if err != nil {
			return fmt.Errorf("durable: init: %w", err)
		}
		raw := info.Get(keyFormat)
		if err := checkFormat(raw); err != nil {
			return fmt.Errorf("%s: %w", db.path, err)
		}
		if raw == nil {
			return createLayout(tx, FormatVersion)
		}
		format, _ := strconv.Atoi(string(raw)) // checked above
		// A file that was initialised has every bucket of its format;
		// one missing means damage, and recreating it would serve an
		// empty table.
		for _, t := range bucketsOf(format) {
			if tx.Bucket([]byte(t)) == nil {
				return fmt.Errorf("%w: %s: bucket %s is missing", ErrCorrupt, db.path, t)
			}
		}
		if format == FormatVersion {
			return nil
		}
		if err := migrate(tx, format); err != nil {
			return fmt.Errorf("%s: migrate from format %d: %w", db.path, format, err)
		}
		db.log.Info("state file migrated", "path", db.path, "from", format, "to", FormatVersion)
		return nil
	})
}

// createLayout makes the info bucket of a new file record format, and
// creates the buckets of that format.
func createLayout(tx *bolt.Tx, format int) error {
	info, err := tx.CreateBucketIfNotExists(bucketInfo)
	if err == nil {
		err = info.Put(keyFormat, []byte(strconv.Itoa(format)))
	}
	for _, t := range bucketsOf(format) {
		if err == nil {
			_, err = tx.CreateBucketIfNotExists([]byte(t))
		}
	}
	if err != nil {
		return fmt.Errorf("durable: init: %w", err)
	}
	return nil
}

// migrate turns a file of an older format into one of FormatVersion.
func migrate(tx *bolt.Tx, format int) error {
	for _, t := range bucketsOf(FormatVersion) {
		if _, err := tx.CreateBucketIfNotExists([]byte(t)); err != nil {
			return fmt.Errorf("durable: %w", err)
		}
	}
	// Format 1 files have no members headers: their rows load at version
	// 0, which the headers the membership migration adds keep.
	if format < memberListsFormat {
		if err := migrateMemberships(tx); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketInfo).Put(keyFormat, []byte(strconv.Itoa(FormatVersion))); err != nil {
		return fmt.Errorf("durable: %w", err)
	}
	return nil
}

// bucketLife says in which format versions a bucket exists: from since
// (version 1 when 0) to before until (for good when 0).
var bucketLife = map[string]struct{ since, until int }{
	// Version 2 keeps a header per group with members (the membership
	// version).
	store.TableMembers: {since: 2},
	// Version 3 keeps each group's member list in chunks, where versions
	// 1 and 2 kept a record per membership.
	record.Memberships: {until: memberListsFormat},
	record.MemberLists: {since: memberListsFormat},
}

// bucketsOf returns the buckets of a file of format version format, in the
// order a load reads them.
func bucketsOf(format int) []string {
	var out []string
	for _, t := range slices.Concat(record.Tables, []string{record.Memberships}) {
		life := bucketLife[t]
		if life.since <= format && (life.until == 0 || format < life.until) {
			out = append(out, t)
		}
	}
	return out
}

// checkFormat accepts a missing (new file) or known format version. Older
// versions would be migrated here.
func checkFormat(v []byte) error {
	if v == nil {
		return nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return fmt.Errorf("%w: format version %q", ErrCorrupt, v)
	}
	if n > FormatVersion {
		return fmt.Errorf("%w (format %d, this idrecon reads up to %d)", ErrNewerFormat, n, FormatVersion)
	}
	return nil
}

// Close checkpoints the log into the state file, removes the log and
// releases the file. Close the store first, so no Commit runs. Should the
// checkpoint fail, the log stays and the next Open replays it.
func (db *DB) Close() error {
	db.wal.closeOnce.Do(func() {
		err := db.closeLog()
		if cerr := db.bolt.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("durable: close: %w", cerr))
		}
		db.wal.closeErr = err
	})
	return db.wal.closeErr
}

// Commit appends a batch of store changes to the write-ahead log as one
// frame and returns once it is on stable storage: one write and one
// fdatasync, however large the batch. On error nothing of the batch is
// written.
func (db *DB) Commit(changes memdb.Changes) error {
	ops, err := batchOps(changes, db.warnUnpersisted)
	if err != nil {
		return fmt.Errorf("durable: commit: %w", err)
	}
	if len(ops) == 0 {
		return nil // nothing persisted changed
	}
	if err := db.appendLog(ops); err != nil {
		return fmt.Errorf("durable: commit: %w", err)
	}
	return nil
}

// warnUnpersisted reports a store table this package does not know. Its
// writes stay in memory only: failing them would take the feature down, and
// a table added for ephemeral state (sessions) needs no durability.
func (db *DB) warnUnpersisted(table string) {
	if !db.unpersisted[table] {
		db.unpersisted[table] = true
		db.log.Warn("store table is not persisted; its writes are lost on restart", "table", table)
	}
}
