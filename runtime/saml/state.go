package saml

import (
	"container/heap"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"time"
)

// ttlMap is a map whose entries expire. It is bounded without ever
// refusing an entry, since a refusal is a sign-in denied: past max entries
// the one that expires soonest goes, and, when entries belong to groups (a
// user's sessions), past perGroup entries of one group that group's
// soonest-expiring goes. Expired entries are dropped as new ones come.
// A replay cache cannot drop without refusing, as a dropped key could be
// presented again: it refuses the keys a drop may have let go
// (refuseDropped) and, capped, a full group's new ones (see capped).
type ttlMap[V any] struct {
	mu       sync.Mutex
	m        map[string]*ttlEntry[V]
	byExp    expHeap[V]
	max      int
	perGroup int
	group    func(V) string // nil: no groups
	groups   map[string][]*ttlEntry[V]
	// capGroups makes a full group refuse a new entry instead of dropping
	// its soonest-expiring (see capped).
	capGroups bool
	// refuseDropped makes add refuse a new key whose expiry is no later
	// than dropped, the latest expiry of an unexpired entry removed to make
	// room: the key may be that entry's. A replay cache needs it, or
	// whoever overflows the table can present a dropped entry again; new
	// keys expire later than the dropped ones (the soonest-expiring go), so
	// it refuses nothing fresh.
	refuseDropped bool
	dropped       time.Time
}

type ttlEntry[V any] struct {
	key   string
	v     V
	exp   time.Time
	index int // in byExp
}

func newTTLMap[V any](max int) *ttlMap[V] {
	return &ttlMap[V]{m: make(map[string]*ttlEntry[V]), max: max}
}

// grouped bounds each group of entries, as named by group, to perGroup.
func (t *ttlMap[V]) grouped(perGroup int, group func(V) string) *ttlMap[V] {
	t.perGroup, t.group, t.groups = perGroup, group, map[string][]*ttlEntry[V]{}
	return t
}

// capped bounds each group, as named by group, to perGroup entries by
// refusing a new one past it. A replay cache needs it: an entry dropped
// from a group could be presented again, and a dropped entry refused
// (refuseDropped) would refuse every entry expiring no later, everyone's.
func (t *ttlMap[V]) capped(perGroup int, group func(V) string) *ttlMap[V] {
	t.capGroups = true
	return t.grouped(perGroup, group)
}

// rememberingDropped sets refuseDropped; see there.
func (t *ttlMap[V]) rememberingDropped() *ttlMap[V] {
	t.refuseDropped = true
	return t
}

// add stores v under key unless an unexpired entry exists (or, with
// refuseDropped, one may have been dropped); it reports whether it stored.
func (t *ttlMap[V]) add(key string, v V, exp, now time.Time) bool {
	added, _ := t.addOrFull(key, v, exp, now)
	return added
}

// addOrFull is add that also says, when a capped map refused v because its
// group is full, when the group's soonest entry expires (full; zero
// otherwise).
func (t *ttlMap[V]) addOrFull(key string, v V, exp, now time.Time) (added bool, full time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expire(now)
	if _, ok := t.m[key]; ok {
		return false, time.Time{}
	}
	if t.refuseDropped && !exp.After(t.dropped) {
		return false, time.Time{}
	}
	if t.group != nil {
		if same := t.groups[t.group(v)]; len(same) >= t.perGroup {
			if t.capGroups {
				return false, soonest(same).exp
			}
			t.remove(soonest(same))
		}
	}
	if len(t.m) >= t.max {
		if e := t.byExp[0]; e.exp.After(t.dropped) {
			t.dropped = e.exp
		}
		t.remove(t.byExp[0])
	}
	e := &ttlEntry[V]{key: key, v: v, exp: exp}
	t.m[key] = e
	heap.Push(&t.byExp, e)
	if t.group != nil {
		g := t.group(v)
		t.groups[g] = append(t.groups[g], e)
	}
	return true, time.Time{}
}

// get returns the unexpired entry under key.
func (t *ttlMap[V]) get(key string, now time.Time) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// update changes the unexpired entry under key in place with f, which must
// leave its group (see grouped) as it was, and returns it.
func (t *ttlMap[V]) update(key string, now time.Time, f func(*V)) (V, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[key]
	if !ok || !now.Before(e.exp) {
		var zero V
		return zero, false
	}
	f(&e.v)
	return e.v, true
}

func (t *ttlMap[V]) del(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if e, ok := t.m[key]; ok {
		t.remove(e)
	}
}

// deleteWhere removes every entry for which match is true and counts them.
func (t *ttlMap[V]) deleteWhere(match func(V) bool) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.m {
		if match(e.v) {
			t.remove(e)
			n++
		}
	}
	return n
}

func (t *ttlMap[V]) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.m)
	clear(t.byExp)
	t.byExp = t.byExp[:0]
	if t.groups != nil {
		clear(t.groups)
	}
}

func (t *ttlMap[V]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// expire drops the entries expired at now; t.mu is held.
func (t *ttlMap[V]) expire(now time.Time) {
	for len(t.byExp) > 0 && !now.Before(t.byExp[0].exp) {
		t.remove(t.byExp[0])
	}
}

// remove drops e; t.mu is held.
func (t *ttlMap[V]) remove(e *ttlEntry[V]) {
	delete(t.m, e.key)
	heap.Remove(&t.byExp, e.index)
	if t.group == nil {
		return
	}
	g := t.group(e.v)
	same := t.groups[g]
	for i, x := range same {
		if x == e {
			same = append(same[:i], same[i+1:]...)
			break
		}
	}
	if len(same) == 0 {
		delete(t.groups, g)
	} else {
		t.groups[g] = same
	}
}

func soonest[V any](list []*ttlEntry[V]) *ttlEntry[V] {
	first := list[0]
	for _, e := range list[1:] {
		if e.exp.Before(first.exp) {
			first = e
		}
	}
	return first
}

// expHeap orders entries by expiry, soonest first.
type expHeap[V any] []*ttlEntry[V]

func (h expHeap[V]) Len() int           { return len(h) }
func (h expHeap[V]) Less(i, j int) bool { return h[i].exp.Before(h[j].exp) }
func (h expHeap[V]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expHeap[V]) Push(x any) {
	e := x.(*ttlEntry[V])
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expHeap[V]) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go 1.24 and later)
	return base64.RawURLEncoding.EncodeToString(b)
}
