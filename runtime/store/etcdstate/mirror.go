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

// errUnapplied is the watch's error when the store did not take a watch
// response: the events after it cannot be applied either.
var errUnapplied = errors.New("etcdstate: the mirror cannot apply a change")

// recordError is an error applying or loading one key's event or record:
// Run logs the key and revision, and Barrier reports them.
type recordError struct {
	key string
	rev int64
	err error
}

func (e *recordError) Error() string {
	return fmt.Sprintf("%s at revision %d: %v", e.key, e.rev, e.err)
}
func (e *recordError) Unwrap() error { return e.err }

// Run keeps the store a mirror of etcd until ctx ends: it watches the
// store's keys from the revision Load read and applies each response, in one
// store write, through store.Mirror. A watch that breaks (etcd restarted,
// the member lost its leader) is opened again where it stopped. A mirror
// that fell behind etcd's compaction, or that cannot apply a response (a
// record this daemon cannot decode, a state its store refuses), reloads
// the whole state in one store write (readers see the old state until the
// new one is complete, never half of it) and watches on from there: a
// response not applied cannot be stepped over, as the changes after it
// build on it, and the reload is the one way past it that leaves nothing
// out.
//
// A reload can fail too, and for as long as what made the response
// unappliable stays (a record only a newer idrecon reads, or one written
// by hand): Load refuses such a state, and the mirror does too, rather
// than serve one without the record (a user missing here would be created
// again by Entra, a resource missing would change what the gateways
// enforce). The store keeps the last whole state it held, Barrier fails at
// once saying why (so readiness shows it and SCIM answers 503 here rather
// than from a state that does not follow etcd), and the reload is tried
// again, less and less often (see backoff), until the record is fixed or
// deleted, or idrecon upgraded. Each new reason is logged once.
func (s *State) Run(ctx context.Context) error {
	if s.st == nil {
		return errors.New("etcdstate: Run before Load")
	}
	var retry backoff
	for {
		err := s.watch(ctx)
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return nil
		}
		var wait time.Duration
		switch {
		case errors.Is(err, ErrCompacted):
			s.log.Warn("the mirror fell behind etcd's compaction; loading the whole state again", "err", err)
		case errors.Is(err, errUnapplied):
			// Logged with the reload's outcome, once. Until it is
			// done, Barrier's timeout says why it waited.
			s.setFault(err, false)
			wait = retry.next(time.Now())
		default:
			s.log.Warn("etcd watch ended; opening it again", "err", err, "revision", s.Applied())
			if !sleep(ctx, 200*time.Millisecond) {
				return nil
			}
			continue
		}
		if !s.reloadUntilDone(ctx, err, wait, &retry) {
			return nil
		}
	}
}

// reloadUntilDone loads the whole state again, after wait, as often as it
// takes; why is what made it necessary. false: ctx ended first.
func (s *State) reloadUntilDone(ctx context.Context, why error, wait time.Duration, retry *backoff) bool {
	logged, tries := "", 0
	for {
		if !sleep(ctx, wait) {
			return false
		}
		tries++
		stats, err := s.reload(ctx)
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return false
		}
		if err == nil {
			s.metrics.reloads.Inc()
			attrs := []any{"loaded_revision", stats.Revision, "users", stats.Users, "groups", stats.Groups, "took", stats.Elapsed}
			switch {
			case logged != "":
				s.log.Info("the mirror follows etcd again: state loaded", append(attrs, "tries", tries)...)
			case errors.Is(why, errUnapplied):
				s.log.Warn("the mirror could not apply a change; loaded the whole state again", append(attrs, keyAttrs(why, "err")...)...)
			default:
				s.log.Info("state loaded again", attrs...)
			}
			return true
		}
		wait = retry.next(time.Now())
		fault := fmt.Errorf("%w; loading the state again failed (%d tries, the next in %v): %w", why, tries, wait.Round(time.Millisecond), err)
		s.setFault(fault, true)
		if msg := err.Error(); msg != logged {
			logged = msg
			// The key and revision of the record the load refused, or
			// else of the change the watch could not apply.
			attrs := keyAttrs(err, "err")
			if _, ok := errors.AsType[*recordError](err); !ok {
				attrs = append(keyAttrs(why, "cause"), "err", err)
			}
			s.log.Error("the mirror cannot follow etcd: the state cannot be loaded; this daemon keeps the older state it holds, and its Barrier fails, until it can",
				append(attrs, "revision_held", s.Applied(), "retry_in", wait)...)
		} else {
			s.log.Debug("loading the state again failed", "err", err, "retry_in", wait)
		}
	}
}

// keyAttrs returns the log attributes of err (as name): with the key and
// revision of the record it is about, when it is about one.
func keyAttrs(err error, name string) []any {
	if re, ok := errors.AsType[*recordError](err); ok {
		return []any{"key", re.key, "revision", re.rev, name, err}
	}
	return []any{name, err}
}

// sleep waits d; false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// retryMin and retryMax bound the wait before loading the state again
// after a load failed; variables so that tests can shorten them.
var (
	retryMin = 200 * time.Millisecond
	retryMax = 30 * time.Second
)

// backoff spaces the reloads of a mirror that keeps failing: the first
// after a quiet while goes at once, the next after retryMin, each later
// one twice as late as the one before, up to retryMax.
type backoff struct {
	tries int
	last  time.Time
}

// next returns how long to wait before the next reload, after a failure
// at now.
func (b *backoff) next(now time.Time) time.Duration {
	if now.Sub(b.last) > 2*retryMax {
		b.tries = 0
	}
	b.last = now
	b.tries++
	if b.tries == 1 {
		return 0
	}
	d := retryMin
	for i := 2; i < b.tries && d < retryMax; i++ {
		d *= 2
	}
	return min(d, retryMax)
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
				if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
					return err
				}
				return fmt.Errorf("%w: revisions %d to %d: %w", errUnapplied, resp.Events[0].Kv.ModRevision, resp.Events[len(resp.Events)-1].Kv.ModRevision, err)
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
//
// The revisions the mirror compares change only once every event is in tx:
// a response the store does not take leaves them as the store is (see
// held). The store commits tx after this returns, which only the
// impossible (a store index refusing what this built) can fail, and then
// Run reloads the whole state, revisions included.
func (s *State) apply(tx *store.Txn, events []*clientv3.Event) error {
	var run memberRun
	h := held{s: s, revs: map[string]heldRev{}}
	// decoded holds the users and groups vacate decoded already.
	decoded := make([]any, len(events))
	for i, ev := range events {
		key, rev := string(ev.Kv.Key), ev.Kv.ModRevision
		if i == 0 || rev != events[i-1].Kv.ModRevision {
			if err := s.vacate(tx, &h, events[i:], decoded[i:]); err != nil {
				return err
			}
		}
		if !h.newer(key, rev) {
			continue
		}
		p, ok := s.parse(key)
		if !ok {
			h.seen(key, rev, ev.Type == mvccpb.DELETE)
			continue // index and tick keys: etcd's, not the store's
		}
		if p.group != "" {
			if err := run.add(tx, p.group, p.member, ev.Type != mvccpb.DELETE, key, rev); err != nil {
				return err
			}
			continue
		}
		if err := run.flush(tx); err != nil {
			return err
		}
		var err error
		if ev.Type == mvccpb.DELETE {
			err = s.applyDelete(tx, p)
		} else {
			err = s.applyPut(tx, p, ev.Kv.Value, decoded[i])
		}
		if err != nil {
			return &recordError{key, rev, err}
		}
		h.seen(key, rev, ev.Type == mvccpb.DELETE)
	}
	if err := run.flush(tx); err != nil {
		return err
	}
	h.keep()
	return nil
}

// held is what one watch response changes in the revisions the mirror
// compares (State.revs and floor), kept apart until the response is
// applied whole: recorded for events whose changes the store then
// discarded, those revisions would let a write computed on the older
// record pass etcd's compare and overwrite the newer one, and make the
// watch pass over the events as held when it brings them again.
type held struct {
	s    *State
	revs map[string]heldRev
}

type heldRev struct {
	rev     int64
	deleted bool
}

// newer is State.newer, seeing the events of the response seen so far.
func (h *held) newer(key string, rev int64) bool {
	if r, ok := h.revs[key]; ok {
		return rev > r.rev
	}
	return h.s.newer(key, rev)
}

func (h *held) seen(key string, rev int64, deleted bool) {
	h.revs[key] = heldRev{rev, deleted}
}

// keep records the response's revisions in the State.
func (h *held) keep() {
	for k, r := range h.revs {
		if r.deleted {
			h.s.committed(nil, []string{k}, r.rev)
		} else {
			h.s.committed([]string{k}, nil, r.rev)
		}
	}
}

// memberRun collects consecutive membership events of one group: each
// member's last event wins.
type memberRun struct {
	group  string
	member map[string]bool // member → put (true) or deleted
	// key and rev are the run's last event's, for an error.
	key string
	rev int64
}

// add records one membership event (of key, at rev), first applying the
// run of another group.
func (r *memberRun) add(tx *store.Txn, group, member string, put bool, key string, rev int64) error {
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
	r.key, r.rev = key, rev
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
		return &recordError{r.key, r.rev, fmt.Errorf("members of %s: %w", group, err)}
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

// vacate removes from tx, before the events of one revision (those that
// start events) are applied, the users and groups that revision deletes
// or renames, decoding the users and groups it puts into decoded. One etcd
// transaction may hand a name from one object to another (a swap: see
// putNames), and the store refuses an object whose name another holds,
// in whichever order the two come; at every revision etcd's index held
// each name once, so with those removed, every name the revision puts is
// free.
func (s *State) vacate(tx *store.Txn, h *held, events []*clientv3.Event, decoded []any) error {
	rev := events[0].Kv.ModRevision
	for i, ev := range events {
		key := string(ev.Kv.Key)
		if ev.Kv.ModRevision != rev {
			return nil
		}
		p, ok := s.parse(key)
		if !ok || (p.table != store.TableUsers && p.table != store.TableGroups) || !h.newer(key, rev) {
			continue
		}
		if ev.Type == mvccpb.DELETE {
			if err := s.applyDelete(tx, p); err != nil {
				return &recordError{key, rev, err}
			}
			continue
		}
		obj, err := decode(p, ev.Kv.Value)
		if err != nil {
			return &recordError{key, rev, err}
		}
		decoded[i] = obj
		var cur any
		switch o := obj.(type) {
		case *store.User:
			if u, err := tx.UserByID(o.ID); err != nil {
				return &recordError{key, rev, err}
			} else if u != nil && store.Fold(u.UserName) != store.Fold(o.UserName) {
				cur = u
			}
		case *store.Group:
			if g, err := tx.GroupByID(o.ID); err != nil {
				return &recordError{key, rev, err}
			} else if g != nil && store.Fold(g.DisplayName) != store.Fold(o.DisplayName) {
				cur = g
			}
		}
		if cur != nil {
			if err := tx.Delete(p.table, cur); err != nil {
				return &recordError{key, rev, err}
			}
		}
	}
	return nil
}

// applyPut puts the record val holds; obj, when not nil, is val decoded.
func (s *State) applyPut(tx *store.Txn, p parsed, val []byte, obj any) error {
	if obj == nil {
		var err error
		if obj, err = decode(p, val); err != nil {
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

// errMisfiled is the error of a record under a key that names another
// object than the record holds.
var errMisfiled = errors.New("the record is not of the object its key names")

// decode decodes the record val, read under the key p was parsed from. It
// refuses a record of another object than its key names (written by a tool
// with a bug, by hand, by a restore gone wrong), as it refuses one that
// does not decode: mirrored, the record would be that other object while
// etcd compares and deletes the key's, so the mirrors would disagree with
// etcd on what exists, and name checks and deletes would act on the wrong
// key.
func decode(p parsed, val []byte) (any, error) {
	obj, err := record.Decode(p.table, val)
	if err != nil {
		return nil, err
	}
	var id string
	switch o := obj.(type) {
	case *store.User:
		id = o.ID
	case *store.Group:
		id = o.ID
	case *store.Members:
		id = o.GroupID
	case *store.Meta:
		id = o.Key
	case *store.Resource:
		if o.Kind != p.kind || o.Name != p.name {
			return nil, fmt.Errorf("%w: it holds %s %q", errMisfiled, p.table, o.Kind+"/"+o.Name)
		}
		return obj, nil
	default:
		return nil, fmt.Errorf("%w: it holds a %T", errMisfiled, obj)
	}
	if id != p.id {
		return nil, fmt.Errorf("%w: it holds %s %q", errMisfiled, p.table, id)
	}
	return obj, nil
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
