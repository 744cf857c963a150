package idset

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"pgregory.net/rapid"
)

// TestSetAgainstModel drives sets through random edits, from empty, from
// FromSorted and from a Builder, with ids drawn from universes small and
// large enough to split and merge chunks, and checks every version taken
// on the way against a Go map: contents, Len, Contains, Last, and Diff
// between any two versions, both ways.
func TestSetAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		universe := rapid.SampledFrom([]int{5, 40, 300, 2000}).Draw(t, "universe")
		id := func(t *rapid.T, label string) string {
			return fmt.Sprintf("m%04d", rapid.IntRange(0, universe-1).Draw(t, label))
		}
		type version struct {
			set   Set
			model map[string]bool
		}
		// The first version: empty, or made by FromSorted or a Builder.
		start := map[string]bool{}
		for range rapid.IntRange(0, 3*chunkMax).Draw(t, "start") {
			start[id(t, "startID")] = true
		}
		ids := slices.Sorted(maps.Keys(start))
		var s Set
		switch rapid.IntRange(0, 2).Draw(t, "from") {
		case 0:
			s = FromSorted(slices.Clone(ids))
		case 1:
			var b Builder
			for _, x := range ids {
				b.Add(x)
			}
			s = b.Set()
		default:
			s = Set{}.Edit(ids, nil)
		}
		versions := []version{{s, start}}
		verify := func(t *rapid.T, v version) {
			want := slices.Sorted(maps.Keys(v.model))
			if got := v.set.Slice(); !slices.Equal(got, want) {
				t.Fatalf("set holds %v, want %v", got, want)
			}
			if v.set.Len() != len(want) {
				t.Fatalf("Len %d, want %d", v.set.Len(), len(want))
			}
			n := 0
			for i, c := range v.set.chunks {
				if len(c) == 0 || len(c) > chunkMax {
					t.Fatalf("chunk %d holds %d ids", i, len(c))
				}
				n += len(c)
			}
			if n != len(want) {
				t.Fatalf("chunks hold %d ids, Len says %d", n, len(want))
			}
			last := ""
			if len(want) > 0 {
				last = want[len(want)-1]
			}
			if v.set.Last() != last {
				t.Fatalf("Last %q, want %q", v.set.Last(), last)
			}
			for range 20 {
				x := id(t, "probe")
				if v.set.Contains(x) != v.model[x] {
					t.Fatalf("Contains(%q) = %v", x, !v.model[x])
				}
			}
		}
		t.Repeat(map[string]func(*rapid.T){
			"edit": func(t *rapid.T) {
				cur := versions[len(versions)-1]
				if rapid.Bool().Draw(t, "fromOld") {
					cur = versions[rapid.IntRange(0, len(versions)-1).Draw(t, "old")]
				}
				// add and remove are disjoint; each may hold ids that
				// change nothing.
				pick := map[string]int{}
				for range rapid.IntRange(0, 2*chunkMax).Draw(t, "changes") {
					pick[id(t, "changeID")] = rapid.IntRange(0, 1).Draw(t, "which")
				}
				var add, remove []string
				next := maps.Clone(cur.model)
				for x, which := range pick {
					if which == 0 {
						add = append(add, x)
						next[x] = true
					} else {
						remove = append(remove, x)
						delete(next, x)
					}
				}
				slices.Sort(add)
				slices.Sort(remove)
				edited := cur.set.Edit(add, remove)
				versions = append(versions, version{edited, next})
				verify(t, versions[len(versions)-1])
			},
			"": func(t *rapid.T) {
				// An old version, which no later edit may have changed.
				verify(t, versions[rapid.IntRange(0, len(versions)-1).Draw(t, "check")])
				a := versions[rapid.IntRange(0, len(versions)-1).Draw(t, "a")]
				b := versions[rapid.IntRange(0, len(versions)-1).Draw(t, "b")]
				added, removed := Diff(a.set, b.set)
				wantAdded, wantRemoved := setDiff(slices.Sorted(maps.Keys(a.model)), slices.Sorted(maps.Keys(b.model)))
				if !slices.Equal(added, wantAdded) || !slices.Equal(removed, wantRemoved) {
					t.Fatalf("Diff = +%v -%v, want +%v -%v", added, removed, wantAdded, wantRemoved)
				}
			},
		})
		for _, v := range versions {
			verify(t, v)
		}
	})
}

// TestRemovedIDsAreReleased: an id removed from a set is no longer kept
// reachable by the new version, when the old version's chunks were cut
// from one array (FromSorted, as a load makes a group's set, or an edit
// that split a chunk) and the others live on in the new one. A group's set
// lives as long as the group, so an id it kept would be memory the daemon
// never gets back.
func TestRemovedIDsAreReleased(t *testing.T) {
	id := func(i int) string {
		// 64 bytes: an allocation of its own, not a tiny one.
		return fmt.Sprintf("%064d", i)
	}
	for _, tt := range []struct {
		name string
		// make returns a set and an id of it to remove.
		make func() (Set, string)
	}{
		{"one chunk", func() (Set, string) {
			ids := make([]string, 100)
			for i := range ids {
				ids[i] = id(i)
			}
			return FromSorted(ids), ids[0]
		}},
		{"FromSorted", func() (Set, string) {
			ids := make([]string, 5*chunkMax)
			for i := range ids {
				ids[i] = id(i)
			}
			return FromSorted(ids), ids[0]
		}},
		{"split by an edit", func() (Set, string) {
			var b Builder
			for i := range chunkMax {
				b.Add(id(2 * i))
			}
			add := make([]string, chunkMax)
			for i := range add {
				add[i] = id(2*i + 1)
			}
			return b.Set().Edit(add, nil), add[0]
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var released atomic.Bool
			s, gone := tt.make()
			runtime.AddCleanup(unsafe.StringData(gone), func(*atomic.Bool) { released.Store(true) }, &released)
			s = s.Edit(nil, []string{gone})
			gone = ""
			for range 50 {
				runtime.GC()
				if released.Load() {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !released.Load() {
				t.Errorf("the removed id is still reachable from the set of %d ids", s.Len())
			}
			runtime.KeepAlive(s)
		})
	}
}
