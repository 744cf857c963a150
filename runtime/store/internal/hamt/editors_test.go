package hamt

import (
	"fmt"
	"hash/fnv"
	"maps"
	"testing"

	"pgregory.net/rapid"
)

// TestEditorsAgainstModel keeps several editors alive at once, started
// from the same maps and from each other's, and interleaves their changes:
// no editor's change may show in another editor or in a map already taken,
// and each must agree with its own model after every step.
func TestEditorsAgainstModel(t *testing.T) {
	// Every key the test draws: k0 to k9 and k00 to k99.
	var allKeys []string
	for i := range 10 {
		allKeys = append(allKeys, fmt.Sprintf("k%d", i))
	}
	for i := range 100 {
		allKeys = append(allKeys, fmt.Sprintf("k%02d", i))
	}
	hashes := map[string]func(string) uint64{}
	maps.Copy(hashes, hashers)
	// Only five bits in the middle of the hash vary: every key goes down
	// the same path to level 6, where they spread out.
	hashes["middle"] = func(k string) uint64 {
		h := fnv.New64a()
		h.Write([]byte(k))
		return h.Sum64() & (0x1f << 30)
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rapid.Check(t, func(t *rapid.T) {
				key := rapid.StringMatching(`k[0-9]{1,2}`)
				type editor struct {
					e     *Editor[int]
					model map[string]int
				}
				type taken struct {
					m     *Map[int]
					model map[string]int
				}
				snaps := []taken{{&Map[int]{}, map[string]int{}}}
				editors := []editor{{(&Map[int]{}).Edit(), map[string]int{}}}
				check := func(t *rapid.T, what string, get func(string) (string, int, bool), n int, want map[string]int) {
					if n != len(want) {
						t.Fatalf("%s: Len %d, want %d", what, n, len(want))
					}
					for _, k := range allKeys {
						stored, v, ok := get(k)
						w, in := want[k]
						if ok != in || v != w || ok && stored != k {
							t.Fatalf("%s: Lookup(%q) = %q, %d, %v; want %d, %v", what, k, stored, v, ok, w, in)
						}
					}
				}
				pickEditor := func(t *rapid.T) *editor {
					return &editors[rapid.IntRange(0, len(editors)-1).Draw(t, "editor")]
				}
				lookupIn := func(root *node[int]) func(string) (string, int, bool) {
					return func(k string) (string, int, bool) { return stored(find(root, k, hash(k))) }
				}
				t.Repeat(map[string]func(*rapid.T){
					"set": func(t *rapid.T) {
						ed := pickEditor(t)
						k, v := key.Draw(t, "key"), rapid.Int().Draw(t, "val")
						ed.e.setHashed(k, hash(k), v)
						ed.model[k] = v
					},
					"delete": func(t *rapid.T) {
						ed := pickEditor(t)
						k := key.Draw(t, "key")
						_, want := ed.model[k]
						if got := ed.e.deleteHashed(k, hash(k)); got != want {
							t.Fatalf("Delete(%q) = %v, want %v", k, got, want)
						}
						delete(ed.model, k)
					},
					"take": func(t *rapid.T) {
						ed := pickEditor(t)
						snaps = append(snaps, taken{ed.e.Map(), maps.Clone(ed.model)})
					},
					"fork": func(t *rapid.T) {
						s := snaps[rapid.IntRange(0, len(snaps)-1).Draw(t, "snap")]
						editors = append(editors, editor{s.m.Edit(), maps.Clone(s.model)})
					},
					"": func(t *rapid.T) {
						for _, ed := range editors {
							check(t, "editor", lookupIn(ed.e.root), ed.e.Len(), ed.model)
						}
						for _, s := range snaps {
							check(t, "map", lookupIn(s.m.root), s.m.Len(), s.model)
							n := 0
							for k, v := range s.m.All() {
								if w, ok := s.model[k]; !ok || w != v {
									t.Fatalf("All yields %q=%d, model has %d, %v", k, v, w, ok)
								}
								n++
							}
							if n != len(s.model) {
								t.Fatalf("All yields %d entries, want %d", n, len(s.model))
							}
						}
					},
				})
			})
		})
	}
}
