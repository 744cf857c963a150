package idset

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// check fails t unless s holds exactly want (sorted, distinct) in chunks
// that keep the Set's invariants.
func check(t *testing.T, s Set, want []string) {
	t.Helper()
	n := 0
	prev := ""
	for i, c := range s.chunks {
		if len(c) == 0 || len(c) > chunkMax {
			t.Fatalf("chunk %d holds %d ids", i, len(c))
		}
		for _, id := range c {
			if n > 0 && id <= prev {
				t.Fatalf("chunk %d: %q after %q", i, id, prev)
			}
			prev = id
			n++
		}
	}
	if n != s.Len() {
		t.Fatalf("Len %d, chunks hold %d", s.Len(), n)
	}
	if got := s.Slice(); !slices.Equal(got, want) {
		t.Fatalf("set holds %d ids, want %d: %v", len(got), len(want), diffHead(got, want))
	}
	if got := slices.Collect(s.All()); !slices.Equal(got, want) {
		t.Fatal("All and Slice disagree")
	}
	if len(want) > 0 && s.Last() != want[len(want)-1] {
		t.Fatalf("Last %q, want %q", s.Last(), want[len(want)-1])
	}
}

func diffHead(got, want []string) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at %d: %q against %q", i, got[i], want[i])
		}
	}
	return "one is a prefix of the other"
}

// TestEditAgainstModel edits sets of many sizes at random and compares
// each version, and the diff between versions, with a map; old versions
// must stay as they were.
func TestEditAgainstModel(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			universe := 10 + r.IntN(3000)
			id := func() string { return fmt.Sprintf("u%05d", r.IntN(universe)) }
			model := map[string]bool{}
			var s Set
			type version struct {
				set  Set
				want []string
			}
			var versions []version
			for range 60 {
				// add and remove are disjoint; now and then add holds an id
				// s holds and remove one it does not, which change nothing.
				var add, remove, added, removed []string
				for range r.IntN(3) * r.IntN(200) {
					x := id()
					if slices.Contains(add, x) {
						continue
					}
					if !model[x] {
						added = append(added, x)
						add = append(add, x)
					} else if r.IntN(20) == 0 {
						add = append(add, x)
					}
				}
				for x := range model {
					if r.IntN(10) == 0 && !slices.Contains(add, x) {
						remove = append(remove, x)
						removed = append(removed, x)
					}
				}
				for range r.IntN(3) {
					if x := id(); !model[x] && !slices.Contains(add, x) && !slices.Contains(remove, x) {
						remove = append(remove, x)
					}
				}
				slices.Sort(add)
				slices.Sort(remove)
				slices.Sort(added)
				slices.Sort(removed)
				next := s.Edit(add, remove)
				for _, x := range added {
					model[x] = true
				}
				for _, x := range removed {
					delete(model, x)
				}
				want := slices.Sorted(func(yield func(string) bool) {
					for x := range model {
						if !yield(x) {
							return
						}
					}
				})
				check(t, next, want)
				gotAdded, gotRemoved := Diff(s, next)
				if !slices.Equal(gotAdded, added) || !slices.Equal(gotRemoved, removed) {
					t.Fatalf("Diff: added %d removed %d, want %d and %d", len(gotAdded), len(gotRemoved), len(added), len(removed))
				}
				// A set built apart, sharing neither chunks nor strings.
				copied := make([]string, len(want))
				for i, x := range want {
					copied[i] = strings.Clone(x)
				}
				gotAdded, gotRemoved = Diff(s, FromSorted(copied))
				if !slices.Equal(gotAdded, added) || !slices.Equal(gotRemoved, removed) {
					t.Fatalf("Diff with a copy: added %d removed %d, want %d and %d", len(gotAdded), len(gotRemoved), len(added), len(removed))
				}
				for i := range 20 {
					x := id()
					if i%2 == 0 && len(want) > 0 {
						x = want[r.IntN(len(want))]
					}
					if next.Contains(x) != model[x] {
						t.Fatalf("Contains(%q) = %v", x, !model[x])
					}
				}
				versions = append(versions, version{next, want})
				s = next
			}
			for _, v := range versions {
				check(t, v.set, v.want)
			}
			// Diff of versions far apart, both ways.
			a, b := versions[10], versions[len(versions)-1]
			added, removed := Diff(a.set, b.set)
			wantAdded, wantRemoved := setDiff(a.want, b.want)
			if !slices.Equal(added, wantAdded) || !slices.Equal(removed, wantRemoved) {
				t.Fatal("Diff of versions far apart differs from set arithmetic")
			}
		})
	}
}

func setDiff(before, after []string) (added, removed []string) {
	for _, x := range after {
		if _, found := slices.BinarySearch(before, x); !found {
			added = append(added, x)
		}
	}
	for _, x := range before {
		if _, found := slices.BinarySearch(after, x); !found {
			removed = append(removed, x)
		}
	}
	return added, removed
}

// TestEditSharesUntouchedChunks: one id added to a big set copies one
// chunk; the others are the old set's, and Diff skips them.
func TestEditSharesUntouchedChunks(t *testing.T) {
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%07d", 2*i)
	}
	s := FromSorted(ids)
	next := s.Edit([]string{"u0100001"}, nil)
	shared := 0
	for _, c := range next.chunks {
		if slices.ContainsFunc(s.chunks, func(o []string) bool { return same(o, c) }) {
			shared++
		}
	}
	if want := len(next.chunks) - 1; shared != want {
		t.Fatalf("%d of %d chunks shared, want %d", shared, len(next.chunks), want)
	}
	if added, removed := Diff(s, next); !slices.Equal(added, []string{"u0100001"}) || removed != nil {
		t.Fatalf("Diff: %v %v", added, removed)
	}
}

// TestRemovalsDoNotLeaveTinyChunks: removing most ids keeps the chunks
// few, not one per survivor.
func TestRemovalsDoNotLeaveTinyChunks(t *testing.T) {
	ids := make([]string, 10_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("u%05d", i)
	}
	s := FromSorted(slices.Clone(ids))
	var remove, keep []string
	for i, id := range ids {
		if i%20 == 0 {
			keep = append(keep, id)
		} else {
			remove = append(remove, id)
		}
	}
	// In steps of 100, as Entra sends them.
	for len(remove) > 0 {
		n := min(100, len(remove))
		s = s.Edit(nil, remove[:n])
		remove = remove[n:]
	}
	check(t, s, keep)
	if max := 3 * len(keep) / chunkMax; len(s.chunks) > max+1 {
		t.Fatalf("%d ids in %d chunks", s.Len(), len(s.chunks))
	}
}

func TestBuilder(t *testing.T) {
	for _, n := range []int{0, 1, chunkMax, chunkMax + 1, 5 * chunkMax} {
		var b Builder
		var want []string
		for i := range n {
			id := fmt.Sprintf("g%04d", i)
			b.Add(id)
			want = append(want, id)
			if b.Last() != id {
				t.Fatalf("Last %q after adding %q", b.Last(), id)
			}
		}
		s := b.Set()
		check(t, s, want)
		// Editing a built set leaves it as it was.
		if n > 0 {
			next := s.Edit([]string{"g0000a"}, []string{want[n-1]})
			check(t, s, want)
			check(t, next, slices.Sorted(slices.Values(append(slices.Clone(want[:n-1]), "g0000a"))))
		}
	}
}

// TestEditIgnoresWhatChangesNothing: ids of add the set holds and ids of
// remove it does not, more of them than the set holds.
func TestEditIgnoresWhatChangesNothing(t *testing.T) {
	s := Of("b")
	check(t, s.Edit([]string{"b"}, []string{"a", "c", "d"}), []string{"b"})
	check(t, s.Edit([]string{"a"}, []string{"c", "d", "e"}), []string{"a", "b"})
	check(t, s.Edit(nil, []string{"b", "c", "d"}), nil)
	check(t, Set{}.Edit(nil, []string{"a"}), nil)
}

func TestOf(t *testing.T) {
	check(t, Of("b", "a", "b", "c"), []string{"a", "b", "c"})
	check(t, Of(), nil)
	if (Set{}).Contains("a") || (Set{}).Last() != "" {
		t.Fatal("the zero Set is not empty")
	}
}

// BenchmarkEdit adds 100 random ids to sets of each size, as a member
// PATCH does; B/op is what a change copies.
func BenchmarkEdit(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("%016x", r.Uint64())
			}
			slices.Sort(ids)
			ids = slices.Compact(ids)
			s := FromSorted(ids)
			adds := make([][]string, 64)
			for i := range adds {
				for range 100 {
					adds[i] = append(adds[i], fmt.Sprintf("%016x", r.Uint64()))
				}
				slices.Sort(adds[i])
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				next := s.Edit(adds[i%len(adds)], nil)
				if added, _ := Diff(s, next); len(added) != 100 {
					b.Fatal(len(added))
				}
				i++
			}
		})
	}
}
