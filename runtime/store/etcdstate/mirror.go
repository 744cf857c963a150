package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
	"github.com/idrecon/idrecon/spec"
)

// ErrCompacted is the watch's error when it fell behind etcd's compaction:
// the mirror missed changes it can no longer read.
var ErrCompacted = errors.New("etcdstate: the mirror fell behind etcd's compaction")

// Run keeps the store a mirror of etcd until ctx ends: it watches the
// store's keys from the revision Load read and applies each response, in one
// store write, through store.Mirror. A watch that breaks (etcd restarted,
// the member lost its leader) is opened again where it stopped; one that
// fell behind etcd's compaction reloads the whole state in one store write
// (readers see the old state until the new one is complete, never half of
// it) and watches on from there.
func (s *State) Run(ctx context.Context) error {
	if s.st == nil {
		return errors.New("etcdstate: Run before Load")
	}
	for {
		err := s.watch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrCompacted) {
			s.log.Warn("the mirror fell behind etcd's compaction; loading the whole state again", "err", err)
			stats, rerr := s.reload(ctx)
			if rerr == nil {
				s.metrics.reloads.Inc()
				s.log.Info("state loaded again", "revision", stats.Revision, "users", stats.Users, "groups", stats.Groups, "took", stats.Elapsed)
				continue
			}
			err = rerr
		}
		s.log.Warn("etcd watch ended; opening it again", "err", err, "revision", s.Applied())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (s *State) watch(ctx context.Context) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	from := s.Applied() + 1
	start, end := s.mirrored()
	for resp := range s.cli.Watch(wctx, start, clientv3.WithRange(end), clientv3.WithRev(from), clientv3.WithProgressNotify()) {
		if resp.CompactRevision != 0 || errors.Is(resp.Err(), rpctypes.ErrCompacted) {
			return fmt.Errorf("%w: wanted revision %d, compacted to %d", ErrCompacted, from, resp.CompactRevision)
		}
		if err := resp.Err(); err != nil {
			return err
		}
		if len(resp.Events) > 0 {
			if s.lag > 0 {
				time.Sleep(s.lag) // tests: a mirror that falls behind
			}
			if err := s.st.Mirror(ctx, func(tx *store.Txn) error { return s.apply(tx, resp.Events) }); err != nil {
				return fmt.Errorf("apply revision %d: %w", resp.Events[len(resp.Events)-1].Kv.ModRevision, err)
			}
			s.advance(resp.Events[len(resp.Events)-1].Kv.ModRevision)
			s.forget(s.Applied())
		} else if resp.IsProgressNotify() {
			s.advance(resp.Header.Revision)
		}
	}
	return errors.New("watch channel closed")
}

// forget drops the floors the watch has passed: no older event can arrive
// after them.
func (s *State) forget(rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.floor {
		if r <= rev {
			delete(s.floor, k)
		}
	}
}

// apply applies one watch response's events to tx, skipping those this
// daemon already holds (its own writes, or older than them). A run of
// membership events of one group (a member PATCH is a hundred of them) is
// applied as one change of the group's members.
func (s *State) apply(tx *store.Txn, events []*clientv3.Event) error {
	var run memberRun
	// decoded holds the users and groups vacate decoded already.
	decoded := make([]any, len(events))
	for i, ev := range events {
		key, rev := string(ev.Kv.Key), ev.Kv.ModRevision
		if i == 0 || rev != events[i-1].Kv.ModRevision {
			if err := s.vacate(tx, events[i:], decoded[i:]); err != nil {
				return err
			}
		}
		if !s.newer(key, rev) {
			continue
		}
		p, ok := s.parse(key)
		if !ok {
			s.seen(key, rev, ev.Type == mvccpb.DELETE)
			continue // index and tick keys: etcd's, not the store's
		}
		if p.group != "" {
			if err := run.add(tx, p.group, p.member, ev.Type != mvccpb.DELETE); err != nil {
				return fmt.Errorf("%s at revision %d: %w", key, rev, err)
			}
			continue
		}
		if err := run.flush(tx); err != nil {
			return fmt.Errorf("before %s at revision %d: %w", key, rev, err)
		}
		var err error
		if ev.Type == mvccpb.DELETE {
			err = s.applyDelete(tx, p)
		} else {
			err = s.applyPut(tx, p, ev.Kv.Value, decoded[i])
		}
		if err != nil {
			return fmt.Errorf("%s at revision %d: %w", key, rev, err)
		}
		s.seen(key, rev, ev.Type == mvccpb.DELETE)
	}
	return run.flush(tx)
}

// memberRun collects consecutive membership events of one group: each
// member's last event wins.
type memberRun struct {
	group  string
	member map[string]bool // member → put (true) or deleted
}

// add records one membership event, first applying the run of another
// group.
func (r *memberRun) add(tx *store.Txn, group, member string, put bool) error {
	if group != r.group {
		if err := r.flush(tx); err != nil {
			return err
		}
		r.group = group
	}
	if r.member == nil {
		r.member = map[string]bool{}
	}
	r.member[member] = put
	return nil
}

// flush applies the run and starts an empty one.
func (r *memberRun) flush(tx *store.Txn) error {
	if len(r.member) == 0 {
		return nil
	}
	var add, remove []string
	for m, put := range r.member {
		if put {
			add = append(add, m)
		} else {
			remove = append(remove, m)
		}
	}
	group := r.group
	clear(r.member)
	if err := tx.MirrorMembers(group, add, remove); err != nil {
		return fmt.Errorf("members of %s: %w", group, err)
	}
	return nil
}

// newer reports whether an event at rev for key is newer than what the
// store holds.
func (s *State) newer(key string, rev int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return rev > s.revs[key] && rev > s.floor[key]
}

func (s *State) seen(key string, rev int64, deleted bool) {
	if deleted {
		s.committed(nil, []string{key}, rev)
	} else {
		s.committed([]string{key}, nil, rev)
	}
}

// vacate removes from tx, before the events of one revision (those that
// start events) are applied, the users and groups that revision deletes
// or renames, decoding the users and groups it puts into decoded. One etcd
// transaction may hand a name from one object to another (a swap: see
// putNames), and the store refuses an object whose name another holds,
// in whichever order the two come; at every revision etcd's index held
// each name once, so with those removed, every name the revision puts is
// free.
func (s *State) vacate(tx *store.Txn, events []*clientv3.Event, decoded []any) error {
	rev := events[0].Kv.ModRevision
	for i, ev := range events {
		key := string(ev.Kv.Key)
		if ev.Kv.ModRevision != rev {
			return nil
		}
		p, ok := s.parse(key)
		if !ok || (p.table != store.TableUsers && p.table != store.TableGroups) || !s.newer(key, rev) {
			continue
		}
		if ev.Type == mvccpb.DELETE {
			if err := s.applyDelete(tx, p); err != nil {
				return fmt.Errorf("%s at revision %d: %w", key, rev, err)
			}
			continue
		}
		obj, err := record.Decode(p.table, ev.Kv.Value)
		if err != nil {
			return fmt.Errorf("%s at revision %d: %w", key, rev, err)
		}
		decoded[i] = obj
		var cur any
		switch o := obj.(type) {
		case *store.User:
			if u, err := tx.UserByID(o.ID); err != nil {
				return err
			} else if u != nil && store.Fold(u.UserName) != store.Fold(o.UserName) {
				cur = u
			}
		case *store.Group:
			if g, err := tx.GroupByID(o.ID); err != nil {
				return err
			} else if g != nil && store.Fold(g.DisplayName) != store.Fold(o.DisplayName) {
				cur = g
			}
		}
		if cur != nil {
			if err := tx.Delete(p.table, cur); err != nil {
				return fmt.Errorf("%s at revision %d: %w", key, rev, err)
			}
		}
	}
	return nil
}

// applyPut puts the record val holds; obj, when not nil, is val decoded.
func (s *State) applyPut(tx *store.Txn, p parsed, val []byte, obj any) error {
	if obj == nil {
		var err error
		if obj, err = record.Decode(p.table, val); err != nil {
			return err
		}
	}
	switch o := obj.(type) {
	case *store.Members:
		return tx.MirrorMembersHeader(p.id, o.Version, o.Modified)
	case *store.Resource:
		if err := keepSecrets(tx, o); err != nil {
			return err
		}
	}
	return tx.Insert(p.table, obj)
}

func (s *State) applyDelete(tx *store.Txn, p parsed) error {
	var obj any
	var err error
	switch p.table {
	case store.TableMembers:
		return tx.MirrorDropMembers(p.id)
	case store.TableResources:
		var r *store.Resource
		r, err = tx.Resource(p.kind, p.name)
		if r != nil {
			obj = r
		}
	case store.TableUsers:
		var u *store.User
		u, err = tx.UserByID(p.id)
		if u != nil {
			obj = u
		}
	case store.TableGroups:
		var g *store.Group
		g, err = tx.GroupByID(p.id)
		if g != nil {
			obj = g
		}
	case store.TableMeta:
		obj, err = tx.First(store.TableMeta, store.IndexID, p.id)
	}
	if err != nil || obj == nil {
		return err
	}
	return tx.Delete(p.table, obj)
}

// keepSecrets carries this daemon's resolved secrets over to a resource
// another daemon wrote: private keys and shared secrets never leave the
// process that resolved them, so the record holds only their fingerprints.
// Where those match what this daemon holds, it keeps its own copy; without
// it, this daemon's reconciler puts it back.
func keepSecrets(tx *store.Txn, r *store.Resource) error {
	cur, err := tx.Resource(r.Kind, r.Name)
	if err != nil || cur == nil {
		return err
	}
	keepSecretsOf(cur, r)
	return nil
}

// keepSecretsOf copies cur's resolved secrets to r where r's fingerprints
// match them.
func keepSecretsOf(cur, r *store.Resource) {
	switch have := cur.Spec.(type) {
	case *spec.Certificate:
		if got, ok := r.Spec.(*spec.Certificate); ok && have.PrivateKey != nil && got.PrivateKey == nil && got.KeyFingerprint == have.KeyFingerprint {
			got.PrivateKey = have.PrivateKey
		}
	case *spec.Gateway:
		if got, ok := r.Spec.(*spec.Gateway); ok && have.SharedSecret != nil && got.SharedSecret != nil &&
			got.SharedSecret.Value == "" && got.SharedSecret.SHA256 == have.SharedSecret.SHA256 {
			got.SharedSecret.Value = have.SharedSecret.Value
		}
	}
}
