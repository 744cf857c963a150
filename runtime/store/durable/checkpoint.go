package durable

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/idrecon/idrecon/runtime/store"
)

const (
	defaultSegmentBytes = 64 << 20
	// maxSealed bounds the full segments waiting for the checkpointer:
	// when checkpoints fall behind, Commit waits rather than let the log,
	// and the replay after a crash, grow without bound.
	maxSealed = 2
	// checkpointRetry spaces the attempts of a failing checkpoint.
	checkpointRetry = time.Second
	// maxKeptBuf bounds the frame buffer Commit keeps between batches, so
	// one huge batch does not pin its memory for good.
	maxKeptBuf = 1 << 20
)

// keyLogApplied, in bucketInfo, holds the number (uint64) of the last log
// segment applied to the file. It is written in the transaction that
// applies the segment, so replay skips a segment that was applied but not
// yet removed when the process died: applied again after later segments,
// its older values would overwrite theirs.
var keyLogApplied = []byte("logApplied")

// writeAheadLog is a DB's log: the segment Commit appends to, the full
// segments waiting to be checkpointed, and the checkpointer goroutine.
type writeAheadLog struct {
	limit  int64           // Options.SegmentBytes
	tables map[string]bool // buckets of the file, which ops may write

	mu       sync.Mutex
	progress sync.Cond // broadcast when sealed shrinks or a checkpoint fails
	active   *segment  // nil until the next append needs one
	nextSeq  uint64
	sealed   []sealedSegment
	failure  error  // the last checkpoint's error, nil once one succeeds
	buf      []byte // the frame being written, reused across batches
	// cut is set when the active segment broke: a batch reported failed
	// may stay in it, after the acknowledged frames, and nothing on disk
	// says where they end. The next segment is created with a cut frame
	// that does, synced with its header, before anything is appended to
	// it: no batch is acknowledged after the failed one until replay is
	// sure to drop it, and while the cut cannot be written every Commit
	// fails. Why there: it is one small write into a file the log creates
	// anyway, it needs no read of the failing file (rewriting the segment
	// without its tail would copy up to SegmentBytes), no transaction of
	// the state file racing the checkpointer, and it comes before every
	// later frame by construction. Refusing writes until a restart instead
	// would need the length recorded somewhere all the same.
	cut *cut

	// checkpointing runs one checkpoint at a time: the checkpointer's, or
	// that of flush.
	checkpointing sync.Mutex
	kick          chan struct{}
	stop          chan struct{}
	done          chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// sealedSegment is a full segment: size bytes of it are synced frames.
type sealedSegment struct {
	seq  uint64
	size int64
}

// replayLog applies the segments a previous run left behind (it died
// before it could checkpoint them) to the state file, oldest first, and
// removes them. It runs before init migrates the file: segments hold ops in
// the format of the file they were written for, which is the file's format
// until it is migrated.
func (db *DB) replayLog() error {
	seqs, err := listSegments(db.path)
	if err != nil {
		return fmt.Errorf("durable: replay log: %w", err)
	}
	var format []byte
	var applied uint64
	err = db.bolt.View(func(tx *bolt.Tx) error {
		info := tx.Bucket(bucketInfo)
		if info == nil {
			return nil
		}
		format = bytes.Clone(info.Get(keyFormat))
		switch v := info.Get(keyLogApplied); len(v) {
		case 0:
		case 8:
			applied = binary.BigEndian.Uint64(v)
		default:
			return fmt.Errorf("%w: %s: last applied log segment %x", ErrCorrupt, db.path, v)
		}
		if err := checkFormat(format); err != nil {
			return fmt.Errorf("%s: %w", db.path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	db.wal.nextSeq = applied + 1
	var pending []uint64
	for _, seq := range seqs {
		if seq > applied {
			pending = append(pending, seq)
			continue
		}
		if err := os.Remove(segmentName(db.path, seq)); err != nil {
			return fmt.Errorf("durable: replay log: remove applied segment: %w", err)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	if format == nil {
		return fmt.Errorf("%w: %s: log segments without the state file they belong to", ErrCorrupt, db.path)
	}
	fileFormat, _ := strconv.Atoi(string(format)) // checked above
	for i, seq := range pending {
		if want := applied + 1 + uint64(i); seq != want {
			return fmt.Errorf("%w: %s: log segment %d is missing", ErrCorrupt, db.path, want)
		}
	}
	// Every segment is checked before any is applied, so a damaged log
	// leaves the state file as it was; newest first, as a segment that
	// starts with a cut frame says how much of the one before it to apply.
	// A cut of a segment no longer pending is moot: it was applied, up to
	// the cut, before the process died.
	cuts := make([]int64, len(pending))
	for i := len(pending) - 1; i >= 0; i-- {
		p, err := readSegment(db.path, pending[i], fileFormat, i == len(pending)-1, cuts[i])
		if err != nil {
			return err
		}
		if fileFormat >= memberListsFormat {
			if _, _, err := memberDeltas(p.ops); err != nil {
				return fmt.Errorf("durable: replay log: %s: %w", segmentName(db.path, pending[i]), err)
			}
		}
		if p.cut != nil && i > 0 {
			cuts[i-1] = p.cut.size
		}
	}
	frames, torn, failed := 0, 0, 0
	for i, seq := range pending {
		p, err := readSegment(db.path, seq, fileFormat, i == len(pending)-1, cuts[i])
		if err != nil {
			return err
		}
		if err := db.applySegment(seq, fileFormat, p.ops); err != nil {
			return fmt.Errorf("durable: replay log: %w", err)
		}
		if err := os.Remove(segmentName(db.path, seq)); err != nil {
			return fmt.Errorf("durable: replay log: %w", err)
		}
		db.wal.nextSeq = seq + 1
		frames += p.frames
		if cuts[i] > 0 {
			failed += p.torn
		} else {
			torn += p.torn
		}
	}
	db.log.Info("replayed the write-ahead log", "path", db.path, "segments", len(pending), "batches", frames)
	if torn > 0 {
		db.log.Warn("dropped a write cut short at the end of the log; it was never acknowledged", "path", db.path, "bytes", torn)
	}
	if failed > 0 {
		db.log.Warn("dropped a write that failed and could not be undone; it was never acknowledged", "path", db.path, "bytes", failed)
	}
	return nil
}

// readSegment reads and parses log segment seq. With cut above 0, the next
// segment says only that many bytes of it hold acknowledged frames: the
// rest, counted as torn, is dropped unread.
func readSegment(path string, seq uint64, format int, last bool, cut int64) (parsedSegment, error) {
	name := segmentName(path, seq)
	data, err := os.ReadFile(name)
	if err != nil {
		return parsedSegment{}, fmt.Errorf("durable: replay log: %w", err)
	}
	if cut == 0 {
		return parseSegment(name, data, seq, format, last)
	}
	if int64(len(data)) < cut {
		return parsedSegment{}, fmt.Errorf("%w: %s: %d bytes, the next segment says %d were synced", ErrCorrupt, name, len(data), cut)
	}
	p, err := parseSegment(name, data[:cut], seq, format, false)
	if err == nil && int64(p.end) != cut {
		err = fmt.Errorf("%w: %s: frames end at offset %d, the next segment says %d bytes were synced", ErrCorrupt, name, p.end, cut)
	}
	p.torn = len(bytes.TrimRight(data[cut:], "\x00"))
	return p, err
}

// startLog readies the log for Commit and starts the checkpointer.
func (db *DB) startLog(segmentBytes int64) error {
	w := &db.wal
	w.limit = segmentBytes
	if w.limit <= 0 {
		w.limit = defaultSegmentBytes
	}
	w.tables = map[string]bool{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			w.tables[string(name)] = true
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("durable: open: %w", err)
	}
	w.progress.L = &w.mu
	w.kick = make(chan struct{}, 1)
	w.stop = make(chan struct{})
	w.done = make(chan struct{})
	go db.checkpointLoop()
	return nil
}

// appendLog writes ops to the log as one frame and returns once it is
// synced.
func (db *DB) appendLog(ops []op) error {
	if err := db.checkOps(ops); err != nil {
		return err
	}
	w := &db.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	frame, err := appendFrame(w.buf[:0], ops)
	if err != nil {
		return err
	}
	if cap(frame) <= maxKeptBuf {
		w.buf = frame
	}
	if w.active == nil {
		if err := db.openSegment(); err != nil {
			return unavailable(err)
		}
	}
	start := time.Now()
	err = w.active.append(frame)
	since(db.metrics.sync, start)
	if err != nil {
		if w.active.broken {
			// The batch is in the segment and cannot be taken out: the
			// next segment is started now, its first frame marking where
			// the acknowledged frames end, so that the batch is reported
			// failed only once replay will drop it, if the disk allows.
			w.cut = &cut{seq: w.active.seq, size: w.active.size}
			db.seal()
			if oerr := db.openSegment(); oerr != nil {
				err = errors.Join(err, fmt.Errorf("the failed batch stays in log segment %d, and every write fails until its end is recorded: %w", w.cut.seq, oerr))
			}
		}
		return unavailable(err)
	}
	if w.active.size >= w.limit {
		db.seal()
	}
	return nil
}

// checkOps refuses a batch that bbolt would refuse at the checkpoint. Once
// in the log a batch is acknowledged, and a checkpoint that cannot apply it
// would fail forever, and so would the next start.
func (db *DB) checkOps(ops []op) error {
	for _, o := range ops {
		var err error
		switch {
		case !db.wal.tables[o.table]:
			err = fmt.Errorf("%w: bucket %s is missing", ErrCorrupt, o.table)
		case o.val == nil:
		case len(o.key) == 0:
			err = berrors.ErrKeyRequired
		case len(o.key) > bolt.MaxKeySize:
			err = berrors.ErrKeyTooLarge
		case int64(len(o.val)) > bolt.MaxValueSize:
			err = berrors.ErrValueTooLarge
		}
		if err != nil {
			return fmt.Errorf("%s %q: %w", o.table, o.key, err)
		}
	}
	return nil
}

// openSegment starts the next segment, first waiting for the checkpointer
// if too many full ones are pending. The caller holds w.mu.
func (db *DB) openSegment() error {
	w := &db.wal
	for len(w.sealed) >= maxSealed {
		if w.failure != nil {
			return fmt.Errorf("log is full and the checkpoint fails: %w", w.failure)
		}
		w.progress.Wait()
	}
	s, err := createSegment(db.path, w.nextSeq, w.cut)
	if err != nil {
		return err
	}
	w.active, w.nextSeq, w.cut = s, w.nextSeq+1, nil
	return nil
}

// unavailable marks a failure of the log's disk: the store answers the
// batch's writes as unavailable (SCIM: 503), to be retried.
func unavailable(err error) error {
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}

// seal hands the active segment to the checkpointer. The caller holds w.mu.
func (db *DB) seal() {
	w := &db.wal
	// Its frames are synced (or, if broken, not applied): closing the file
	// cannot lose any, so its error does not matter.
	w.active.f.Close()
	w.sealed = append(w.sealed, sealedSegment{seq: w.active.seq, size: w.active.size})
	w.active = nil
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

func (db *DB) checkpointLoop() {
	w := &db.wal
	defer close(w.done)
	var retry <-chan time.Time
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-retry:
		}
		retry = nil
		if err := db.checkpoint(); err != nil {
			db.log.Error("checkpoint failed; the log keeps the writes until it succeeds", "path", db.path, "err", err)
			retry = time.After(checkpointRetry)
			continue
		}
		db.releasePages(false)
	}
}

// checkpoint applies the sealed segments to the state file, oldest first,
// and removes them.
func (db *DB) checkpoint() error {
	w := &db.wal
	w.checkpointing.Lock()
	defer w.checkpointing.Unlock()
	for {
		w.mu.Lock()
		if len(w.sealed) == 0 {
			w.mu.Unlock()
			return nil
		}
		s := w.sealed[0]
		w.mu.Unlock()
		start := time.Now()
		err := db.checkpointSegment(s)
		if err == nil {
			since(db.metrics.checkpoint, start)
		}
		w.mu.Lock()
		w.failure = err
		if err == nil {
			w.sealed = w.sealed[1:]
		}
		w.progress.Broadcast()
		w.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

func (db *DB) checkpointSegment(s sealedSegment) error {
	name := segmentName(db.path, s.seq)
	data, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("durable: checkpoint: %w", err)
	}
	if int64(len(data)) < s.size {
		return fmt.Errorf("%w: %s: %d bytes, %d were written", ErrCorrupt, name, len(data), s.size)
	}
	p, err := parseSegment(name, data[:s.size], s.seq, FormatVersion, false)
	if err != nil {
		return err
	}
	if err := db.applySegment(s.seq, FormatVersion, p.ops); err != nil {
		return fmt.Errorf("durable: checkpoint: %w", err)
	}
	// Should this fail, the next attempt applies the segment again, which
	// is harmless: no later one has been applied.
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("durable: checkpoint: %w", err)
	}
	return nil
}

// applySegment writes a segment's ops, logged for a file of format
// version format, to the state file in one transaction and records it as
// applied.
func (db *DB) applySegment(seq uint64, format int, ops []op) (err error) {
	// The checkpointer's goroutine is the daemon's: a damaged page must
	// fail the checkpoint (the log keeps the writes), not crash it.
	defer recoverCorrupt(db.path, &err)
	defer setPanicOnFault()()
	plain, groups, err := segmentWrites(format, ops)
	if err != nil {
		return fmt.Errorf("log segment %d: %w", seq, err)
	}
	return db.bolt.Update(func(tx *bolt.Tx) error {
		if err := applyPlain(tx, seq, plain); err != nil {
			return err
		}
		if err := applyMembers(tx, groups); err != nil {
			return fmt.Errorf("%w: log segment %d: %w", ErrCorrupt, seq, err)
		}
		return tx.Bucket(bucketInfo).Put(keyLogApplied, binary.BigEndian.AppendUint64(nil, seq))
	})
}

// segmentWrites splits a segment's ops into the plain bucket writes, last
// per key, and the member deltas by group. Before format 3 every op is a
// plain write: membership records and members headers.
func segmentWrites(format int, ops []op) ([]op, map[string]*groupChanges, error) {
	if format < memberListsFormat {
		return lastPerKey(ops), nil, nil
	}
	plain, groups, err := memberDeltas(ops)
	if err != nil {
		return nil, nil, err
	}
	return lastPerKey(plain), groups, nil
}

// applyPlain puts or deletes each op's key in its table's bucket.
func applyPlain(tx *bolt.Tx, seq uint64, ops []op) error {
	var b *bolt.Bucket
	var table string
	for _, o := range ops {
		if b == nil || o.table != table {
			if b = tx.Bucket([]byte(o.table)); b == nil {
				return fmt.Errorf("%w: log segment %d writes to bucket %s, which is missing", ErrCorrupt, seq, o.table)
			}
			table = o.table
		}
		var err error
		if o.val == nil {
			err = b.Delete(o.key)
		} else {
			err = b.Put(o.key, o.val)
		}
		if err != nil {
			return fmt.Errorf("%w: log segment %d: %s %q: %w", ErrCorrupt, seq, o.table, o.key, err)
		}
	}
	return nil
}

// lastPerKey returns the last op on each key, which alone decides what the
// segment leaves, in key order: bbolt splits nodes only when it commits, so
// random keys would pile up in a few huge nodes, each insert moving half of
// one (a checkpoint of 100,000 new users took 7 s rather than 1.7).
func lastPerKey(ops []op) []op {
	type key struct{ table, key string }
	seen := make(map[key]bool, len(ops))
	last := make([]op, 0, len(ops))
	for i := len(ops) - 1; i >= 0; i-- {
		k := key{ops[i].table, string(ops[i].key)}
		if !seen[k] {
			seen[k] = true
			last = append(last, ops[i])
		}
	}
	slices.SortFunc(last, func(a, b op) int {
		return cmp.Or(strings.Compare(a.table, b.table), bytes.Compare(a.key, b.key))
	})
	return last
}

// flush checkpoints everything committed so far, so the file holds it.
func (db *DB) flush() error {
	w := &db.wal
	w.mu.Lock()
	if w.active != nil {
		db.seal()
	}
	w.mu.Unlock()
	return db.checkpoint()
}

// closeLog stops the checkpointer and checkpoints what is left, which
// removes the log.
func (db *DB) closeLog() error {
	close(db.wal.stop)
	<-db.wal.done
	return db.flush()
}
