package daemon

import (
	"sync"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/store"
)

// suspension carries the suspended flag (store.MetaSuspended) from the
// state into the reconciler: `idrecon suspend` writes the flag, and every
// daemon that commits or mirrors the write follows it. So a suspension
// survives a restart, and with several daemons reaches the leader whichever
// daemon the request reached.
type suspension struct {
	mu  sync.Mutex
	rec *reconcile.Reconciler // nil until follow
}

// follow starts carrying the flag into rec, from its value in tx.
func (s *suspension) follow(rec *reconcile.Reconciler, tx *store.Txn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec = rec
	v, _ := tx.MetaValue(store.MetaSuspended)
	s.set(v != "")
}

// observe follows a committed batch's change of the flag (a store
// OnCommit hook: quick, no store calls).
func (s *suspension) observe(changes memdb.Changes) {
	for _, c := range changes {
		if c.Table != store.TableMeta {
			continue
		}
		m, _ := c.After.(*store.Meta)
		if m == nil {
			m, _ = c.Before.(*store.Meta)
		}
		if m == nil || m.Key != store.MetaSuspended {
			continue
		}
		s.mu.Lock()
		s.set(c.After != nil)
		s.mu.Unlock()
	}
}

func (s *suspension) set(on bool) {
	switch {
	case s.rec == nil:
	case on:
		s.rec.Suspend()
	default:
		s.rec.Resume()
	}
}

// setSuspended writes the flag.
func setSuspended(on bool) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if on {
			return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaSuspended, Value: "true"})
		}
		m, err := tx.First(store.TableMeta, store.IndexID, store.MetaSuspended)
		if err != nil || m == nil {
			return err
		}
		return tx.Delete(store.TableMeta, m)
	}
}
