// Package audit keeps idrecon's append-only audit trail: one JSON object per
// line for every applied change, drift, admin edit, state repair and SCIM
// write, in a file rotated by size. Each is an Event recorded by an explicit
// call where the change is made.
package audit

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Log.
type Options struct {
	// MaxBytes rotates the file once it grows past this size (default 64 MiB).
	MaxBytes int64
	// Keep is how many rotated files are kept (default 5): path.1 … path.N.
	Keep int
	// MaxApplyRecords is how many "applied change" records one apply writes
	// (default 1000); the rest are counted per action and kind and written
	// as one "applied changes summary" record. Without it one large apply
	// rotates all earlier history out of the kept files.
	MaxApplyRecords int
	// Logger is told when a record cannot be written (default
	// slog.Default()).
	Logger *slog.Logger
}

// SyncInterval bounds how long a written record may stay only in the page
// cache: a sync goroutine syncs the file at most this often, and only
// when something was written since the last sync. A machine crash loses at
// most the records of the last SyncInterval (plus one sync's time).
// Syncing every record would double the fsyncs of a SCIM write, whose state
// the write-ahead log already syncs per batch; at 100ms the audit log adds
// at most ten syncs a second however many writes there are, noise
// beside the WAL's, while a crash loses no more than a tenth of a second of
// records that the state kept.
const SyncInterval = 100 * time.Millisecond

// Sync hooks; tests replace them to count syncs and drive the ticks.
// (*os.File).Sync holds the descriptor while it syncs, so a rotation or
// Close in another goroutine waits for it rather than free the number
// under it; an fsync's extra timestamp write is nothing at ten a second.
var (
	syncFile  = (*os.File).Sync
	syncDir   = fsyncDir
	newTicker = func(d time.Duration) (<-chan time.Time, func()) {
		t := time.NewTicker(d)
		return t.C, t.Stop
	}
)

// Log is an append-only JSON-lines file. It is safe for concurrent use.
type Log struct {
	path string
	opts Options

	mu     sync.Mutex
	f      *os.File    // nil after Close, or after a rotation that could not reopen
	info   os.FileInfo // f's, to tell whether path still names it
	closed bool
	size   int64
	dirty  bool       // written since f was last synced (or a sync failed)
	apply  applyState // guarded by mu

	// lost counts records that could not be written: the error log says
	// which, the counter lets an alert say that any were.
	lost atomic.Uint64

	stopOnce sync.Once
	stop     chan struct{} // closed by Close: the sync goroutine returns
	done     chan struct{} // closed once the sync goroutine has returned
}

// applyState follows the apply whose change records are being written.
type applyState struct {
	revision string
	written  int
	omitted  int
	counts   map[string]int // "action kind" → omitted changes
}

// Open opens (or creates) the audit file at path.
func Open(path string, opts Options) (*Log, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 64 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 5
	}
	if opts.MaxApplyRecords <= 0 {
		opts.MaxApplyRecords = 1000
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Log{path: path, opts: opts, stop: make(chan struct{}), done: make(chan struct{})}
	if err := l.open(); err != nil {
		return nil, err
	}
	// The file may have just been created: its directory entry is not
	// durable until the directory is synced. Once per start is cheap.
	l.syncDirLogged()
	tick, stopTicker := newTicker(SyncInterval)
	go l.syncLoop(tick, stopTicker)
	return l, nil
}

func (l *Log) open() error {
	// Here rather than in Open: a directory deleted while the daemon runs
	// is made again when the log is reopened.
	// Owner-only, like the file: a listing alone names the rotated files
	// and their sizes, and the records name users.
	if err := os.MkdirAll(filepath.Dir(l.path), 0o700); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	// Read as well as append: open checks the last byte.
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		// The records name users: a file left readable by others (copied
		// in, restored from a backup) is made owner-only before more go in.
		if err := f.Chmod(perm &^ 0o077); err != nil {
			f.Close()
			return fmt.Errorf("audit: %s is readable by others and cannot be made owner-only: %w", l.path, err)
		}
		l.opts.Logger.Warn("audit log was readable by others; made owner-only", "path", l.path, "mode", perm.String())
	}
	size := st.Size()
	if size > 0 {
		// A process killed in the middle of a write leaves a last line
		// without its newline; end it, or the next record is glued to
		// it and unreadable too.
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, size-1); err != nil {
			f.Close()
			return fmt.Errorf("audit: %w", err)
		}
		if last[0] != '\n' {
			if size, err = l.endTornLine(f, size); err != nil {
				f.Close()
				return fmt.Errorf("audit: end torn line: %w", err)
			}
			l.dirty = true
		}
	}
	l.f, l.size, l.info = f, size, st
	return nil
}

// maxTorn bounds how much of a torn last line is read back to be kept.
const maxTorn = 1 << 20

// endTornLine ends the torn last line of f (size bytes) and returns the new
// size. The torn part is not left as a line of its own: jq, a json.Decoder
// and most JSON-lines readers stop at the first line that does not parse,
// and every record after it would be out of their reach. It is kept as a
// string in a "torn record" of its own: evidence of a write cut short.
func (l *Log) endTornLine(f *os.File, size int64) (int64, error) {
	n := min(size, maxTorn)
	tail := make([]byte, n)
	if _, err := f.ReadAt(tail, size-n); err != nil {
		return size, err
	}
	nl := bytes.LastIndexByte(tail, '\n')
	frag := tail[nl+1:]
	var line []byte
	switch {
	case json.Valid(frag):
		// Only its newline is missing.
	case nl < 0 && n < size:
		// Longer than maxTorn: nothing idrecon writes. Ended as it is.
		l.opts.Logger.Warn("audit log ends in a long line that is not JSON; it is kept, ended by a newline", "path", l.path)
	default:
		var err error
		line, err = json.Marshal(struct {
			Time     time.Time `json:"time"`
			Level    string    `json:"level"`
			Msg      string    `json:"msg"`
			Fragment string    `json:"fragment"`
		}{time.Now(), slog.LevelWarn.String(), "torn record", string(frag)})
		if err != nil {
			return size, err
		}
		start := size - int64(len(frag))
		if err := f.Truncate(start); err != nil {
			// A line that does not parse beats one that swallows
			// the next record too.
			l.opts.Logger.Warn("audit log ended in a torn line that cannot be taken back; it is kept, ended by a newline", "path", l.path, "err", err)
			line = nil
			break
		}
		size = start
		l.opts.Logger.Warn("audit log ended in a torn line (a write cut short); kept as a torn record", "path", l.path)
	}
	line = append(line, '\n')
	// Should this write fail after the truncation, the fragment is lost:
	// it was no record anyway, and the file still ends with a whole line.
	w, err := f.Write(line)
	return size + int64(w), err
}

// write appends one line; l.mu is held. A write that would grow the file
// past MaxBytes rotates it first, so a line is never split across files.
func (l *Log) write(p []byte) (int, error) {
	if l.closed {
		return 0, os.ErrClosed
	}
	recreate := l.f != nil && l.gone()
	if recreate {
		// Every record from now on would go to a file that no name
		// reaches, and be lost with it.
		l.opts.Logger.Error("audit log was removed or moved away while open; recreating it", "path", l.path)
		l.syncLocked()
		l.f.Close()
		l.f = nil
	}
	if l.f == nil {
		// A rotation or a cut-short write left no open file: try
		// again rather than refuse every record from now on.
		if err := l.open(); err != nil {
			return 0, err
		}
		if recreate {
			l.syncDirLogged()
		}
	}
	if l.size > 0 && l.size+int64(len(p)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			// A failed rotation (a full disk, a refused rename) must not
			// lose this record nor stop the log for good: the record
			// goes to the current file, past MaxBytes, and the next
			// write tries to rotate again.
			l.opts.Logger.Error("audit log not rotated; appending past its size limit", "path", l.path, "err", err)
			if l.f == nil {
				if err := l.open(); err != nil {
					return 0, err
				}
			}
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if n > 0 {
		l.dirty = true
	}
	if err != nil && n > 0 {
		// Cut short (a full disk, a file size limit): take the partial
		// line back, or the next record would be glued to it and both
		// be unreadable.
		if terr := l.f.Truncate(l.size - int64(n)); terr == nil {
			l.size -= int64(n)
			n = 0
		} else {
			// Reopening ends the partial line with a newline. The
			// records before it are synced first: the sync goroutine
			// never sees this file again.
			l.syncLocked()
			l.f.Close()
			l.f = nil
			err = errors.Join(err, fmt.Errorf("audit: partial line left: %w", terr))
		}
	}
	return n, err
}

// gone reports whether path no longer names the open file: deleted, with
// its directory or alone, or moved away. One stat per record costs little
// beside its write.
func (l *Log) gone() bool {
	st, err := os.Stat(l.path)
	if err != nil {
		return errors.Is(err, fs.ErrNotExist)
	}
	return !os.SameFile(st, l.info)
}

func (l *Log) rotate() error {
	// Synced before the rename: after it the sync goroutine only sees the
	// new file, and the last records of this one would never be synced.
	// A failure is logged; rotating anyway loses nothing more.
	l.syncLocked()
	err := l.f.Close()
	// Closed (or unusable) either way: write reopens it if this fails.
	l.f = nil
	if err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	for i := l.opts.Keep - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", l.path, i)
		if _, err := os.Stat(from); err == nil {
			if err := os.Rename(from, fmt.Sprintf("%s.%d", l.path, i+1)); err != nil {
				return fmt.Errorf("audit: rotate: %w", err)
			}
		}
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	err = l.open()
	// The renames and the new file are directory entries: without this a
	// crash can bring back the old names, with the new file's records
	// lost. Once per rotation, not per record.
	l.syncDirLogged()
	return err
}

// syncLoop runs the sync step at each tick until Close.
func (l *Log) syncLoop(tick <-chan time.Time, stopTicker func()) {
	defer close(l.done)
	defer stopTicker()
	for {
		select {
		case <-l.stop:
			return
		case <-tick:
			l.syncStep()
		}
	}
}

// syncStep syncs the file if anything was written since the last
// sync. The sync runs without l.mu: a record is never kept waiting for the
// disk. A failure is logged, as a failed write is, and tried again at the
// next step.
func (l *Log) syncStep() {
	l.mu.Lock()
	f := l.f
	if !l.dirty || f == nil {
		l.mu.Unlock()
		return
	}
	// Cleared before the sync: a record written during it is synced by
	// the next step.
	l.dirty = false
	l.mu.Unlock()

	err := syncFile(f)
	if err == nil || errors.Is(err, os.ErrClosed) {
		// Closed meanwhile by a rotation or Close, which synced it
		// themselves.
		return
	}
	l.mu.Lock()
	if l.f == f {
		l.dirty = true
	}
	l.mu.Unlock()
	l.logSyncError(err)
}

// syncLocked syncs the file before it is closed; l.mu is held.
func (l *Log) syncLocked() error {
	l.dirty = false
	if err := syncFile(l.f); err != nil {
		l.logSyncError(err)
		return fmt.Errorf("audit: sync: %w", err)
	}
	return nil
}

func (l *Log) logSyncError(err error) {
	l.opts.Logger.Error("audit log not synced to disk; its newest records may be lost in a machine crash", "path", l.path, "err", err)
}

func (l *Log) syncDirLogged() {
	if err := syncDir(filepath.Dir(l.path)); err != nil {
		l.opts.Logger.Error("audit log directory not synced; a machine crash may lose the file's new name", "path", l.path, "err", err)
	}
}

// fsyncDir makes the creation or renaming of files in dir durable.
func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// Close writes a pending apply summary, syncs and closes the file, and
// stops the sync goroutine.
func (l *Log) Close() error {
	l.stopOnce.Do(func() { close(l.stop) })
	// Waited for without l.mu, which the sync step takes.
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	serr := l.flushSummary()
	l.closed = true
	if l.f == nil {
		return serr
	}
	var yerr error
	if l.dirty {
		yerr = l.syncLocked()
	}
	err := cmp.Or(l.f.Close(), yerr, serr)
	l.f = nil
	return err
}

// Event is one audit record. Each kind of change has its own type, recorded
// by an explicit call where the change is made; log lines are for
// operators and renaming one loses nothing here.
type Event interface {
	// Message names the event in the record's "msg" field.
	Message() string
	attrs() []slog.Attr
}

// SCIMWrite is a SCIM write that was made, or, with Outcome "unknown",
// one answered 503 that the state's backend may still make (etcd that
// lost its quorum). Only ids: no personal data, never a token.
type SCIMWrite struct {
	Actor        string // the SCIM token's name
	Op           string // create, replace, patch, delete
	ResourceType string // User or Group
	ID           string
	Outcome      string // "" made; "unknown" with Error
	Error        string
}

// Applied opens the records of one apply: its revision (the spec's
// content hash, as its change records name it), the source revision it
// came from as status names it (main@sha1:<commit>), and its totals.
type Applied struct {
	Revision               string
	Source                 string
	Create, Update, Delete int
}

// AppliedChange is one change an apply made.
type AppliedChange struct {
	Revision, Action, Kind, Name string
	Drift                        bool // it undid a change made outside git
}

// Drift is a resource, or one field of it, that differs from the spec.
type Drift struct {
	Kind, Name, Action string
	// Field, Before (the runtime's) and After (the spec's) name one field
	// of an update; empty for a create or delete.
	Field, Before, After string
	Corrected            bool
	// Suggestion says what to change in the spec when only the spec can
	// resolve it (a group renamed in Entra).
	Suggestion string
}

// AdminEdit is a console-style edit through the admin API.
type AdminEdit struct {
	Op, Kind, Name string
}

// AdminAction is an admin API request that changes what the daemon does
// (suspend, resume, reconcile, apply a pushed spec) or hands its state out
// (backup), made or failed: who stopped applying the spec, and when, is
// asked of the audit trail as often as who changed it. Never a token.
type AdminAction struct {
	Actor    string // who asked: "admin", the admin token's holder
	Action   string // suspend, resume, reconcile, apply, backup
	Revision string // apply: the revision pushed
	Outcome  string // "" made; "failed" with Error; "partly" for a backup cut off after it sent some
	Error    string
}

// StateRepaired is an object the durable store renamed at load, so that no
// two names fold equal. Only ids: the names are personal data.
type StateRepaired struct {
	Table, ID, Holder string
}

// GatewayRefusal is a signed-in user a Gateway refused: disabled, deleted,
// without a role or without its required role.
type GatewayRefusal struct {
	Gateway, User, Reason string
}

func (SCIMWrite) Message() string      { return "scim write" }
func (GatewayRefusal) Message() string { return "gateway refusal" }
func (Applied) Message() string        { return "applied" }
func (AppliedChange) Message() string  { return "applied change" }
func (Drift) Message() string          { return "drift" }
func (AdminEdit) Message() string      { return "admin edit" }
func (AdminAction) Message() string    { return "admin action" }
func (StateRepaired) Message() string  { return "state repaired" }

func (e SCIMWrite) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("actor", e.Actor), slog.String("op", e.Op),
		slog.String("resourceType", e.ResourceType), slog.String("id", e.ID)}
	if e.Outcome != "" {
		a = append(a, slog.String("outcome", e.Outcome), slog.String("error", e.Error))
	}
	return a
}

func (e Applied) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("revision", e.Revision)}
	if e.Source != "" {
		a = append(a, slog.String("source", e.Source))
	}
	return append(a, slog.Int("create", e.Create), slog.Int("update", e.Update), slog.Int("delete", e.Delete))
}

func (e AppliedChange) attrs() []slog.Attr {
	return []slog.Attr{slog.String("revision", e.Revision), slog.String("action", e.Action),
		slog.String("kind", e.Kind), slog.String("name", e.Name), slog.Bool("drift", e.Drift)}
}

func (e Drift) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("kind", e.Kind), slog.String("name", e.Name), slog.String("action", e.Action)}
	if e.Field != "" {
		a = append(a, slog.String("field", e.Field), slog.String("before", e.Before), slog.String("after", e.After))
	}
	if e.Suggestion != "" {
		a = append(a, slog.String("suggestion", e.Suggestion))
	}
	return append(a, slog.Bool("corrected", e.Corrected))
}

func (e GatewayRefusal) attrs() []slog.Attr {
	return []slog.Attr{slog.String("gateway", e.Gateway), slog.String("user", e.User), slog.String("reason", e.Reason)}
}

func (e AdminEdit) attrs() []slog.Attr {
	return []slog.Attr{slog.String("op", e.Op), slog.String("kind", e.Kind), slog.String("name", e.Name)}
}

func (e AdminAction) attrs() []slog.Attr {
	a := []slog.Attr{slog.String("actor", e.Actor), slog.String("action", e.Action)}
	if e.Revision != "" {
		a = append(a, slog.String("revision", e.Revision))
	}
	if e.Outcome != "" {
		a = append(a, slog.String("outcome", e.Outcome), slog.String("error", e.Error))
	}
	return a
}

func (e StateRepaired) attrs() []slog.Attr {
	return []slog.Attr{slog.String("table", e.Table), slog.String("id", e.ID), slog.String("holder", e.Holder),
		slog.String("reason", "name folds equal to the holder's; renamed with the suffix (duplicate <id>)")}
}

// Recorder takes audit events. *Log is one; Discard drops them.
type Recorder interface {
	Record(Event)
}

// Discard is a Recorder that keeps nothing, for a daemon without a data dir
// and for tests that do not look.
var Discard Recorder = discard{}

type discard struct{}

func (discard) Record(Event) {}

// Memory is a Recorder that keeps events in memory, for tests that check
// what was recorded. It is safe for concurrent use.
type Memory struct {
	mu     sync.Mutex
	events []Event
}

// Record implements Recorder.
func (m *Memory) Record(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
}

// Events returns what was recorded, oldest first.
func (m *Memory) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.events)
}

// Record appends e as one JSON line. Past MaxApplyRecords change records
// of one apply (revision), a change is counted instead; every other record
// first writes the summary of what was counted, so it lands right after the
// apply's records (Close writes one still pending). The Applied record that
// opens each apply carries its totals per action in any case. A failure to
// write is reported to the error log, not to the caller: the change is made
// and cannot be undone for want of its record.
func (l *Log) Record(e Event) {
	if err := l.record(e, time.Now()); err != nil {
		l.opts.Logger.Error("audit record not written", "event", e.Message(), "err", err)
	}
}

func (l *Log) record(e Event, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A summary that could not be written (admit's error) stays pending;
	// the record is still written.
	write, serr := l.admit(e)
	if !write {
		return serr
	}
	var buf bytes.Buffer
	h := slog.NewJSONHandler(&buf, nil)
	r := slog.NewRecord(now, slog.LevelInfo, e.Message(), 0)
	r.AddAttrs(e.attrs()...)
	if err := h.Handle(context.Background(), r); err != nil {
		l.lost.Add(1)
		return errors.Join(serr, fmt.Errorf("audit: encode: %w", err))
	}
	_, err := l.write(buf.Bytes())
	if err != nil {
		l.lost.Add(1)
	}
	return errors.Join(serr, err)
}

var lostDesc = prometheus.NewDesc("idrecon_audit_records_not_written_total",
	"Audit records that could not be written (a full disk, a removed directory) and are lost.", nil, nil)

// Describe implements prometheus.Collector.
func (l *Log) Describe(ch chan<- *prometheus.Desc) { ch <- lostDesc }

// Collect implements prometheus.Collector.
func (l *Log) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.CounterValue, float64(l.lost.Load()))
}

var _ prometheus.Collector = (*Log)(nil)

// admit decides whether e is written, counting the change records of an
// apply past MaxApplyRecords instead; l.mu is held.
func (l *Log) admit(e Event) (bool, error) {
	change, ok := e.(AppliedChange)
	if !ok {
		if a, ok := e.(Applied); ok {
			defer func() { l.apply = applyState{revision: a.Revision} }()
		}
		return true, l.flushSummary()
	}
	a := &l.apply
	var serr error
	if change.Revision != a.revision {
		// The previous apply's summary, if it cannot be written, is
		// reported (and lost): the new apply's counts start afresh.
		serr = l.flushSummary()
		l.apply = applyState{revision: change.Revision}
	}
	if a.written < l.opts.MaxApplyRecords {
		a.written++
		return true, serr
	}
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[change.Action+" "+change.Kind]++
	a.omitted++
	return false, serr
}

// flushSummary writes the summary of the changes counted since the last
// one, if any; what it could not write stays counted for the next try.
// l.mu is held.
func (l *Log) flushSummary() error {
	a := &l.apply
	if a.omitted == 0 {
		return nil
	}
	line, err := json.Marshal(struct {
		Time     time.Time      `json:"time"`
		Level    string         `json:"level"`
		Msg      string         `json:"msg"`
		Revision string         `json:"revision"`
		Written  int            `json:"written"`
		Omitted  int            `json:"omitted"`
		Counts   map[string]int `json:"counts"`
	}{time.Now(), slog.LevelInfo.String(), "applied changes summary", a.revision, a.written, a.omitted, a.counts})
	if err != nil {
		return fmt.Errorf("audit: summary: %w", err)
	}
	if _, err := l.write(append(line, '\n')); err != nil {
		return err
	}
	a.omitted, a.counts = 0, nil
	return nil
}
