// Package audit keeps idrecon's append-only audit trail: one JSON object per
// line for every applied change, drift correction and SCIM write, in a file
// rotated by size.
package audit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
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
}

// Log is an append-only JSON-lines file. It is safe for concurrent use.
type Log struct {
	path string
	opts Options

	mu    sync.Mutex
	f     *os.File
	size  int64
	apply applyState // guarded by mu
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
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	l := &Log{path: path, opts: opts}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Log) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", l.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: %w", err)
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends one line. A write that would grow the file past MaxBytes
// rotates it first, so a line is never split across files.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.write(p)
}

func (l *Log) write(p []byte) (int, error) {
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.opts.MaxBytes {
		if err := l.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

func (l *Log) rotate() error {
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: rotate: %w", err)
	}
	l.f = nil
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
	return l.open()
}

// Close writes a pending apply summary and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	serr := l.flushSummary()
	err := cmp.Or(l.f.Close(), serr)
	l.f = nil
	return err
}

// admit decides whether an audit record is written. Past MaxApplyRecords
// change records of one apply (revision), a change record is counted
// instead. Every other record first writes the summary of what was counted,
// so the summary lands right after the apply's records; a summary still
// pending when the daemon stops is written by Close. The "applied" record
// that opens each apply carries its totals per action in any case.
func (l *Log) admit(r slog.Record) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if r.Message != "applied change" {
		if r.Message == "applied" {
			defer func() { l.apply = applyState{revision: attr(r, "revision")} }()
		}
		return true, l.flushSummary()
	}
	a := &l.apply
	if rev := attr(r, "revision"); rev != a.revision {
		if err := l.flushSummary(); err != nil {
			return false, err
		}
		l.apply = applyState{revision: rev}
	}
	if a.written < l.opts.MaxApplyRecords {
		a.written++
		return true, nil
	}
	if a.counts == nil {
		a.counts = map[string]int{}
	}
	a.counts[attr(r, "action")+" "+attr(r, "kind")]++
	a.omitted++
	return false, nil
}

// flushSummary writes the summary of the changes counted since the last
// one, if any. l.mu is held.
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
	a.omitted, a.counts = 0, nil
	_, err = l.write(append(line, '\n'))
	return err
}

// attr returns the string form of a record's attribute key, or "".
func attr(r slog.Record, key string) string {
	var v string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	})
	return v
}

// Messages that belong in the audit trail. Components log these through
// their ordinary *slog.Logger; the Handler copies them into the file.
var Messages = map[string]bool{
	"scim write":     true, // SCIM server: actor (token name), op, resource id
	"applied":        true, // reconciler: revision and totals per action of one apply
	"applied change": true, // reconciler: revision, action, kind, name, drift
	"drift":          true, // reconciler: a drifted field, corrected or kept
	"admin edit":     true, // admin API: a console-style edit
	"state repaired": true, // durable store: an object renamed at load, so that no two names fold equal
}

// Handler is a slog.Handler that passes every record to next and also writes
// audit records (those whose message is in Messages) as JSON lines to a Log.
type Handler struct {
	next  slog.Handler
	log   *Log
	audit slog.Handler
}

// NewHandler tees audit records from next into log.
func NewHandler(next slog.Handler, log *Log) *Handler {
	return &Handler{next: next, log: log, audit: slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level) || h.audit.Enabled(ctx, level)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.next.Enabled(ctx, r.Level) {
		err = h.next.Handle(ctx, r)
	}
	if Messages[r.Message] {
		write, aerr := h.log.admit(r)
		if write && aerr == nil {
			aerr = h.audit.Handle(ctx, r)
		}
		err = cmp.Or(err, aerr)
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs), log: h.log, audit: h.audit.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), log: h.log, audit: h.audit.WithGroup(name)}
}
