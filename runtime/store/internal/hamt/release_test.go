package hamt

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// TestDeletedValuesAreReleased: a value deleted or replaced is not kept
// reachable by the map that no longer holds it, at any depth, in collision
// nodes too.
func TestDeletedValuesAreReleased(t *testing.T) {
	for name, hash := range hashers {
		t.Run(name, func(t *testing.T) {
			const keys = 300
			var released atomic.Int64
			e := (&Map[*[64]byte]{}).Edit()
			for i := range keys {
				v := new([64]byte)
				runtime.AddCleanup(v, func(c *atomic.Int64) { c.Add(1) }, &released)
				k := fmt.Sprintf("k%d", i)
				e.setHashed(k, hash(k), v)
			}
			m := e.Map()
			// Half the keys go, a quarter get a new value, in one edit
			// and then in edits of one change each.
			e = m.Edit()
			for i := 0; i < keys/2; i++ {
				k := fmt.Sprintf("k%d", i)
				e.deleteHashed(k, hash(k))
			}
			for i := keys / 2; i < keys/2+keys/8; i++ {
				k := fmt.Sprintf("k%d", i)
				e.setHashed(k, hash(k), new([64]byte))
			}
			m = e.Map()
			for i := keys/2 + keys/8; i < keys/2+keys/4; i++ {
				e := m.Edit()
				k := fmt.Sprintf("k%d", i)
				e.setHashed(k, hash(k), new([64]byte))
				m = e.Map()
			}
			e = nil
			const want = keys/2 + keys/4
			for range 50 {
				runtime.GC()
				if released.Load() == want {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			if got := released.Load(); got != want {
				t.Errorf("%d of the %d values deleted or replaced were released", got, want)
			}
			if m.Len() != keys/2 {
				t.Fatalf("Len %d", m.Len())
			}
			runtime.KeepAlive(m)
		})
	}
}
