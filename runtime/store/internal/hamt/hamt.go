// Package hamt is a persistent hash map from strings to values that can be
// edited in place while a batch of changes is being built.
//
// A Map never changes: readers may share it freely. Edit returns an Editor
// that starts from a Map and changes it without touching what the Map's
// readers see: the first change to a node copies it, and the copy belongs to
// the Editor, so later changes to the same node in the same edit happen in
// place. That is what the store needs from an index that a batch of writes
// changes hundreds of times before the batch is published: a plain
// persistent map copies the whole path from the root on every change,
// which made the store's single writer spend most of its time copying and
// collecting the copies.
//
// The layout is a compressed hash-array mapped trie: 64-bit seeded hashes,
// 5 bits per level, each node holding its entries and its children in two
// bitmap-indexed arrays. Keys whose hashes are equal in all 64 bits share a
// collision node below the last level.
package hamt

import (
	"hash/maphash"
	"iter"
	"math/bits"
	"slices"
)

const (
	bitsPerLevel = 5
	fanoutMask   = 1<<bitsPerLevel - 1
	// maxShift is the first shift with no hash bits left: nodes there are
	// collision nodes, a plain list of entries with equal hashes.
	maxShift = 64
)

// seed is per process: a fixed hash function is easy to collide on purpose,
// and keys come from clients.
var seed = maphash.MakeSeed()

func hashOf(key string) uint64 { return maphash.String(seed, key) }

// Map is an immutable map. The zero value is an empty map.
type Map[V any] struct {
	root *node[V]
	len  int
}

// owner marks the nodes one edit created and may change in place. It is
// not zero-sized: distinct owners must have distinct addresses.
type owner struct{ _ byte }

type node[V any] struct {
	owner    *owner
	dataMap  uint32 // slots holding an entry
	nodeMap  uint32 // slots holding a child
	entries  []entry[V]
	children []*node[V]
	// ownEntries and ownChildren say whether the arrays are the owner's
	// too. A copied node shares both with the original until it changes
	// one: most copies on a path change only a child pointer.
	ownEntries, ownChildren bool
}

type entry[V any] struct {
	key  string
	hash uint64
	val  V
}

// Len returns the number of keys in m.
func (m *Map[V]) Len() int { return m.len }

// Get returns the value of key and whether m holds it.
func (m *Map[V]) Get(key string) (V, bool) { return value(find(m.root, key, hashOf(key))) }

// Lookup is Get that also returns the key as m holds it.
func (m *Map[V]) Lookup(key string) (string, V, bool) {
	return stored(find(m.root, key, hashOf(key)))
}

// All iterates over m's entries in no particular order.
func (m *Map[V]) All() iter.Seq2[string, V] {
	return func(yield func(string, V) bool) { walk(m.root, yield) }
}

// Edit returns an Editor that starts from m. m itself does not change.
func (m *Map[V]) Edit() *Editor[V] {
	return &Editor[V]{root: m.root, len: m.len, owner: new(owner)}
}

// Editor is a map being changed. It is not safe for concurrent use.
type Editor[V any] struct {
	root  *node[V]
	len   int
	owner *owner
}

// Len returns the number of keys in e.
func (e *Editor[V]) Len() int { return e.len }

// Get returns the value of key and whether e holds it.
func (e *Editor[V]) Get(key string) (V, bool) { return value(find(e.root, key, hashOf(key))) }

// Lookup is Get that also returns the key as e holds it, so callers can
// share that string rather than keep an equal one.
func (e *Editor[V]) Lookup(key string) (string, V, bool) {
	return stored(find(e.root, key, hashOf(key)))
}

// Set sets key to val.
func (e *Editor[V]) Set(key string, val V) { e.setHashed(key, hashOf(key), val) }

// Delete removes key and reports whether e held it.
func (e *Editor[V]) Delete(key string) bool { return e.deleteHashed(key, hashOf(key)) }

func (e *Editor[V]) setHashed(key string, hash uint64, val V) {
	if e.root == nil {
		e.root = &node[V]{owner: e.owner, ownEntries: true, ownChildren: true}
	}
	var added bool
	e.root, added = e.set(e.root, 0, entry[V]{key: key, hash: hash, val: val})
	if added {
		e.len++
	}
}

func (e *Editor[V]) deleteHashed(key string, hash uint64) bool {
	if e.root == nil {
		return false
	}
	root, removed := e.delete(e.root, 0, key, hash)
	if !removed {
		return false
	}
	e.root = root
	e.len--
	return true
}

// Map returns the map as edited so far. Later edits do not change it: from
// here on e copies every node before changing it, as it did at the start.
func (e *Editor[V]) Map() *Map[V] {
	e.owner = new(owner)
	return &Map[V]{root: e.root, len: e.len}
}

func slot(hash uint64, shift uint) uint32 { return 1 << ((hash >> shift) & fanoutMask) }

// index returns the position of bit's element in an array indexed by bitmap.
func index(bitmap, bit uint32) int { return bits.OnesCount32(bitmap & (bit - 1)) }

func value[V any](en *entry[V]) (V, bool) {
	if en == nil {
		var zero V
		return zero, false
	}
	return en.val, true
}

func stored[V any](en *entry[V]) (string, V, bool) {
	if en == nil {
		var zero V
		return "", zero, false
	}
	return en.key, en.val, true
}

// find returns key's entry in the trie at n, or nil.
func find[V any](n *node[V], key string, hash uint64) *entry[V] {
	if n == nil {
		return nil
	}
	for shift := uint(0); ; shift += bitsPerLevel {
		if shift >= maxShift {
			for i := range n.entries {
				if n.entries[i].key == key {
					return &n.entries[i]
				}
			}
			return nil
		}
		bit := slot(hash, shift)
		switch {
		case n.dataMap&bit != 0:
			if en := &n.entries[index(n.dataMap, bit)]; en.key == key {
				return en
			}
			return nil
		case n.nodeMap&bit != 0:
			n = n.children[index(n.nodeMap, bit)]
		default:
			return nil
		}
	}
}

func walk[V any](n *node[V], yield func(string, V) bool) bool {
	if n == nil {
		return true
	}
	for _, en := range n.entries {
		if !yield(en.key, en.val) {
			return false
		}
	}
	for _, c := range n.children {
		if !walk(c, yield) {
			return false
		}
	}
	return true
}

// editable returns n if e owns it, else a copy that e owns, which shares
// n's arrays until writeEntries or writeChildren.
func (e *Editor[V]) editable(n *node[V]) *node[V] {
	if n.owner == e.owner {
		return n
	}
	return &node[V]{owner: e.owner, dataMap: n.dataMap, nodeMap: n.nodeMap, entries: n.entries, children: n.children}
}

// writeEntries makes n's entries its own, with room for grow more.
func (n *node[V]) writeEntries(grow int) {
	if !n.ownEntries {
		n.entries = append(make([]entry[V], 0, len(n.entries)+grow), n.entries...)
		n.ownEntries = true
	}
}

// writeChildren makes n's children its own, with room for grow more.
func (n *node[V]) writeChildren(grow int) {
	if !n.ownChildren {
		n.children = append(make([]*node[V], 0, len(n.children)+grow), n.children...)
		n.ownChildren = true
	}
}

// set puts en into the trie at n (at depth shift) and returns the node to
// put in n's place, and whether the key is new.
func (e *Editor[V]) set(n *node[V], shift uint, en entry[V]) (*node[V], bool) {
	if shift >= maxShift {
		n = e.editable(n)
		n.writeEntries(1)
		for i := range n.entries {
			if n.entries[i].key == en.key {
				n.entries[i].val = en.val
				return n, false
			}
		}
		n.entries = append(n.entries, en)
		return n, true
	}
	bit := slot(en.hash, shift)
	switch {
	case n.dataMap&bit != 0:
		i := index(n.dataMap, bit)
		n = e.editable(n)
		n.writeEntries(0)
		old := n.entries[i]
		if old.key == en.key {
			n.entries[i].val = en.val
			return n, false
		}
		// Two keys in one slot: they move down into a new child.
		child := e.pair(shift+bitsPerLevel, old, en)
		n.writeChildren(1)
		n.entries = slices.Delete(n.entries, i, i+1)
		n.dataMap &^= bit
		n.nodeMap |= bit
		n.children = slices.Insert(n.children, index(n.nodeMap, bit), child)
		return n, true
	case n.nodeMap&bit != 0:
		i := index(n.nodeMap, bit)
		child, added := e.set(n.children[i], shift+bitsPerLevel, en)
		if child != n.children[i] {
			n = e.editable(n)
			n.writeChildren(0)
			n.children[i] = child
		}
		return n, added
	default:
		n = e.editable(n)
		n.writeEntries(1)
		n.dataMap |= bit
		n.entries = slices.Insert(n.entries, index(n.dataMap, bit), en)
		return n, true
	}
}

// pair returns a node at depth shift holding entries a and b.
func (e *Editor[V]) pair(shift uint, a, b entry[V]) *node[V] {
	n := &node[V]{owner: e.owner, ownEntries: true, ownChildren: true}
	if shift >= maxShift {
		n.entries = []entry[V]{a, b}
		return n
	}
	ba, bb := slot(a.hash, shift), slot(b.hash, shift)
	if ba == bb {
		n.nodeMap = ba
		n.children = []*node[V]{e.pair(shift+bitsPerLevel, a, b)}
		return n
	}
	n.dataMap = ba | bb
	if ba < bb {
		n.entries = []entry[V]{a, b}
	} else {
		n.entries = []entry[V]{b, a}
	}
	return n
}

// delete removes key from the trie at n and returns the node to put in n's
// place (nil when nothing is left) and whether the key was there. A child
// left with a single entry and no children is folded into its parent, so
// the trie stays as shallow as its keys need.
func (e *Editor[V]) delete(n *node[V], shift uint, key string, hash uint64) (*node[V], bool) {
	if shift >= maxShift {
		i := slices.IndexFunc(n.entries, func(en entry[V]) bool { return en.key == key })
		if i < 0 {
			return n, false
		}
		n = e.editable(n)
		n.writeEntries(0)
		n.entries = slices.Delete(n.entries, i, i+1)
		return n, true
	}
	bit := slot(hash, shift)
	switch {
	case n.dataMap&bit != 0:
		i := index(n.dataMap, bit)
		if n.entries[i].key != key {
			return n, false
		}
		n = e.editable(n)
		n.writeEntries(0)
		n.entries = slices.Delete(n.entries, i, i+1)
		n.dataMap &^= bit
		return n, true
	case n.nodeMap&bit != 0:
		i := index(n.nodeMap, bit)
		child, removed := e.delete(n.children[i], shift+bitsPerLevel, key, hash)
		if !removed {
			return n, false
		}
		n = e.editable(n)
		n.writeChildren(0)
		switch {
		case len(child.children) == 0 && len(child.entries) == 1:
			n.writeEntries(1)
			n.children = slices.Delete(n.children, i, i+1)
			n.nodeMap &^= bit
			n.dataMap |= bit
			n.entries = slices.Insert(n.entries, index(n.dataMap, bit), child.entries[0])
		case len(child.children) == 0 && len(child.entries) == 0:
			n.children = slices.Delete(n.children, i, i+1)
			n.nodeMap &^= bit
		default:
			n.children[i] = child
		}
		return n, true
	default:
		return n, false
	}
}
