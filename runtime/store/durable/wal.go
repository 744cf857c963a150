package durable

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/idrecon/idrecon/runtime/store"
)

// The write-ahead log's files and frames; the package documentation
// describes the format. Integers are big endian.
const (
	logMagic = "idrecon-wal\n"
	// segmentHeaderLen is the magic, the format version, the segment's
	// number and a CRC-32C of those.
	segmentHeaderLen = len(logMagic) + 4 + 8 + 4
	// frameHeaderLen is the payload length, a CRC-32C of the payload and a
	// CRC-32C of those eight bytes. The header's own checksum lets replay
	// tell a torn write at the end of the log from damage in its middle by
	// looking for an intact frame after the bad one, cheaply and without
	// trusting a damaged length.
	frameHeaderLen = 12
)

// maxFrameLen bounds one batch's payload, far above any real batch. A
// variable, so tests can lower it.
var maxFrameLen = 1 << 30

// segmentName is the file of log segment seq of the state file at path.
// Fixed-width hex keeps a directory listing in segment order.
func segmentName(path string, seq uint64) string {
	return fmt.Sprintf("%s.wal.%016x", path, seq)
}

// listSegments returns the numbers of the state file's log segments, in
// order.
func listSegments(path string) ([]uint64, error) {
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("list log segments: %w", err)
	}
	prefix := filepath.Base(path) + ".wal."
	var seqs []uint64
	for _, e := range entries {
		hex, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || len(hex) != 16 {
			continue
		}
		if seq, err := strconv.ParseUint(hex, 16, 64); err == nil {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// removeSegments removes the log segments seqs of the state file at path.
func removeSegments(path string, seqs []uint64) error {
	for _, seq := range seqs {
		if err := os.Remove(segmentName(path, seq)); err != nil {
			return fmt.Errorf("remove log segment: %w", err)
		}
	}
	if len(seqs) == 0 {
		return nil
	}
	return syncDir(filepath.Dir(path))
}

func segmentHeader(seq uint64) []byte {
	return segmentHeaderOf(seq, FormatVersion)
}

// segmentHeaderOf is the header of segment seq written for a file of
// format version format.
func segmentHeaderOf(seq uint64, format uint32) []byte {
	b := binary.BigEndian.AppendUint32([]byte(logMagic), format)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// appendFrame appends to b the frame that holds ops: each op is its table,
// its key and its value, each length-prefixed (uvarint); the value's length
// is stored plus one, so that 0 marks a delete.
func appendFrame(b []byte, ops []op) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, frameHeaderLen)...)
	for _, o := range ops {
		b = binary.AppendUvarint(b, uint64(len(o.table)))
		b = append(b, o.table...)
		b = binary.AppendUvarint(b, uint64(len(o.key)))
		b = append(b, o.key...)
		if o.val == nil {
			b = append(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(o.val))+1)
		b = append(b, o.val...)
	}
	n := len(b) - start - frameHeaderLen
	if n > maxFrameLen {
		// ErrTooLarge makes the store retry the batch's writes one by
		// one, so only a write that alone is too large fails.
		return b[:start], fmt.Errorf("%w: batch of %d bytes is over the log's limit of %d", store.ErrTooLarge, n, maxFrameLen)
	}
	sealFrameAt(b[start:])
	return b, nil
}

// sealFrameAt fills in the header of the frame f, whose payload follows
// its frameHeaderLen bytes.
func sealFrameAt(f []byte) {
	binary.BigEndian.PutUint32(f[0:], uint32(len(f)-frameHeaderLen))
	binary.BigEndian.PutUint32(f[4:], crc32.Checksum(f[frameHeaderLen:], castagnoli))
	binary.BigEndian.PutUint32(f[8:], crc32.Checksum(f[:8], castagnoli))
}

// cut is how many bytes of log segment seq hold synced frames, all of
// them acknowledged: the rest of the file is a batch that was reported
// failed and could not be cut off (see segment.broken).
type cut struct {
	seq  uint64
	size int64
}

// cutFrameLen is the payload of a cut frame: a zero byte, the segment's
// number and its size (uint64 each). As ops the zero would be a write to a
// table without a name, which no batch holds (checkOps refuses it), so a
// payload that starts with it is never a batch.
const cutFrameLen = 1 + 8 + 8

// appendCut appends to b the frame that records c.
func appendCut(b []byte, c cut) []byte {
	start := len(b)
	b = append(b, make([]byte, frameHeaderLen)...)
	b = append(b, 0)
	b = binary.BigEndian.AppendUint64(b, c.seq)
	b = binary.BigEndian.AppendUint64(b, uint64(c.size))
	sealFrameAt(b[start:])
	return b
}

// frameAt returns the payload of the frame at the start of b and the
// frame's length, or ok false if there is no intact frame.
func frameAt(b []byte) (payload []byte, n int, ok bool) {
	if len(b) < frameHeaderLen || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return nil, 0, false
	}
	size := binary.BigEndian.Uint32(b)
	if size == 0 || uint64(size) > uint64(len(b)-frameHeaderLen) {
		return nil, 0, false
	}
	payload = b[frameHeaderLen : frameHeaderLen+int(size)]
	if crc32.Checksum(payload, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return nil, 0, false
	}
	return payload, frameHeaderLen + int(size), true
}

// hasFrame reports whether an intact frame starts anywhere in b.
func hasFrame(b []byte) bool {
	for i := range b {
		if _, _, ok := frameAt(b[i:]); ok {
			return true
		}
	}
	return false
}

var errMalformedOps = errors.New("malformed ops")

// decodeOps appends the ops of a frame's payload to ops. They share p's
// memory.
func decodeOps(ops []op, p []byte) ([]op, error) {
	for len(p) > 0 {
		var table []byte
		var o op
		var ok bool
		if table, p, ok = chunk(p, 0); !ok {
			return nil, errMalformedOps
		}
		if o.key, p, ok = chunk(p, 0); !ok {
			return nil, errMalformedOps
		}
		if len(p) > 0 && p[0] == 0 {
			p = p[1:] // a delete
		} else if o.val, p, ok = chunk(p, 1); !ok {
			return nil, errMalformedOps
		}
		if n := len(ops); n > 0 && ops[n-1].table == string(table) {
			o.table = ops[n-1].table // most ops are in a run of one table
		} else {
			o.table = string(table)
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// chunk splits a length-prefixed byte string off p; the stored length is
// the string's plus bias.
func chunk(p []byte, bias uint64) (b, rest []byte, ok bool) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n < bias || n-bias > uint64(len(p)-k) {
		return nil, nil, false
	}
	end := k + int(n-bias)
	return p[k:end:end], p[end:], true
}

// parsedSegment is what a log segment holds.
type parsedSegment struct {
	ops    []op
	frames int
	// torn counts the bytes dropped at the end of the last segment.
	torn int
	// cut, from the segment's first frame, is how much of the segment
	// before it replay applies: it broke (segment.broken).
	cut *cut
	// end is the offset where the intact frames end.
	end int
}

// parseSegment returns the ops of log segment seq, file name, whose bytes
// are data, written for a state file of format version format. Damage is
// ErrCorrupt, with one exception: in the last segment, damage with no intact
// frame after it is the batch being written when the process died, never
// acknowledged, and is dropped. Frames are written one at a time, each
// synced before the next is started, so nothing else can follow a torn one.
// A damaged frame whose header is intact is skipped whole in that search:
// its payload, which may hold anything a client wrote (a crafted userName
// can hold an intact frame), is never taken for a frame after it. A
// segment's first frame may be a cut frame (see appendCut), which holds no
// ops and is returned as p.cut.
func parseSegment(name string, data []byte, seq uint64, format int, last bool) (parsedSegment, error) {
	var p parsedSegment
	if !intactHeader(data) {
		if last && !hasFrame(data) {
			p.torn = len(data) // the process died creating the segment
			return p, nil
		}
		return p, fmt.Errorf("%w: %s: damaged header", ErrCorrupt, name)
	}
	h := data[len(logMagic):]
	if got := binary.BigEndian.Uint64(h[4:]); got != seq {
		return p, fmt.Errorf("%w: %s: header says segment %d", ErrCorrupt, name, got)
	}
	if got := int(binary.BigEndian.Uint32(h)); got != format {
		if got > FormatVersion {
			return p, fmt.Errorf("%w (%s has format %d, this idrecon reads up to %d)", ErrNewerFormat, name, got, FormatVersion)
		}
		return p, fmt.Errorf("%w: %s has format %d, the state file %d", ErrCorrupt, name, got, format)
	}
	p.end = segmentHeaderLen
	for off := segmentHeaderLen; off < len(data); {
		payload, n, ok := frameAt(data[off:])
		if !ok && allZero(data[off:]) {
			break // the zeros append writes ahead of the frames
		}
		if !ok {
			if last && !hasFrame(data[off+damagedLen(data[off:]):]) {
				p.torn = len(bytes.TrimRight(data[off:], "\x00"))
				return p, nil
			}
			return p, fmt.Errorf("%w: %s: damaged frame at offset %d", ErrCorrupt, name, off)
		}
		if payload[0] == 0 {
			c, ok := parseCut(payload)
			if !ok || off != segmentHeaderLen || c.seq+1 != seq {
				return p, fmt.Errorf("%w: %s: bad cut frame at offset %d", ErrCorrupt, name, off)
			}
			p.cut = &c
			off += n
			p.end = off
			continue
		}
		var err error
		if p.ops, err = decodeOps(p.ops, payload); err != nil {
			return p, fmt.Errorf("%w: %s: frame at offset %d: %w", ErrCorrupt, name, off, err)
		}
		p.frames++
		off += n
		p.end = off
	}
	return p, nil
}

// parseCut decodes the payload of a cut frame.
func parseCut(payload []byte) (cut, bool) {
	if len(payload) != cutFrameLen || payload[0] != 0 {
		return cut{}, false
	}
	size := binary.BigEndian.Uint64(payload[9:])
	if size < uint64(segmentHeaderLen) || size > 1<<62 {
		return cut{}, false
	}
	return cut{seq: binary.BigEndian.Uint64(payload[1:]), size: int64(size)}, true
}

// damagedLen returns how many bytes at the start of b, where a damaged
// frame starts, a later frame cannot start within: the whole frame when
// its header is intact (its length is as written, and its payload follows
// it whatever that holds), else 1.
func damagedLen(b []byte) int {
	if len(b) < frameHeaderLen || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 1
	}
	return int(min(uint64(len(b)), frameHeaderLen+uint64(binary.BigEndian.Uint32(b))))
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func intactHeader(data []byte) bool {
	return len(data) >= segmentHeaderLen && string(data[:len(logMagic)]) == logMagic &&
		crc32.Checksum(data[:segmentHeaderLen-4], castagnoli) == binary.BigEndian.Uint32(data[segmentHeaderLen-4:])
}

// fillAhead is how far append extends a segment with zeros ahead of its
// frames. A write inside the file's size makes fdatasync flush the data
// alone; one that grows the file makes it commit the file system's journal
// too, in a kernel thread that waits for a core like any other, which made
// appends markedly slower on busy cores, as when Entra provisions
// (BenchmarkLogAppend compares both). So the file grows once per fillAhead
// bytes, not once per batch.
const fillAhead = 1 << 20

var zeros = make([]byte, 64<<10)

// syncLog and truncateLog sync a segment's data and cut it back. They are
// variables so that tests can make them fail, as a failing disk does.
var (
	syncLog     = fdatasync
	truncateLog = (*os.File).Truncate
	// writeSegment writes to a segment; tests make it fail as a full disk does.
	writeSegment = (*os.File).WriteAt
)

// segment is the log segment Commit appends to.
type segment struct {
	f   *os.File
	seq uint64
	// size counts the bytes written and synced: the header and whole frames.
	size int64
	// filled is the file's size: size, then zeros up to it.
	filled int64
	// ahead is fillAhead; zero (in a benchmark) grows the file by each frame.
	ahead int64
	// broken is set when a failed append could not be undone: the file may
	// end in a batch that was reported failed, in whole or in part, so
	// nothing more may be appended, and only size bytes of it are ever
	// applied: by the checkpointer, which knows size, and by replay, which
	// learns it from the cut frame that starts the next segment.
	broken bool
}

// createSegment creates log segment seq and makes it durable: its header
// and its name, so the frames synced into it later survive a crash. With
// after, the segment before it broke: a cut frame, synced with the header,
// records how much of that one holds acknowledged frames.
func createSegment(path string, seq uint64, after *cut) (*segment, error) {
	name := segmentName(path, seq)
	// O_TRUNC: a file a failed attempt left behind holds nothing.
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	hdr := segmentHeader(seq)
	if after != nil {
		hdr = appendCut(hdr, *after)
	}
	_, err = f.Write(hdr)
	if err == nil {
		err = syncLog(f)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		f.Close()
		os.Remove(name)
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	return &segment{f: f, seq: seq, size: int64(len(hdr)), filled: int64(len(hdr)), ahead: fillAhead}, nil
}

// append writes frame at the end of the segment and syncs it. When that
// fails, the frame may be on disk in part or whole; append cuts the file
// back, so that a batch reported failed cannot reappear at the next start.
func (s *segment) append(frame []byte) error {
	if end := s.size + int64(len(frame)); end > s.filled && s.ahead > 0 {
		// The zeros only spare fdatasync a journal commit: should the
		// disk have no room for them (ENOSPC), the frame is written
		// without them, growing the file, rather than refused while the
		// disk has room for it. Any zeros written stay, harmless.
		_ = s.fill(end + s.ahead)
	}
	_, err := writeSegment(s.f, frame, s.size)
	if err == nil {
		err = syncLog(s.f)
	}
	if err != nil {
		terr := truncateLog(s.f, s.size)
		if terr == nil {
			terr = syncLog(s.f)
		}
		if terr != nil {
			s.broken = true
			err = errors.Join(err, fmt.Errorf("undo: %w", terr))
		}
		s.filled = s.size
		return fmt.Errorf("append to log segment %d: %w", s.seq, err)
	}
	s.size += int64(len(frame))
	// A frame written past the zeros grew the file: the next fill starts
	// after it, never over it.
	s.filled = max(s.filled, s.size)
	return nil
}

// fill writes zeros from the end of the file to end. The next fdatasync
// makes them durable with the frame that needed them.
func (s *segment) fill(end int64) error {
	for s.filled < end {
		n, err := writeSegment(s.f, zeros[:min(int64(len(zeros)), end-s.filled)], s.filled)
		s.filled += int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// makeDir creates dir and its missing parents, as os.MkdirAll does, and
// syncs the parent of dir and of each dir above it on the same file system:
// the log segments synced inside a new data dir are lost with it if a crash
// loses the directory's own entry, which nothing else syncs. The daemon and
// the CLI make the data dir before they call Open or Restore, so whether it
// is new cannot be told here, and a synced dir that did not change costs
// next to nothing. An existing parent that cannot be read is skipped: it
// was not made for the data dir.
func makeDir(dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	created := map[string]bool{}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		created[d] = true
		if filepath.Dir(d) == d {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	dev, ok := deviceOf(dir)
	for d := dir; filepath.Dir(d) != d; d = filepath.Dir(d) {
		parent := filepath.Dir(d)
		if pdev, pok := deviceOf(parent); ok && pok && pdev != dev {
			break // a mount point: its entry is not the data dir's business
		}
		if err := syncDir(parent); err != nil && (created[d] || !errors.Is(err, fs.ErrPermission)) {
			return err
		}
	}
	return nil
}

// deviceOf returns the device of the file system that holds path.
func deviceOf(path string) (uint64, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return uint64(st.Dev), true // Dev is uint32 on some systems
}

// syncDir makes the creation, removal or renaming of files in dir durable.
// A variable, so that tests can see which dirs are synced.
var syncDir = fsyncDir

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	return nil
}
