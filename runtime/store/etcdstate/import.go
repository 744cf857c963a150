package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"time"

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
//
// The first transaction claims the empty prefix with the import key and
// the last deletes it: two imports cannot both fill one prefix, and Load
// refuses a prefix whose import has not finished, so a daemon never serves
// part of a state as the whole (users missing there would be created again
// by Entra, with new ids and none of their groups).
func (s *State) Import(ctx context.Context, tx *store.Txn) (Stats, error) {
	var stats Stats
	claim, err := s.txn(ctx, func(txn clientv3.Txn) clientv3.Txn {
		return txn.If(clientv3.Compare(clientv3.CreateRevision(s.prefix), "=", 0).WithPrefix()).
			Then(clientv3.OpPut(s.importKey(), time.Now().UTC().Format(time.RFC3339)))
	})
	if err != nil {
		return stats, err
	}
	if !claim.Succeeded {
		resp, err := s.get(ctx, s.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			return stats, err
		}
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
	// Its revision is the import's last write's: no mirror runs during an
	// import, so Applied knows nothing.
	done, err := s.txn(ctx, func(txn clientv3.Txn) clientv3.Txn { return txn.Then(clientv3.OpDelete(s.importKey())) })
	if err != nil {
		return stats, fmt.Errorf("etcdstate: import: the state is in, but the import key %s is left (delete it to load the state): %w", s.importKey(), err)
	}
	stats.Revision = done.Header.Revision
	return stats, nil
}

// importKey exists while an Import fills the prefix (or after one failed).
func (s *State) importKey() string { return s.prefix + "import" }

// errImporting is Load's error for a prefix an Import has not finished.
var errImporting = errors.New("an import into the prefix has not finished")

// notImporting fails when the import key exists at rev.
func (s *State) notImporting(ctx context.Context, rev int64) error {
	resp, err := s.get(ctx, s.importKey(), clientv3.WithRev(rev), clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcdstate: load: %w", err)
	}
	if resp.Count > 0 {
		return fmt.Errorf("etcdstate: load: %w (key %s): wait for it to end; if it failed, clear the prefix (etcdctl del --prefix %s) and import again", errImporting, s.importKey(), s.prefix)
	}
	return nil
}

// txn runs one transaction with the State's timeout.
func (s *State) txn(ctx context.Context, build func(clientv3.Txn) clientv3.Txn) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := build(s.cli.Txn(ctx)).Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	return resp, nil
}
