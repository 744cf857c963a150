// Package idset holds a group's member ids: an immutable sorted set of
// strings cut into chunks that the versions of the set share.
//
// Entra adds members a hundred at a time, and a store keeps every version
// a reader may still hold, so a change must not copy the whole list: a
// hundred ids added to a group of a million copy the chunks they land in
// and the list of chunks, and the journals find what changed by skipping
// the chunks the two versions share.
package idset

import (
	"fmt"
	"iter"
	"slices"
	"sort"
	"unsafe"
)

// chunkMax is the most ids a chunk holds. A change copies the chunks it
// touches and the list of chunks, so smaller chunks make a change to a big
// set cheaper and the list of chunks longer; BenchmarkEdit measures both.
const chunkMax = 128

// Set is a sorted set of distinct ids. The zero Set is empty. A Set is a
// value: Edit returns a new one and leaves the old one as it was, so
// snapshots holding the old one keep it.
type Set struct {
	chunks [][]string // each sorted, non-empty, at most chunkMax; in order
	n      int
}

// FromSorted returns the set of ids, which must be sorted and distinct.
// The set copies them into chunks of its own: ids is the caller's again.
func FromSorted(ids []string) Set {
	return Set{chunks: appendCut(nil, ids), n: len(ids)}
}

// Of returns the set of ids in any order, repeats dropped.
func Of(ids ...string) Set {
	return FromSorted(slices.Compact(slices.Sorted(slices.Values(ids))))
}

// Len returns the number of ids in s.
func (s Set) Len() int { return s.n }

// Contains reports whether s holds id.
func (s Set) Contains(id string) bool {
	i := chunkFor(s.chunks, id)
	if i == len(s.chunks) {
		return false
	}
	_, found := slices.BinarySearch(s.chunks[i], id)
	return found
}

// chunkFor returns the index of the first of chunks whose last id is id or
// after it: the only chunk that can hold id (len(chunks) when none).
func chunkFor(chunks [][]string, id string) int {
	return sort.Search(len(chunks), func(i int) bool {
		c := chunks[i]
		return c[len(c)-1] >= id
	})
}

// All yields the ids in order.
func (s Set) All() iter.Seq[string] {
	return func(yield func(string) bool) {
		for _, c := range s.chunks {
			for _, id := range c {
				if !yield(id) {
					return
				}
			}
		}
	}
}

// Slice returns the ids in order, in a new slice.
func (s Set) Slice() []string {
	if s.n == 0 {
		return nil
	}
	out := make([]string, 0, s.n)
	for _, c := range s.chunks {
		out = append(out, c...)
	}
	return out
}

// String shows the ids as fmt shows a slice of them.
func (s Set) String() string { return fmt.Sprint(s.Slice()) }

// Last returns the greatest id, "" for an empty set.
func (s Set) Last() string {
	if len(s.chunks) == 0 {
		return ""
	}
	c := s.chunks[len(s.chunks)-1]
	return c[len(c)-1]
}

// Edit returns s plus add minus remove: both sorted, distinct and disjoint
// from each other. Ids of add that s holds and ids of remove it does not
// change nothing. The chunks no change lands in are shared with s.
func (s Set) Edit(add, remove []string) Set {
	if len(add) == 0 && len(remove) == 0 {
		return s
	}
	if len(s.chunks) == 0 {
		return FromSorted(add)
	}
	// Each id added makes at most one chunk more: the list is never
	// grown (copied again) by a split.
	out := Set{chunks: make([][]string, 0, len(s.chunks)+len(add)), n: s.n}
	done := 0 // s.chunks[:done] are in out
	// Each chunk changed is merged here and copied out in pieces of its
	// own (see appendCut).
	var merged []string
	for len(add) > 0 || len(remove) > 0 {
		// The chunk the next change lands in (the last one for ids after
		// it), and the changes that land there with it: those before the
		// next chunk's first id.
		next := add
		if len(next) == 0 || len(remove) > 0 && remove[0] < next[0] {
			next = remove
		}
		i := min(done+chunkFor(s.chunks[done:], next[0]), len(s.chunks)-1)
		na, nr := len(add), len(remove)
		if i+1 < len(s.chunks) {
			first := s.chunks[i+1][0]
			na, _ = slices.BinarySearch(add, first)
			nr, _ = slices.BinarySearch(remove, first)
		}
		out.chunks = append(out.chunks, s.chunks[done:i]...)
		merged = merge(merged[:0], s.chunks[i], add[:na], remove[:nr])
		out.n += len(merged) - len(s.chunks[i])
		out.chunks = appendCut(out.chunks, merged)
		add, remove, done = add[na:], remove[nr:], i+1
	}
	out.chunks = append(out.chunks, s.chunks[done:]...)
	return out
}

// appendCut appends copies of sorted ids to chunks: in pieces of about
// equal size when they are more than a chunk holds, or joined to the last
// chunk when they are few and fit there, so that removals do not leave a
// long list of tiny chunks. Every chunk has an array of its own: chunks
// cut from one array would each keep all of it, and with it the ids of
// the chunks a later edit replaced, for as long as any of them lives.
func appendCut(chunks [][]string, ids []string) [][]string {
	switch {
	case len(ids) == 0:
		return chunks
	case len(ids) < chunkMax/4 && len(chunks) > 0 && len(chunks[len(chunks)-1])+len(ids) <= chunkMax:
		last := chunks[len(chunks)-1]
		joined := make([]string, 0, len(last)+len(ids))
		chunks[len(chunks)-1] = append(append(joined, last...), ids...)
		return chunks
	case len(ids) <= chunkMax:
		return append(chunks, own(ids))
	}
	n := (len(ids) + chunkMax - 1) / chunkMax
	for i := range n {
		chunks = append(chunks, own(ids[len(ids)*i/n:len(ids)*(i+1)/n]))
	}
	return chunks
}

// own returns a copy of ids in an array of exactly their length.
func own(ids []string) []string {
	return append(make([]string, 0, len(ids)), ids...)
}

// merge appends sorted old plus sorted add minus sorted remove to out;
// ids of add already in old and ids of remove not in it are skipped.
func merge(out, old, add, remove []string) []string {
	out = slices.Grow(out, len(old)+len(add))
	i := 0 // old[:i] is done
	for len(add) > 0 || len(remove) > 0 {
		if len(remove) > 0 && (len(add) == 0 || remove[0] < add[0]) {
			p, found := slices.BinarySearch(old[i:], remove[0])
			out = append(out, old[i:i+p]...)
			i, remove = i+p, remove[1:]
			if found {
				i++
			}
			continue
		}
		p, found := slices.BinarySearch(old[i:], add[0])
		out = append(out, old[i:i+p]...)
		if !found {
			out = append(out, add[0])
		}
		i, add = i+p, add[1:]
	}
	return append(out, old[i:]...)
}

// Diff returns the ids after holds and before does not (added) and those
// before holds and after does not (removed), each sorted. Chunks the two
// share are skipped whole, so a set edited from another is compared in
// the time its changed chunks take, not its size.
func Diff(before, after Set) (added, removed []string) {
	b, a := cursor{chunks: before.chunks}, cursor{chunks: after.chunks}
	for !b.done() && !a.done() {
		if b.at == 0 && a.at == 0 && same(b.chunks[b.chunk], a.chunks[a.chunk]) {
			b.chunk, a.chunk = b.chunk+1, a.chunk+1
			continue
		}
		switch x, y := b.id(), a.id(); {
		case x == y:
			b.next()
			a.next()
		case x < y:
			removed = append(removed, x)
			b.next()
		default:
			added = append(added, y)
			a.next()
		}
	}
	for ; !a.done(); a.next() {
		added = append(added, a.id())
	}
	for ; !b.done(); b.next() {
		removed = append(removed, b.id())
	}
	return added, removed
}

// same reports whether x and y are one chunk.
func same(x, y []string) bool {
	return len(x) == len(y) && unsafe.SliceData(x) == unsafe.SliceData(y)
}

// cursor walks a set's ids.
type cursor struct {
	chunks    [][]string
	chunk, at int
}

func (c *cursor) done() bool { return c.chunk == len(c.chunks) }
func (c *cursor) id() string { return c.chunks[c.chunk][c.at] }

func (c *cursor) next() {
	c.at++
	if c.at == len(c.chunks[c.chunk]) {
		c.chunk, c.at = c.chunk+1, 0
	}
}

// Builder makes a Set from ids given in order, as a load reads them.
type Builder struct {
	chunks [][]string
	n      int
}

// Add appends id, which must come after every id added before it (see
// Last).
func (b *Builder) Add(id string) {
	if k := len(b.chunks); k == 0 || len(b.chunks[k-1]) == chunkMax {
		b.chunks = append(b.chunks, make([]string, 0, chunkMax))
	}
	k := len(b.chunks) - 1
	b.chunks[k] = append(b.chunks[k], id)
	b.n++
}

// Len returns the number of ids added.
func (b *Builder) Len() int { return b.n }

// Last returns the last id added, "" when none was.
func (b *Builder) Last() string {
	if len(b.chunks) == 0 {
		return ""
	}
	c := b.chunks[len(b.chunks)-1]
	return c[len(c)-1]
}

// Set returns the set built so far; b must not be used after.
func (b *Builder) Set() Set {
	if k := len(b.chunks); k > 0 {
		b.chunks[k-1] = slices.Clip(b.chunks[k-1])
	}
	return Set{chunks: b.chunks, n: b.n}
}
