package access_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestConcurrentQueriesSeeTheirSnapshot has readers compare ForUser with the
// assignment in the same snapshot while a writer keeps changing it, so a memo
// shared across snapshots would show up as a mismatch (and -race checks the
// memo itself).
func TestConcurrentQueriesSeeTheirSnapshot(t *testing.T) {
	w := baseWorld(t)
	u := w.user("ann", true)
	g := w.group("Ops")
	w.member(g, u)
	w.assign("a", "group:Ops", []string{"Developer"})

	ctx, cancel := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		roles := []string{"Developer", "Manager", "View Only"}
		for i := 0; ctx.Err() == nil; i++ {
			role := roles[i%len(roles)]
			err := w.st.Update(ctx, func(tx *store.Txn) error {
				return tx.Insert(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: "a", Spec: assignment("group:Ops", []string{role})})
			})
			if err != nil && ctx.Err() == nil {
				t.Error(err)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				txn := w.st.Read()
				r, err := txn.Resource(spec.KindAccessAssignment, "a")
				if err != nil {
					t.Error(err)
					return
				}
				e, err := access.ForUser(txn, "ann")
				if err != nil {
					t.Error(err)
					return
				}
				if want := r.Spec.(*spec.AccessAssignment).Roles; !slices.Equal(e.RoleNames(), want) {
					t.Errorf("ForUser roles = %v, snapshot has %v", e.RoleNames(), want)
					return
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	<-writerDone
}
