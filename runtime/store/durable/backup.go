package durable

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// A backup is a stream:
//
//	"idrecon-backup\n"
//	uvarint n, n bytes of JSON header (backupHeader)
//	frames: table byte (1-based index into header.tables), uvarint key
//	        length, key, uvarint record length, record (internal/record)
//	0 byte, uvarint frame count, CRC-32C (big endian) of everything before it
//
// The header's format is the state file format whose buckets and records
// the backup holds (tables lists the buckets, in the order written): from
// format 3 on, a group's members are member chunks (record.MemberLists),
// before that membership records. Restore writes the records into a file of
// that format and migrates it as Open would, so a backup restores with the
// migrations of the idrecon that reads it.
const backupMagic = "idrecon-backup\n"

// Bounds that keep a damaged backup from making Restore allocate wildly.
const (
	maxHeaderLen = 1 << 16
	maxKeyLen    = bolt.MaxKeySize
	maxRecordLen = 64 << 20
	restoreBatch = 10000
)

type backupHeader struct {
	Format  int       `json:"format"`
	Record  int       `json:"recordVersion"`
	Created time.Time `json:"created"`
	Tables  []string  `json:"tables"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// renameFile installs a restored state file: with replace, over the file
// at to; without, it fails (fs.ErrExist) should one be there. A variable,
// so that tests can make it fail, as a crash before it would, or act just
// before it.
var renameFile = func(from, to string, replace bool) error {
	if replace {
		return os.Rename(from, to)
	}
	return renameNoReplace(from, to)
}

// linkNoReplace gives from's file the name to, failing with an error that is
// fs.ErrExist should to exist, and removes the name from.
func linkNoReplace(from, to string) error {
	if err := os.Link(from, to); err != nil {
		return err
	}
	// The file is installed: failing now would remove it as a failed
	// restore's temporary file. A name left over is a second name of the
	// state file, which nothing opens.
	_ = os.Remove(from)
	return nil
}

// WriteBackup writes every persisted table of snap (from store.Snapshot, so
// the backup is consistent while the store keeps serving) to w.
func WriteBackup(w io.Writer, snap *memdb.MemDB) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	sum := crc32.New(castagnoli)
	out := io.MultiWriter(bw, sum)
	hdr, err := json.Marshal(backupHeader{
		Format:  FormatVersion,
		Record:  record.Version,
		Created: time.Now().UTC(),
		Tables:  record.Tables,
	})
	if err != nil {
		return fmt.Errorf("durable: backup header: %w", err)
	}
	buf := append([]byte(backupMagic), binary.AppendUvarint(nil, uint64(len(hdr)))...)
	buf = append(buf, hdr...)
	if _, err := out.Write(buf); err != nil {
		return fmt.Errorf("durable: write backup: %w", err)
	}
	txn := &store.Txn{Txn: snap.Txn(false)}
	var count uint64
	for i, table := range record.Tables {
		objs, err := persisted(txn, table)
		if err != nil {
			return fmt.Errorf("durable: backup %s: %w", table, err)
		}
		for obj := range objs {
			key, err := record.Key(table, obj)
			if err != nil {
				return fmt.Errorf("durable: backup %s: %w", table, err)
			}
			val, err := record.Encode(table, obj)
			if err != nil {
				return fmt.Errorf("durable: backup %s: %w", table, err)
			}
			buf = append(buf[:0], byte(i+1))
			buf = binary.AppendUvarint(buf, uint64(len(key)))
			buf = append(buf, key...)
			buf = binary.AppendUvarint(buf, uint64(len(val)))
			buf = append(buf, val...)
			if _, err := out.Write(buf); err != nil {
				return fmt.Errorf("durable: write backup: %w", err)
			}
			count++
		}
	}
	buf = binary.AppendUvarint(append(buf[:0], 0), count)
	if _, err := out.Write(buf); err != nil {
		return fmt.Errorf("durable: write backup: %w", err)
	}
	if _, err := bw.Write(binary.BigEndian.AppendUint32(nil, sum.Sum32())); err != nil {
		return fmt.Errorf("durable: write backup: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("durable: write backup: %w", err)
	}
	return nil
}

// persisted yields the records of a persisted table from a snapshot: the
// members rows give their headers to the members table and their ids, cut
// into chunks, to the member lists.
func persisted(txn *store.Txn, table string) (iter.Seq[any], error) {
	src := table
	if table == record.MemberLists {
		src = store.TableMembers
	}
	it, err := txn.Get(src, store.IndexID)
	if err != nil {
		return nil, err
	}
	return func(yield func(any) bool) {
		for obj := it.Next(); obj != nil; obj = it.Next() {
			m, ok := obj.(*store.Members)
			if !ok || table != record.MemberLists {
				if !yield(obj) {
					return
				}
				continue
			}
			for _, ids := range chunks(m.IDs.Slice()) {
				if !yield(&record.MemberChunk{GroupID: m.GroupID, IDs: ids}) {
					return
				}
			}
		}
	}, nil
}

// RestoreOption changes what Restore does.
type RestoreOption func(*restoreOptions)

type restoreOptions struct{ overwrite bool }

// Overwrite lets Restore replace an existing state file (that no running
// daemon holds).
func Overwrite() RestoreOption { return func(o *restoreOptions) { o.overwrite = true } }

// Restore writes the backup read from r as the state file at path, with the
// daemon stopped. It refuses to replace an existing file, or the log of a
// lost one, unless given Overwrite, and a file a running daemon holds, or a
// data dir another restore holds (ErrLocked). It removes the temporary
// files of restores that were killed before they finished. A state file
// that appears while it runs, or without Overwrite a log, is a daemon
// started meanwhile: Restore leaves it and fails (ErrExists). The backup is fully verified (checksums, counts, and
// that the result loads) before it atomically replaces path, so a damaged
// backup (ErrCorrupt) changes nothing.
func Restore(r io.Reader, path string, opts ...RestoreOption) (err error) {
	var o restoreOptions
	for _, opt := range opts {
		opt(&o)
	}
	dir := filepath.Dir(path)
	if err := makeDir(dir); err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	// Another restore would write, rename and remove segments beside this
	// one, and a file found at the start may be locked only once: the
	// second to come fails here, before it looks at anything.
	unlock, err := lockForRestore(path)
	if err != nil {
		return err
	}
	defer unlock()
	// With the data dir held, any restore's file found is one a restore
	// killed halfway left.
	removeLeftovers(path, slog.New(slog.DiscardHandler))
	release, replace, err := lockTarget(path, o.overwrite)
	if err != nil {
		return err
	}
	// Held to the end, so no daemon starts on the old state, and writes to
	// its log, while it is being replaced.
	defer release()
	tmpPath, err := createRestoreTemp(path)
	if err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
		}
	}()
	// The old state's write-ahead log may hold acknowledged writes (a
	// daemon that crashed): it must stay until the restored file replaces
	// the old one, else a restore that fails or crashes before the rename
	// leaves the old state without them. Replayed onto the restored file,
	// it would mix the two states; so the restored file records the old
	// log's last segment as applied, and any Open after the rename removes
	// the old segments unread, whether or not Restore got to remove them.
	oldLog, err := listSegments(path)
	if err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	var applied uint64
	if len(oldLog) > 0 {
		applied = oldLog[len(oldLog)-1]
	}
	if err := writeRestored(r, tmpPath, applied); err != nil {
		return err
	}
	if err := verifyLoads(tmpPath); err != nil {
		return err
	}
	// The lock on the old file stops guarding path at the rename: the
	// restored file is locked before it, so that no daemon starts on it
	// (and writes log segments) until the old log is gone.
	releaseNew, err := lockFile(tmpPath)
	if err != nil {
		return err
	}
	defer releaseNew()
	// Only a file found at the start is locked, so only that one may be
	// replaced: a daemon may have started since, on a new file or, without
	// Overwrite's consent, on a lost file's log, and what it acknowledged
	// must be neither unlinked under it nor recorded as applied. The log is
	// refused here and the file in the same step as the rename.
	if !o.overwrite {
		seqs, err := listSegments(path)
		if err != nil {
			return fmt.Errorf("durable: restore: %w", err)
		}
		if len(seqs) > 0 {
			return logAppeared(path, seqs)
		}
	}
	if err := renameFile(tmpPath, path, replace); err != nil {
		if !replace && errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s appeared during the restore (did a daemon start on this data dir?); it is left as it is", ErrExists, path)
		}
		return fmt.Errorf("durable: restore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	if err := removeSegments(path, oldLog); err != nil {
		return fmt.Errorf("durable: restore: the state is restored; removing the old log (the next start removes it): %w", err)
	}
	return nil
}

// lockTarget refuses an existing state file unless overwrite is set, and
// always one that a running daemon has locked. It returns holding the lock
// of the file, if there is one (then locked is true); release releases it.
func lockTarget(path string, overwrite bool) (release func(), locked bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A log without its state file holds the acknowledged writes of
		// a daemon whose file was lost: the restored file would record
		// it as applied, and it would be removed unread.
		if !overwrite {
			seqs, err := listSegments(path)
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, false, fmt.Errorf("durable: restore: %w", err)
			}
			if len(seqs) > 0 {
				return nil, false, fmt.Errorf("%w: %s holds %d log segments of %s", ErrExists, filepath.Dir(path), len(seqs), filepath.Base(path))
			}
		}
		return func() {}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("durable: restore: %w", err)
	}
	if !overwrite {
		f.Close()
		return nil, false, fmt.Errorf("%w: %s", ErrExists, path)
	}
	release, err = flockFile(f)
	return release, err == nil, err
}

// logAppeared is the error of a restore without Overwrite into a data dir
// where log segments seqs appeared since it was checked.
func logAppeared(path string, seqs []uint64) error {
	return fmt.Errorf("%w: %d log segments of %s appeared in %s during the restore (did a daemon start on this data dir?); they are left as they are", ErrExists, len(seqs), filepath.Base(path), filepath.Dir(path))
}

// lockFile takes the lock bbolt takes on a state file it opens,
// flock(LOCK_EX), on path; release releases it.
func lockFile(path string) (release func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("durable: restore: %w", err)
	}
	return flockFile(f)
}

// flockFile locks the open file f, or closes it and fails.
func flockFile(f *os.File) (release func(), err error) {
	path := f.Name()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s (stop the daemon before restoring)", ErrLocked, path)
		}
		return nil, fmt.Errorf("durable: restore: lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing f releases the lock
}

// writeRestored reads the backup stream into a new bbolt file at path, in
// the backup's format. With applied above 0, the file records log segment
// applied as the last one applied (see keyLogApplied).
func writeRestored(r io.Reader, path string, applied uint64) error {
	bdb, err := openBolt(path, time.Second, true)
	if err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	hr := &hashingReader{r: bufio.NewReaderSize(r, 64<<10), h: crc32.New(castagnoli)}
	hdr, err := readBackupHeader(hr)
	if err == nil {
		err = bdb.Update(func(tx *bolt.Tx) error {
			if err := createLayout(tx, hdr.Format); err != nil || applied == 0 {
				return err
			}
			return tx.Bucket(bucketInfo).Put(keyLogApplied, binary.BigEndian.AppendUint64(nil, applied))
		})
	}
	if err == nil {
		err = copyBackup(hr, bdb, hdr)
	}
	if err == nil {
		// Puts ran without fsync; one sync makes the whole file durable
		// before it is renamed into place.
		err = bdb.Sync()
	}
	if cerr := bdb.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("durable: restore: %w", err)
	}
	return nil
}

// readBackupHeader reads the magic and the header, and checks this idrecon
// knows the backup's format and tables.
func readBackupHeader(hr *hashingReader) (backupHeader, error) {
	var hdr backupHeader
	magic := make([]byte, len(backupMagic))
	if _, err := io.ReadFull(hr, magic); err != nil || string(magic) != backupMagic {
		return hdr, corruptBackup("not an idrecon backup")
	}
	n, err := binary.ReadUvarint(hr)
	if err != nil || n > maxHeaderLen {
		return hdr, corruptBackup("backup header: bad length")
	}
	raw := make([]byte, n)
	if _, err := io.ReadFull(hr, raw); err != nil {
		return hdr, corruptBackup("backup header: %w", err)
	}
	if err := json.Unmarshal(raw, &hdr); err != nil {
		return hdr, corruptBackup("backup header: %w", err)
	}
	if err := checkFormat([]byte(strconv.Itoa(hdr.Format))); err != nil {
		return hdr, fmt.Errorf("backup: %w", err)
	}
	known := bucketsOf(hdr.Format)
	for _, t := range hdr.Tables {
		if !slices.Contains(known, t) {
			return hdr, corruptBackup("backup of format %d holds unknown table %q", hdr.Format, t)
		}
	}
	return hdr, nil
}

// copyBackup copies the backup's records, each checked, into bdb, which
// has the buckets of the backup's format.
func copyBackup(hr *hashingReader, bdb *bolt.DB, hdr backupHeader) error {
	var count uint64
	type kv struct{ table, key, val []byte }
	var batch []kv
	flush := func() error {
		err := bdb.Update(func(tx *bolt.Tx) error {
			for _, e := range batch {
				if err := tx.Bucket(e.table).Put(e.key, e.val); err != nil {
					return err
				}
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	for {
		tag, err := hr.ReadByte()
		if err != nil {
			return corruptBackup("backup is truncated: %w", err)
		}
		if tag == 0 {
			break
		}
		if int(tag) > len(hdr.Tables) {
			return corruptBackup("backup frame %d: bad table %d", count, tag)
		}
		table := hdr.Tables[tag-1]
		key, err := readChunk(hr, maxKeyLen)
		if err != nil {
			return corruptBackup("backup frame %d: %w", count, err)
		}
		val, err := readChunk(hr, maxRecordLen)
		if err != nil {
			return corruptBackup("backup frame %d: %w", count, err)
		}
		if _, err := record.Decode(table, val); err != nil {
			return corruptBackup("backup %s record %q: %w", table, key, err)
		}
		batch = append(batch, kv{[]byte(table), key, val})
		count++
		if len(batch) == restoreBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	want, err := binary.ReadUvarint(hr)
	if err != nil {
		return corruptBackup("backup trailer: %w", err)
	}
	sum := hr.h.Sum32()
	var tail [4]byte
	if _, err := io.ReadFull(hr.r, tail[:]); err != nil {
		return corruptBackup("backup trailer: %w", err)
	}
	if binary.BigEndian.Uint32(tail[:]) != sum {
		return corruptBackup("backup checksum mismatch")
	}
	if want != count {
		return corruptBackup("backup holds %d records, trailer says %d", count, want)
	}
	if _, err := hr.r.ReadByte(); err != io.EOF {
		return corruptBackup("data after the backup trailer")
	}
	return flush()
}

func readChunk(hr *hashingReader, limit int) ([]byte, error) {
	n, err := binary.ReadUvarint(hr)
	if err != nil {
		return nil, fmt.Errorf("truncated: %w", err)
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("length %d over %d", n, limit)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(hr, b); err != nil {
		return nil, fmt.Errorf("truncated: %w", err)
	}
	return b, nil
}

// verifyLoads opens the restored file and loads it into a scratch store, so
// a backup that would not start the daemon is refused now.
func verifyLoads(path string) error {
	db, err := Open(path, Options{})
	if err != nil {
		return fmt.Errorf("durable: restore: verify: %w", err)
	}
	defer db.Close()
	st, err := store.New(store.Options{})
	if err != nil {
		return fmt.Errorf("durable: restore: verify: %w", err)
	}
	defer st.Close()
	if _, err := db.LoadInto(st); err != nil {
		return fmt.Errorf("durable: restore: verify: %w", err)
	}
	return nil
}

// hashingReader hashes every byte read through it.
type hashingReader struct {
	r   *bufio.Reader
	h   hash.Hash32
	one [1]byte
}

func (hr *hashingReader) Read(p []byte) (int, error) {
	n, err := hr.r.Read(p)
	hr.h.Write(p[:n])
	return n, err
}

func (hr *hashingReader) ReadByte() (byte, error) {
	b, err := hr.r.ReadByte()
	if err == nil {
		hr.one[0] = b
		hr.h.Write(hr.one[:])
	}
	return b, err
}

// corruptBackup is the error of a backup that is damaged or no idrecon
// backup at all: it is ErrCorrupt to callers that decide by it, but says
// the backup is at fault, not a state.
func corruptBackup(format string, args ...any) error {
	return &backupError{fmt.Errorf(format, args...)}
}

type backupError struct{ err error }

func (e *backupError) Error() string        { return e.err.Error() }
func (e *backupError) Unwrap() error        { return e.err }
func (e *backupError) Is(target error) bool { return target == ErrCorrupt }
