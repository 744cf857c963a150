package etcdstate

import (
	"context"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/store"
)

// importChunk is how many objects one Import transaction carries: each is
// an object key and at most one index key, well inside DefaultMaxTxnOps.
const importChunk = 50

// Import copies the state tx holds (a single daemon's, loaded from its data
// dir) into the prefix, which must be empty, so that daemons started with
// the prefix serve it. It is for migrating a stopped daemon: the copy is
// written in many transactions, and a failed import leaves the prefix
// non-empty, to be cleared (etcdctl del --prefix) before trying again.
func (s *State) Import(ctx context.Context, tx *store.Txn) (Stats, error) {
	var stats Stats
	resp, err := s.get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return stats, err
	}
	if resp.Count > 0 {
		return stats, fmt.Errorf("etcdstate: %d keys under %s already; import into an empty prefix (clear it with etcdctl del --prefix %s)", resp.Count, s.prefix, s.prefix)
	}
	for _, table := range []string{store.TableMeta, store.TableResources, store.TableGroups, store.TableUsers, store.TableMembers} {
		it, err := tx.Get(table, store.IndexID)
		if err != nil {
			return stats, err
		}
		var chunk memdb.Changes
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			err := s.Commit(chunk)
			chunk = chunk[:0]
			return err
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			chunk = append(chunk, memdb.Change{Table: table, After: obj})
			switch o := obj.(type) {
			case *store.User:
				stats.Users++
			case *store.Group:
				stats.Groups++
			case *store.Resource:
				stats.Resources++
			case *store.Members:
				stats.Memberships += o.IDs.Len()
			}
			stats.Keys++
			if len(chunk) == importChunk {
				if err := flush(); err != nil {
					return stats, fmt.Errorf("etcdstate: import %s: %w", table, err)
				}
			}
		}
		if err := flush(); err != nil {
			return stats, fmt.Errorf("etcdstate: import %s: %w", table, err)
		}
	}
	// No mirror runs during an import, so Applied knows nothing: ask
	// etcd, whose revision now is at least the last import write's.
	resp, err = s.get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return stats, err
	}
	stats.Revision = resp.Header.Revision
	return stats, nil
}
