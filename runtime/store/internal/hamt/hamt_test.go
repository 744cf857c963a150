package hamt

import (
	"fmt"
	"hash/fnv"
	"maps"
	"testing"
	"unsafe"

	"pgregory.net/rapid"
)

// hashers are the hash functions the property test runs with: the real
// one, and two that collide on purpose so deep paths, splits down to the
// last level, collision nodes and their folding back are all exercised.
var hashers = map[string]func(string) uint64{
	"maphash": hashOf,
	// Only the top four bits and the bottom two vary: keys share paths
	// down to the last level, where the top bits finally differ.
	"deep": func(k string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(k))
		return h.Sum64() & (0xf<<60 | 0x3)
	},
	// Three possible hashes: most keys collide in all 64 bits.
	"collide": func(k string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(k))
		return []uint64{0, 1 << 63, 1<<63 | 31}[h.Sum64()%3]
	},
}

// TestAgainstModel edits maps at random and checks every map taken on the
// way against a Go map of what it held when it was taken: an edit must
// never show through to a map already taken.
func TestAgainstModel(t *testing.T) {
	for name, hash := range hashers {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				key := rapid.StringMatching(`k[0-9]{1,2}`)
				type taken struct {
					m     *Map[int]
					model map[string]int
				}
				var snaps []taken
				e := (&Map[int]{}).Edit()
				model := map[string]int{}
				check := func(m *Map[int], want map[string]int) {
					if m.Len() != len(want) {
						t.Fatalf("Len %d, want %d", m.Len(), len(want))
					}
					got := map[string]int{}
					for k, v := range m.All() {
						if _, dup := got[k]; dup {
							t.Fatalf("All yields %q twice", k)
						}
						got[k] = v
					}
					if !maps.Equal(got, want) {
						t.Fatalf("All = %v, want %v", got, want)
					}
					for k, v := range want {
						en := find(m.root, k, hash(k))
						if en == nil || en.val != v {
							t.Fatalf("find(%q) = %v; want %d", k, en, v)
						}
					}
					for i := range 100 {
						k := fmt.Sprintf("k%d", i)
						if _, in := want[k]; !in {
							if find(m.root, k, hash(k)) != nil {
								t.Fatalf("Get(%q) found a deleted key", k)
							}
						}
					}
				}
				t.Repeat(map[string]func(*rapid.T){
					"set": func(t *rapid.T) {
						k, v := key.Draw(t, "key"), rapid.Int().Draw(t, "val")
						e.setHashed(k, hash(k), v)
						model[k] = v
					},
					"delete": func(t *rapid.T) {
						k := key.Draw(t, "key")
						_, want := model[k]
						if got := e.deleteHashed(k, hash(k)); got != want {
							t.Fatalf("Delete(%q) = %v, want %v", k, got, want)
						}
						delete(model, k)
					},
					"take": func(t *rapid.T) {
						snaps = append(snaps, taken{e.Map(), maps.Clone(model)})
					},
					"restart": func(t *rapid.T) {
						// A new edit from a taken map, as the next batch starts from
						// the published index.
						if len(snaps) == 0 {
							t.Skip("nothing taken")
						}
						s := snaps[rapid.IntRange(0, len(snaps)-1).Draw(t, "snap")]
						e, model = s.m.Edit(), maps.Clone(s.model)
					},
					"": func(t *rapid.T) {
						if e.Len() != len(model) {
							t.Fatalf("editor Len %d, want %d", e.Len(), len(model))
						}
						for _, s := range snaps {
							check(s.m, s.model)
						}
					},
				})
				check(e.Map(), model)
			})
		})
	}
}

func TestZeroMap(t *testing.T) {
	var m Map[string]
	if _, ok := m.Get("x"); ok || m.Len() != 0 {
		t.Fatal("zero Map is not empty")
	}
	e := m.Edit()
	if e.Delete("x") {
		t.Fatal("Delete on an empty map reported a key")
	}
	e.Set("member-x", "1")
	key := string([]byte("member-x"))
	if k, v, ok := e.Lookup(key); !ok || v != "1" || k != "member-x" {
		t.Fatalf("Lookup after Set = %q, %q, %v", k, v, ok)
	}
	if k, _, _ := e.Lookup(key); unsafe.StringData(k) == unsafe.StringData(key) {
		t.Fatal("Lookup returned the key it was given, not the one the map holds")
	}
	if _, ok := m.Get("member-x"); ok {
		t.Fatal("editing changed the map it started from")
	}
}

// BenchmarkEditBatch is the store's use: a map of 100,000 keys gets a batch
// of 800 changes (eight 100-member PATCHes) per edit, then is published.
func BenchmarkEditBatch(b *testing.B) {
	const keys, batch = 100_000, 800
	e := (&Map[[]string]{}).Edit()
	for i := range keys {
		e.Set(fmt.Sprintf("user-%08d", i), []string{"g"})
	}
	m := e.Map()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := m.Edit()
		for range batch {
			i = (i + 7919) % keys
			e.Set(fmt.Sprintf("user-%08d", i), []string{"g", "h"})
		}
		m = e.Map()
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "sets/s")
}
