package reconcile

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// The baseline record (store.MetaAppliedBaseline) is binary, base64 so that
// it stays text wherever meta values are shown or exported: a format
// version, the revision applied, the number of entries (so that a cut
// record fails rather than reads as a smaller baseline), then per kind its
// name and entry count followed by each entry's name and raw hash, sorted
// by kind and name. Names are free text (spaces, tabs, newlines), which
// length prefixes carry without escaping; a kind is written once for all
// its resources; the hash goes raw. What remains per resource is its name,
// one length byte and the hash.
const baselineFormat = 1

// baselineWarning is logged, once per record, when the record cannot be read.
const baselineWarning = "reconcile: baseline record unreadable; planning as if nothing was applied yet"

// baselineTooLarge is logged, once per process, when an apply's baseline is
// not recorded: past maxBaselineBytes, or more than the journal takes in
// one transaction beside the apply's changes (etcd's request bound).
const baselineTooLarge = "reconcile: the spec is too large to record its baseline; after a restart, or on another daemon sharing the state, a resource deleted outside git is planned as a create until the next apply"

// maxBaselineBytes bounds the record, about 80 bytes per resource, beyond
// any spec under the loader's document limit. A variable, so tests can
// lower it.
var maxBaselineBytes = 16 << 20

var errBaseline = errors.New("malformed baseline record")

func encodeBaseline(revision string, base map[spec.Ref][sha256.Size]byte) string {
	refs := slices.SortedFunc(maps.Keys(base), func(a, b spec.Ref) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
	size := 1 + binary.MaxVarintLen64*2 + len(revision)
	for _, ref := range refs {
		size += binary.MaxVarintLen64 + len(ref.Name) + sha256.Size
	}
	buf := make([]byte, 0, size)
	buf = append(buf, baselineFormat)
	buf = appendString(buf, revision)
	buf = binary.AppendUvarint(buf, uint64(len(refs)))
	for i := 0; i < len(refs); {
		kind := refs[i].Kind
		j := i + 1
		for j < len(refs) && refs[j].Kind == kind {
			j++
		}
		buf = appendString(buf, kind)
		buf = binary.AppendUvarint(buf, uint64(j-i))
		for _, ref := range refs[i:j] {
			buf = appendString(buf, ref.Name)
			h := base[ref]
			buf = append(buf, h[:]...)
		}
		i = j
	}
	return base64.RawStdEncoding.EncodeToString(buf)
}

func appendString(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

// decodeBaseline reads what encodeBaseline wrote, strictly: anything else,
// including a record cut short, is an error.
func decodeBaseline(s string) (revision string, base map[spec.Ref][sha256.Size]byte, err error) {
	b, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %w", errBaseline, err)
	}
	if len(b) == 0 || b[0] != baselineFormat {
		return "", nil, fmt.Errorf("%w: unknown format", errBaseline)
	}
	d := baselineReader{b: b[1:]}
	revision = d.string()
	total := d.count(1 + 1 + sha256.Size) // the least an entry takes
	base = make(map[spec.Ref][sha256.Size]byte, total)
	var last spec.Ref
	for d.err == nil && len(base) < total {
		kind := d.string()
		n := d.count(1 + sha256.Size)
		if d.err == nil && (n == 0 || (len(base) > 0 && kind <= last.Kind)) {
			d.err = errors.New("kinds out of order")
		}
		for range n {
			ref := spec.Ref{Kind: kind, Name: d.string()}
			h := d.take(sha256.Size)
			if d.err != nil {
				break
			}
			if ref.Kind == last.Kind && ref.Name <= last.Name && len(base) > 0 {
				d.err = errors.New("names out of order")
				break
			}
			base[ref] = [sha256.Size]byte(h)
			last = ref
		}
	}
	if d.err == nil && (len(base) != total || len(d.b) != 0) {
		d.err = errors.New("entry count does not match")
	}
	if d.err != nil {
		return "", nil, fmt.Errorf("%w: %w", errBaseline, d.err)
	}
	return revision, base, nil
}

// baselineReader reads a record; its first error sticks.
type baselineReader struct {
	b   []byte
	err error
}

func (d *baselineReader) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errors.New("bad length")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *baselineReader) take(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("cut short")
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *baselineReader) string() string { return string(d.take(d.uvarint())) }

// count reads a number of entries of at least min bytes each, refusing one
// that the bytes left cannot hold, so that damage never sizes an allocation.
func (d *baselineReader) count(min int) int {
	n := d.uvarint()
	if d.err == nil && n > uint64(len(d.b)/min) {
		d.err = errors.New("count beyond the record")
		return 0
	}
	return int(n)
}

// baseline returns the baseline to plan against in txn: the one the state
// records for its applied revision, written by the apply that made it, by
// this process or by another sharing the state (etcd), which this process
// cannot know it missed; failing that, applied, this process's own (nil
// before its first apply): the record may be missing (a state no apply
// recorded a baseline in, or one too large to record), unreadable, or of
// another applied revision (a version that kept none applied since).
func (r *Reconciler) baseline(txn *store.Txn, applied map[spec.Ref][sha256.Size]byte) map[spec.Ref][sha256.Size]byte {
	raw, err := txn.First(store.TableMeta, store.IndexID, store.MetaAppliedBaseline)
	if err != nil {
		r.log.Warn(baselineWarning, "err", err)
		return applied
	}
	m, ok := raw.(*store.Meta)
	if !ok {
		return applied
	}
	rev, err := txn.MetaValue(store.MetaAppliedRevision)
	if err != nil {
		r.log.Warn(baselineWarning, "err", err)
		return applied
	}
	r.mu.Lock()
	cached := r.stored
	r.mu.Unlock()
	if cached.meta != m {
		// Stored values are immutable: the same record decodes the same.
		cached = storedBaseline{meta: m}
		cached.revision, cached.base, err = decodeBaseline(m.Value)
		r.mu.Lock()
		warn := err != nil && r.stored.meta != m
		r.stored = cached
		r.mu.Unlock()
		if warn {
			r.log.Warn(baselineWarning, "err", err)
		}
	}
	if cached.base == nil || cached.revision != rev {
		return applied
	}
	return cached.base
}

// storedBaseline is a baseline record as read from the store; base is nil
// when the record is unreadable.
type storedBaseline struct {
	meta     *store.Meta
	revision string
	base     map[spec.Ref][sha256.Size]byte
}

// nextBaseline returns the baseline once p, planned against base, is
// applied, and the revision it holds in full ("" when p kept something).
// from is the revision base holds in full; when p changes nothing and base
// is that revision's, base is returned as it is, with same true.
func nextBaseline(ds *desiredState, p *planned, base map[spec.Ref][sha256.Size]byte, from string) (next map[spec.Ref][sha256.Size]byte, nextFrom string, same bool) {
	// With nothing to do the runtime already matches the spec, and the
	// baseline is the same as after the last apply of this revision.
	if len(p.ops) == 0 && from == ds.revision && ds.revision != "" && base != nil {
		return base, from, true
	}
	next = make(map[spec.Ref][sha256.Size]byte, len(ds.docs))
	kept := map[spec.Ref]bool{}
	for _, o := range p.ops {
		if o.kept {
			kept[o.ref] = true
		}
	}
	for i, d := range ds.docs {
		ref := d.Ref()
		if !kept[ref] {
			next[ref] = ds.rendered[i].Hash
		} else if h, ok := base[ref]; ok {
			next[ref] = h
		} else {
			// Kept with no baseline (written outside git before any apply
			// recorded one): the spec as of now becomes the baseline.
			// Without one, a later commit changing this resource could
			// never count as a spec change, and report mode would keep
			// the drift over it forever.
			next[ref] = ds.rendered[i].Hash
		}
	}
	if len(kept) == 0 {
		nextFrom = ds.revision
	}
	return next, nextFrom, false
}

// recordBaseline writes the baseline record of the apply in txn, which
// applies revision with baseline next. Without write, or for a baseline past
// maxBaselineBytes, nothing is recorded, and an older record is removed (it
// describes another apply); recorded reports which.
func recordBaseline(txn *store.Txn, revision string, next map[spec.Ref][sha256.Size]byte, write bool) (recorded bool, err error) {
	var rec string
	if write {
		rec = encodeBaseline(revision, next)
	}
	old, err := txn.First(store.TableMeta, store.IndexID, store.MetaAppliedBaseline)
	if err != nil {
		return false, fmt.Errorf("read baseline: %w", err)
	}
	if !write || len(rec) > maxBaselineBytes {
		if old != nil {
			if err := txn.Delete(store.TableMeta, old); err != nil {
				return false, fmt.Errorf("remove baseline: %w", err)
			}
		}
		return false, nil
	}
	if m, ok := old.(*store.Meta); ok && m.Value == rec {
		return true, nil
	}
	if err := txn.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedBaseline, Value: rec}); err != nil {
		return false, fmt.Errorf("write baseline: %w", err)
	}
	return true, nil
}
