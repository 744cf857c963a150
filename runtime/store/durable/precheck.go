package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"runtime/debug"
)

// bbolt memory-maps the file, so reading a page past the end of a truncated
// file faults (SIGBUS), which kills the process unless the goroutine asked
// for a panic instead - and bbolt can read pages on goroutines of its own.
// checkFile therefore reads bbolt's two meta pages itself and refuses a file
// shorter than the pages they claim, before bbolt maps it.
//
// The meta page layout (bbolt format 2, native byte order): a 16-byte page
// header, then magic, version, pageSize, flags (uint32 each), root pgid and
// sequence, freelist pgid, high-water pgid, txid (uint64 each) and an FNV-64a
// checksum of everything before it.
const (
	pageHeaderLen = 16
	metaLen       = 64
	metaSumLen    = 56
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
)

type boltMeta struct {
	pageSize uint32
	pgid     uint64
	txid     uint64
}

func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("durable: open %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("durable: stat %s: %w", path, err)
	}
	size := fi.Size()
	if size == 0 {
		return nil // bbolt initialises an empty file
	}
	m0, err0 := readMeta(f, 0)
	off := int64(os.Getpagesize())
	if err0 == nil {
		off = int64(m0.pageSize)
	}
	m1, err1 := readMeta(f, off)
	var m boltMeta
	switch {
	case err0 == nil && (err1 != nil || m0.txid >= m1.txid):
		m = m0
	case err1 == nil:
		m = m1
	default:
		return fmt.Errorf("%w: %s: no valid meta page (%v; %v)", ErrCorrupt, path, err0, err1)
	}
	if need := int64(m.pgid) * int64(m.pageSize); size < need {
		return fmt.Errorf("%w: %s is truncated: %d bytes, want at least %d", ErrCorrupt, path, size, need)
	}
	return nil
}

func readMeta(r io.ReaderAt, off int64) (boltMeta, error) {
	buf := make([]byte, metaLen)
	if _, err := r.ReadAt(buf, off+pageHeaderLen); err != nil {
		return boltMeta{}, fmt.Errorf("meta page at %d: %w", off, err)
	}
	ne := binary.NativeEndian
	if ne.Uint32(buf[0:]) != boltMagic || ne.Uint32(buf[4:]) != boltVersion {
		return boltMeta{}, fmt.Errorf("meta page at %d: not a bbolt v2 page", off)
	}
	h := fnv.New64a()
	h.Write(buf[:metaSumLen])
	if h.Sum64() != ne.Uint64(buf[metaSumLen:]) {
		return boltMeta{}, fmt.Errorf("meta page at %d: checksum mismatch", off)
	}
	m := boltMeta{pageSize: ne.Uint32(buf[8:]), pgid: ne.Uint64(buf[40:]), txid: ne.Uint64(buf[48:])}
	if m.pageSize < 512 || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, fmt.Errorf("meta page at %d: page size %d", off, m.pageSize)
	}
	return m, nil
}

// setPanicOnFault makes a memory fault on this goroutine (a damaged mapped
// file) a recoverable panic; the returned func restores the previous setting.
func setPanicOnFault() func() {
	old := debug.SetPanicOnFault(true)
	return func() { debug.SetPanicOnFault(old) }
}
