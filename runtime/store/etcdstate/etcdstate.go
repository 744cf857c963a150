// Package etcdstate keeps idrecon's runtime state in etcd, so several
// daemons serve one state and a lost disk loses nothing.
//
// Each daemon keeps its go-memdb store as a mirror of the keys under a
// prefix. A State is that store's Journal: every batch of changes is
// committed to etcd in one transaction before the store makes it visible,
// so nothing is acknowledged that etcd has not (a batch of SCIM writes is
// pipelined: see Prepare; batches in flight at once share one etcd
// transaction, each nested with its own compares: see commitGrouped). The
// transaction compares the revision of every
// record it writes with the revision the mirror holds, and puts one index
// key per folded userName and group displayName that must not exist yet,
// so two daemons can never both accept the same name, and a batch computed
// on a stale mirror fails (store.ErrStale) and runs again once the mirror
// caught up. Run feeds the mirror from a watch, applying every daemon's
// writes through store.Mirror; Barrier waits until the mirror
// holds everything etcd acknowledged before it was called, which a request
// arriving at any daemon behind a load balancer needs to see the write
// another daemon just answered.
//
// # Keys
//
//	o/<table>/<id>        a record (package record) of a user, group,
//	                      members row header, meta entry; resources are
//	                      o/resources/<kind>/<name>
//	m/<group>/<member>    one key per direct membership, empty value
//	r/<member>/<group>    the same membership in its member's range,
//	                      written with it; not mirrored (see
//	                      batch.deleted)
//	i/user-name/<fold>    the id of the user whose userName folds to it
//	i/group-name/<fold>   the id of the group whose displayName folds to it
//	o/tick                written by Barrier when nothing else moved
//	txn/<daemon>/<n>      a daemon's markers, one per batch it has in
//	                      flight at once (see commitTxns)
//
// Path parts are escaped with url.PathEscape. The mirror loads and watches
// the m/ and o/ keys only: the index keys are compared by content (a new
// name's key must not exist, an old name's must still hold the object's
// id), the r/ keys only by the revision they changed at, and the other
// keys under the prefix (the markers, the reconcile election, the SAML
// sessions of package samletcd) are not the store's;
// not sending them to every daemon saves etcd and the daemons the work.
//
// Memberships are written in the transaction of their batch while it has
// room (etcd's default limit is 128 operations per transaction); the rest
// follow in transactions of their own (see sendLater), each checking that
// its members and groups still exist and that no other daemon changed
// those memberships since the batch's first transaction (the batch is
// ordered there, so such a change follows it and must not be undone), each
// with a marker as the first, so
// a lost answer is resolved rather than reported; a batch that needs them
// holds one write (see Prepare), so a failure among them is that write's
// alone. Membership puts and
// deletes are idempotent, so a daemon that dies between them leaves a
// state the client's retry (Entra retries what was not answered)
// completes.
package etcdstate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// Defaults for Options.
const (
	DefaultPrefix  = "/idrecon/"
	DefaultTimeout = 5 * time.Second
	// DefaultMaxTxnOps is etcd's default --max-txn-ops: a transaction may
	// hold at most this many operations in any one of its branches.
	DefaultMaxTxnOps = 128
)

// Options configure a State.
type Options struct {
	Client *clientv3.Client // required
	// Prefix is the key prefix of the state (default DefaultPrefix).
	Prefix string
	// MaxTxnOps is the cluster's --max-txn-ops (default DefaultMaxTxnOps,
	// etcd's own): the operations one transaction may hold in any branch.
	// A batch whose object changes need more is refused (store.ErrTooLarge),
	// so a spec change of more documents than fit cannot apply; a cluster
	// started with a higher limit takes larger ones, and a group's members
	// in fewer transactions, once this says so.
	MaxTxnOps int
	// Timeout bounds every call to etcd (default DefaultTimeout), so a lost
	// quorum is an error and not a hang. The default rides out the election
	// that follows the loss of etcd's leader (a second or two), so losing
	// one member of three costs a client nothing.
	Timeout time.Duration
	Logger  *slog.Logger
	// Fence, when set, guards the batches that apply a spec revision (they
	// write the applied-revision meta entry): it returns the key and create
	// revision of this daemon's leadership, which the transaction compares,
	// so a daemon that lost the lead without noticing yet cannot apply.
	// ok false: this daemon does not lead, and such a batch is refused.
	Fence func() (key string, rev int64, ok bool)
}

// ErrNoSpace is wrapped (with store.ErrUnavailable) by Commit's error when
// etcd refuses writes because its database reached its quota: nothing is
// written until an operator frees space (compact, defragment, disarm the
// alarm), so it is not sent again.
var ErrNoSpace = errors.New("etcdstate: etcd is out of space (NOSPACE alarm): writes are refused until its history is compacted, its members defragmented and the alarm disarmed")

// ErrNotLeader is returned by Commit for a spec apply from a daemon that
// does not lead (or no longer leads) the reconciler.
var ErrNotLeader = errors.New("etcdstate: this daemon does not lead the reconciler")

// State is a store's Journal and mirror on etcd. Create it with New, fill
// the store with Load, then keep Run going.
type State struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	maxOps  int // Options.MaxTxnOps
	fence   func() (string, int64, bool)
	// markers are this State's own keys, each holding the nonce of the
	// last transaction that used it (see commitTxns); a batch in flight
	// holds one, so concurrent ones never share a key. freeMarks
	// are those not in use.
	markerBase string
	markerMu   sync.Mutex
	markers    []string
	freeMarks  []string
	log        *slog.Logger
	st         *store.Store

	// revs is, for every record key the mirror holds, the revision it last
	// changed at: what a transaction compares. floor holds, until the
	// watch passes them, the revisions of deletes and of this daemon's own
	// membership writes (Commit applies them before the watch brings
	// them), so an older event arriving late is not applied. Membership
	// keys are not compared with the mirror, so revs does not keep them: a
	// group's membership changes are ordered by its header record's
	// comparison, and a key per membership would cost more than the
	// membership. (A batch's later transactions compare them with the
	// batch's first transaction's revision instead: see laterTxn.) Only
	// the store's committer goroutine writes the maps (Commit, and the
	// Mirror writes Run submits); mu guards them against other readers.
	mu    sync.Mutex
	revs  map[string]int64
	floor map[string]int64

	// lag delays each watch response, for tests of a mirror behind etcd.
	lag     time.Duration
	metrics *metrics

	readMu  sync.Mutex
	readers []chan revRead // callers waiting for the next shared read; guarded by readMu
	reading bool           // readLoop runs; guarded by readMu

	// pending maps each key a batch in flight writes (see Prepare) to a
	// channel closed when that batch is visible or failed.
	pendingMu sync.Mutex
	pending   map[string]chan struct{}

	groupMu sync.Mutex
	queue   []*mainTxn // main transactions waiting for a grouped send; guarded by groupMu
	senders int        // sendLoops running; guarded by groupMu

	appliedMu sync.Mutex
	applied   int64         // the revision the store reflects; guarded by appliedMu
	advanced  chan struct{} // closed when applied grows; guarded by appliedMu
	// fault is why the store does not follow etcd, while Run reloads it
	// after a failure (see Run); stuck: a reload failed too, so Barrier
	// fails at once rather than wait for a revision that is not coming.
	// Guarded by appliedMu.
	fault error
	stuck bool

	// confirmed is Confirmed, as time since born (which reads the
	// monotonic clock, so a change of the wall clock moves neither).
	born      time.Time
	confirmed atomic.Int64
}

var _ store.Pipeline = (*State)(nil)

// New returns a State for opts. It does not contact etcd.
func New(opts Options) (*State, error) {
	if opts.Client == nil {
		return nil, errors.New("etcdstate: Options.Client is required")
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxTxnOps <= 0 {
		opts.MaxTxnOps = DefaultMaxTxnOps
	}
	if opts.MaxTxnOps < minTxnOps {
		return nil, fmt.Errorf("etcdstate: MaxTxnOps %d: want at least %d", opts.MaxTxnOps, minTxnOps)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &State{
		cli: opts.Client, prefix: opts.Prefix, timeout: opts.Timeout, maxOps: opts.MaxTxnOps, log: opts.Logger, fence: opts.Fence, markerBase: opts.Prefix + "txn/" + randomNonce() + "/", metrics: newMetrics(),
		revs: map[string]int64{}, floor: map[string]int64{}, pending: map[string]chan struct{}{}, advanced: make(chan struct{}),
		born: time.Now(),
	}, nil
}

// Stats describes what Load loaded.
type Stats struct {
	Keys, Users, Groups, Memberships, Resources int
	Revision                                    int64
	Elapsed                                     time.Duration
}

// Load reads the state in pages of about pageBytes. etcd answers each
// page with the number of keys from the page's start to the range's end,
// which it counts key by key, so many small pages cost time quadratic in
// the state: a page is sized by bytes, from the keys the page before held
// (membership keys are small and come many to a page), starting at
// firstPage keys and never above maxPage.
const maxPage = 100_000

// Variables so that tests can make pages small.
var (
	firstPage = 2000
	pageBytes = 1 << 20
)

// nextPage returns the number of keys to ask for after a page of kvs.
func nextPage(kvs []*mvccpb.KeyValue) int {
	size := 0
	for _, kv := range kvs {
		size += len(kv.Key) + len(kv.Value)
	}
	if size == 0 {
		return firstPage
	}
	return max(1, min(maxPage, pageBytes/(size/len(kvs)+1)))
}

// Load fills st, which must be empty, with the state under the prefix at
// one revision, read in pages, and makes st the store Run mirrors into.
// Each page goes into st's load as it arrives, so the raw pages of a large
// state are not all held at once.
func (s *State) Load(ctx context.Context, st *store.Store) (Stats, error) {
	start := time.Now()
	var stats Stats
	err := st.Load(func(tx *store.Txn) error {
		l := s.newLoader(tx, nil)
		rev, err := s.readPages(ctx, l.add)
		if err != nil {
			return err
		}
		stats, err = l.finish(rev)
		return err
	})
	if err != nil {
		return stats, err
	}
	s.st = st
	s.advance(stats.Revision)
	s.confirm(start) // the pages' revision was read after start
	stats.Elapsed = time.Since(start)
	return stats, nil
}

// reload replaces the whole store with the state under the prefix now, in
// one store write (readers see the old state or the new, never half), for
// a mirror that fell behind etcd's compaction and cannot replay what it
// missed. The pages go into the write as they arrive, as Load's do: the
// write holds the store's writer meanwhile, which a write computed on the
// stale mirror would wait for anyway. A resource's resolved secrets are
// carried over as the watch does.
func (s *State) reload(ctx context.Context) (Stats, error) {
	start := time.Now()
	var stats Stats
	// The revisions the mirror compares, and the floors, are replaced in
	// the store write (see loader.finish), not after it: the committer
	// runs this write and Commit's, so none sees the new state with the old
	// revisions.
	err := s.st.Mirror(ctx, func(tx *store.Txn) error {
		held, err := tx.Resources("")
		if err != nil {
			return fmt.Errorf("etcdstate: reload: %w", err)
		}
		for _, table := range []string{store.TableUsers, store.TableGroups, store.TableMembers, store.TableResources, store.TableMeta} {
			if _, err := tx.DeleteAll(table, store.IndexID); err != nil {
				return fmt.Errorf("etcdstate: reload: clear %s: %w", table, err)
			}
		}
		l := s.newLoader(tx, held)
		rev, err := s.readPages(ctx, l.add)
		if err != nil {
			return err
		}
		stats, err = l.finish(rev)
		return err
	})
	if err != nil {
		return stats, err
	}
	// Cleared first: Barrier must not see the old fault with the new
	// revision behind etcd's, and fail.
	s.setFault(nil, false)
	s.advance(stats.Revision)
	stats.Elapsed = time.Since(start)
	return stats, nil
}

// readPages reads every key under the prefix at one revision, in pages,
// hands each page to fn and returns the revision.
func (s *State) readPages(ctx context.Context, fn func([]*mvccpb.KeyValue) error) (int64, error) {
	var rev int64
	key, end := s.mirrored()
	limit := firstPage
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(limit))}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.get(ctx, key, opts...)
		if err != nil {
			return 0, fmt.Errorf("etcdstate: load: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			if err := s.notImporting(ctx, rev); err != nil {
				return 0, err
			}
		}
		if err := fn(resp.Kvs); err != nil {
			return 0, err
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		limit = nextPage(resp.Kvs)
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// loader inserts the records of one revision's keys into tx (which holds
// none of them), a page at a time, and makes their revisions the ones the
// mirror compares with.
type loader struct {
	s  *State
	tx *store.Txn
	// held are the resources the store held before, whose resolved
	// secrets the records read carry over (see keepSecrets).
	held    map[[2]string]*store.Resource
	stats   Stats
	revs    map[string]int64
	members map[string][]string // group → member ids, in key order
	headers map[string]*store.Members
}

func (s *State) newLoader(tx *store.Txn, held []*store.Resource) *loader {
	l := &loader{s: s, tx: tx, held: map[[2]string]*store.Resource{}, revs: map[string]int64{}, members: map[string][]string{}, headers: map[string]*store.Members{}}
	for _, r := range held {
		l.held[[2]string{r.Kind, r.Name}] = r
	}
	return l
}

// add inserts the records of one page of keys; memberships wait for finish.
func (l *loader) add(kvs []*mvccpb.KeyValue) error {
	for _, kv := range kvs {
		k := string(kv.Key)
		l.stats.Keys++
		p, ok := l.s.parse(k)
		if !ok || p.group == "" {
			l.revs[k] = kv.ModRevision
		}
		switch {
		case !ok:
			continue
		case p.group != "":
			// A copy: p.member is a slice of the whole key.
			l.members[p.group] = append(l.members[p.group], strings.Clone(p.member))
			l.stats.Memberships++
			continue
		case p.table == store.TableMembers:
			obj, err := decode(p, kv.Value)
			if err != nil {
				return fmt.Errorf("etcdstate: load: %w", &recordError{k, kv.ModRevision, err})
			}
			l.headers[p.id] = obj.(*store.Members)
			continue
		}
		obj, err := decode(p, kv.Value)
		if err != nil {
			return fmt.Errorf("etcdstate: load: %w", &recordError{k, kv.ModRevision, err})
		}
		if r, ok := obj.(*store.Resource); ok {
			if cur := l.held[[2]string{r.Kind, r.Name}]; cur != nil {
				keepSecretsOf(cur, r)
			}
		}
		if err := l.tx.Insert(p.table, obj); err != nil {
			return fmt.Errorf("etcdstate: load: %w", &recordError{k, kv.ModRevision, err})
		}
		switch p.table {
		case store.TableUsers:
			l.stats.Users++
		case store.TableGroups:
			l.stats.Groups++
		case store.TableResources:
			l.stats.Resources++
		}
	}
	return nil
}

// finish inserts the members rows, read at rev, once every user and group
// is in.
func (l *loader) finish(rev int64) (Stats, error) {
	tx, stats := l.tx, l.stats
	stats.Revision = rev
	for gid, ids := range l.members {
		// The store's own strings of the member ids, so that an id is
		// one string however many groups hold it.
		held, unknown, err := tx.Members(ids)
		if err != nil {
			return stats, err
		}
		row := &store.Members{GroupID: gid, IDs: idset.Of(append(held, unknown...)...)}
		// Without a header, a lost follow-up left these memberships behind.
		if h := l.headers[gid]; h != nil {
			row.Version, row.Modified = h.Version, h.Modified
		}
		if err := tx.Insert(store.TableMembers, row); err != nil {
			return stats, err
		}
		delete(l.headers, gid)
	}
	for gid, h := range l.headers {
		if err := tx.Insert(store.TableMembers, &store.Members{GroupID: gid, Version: h.Version, Modified: h.Modified}); err != nil {
			return stats, err
		}
	}
	if err := tx.RebuildMemberOf(); err != nil {
		return stats, err
	}
	// Floors are of revisions the state read holds: the watch starts
	// after them.
	l.s.mu.Lock()
	l.s.revs, l.s.floor = l.revs, map[string]int64{}
	l.s.mu.Unlock()
	return stats, nil
}

// key names.
func (s *State) objectKey(table, id string) string {
	return s.prefix + "o/" + table + "/" + url.PathEscape(id)
}

func (s *State) resourceKey(kind, name string) string {
	return s.prefix + "o/" + store.TableResources + "/" + url.PathEscape(kind) + "/" + url.PathEscape(name)
}

func (s *State) memberKey(group, member string) string {
	return s.prefix + "m/" + url.PathEscape(group) + "/" + url.PathEscape(member)
}

// memberOfKey is the key of a membership in its member's range: with group
// "", the range's prefix.
func (s *State) memberOfKey(member, group string) string {
	return s.prefix + "r/" + url.PathEscape(member) + "/" + url.PathEscape(group)
}

func (s *State) userNameKey(name string) string {
	return s.prefix + "i/user-name/" + url.PathEscape(store.Fold(name))
}

func (s *State) groupNameKey(name string) string {
	return s.prefix + "i/group-name/" + url.PathEscape(store.Fold(name))
}

func (s *State) tickKey() string { return s.prefix + "o/tick" }

// mirrored is the range of keys the mirror holds: m/ up to and with o/.
func (s *State) mirrored() (start, end string) {
	return s.prefix + "m/", clientv3.GetPrefixRangeEnd(s.prefix + "o/")
}

// parsed is what a key under the prefix names.
type parsed struct {
	table, id  string // an object: its table and id (for resources "kind/name" unescaped in kind and name)
	kind, name string // a resource
	group      string // a membership: the group and the member
	member     string
}

func (s *State) parse(key string) (parsed, bool) {
	rest, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return parsed{}, false
	}
	parts := strings.Split(rest, "/")
	unesc := func(p string) (string, bool) {
		v, err := url.PathUnescape(p)
		return v, err == nil
	}
	switch {
	case len(parts) == 3 && parts[0] == "m":
		g, ok1 := unesc(parts[1])
		m, ok2 := unesc(parts[2])
		return parsed{group: g, member: m}, ok1 && ok2
	case len(parts) == 4 && parts[0] == "o" && parts[1] == store.TableResources:
		k, ok1 := unesc(parts[2])
		n, ok2 := unesc(parts[3])
		return parsed{table: store.TableResources, kind: k, name: n}, ok1 && ok2
	case len(parts) == 3 && parts[0] == "o":
		id, ok := unesc(parts[2])
		switch parts[1] {
		case store.TableUsers, store.TableGroups, store.TableMembers, store.TableMeta:
			return parsed{table: parts[1], id: id}, ok
		}
	}
	return parsed{}, false
}

// get reads with the State's timeout.
func (s *State) get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, key, opts...)
	if err != nil {
		return nil, unavailable(err)
	}
	return resp, nil
}

// unavailable wraps an etcd client error as store.ErrUnavailable: timeouts,
// lost quorum and lost connections all leave the outcome of a write
// unknown, so the client is told to retry (SCIM answers 503).
func unavailable(err error) error {
	return fmt.Errorf("%w: etcd: %w", store.ErrUnavailable, err)
}

// outcomeUnknown is unavailable for a write etcd may still commit (its
// answer lost or timed out, and no read could tell it did not, or partly
// committed): see store.ErrOutcomeUnknown. The client's 503 promises
// nothing either way, but a write that lands when quorum returns changed
// the state, and the SCIM server records the attempt.
func outcomeUnknown(err error) error {
	return fmt.Errorf("%w: %w: etcd: %w", store.ErrUnavailable, store.ErrOutcomeUnknown, err)
}

// Applied returns the revision the store reflects.
func (s *State) Applied() int64 {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	return s.applied
}

func (s *State) advance(rev int64) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	if rev > s.applied {
		s.applied = rev
		close(s.advanced)
		s.advanced = make(chan struct{})
	}
}

// ErrStuck is wrapped by Barrier's and Stuck's errors while the mirror
// cannot load the state (a record it cannot decode, say): not a moment's
// lag, but a state that lasts until an operator acts, during which the
// store serves what it held before.
var ErrStuck = errors.New("etcdstate: the mirror cannot follow etcd")

// Stuck returns, while the mirror cannot follow etcd (see ErrStuck), why;
// nil while it follows. It asks etcd nothing.
func (s *State) Stuck() error {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	if !s.stuck {
		return nil
	}
	return fmt.Errorf("%w: it holds revision %d: %w", ErrStuck, s.applied, s.fault)
}

// setFault records why the store does not follow etcd (nil: it does again),
// and whether a reload failed.
func (s *State) setFault(err error, stuck bool) {
	s.appliedMu.Lock()
	defer s.appliedMu.Unlock()
	s.fault, s.stuck = err, stuck
}

// waitApplied returns once the store reflects rev. It fails at once while
// the mirror is stuck (see Run), saying why.
func (s *State) waitApplied(ctx context.Context, rev int64) error {
	for {
		s.appliedMu.Lock()
		applied, ch, fault, stuck := s.applied, s.advanced, s.fault, s.stuck
		s.appliedMu.Unlock()
		if applied >= rev {
			return nil
		}
		if stuck {
			return fmt.Errorf("%w: %w: it holds revision %d, etcd is at %d: %w", store.ErrUnavailable, ErrStuck, applied, rev, fault)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if fault != nil {
				return fmt.Errorf("%w: the mirror is at revision %d, waiting for %d: %w (it is loading the state again: %w)", store.ErrUnavailable, applied, rev, ctx.Err(), fault)
			}
			return fmt.Errorf("%w: the mirror is at revision %d, waiting for %d: %w", store.ErrUnavailable, applied, rev, ctx.Err())
		}
	}
}

// barrierQuiet is how long Barrier waits for the mirror to reach etcd's
// revision before it writes the tick key: other writers may share the
// cluster, so the revision read may have no event under the prefix.
const barrierQuiet = 50 * time.Millisecond

// Barrier returns once the store holds every write etcd acknowledged before
// Barrier was called: one linearizable read gives etcd's revision, and the
// mirror must reach it. Call it before answering a request that may follow
// a write answered by another daemon.
func (s *State) Barrier(ctx context.Context) error {
	start := time.Now()
	err := s.barrier(ctx)
	if err == nil {
		s.confirm(start)
	}
	return err
}

// Confirmed returns when the store was last known to hold everything etcd
// had acknowledged: the start of the last Barrier that succeeded, or of
// Load. A daemon cut off from etcd learns of no write made since; the age
// of this bounds how stale its answers may be.
func (s *State) Confirmed() time.Time {
	return s.born.Add(time.Duration(s.confirmed.Load()))
}

// confirm records that the store held everything etcd had acknowledged at
// t (see Confirmed).
func (s *State) confirm(t time.Time) {
	d := int64(t.Sub(s.born))
	for {
		old := s.confirmed.Load()
		if d <= old || s.confirmed.CompareAndSwap(old, d) {
			return
		}
	}
}

func (s *State) barrier(caller context.Context) error {
	ctx, cancel := context.WithTimeout(caller, s.timeout)
	defer cancel()
	start := time.Now()
	rev, err := s.sharedRevision(ctx)
	if err != nil {
		return unavailable(err)
	}
	since(s.metrics.barrierRead, start)
	start = time.Now()
	defer since(s.metrics.barrierWait, start)
	quiet, stop := context.WithTimeout(ctx, barrierQuiet)
	err = s.waitApplied(quiet, rev)
	stop()
	if err == nil || errors.Is(err, ErrStuck) {
		// Stuck, the mirror reaches no revision: readiness and the
		// request are told why at once.
		return err
	}
	// The revision may belong to a key outside the prefix: write one inside
	// it, whose event the mirror will see, at a revision at least as high.
	put, err := s.cli.Put(clientv3.WithRequireLeader(ctx), s.tickKey(), "")
	if err != nil {
		if !errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
			return unavailable(err)
		}
		// etcd refuses writes, not reads: ask the watch for a progress
		// notification instead, which carries etcd's revision once every
		// event up to it was sent. Only here, because older etcd releases
		// (such as Debian's 3.4.23) may send it ahead of those events (etcd
		// issue 15220).
		// The stream is the watch's: streams are keyed by the context's
		// metadata, here WithRequireLeader's.
		if err := s.cli.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
			return unavailable(err)
		}
		return s.waitApplied(ctx, rev)
	}
	// A watch whose member died reconnects to another: give it the time of
	// a call to do so, from here rather than what the read left over, but
	// no longer than the caller waits (a request gone, a shutdown).
	wctx, cancel := context.WithTimeout(caller, s.timeout)
	defer cancel()
	return s.waitApplied(wctx, put.Header.Revision)
}

// revRead is the outcome of one shared read of etcd's revision.
type revRead struct {
	rev int64
	err error
}

// sharedRevision returns etcd's revision as read by a linearizable read
// that started after the call: concurrent callers share one read, so a
// burst of requests costs a read or two, not one each.
func (s *State) sharedRevision(ctx context.Context) (int64, error) {
	ch := make(chan revRead, 1)
	s.readMu.Lock()
	s.readers = append(s.readers, ch)
	if !s.reading {
		s.reading = true
		go s.readLoop()
	}
	s.readMu.Unlock()
	select {
	case r := <-ch:
		return r.rev, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// readLoop reads etcd's revision for the callers waiting, one read per
// batch of callers that arrived before it started, until none wait.
func (s *State) readLoop() {
	for {
		s.readMu.Lock()
		batch := s.readers
		s.readers = nil
		if len(batch) == 0 {
			s.reading = false
			s.readMu.Unlock()
			return
		}
		s.readMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		resp, err := s.currentRevision(ctx)
		cancel()
		r := revRead{err: err}
		if err == nil {
			r.rev = resp.Header.Revision
		}
		for _, ch := range batch {
			ch <- r
		}
	}
}

// attemptTimeout bounds one read of Barrier: a read stuck on a member that
// died is abandoned and tried again, on another, within the Barrier's time.
const attemptTimeout = time.Second

// currentRevision reads etcd's revision with a linearizable read, trying
// again until ctx ends.
func (s *State) currentRevision(ctx context.Context) (*clientv3.GetResponse, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err := s.cli.Get(actx, s.tickKey(), clientv3.WithCountOnly())
		cancel()
		if err == nil || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// CatchUp waits until the store holds what etcd holds; the store calls it
// after a Commit failed with store.ErrStale.
func (s *State) CatchUp(ctx context.Context) error { return s.Barrier(ctx) }

// compareRev is the revision the mirror holds for key: 0 when the key does
// not exist as far as the mirror knows.
func (s *State) compareRev(key string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revs[key]
}

// committed records that record keys were put (or deleted) at rev.
func (s *State) committed(puts, dels []string, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range puts {
		s.revs[k] = rev
		delete(s.floor, k)
	}
	for _, k := range dels {
		delete(s.revs, k)
		s.floor[k] = rev
	}
}

// wroteMembers records that this daemon put or deleted membership keys at
// rev and holds the result already.
func (s *State) wroteMembers(ms []memberOp, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms {
		s.floor[m.key] = rev
	}
}

// Commit writes a batch of store changes to etcd: every object and index
// key in one transaction that holds only if none of them changed since the
// mirror saw them, memberships with it while there is room and after it
// otherwise. A failed comparison is store.ErrStale. The store makes the
// batch visible when Commit returns.
func (s *State) Commit(changes memdb.Changes) error {
	b, err := s.prepare(changes)
	if err != nil || b == nil {
		return err
	}
	revs, err := s.send(b, false)
	if err != nil {
		return err
	}
	// Recorded only once every transaction succeeded: if one fails, the
	// store discards the batch, and the mirror applies what did commit
	// when the watch brings it.
	s.committed(b.puts, b.dels, revs[0])
	for i, chunk := range b.chunks() {
		s.wroteMembers(chunk, revs[i])
	}
	return nil
}

// Prepare implements store.Pipeline: a batch of SCIM writes is sent while
// the store goes on, and becomes visible when the watch brings it back (so
// Run applies this daemon's writes as it applies the others'). A batch that
// applies a spec revision, or changes a resource, takes Commit's path. A
// batch of several writes whose memberships do not fit its first
// transaction is refused (see store.Pipeline): should a later one fail (see
// sendLater), only the write it is part of may be answered so.
func (s *State) Prepare(changes memdb.Changes, writes int) (func(released func()) error, bool, error) {
	b, err := s.prepare(changes)
	if err == nil && b != nil && writes > 1 {
		if n := len(b.chunks()); n > 1 {
			err = fmt.Errorf("etcdstate: %w: %d writes whose memberships take %d transactions go one by one", store.ErrTooLarge, writes, n)
		}
	}
	if err != nil || b == nil || b.applies || b.local {
		return nil, false, err
	}
	done := s.hold(b)
	return func(released func()) error {
		defer s.release(b, done)
		revs, err := s.send(b, true)
		released()
		if err != nil {
			return err
		}
		// Committed, so acknowledged whatever the watch does: waiting is
		// for this daemon to read its own write, and a watch that is late
		// (reconnecting to another member) is logged, not an error. The
		// next SCIM request's Barrier waits for it anyway. (A later
		// transaction left with nothing to send has revision 0.)
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		if err := s.waitApplied(ctx, slices.Max(revs)); err != nil {
			s.log.Warn("a committed batch is not in the mirror yet", "err", err)
		}
		return nil
	}, true, nil
}

// prepare turns a batch of store changes into etcd operations, comparing
// with the revisions the mirror holds now; nil when etcd holds none of it.
func (s *State) prepare(changes memdb.Changes) (*batch, error) {
	b := &batch{s: s}
	for i := range changes {
		if err := b.add(&changes[i]); err != nil {
			return nil, err
		}
	}
	b.putNames()
	b.compareGroupsGone()
	if len(b.ops) == 0 && len(b.members) == 0 {
		return nil, nil
	}
	if b.applies && s.fence != nil {
		key, rev, ok := s.fence()
		if !ok {
			return nil, ErrNotLeader
		}
		b.cmps = append(b.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", rev))
	}
	b.markMade()
	// +1 for the marker's put, and for the compare of the marker when the
	// transaction is sent again (see commitMarked).
	if len(b.ops)+1 > s.maxOps || len(b.cmps)+1 > s.maxOps {
		return nil, fmt.Errorf("etcdstate: %w: %d operations, over etcd's --max-txn-ops of %d", store.ErrTooLarge, max(len(b.ops), len(b.cmps))+1, s.maxOps)
	}
	if err := s.busy(b); err != nil {
		return nil, err
	}
	return b, nil
}

// keys calls fn with every key the batch writes.
func (b *batch) keys(fn func(string)) {
	for k := range b.index {
		fn(k)
	}
	for _, m := range b.members {
		fn(m.key)
	}
}

// busy returns a store.PendingError if a batch in flight writes one of b's
// keys.
func (s *State) busy(b *batch) error {
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	var err error
	b.keys(func(k string) {
		if ch, ok := s.pending[k]; ok && err == nil {
			err = &store.PendingError{Done: ch}
		}
	})
	return err
}

// hold marks b's keys as written by a batch in flight.
func (s *State) hold(b *batch) chan struct{} {
	done := make(chan struct{})
	s.pendingMu.Lock()
	defer s.pendingMu.Unlock()
	b.keys(func(k string) { s.pending[k] = done })
	return done
}

// release ends hold: b is visible, or failed.
func (s *State) release(b *batch, done chan struct{}) {
	s.pendingMu.Lock()
	b.keys(func(k string) { delete(s.pending, k) })
	s.pendingMu.Unlock()
	close(done)
}

// chunks splits the batch's memberships into the transactions that carry
// them: the first shares the main transaction (one operation is the
// marker, one compare is left for the marker's when it is sent again, see
// commitMarked) while its operations and its compares (an added member's
// existence) fit, the rest go as many as fit with a marker at a time.
func (b *batch) chunks() [][]memberOp {
	maxOps := b.s.maxOps
	nops, ncmps, n := len(b.ops)+1, len(b.cmps)+1, 0
	for _, m := range b.members {
		c := 0
		if m.must != "" {
			c = 1
		}
		if nops+opsPerMember > maxOps || ncmps+c > maxOps {
			break
		}
		nops, ncmps, n = nops+opsPerMember, ncmps+c, n+1
	}
	first := b.members[:n]
	out := [][]memberOp{first}
	for rest := b.members[len(first):]; len(rest) > 0; {
		chunk := rest[:laterChunk(rest, maxOps)]
		rest = rest[len(chunk):]
		out = append(out, chunk)
	}
	return out
}

// laterChunk is how many of ms, from the first, a transaction after a
// batch's first carries: their operations with its marker's put, and
// their compares (see laterTxn) with the marker's when it is sent again,
// fit maxOps. At least one: minTxnOps leaves room for any membership.
func laterChunk(ms []memberOp, maxOps int) int {
	nops, ncmps := 1, 1
	groups := map[string]bool{}
	for i, m := range ms {
		c := laterCmps(m, groups)
		if i > 0 && (nops+opsPerMember > maxOps || ncmps+c > maxOps) {
			return i
		}
		nops, ncmps = nops+opsPerMember, ncmps+c
		if !m.del {
			groups[m.group] = true
		}
	}
	return len(ms)
}

// laterCmps is how many compares m adds to a transaction after its batch's
// first (see laterTxn), where groups are those of the members it adds
// already: a removal compares its key; an add its member's object (see
// exist) and, the first of its group, the group and its header (see
// groupsExist).
func laterCmps(m memberOp, groups map[string]bool) int {
	if m.del {
		return 1
	}
	c := 0
	if m.must != "" || m.made != "" {
		c++
	}
	if !groups[m.group] {
		c += 2
	}
	return c
}

// minTxnOps is the least MaxTxnOps taken: a transaction after a batch's
// first must carry a membership (an add of a new group's member compares
// three keys, and the marker's), and a batch its marker and an object with
// its name's index key and their compares.
const minTxnOps = 8

// send commits a prepared batch and returns the revision of each of its
// transactions, the main one first. grouped: its main transaction may share
// an etcd transaction with other batches' (see commitGrouped).
func (s *State) send(b *batch, grouped bool) ([]int64, error) {
	chunks := b.chunks()
	start := time.Now()
	defer since(s.metrics.commit, start)
	t := &mainTxn{cmps: slices.Concat(b.cmps, exist(chunks[0], false)), ops: append(b.ops, ops(chunks[0])...)}
	if grouped && len(chunks) == 1 {
		s.commitGrouped(t)
	} else {
		s.commitTxns([]*mainTxn{t})
	}
	rev, err := t.rev, t.err
	if errors.Is(err, store.ErrStale) && b.applies && s.fence != nil && !s.stillLeads() {
		return nil, ErrNotLeader
	}
	if errors.Is(err, store.ErrStale) {
		s.metrics.stale.Inc()
	}
	if err != nil {
		return nil, err
	}
	// The batch committed with its first transaction: what follows must
	// not be reported as not committed (store.ErrStale), or the store
	// runs its writes again, on a state that holds them (a create would
	// find its userName taken).
	revs := []int64{rev}
	dropped := false
	for _, chunk := range chunks[1:] {
		rev, gone, err := s.sendLater(chunk, revs[0])
		if err != nil {
			// Its outcome is unknown (etcd unreachable for a whole
			// commitMarked, the markers unreadable): the batch is partly
			// applied, and store.ErrUnavailable (SCIM's 503) is the
			// truthful answer. The client's retry is safe: it runs on
			// a mirror that holds the memberships that were written, a
			// member added again or removed again is no change (see
			// store.ChangeMembers), and the rest is written again. The
			// batch is one write (Prepare refuses several that need a
			// later transaction), which changed the state: its outcome
			// is unknown to the client, whatever sendLater could tell.
			if !errors.Is(err, store.ErrOutcomeUnknown) {
				err = fmt.Errorf("%w: %w (the batch's first transaction committed): %w", store.ErrUnavailable, store.ErrOutcomeUnknown, err)
			}
			return nil, err
		}
		dropped = dropped || gone
		revs = append(revs, rev)
	}
	if dropped && !grouped {
		// Commit's store makes its own copy of the batch visible, with
		// the memberships that were dropped. Reported stale, the store
		// discards it instead, the mirror applies what committed when
		// the watch brings it, and the writes (the reconciler's, which
		// find their work done) run again.
		return nil, fmt.Errorf("%w: a member added, or its group, was deleted after the batch's first transaction, or another daemon changed a membership it changes", store.ErrStale)
	}
	return revs, nil
}

// sendLater commits one of a batch's transactions after the first, which
// committed at revision first, through commitMarked, so a lost answer is
// resolved and not reported: it returns the transaction's revision, 0 when
// nothing was left to send.
//
// Another daemon that saw the first transaction may meanwhile delete a
// member added or its group, with the memberships it knows, or change
// memberships this one changes: the transaction's compares then fail. The
// batch is ordered at its first transaction, so what another daemon did
// since follows it and must stay. Memberships of objects that are gone,
// removals of a membership written since, and adds of one that exists
// now are dropped (gone true) and the rest sent again: the outcome is
// the batch's followed by those writes. An add of a membership that does
// not exist, to a group whose members another daemon changed since, is
// not: that daemon may have added and removed it again, which leaves no
// trace to compare, so the batch's outcome is unknown (the client's retry
// adds it, after that removal).
func (s *State) sendLater(chunk []memberOp, first int64) (rev int64, gone bool, err error) {
	for tries := 0; len(chunk) > 0; {
		t := laterTxn(chunk, first)
		s.commitMarked([]*mainTxn{t})
		if !errors.Is(t.err, store.ErrStale) {
			return t.rev, gone, t.err
		}
		// The keys compared, and those of the adds: ordered by their
		// group's header, which shows no single membership's change.
		var keys []string
		for i := range t.cmps {
			keys = append(keys, string(t.cmps[i].KeyBytes()))
		}
		for _, m := range chunk {
			if !m.del {
				keys = append(keys, m.key)
			}
		}
		revs, err := s.modRevisions(keys)
		if err != nil {
			return 0, gone, unavailable(err)
		}
		missing := func(k string) bool {
			_, ok := revs[k]
			return k != "" && !ok
		}
		var unsure []string
		kept := slices.DeleteFunc(slices.Clone(chunk), func(m memberOp) bool {
			switch {
			case m.del:
				return revs[m.key] > first
			case missing(m.must) || missing(m.made) || missing(m.group):
				return true
			case revs[m.header] == first:
				return false
			case !missing(m.key):
				return true
			}
			unsure = append(unsure, m.member)
			return false
		})
		if len(unsure) > 0 {
			return 0, gone, fmt.Errorf("%w: %w: the members of a group changed after the batch's first transaction, which added %d of them, such as %s, that may have been added and removed since", store.ErrUnavailable, store.ErrOutcomeUnknown, len(unsure), unsure[0])
		}
		if len(kept) == len(chunk) {
			// Nothing is gone now: an object deleted and created again
			// in between. Bounded, as commitTxns is.
			if tries++; tries == commitTries {
				return 0, gone, fmt.Errorf("%w: %w", store.ErrUnavailable, t.err)
			}
			continue
		}
		chunk, gone = kept, true
	}
	return 0, gone, nil
}

// laterTxn is the transaction that carries chunk after its batch's first,
// which committed at revision first: besides their existence (see exist,
// groupsExist), it compares that no other daemon changed since first a
// membership it removes (its key's revision) or the members of a group
// it adds to (the group's header, which the first transaction wrote). A
// key deleted leaves no revision, so an add, which another daemon may
// have made and undone, cannot compare its own key.
func laterTxn(chunk []memberOp, first int64) *mainTxn {
	cmps := slices.Concat(exist(chunk, true), groupsExist(chunk, first))
	for _, m := range chunk {
		if m.del {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(m.key), "<", first+1))
		}
	}
	return &mainTxn{cmps: cmps, ops: ops(chunk)}
}

// modRevisions returns the revision of each of keys that exists, read in
// transactions of at most maxOps reads. They need not be read at one
// revision: a change in between fails the next attempt's compares again.
func (s *State) modRevisions(keys []string) (map[string]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	slices.Sort(keys)
	out := map[string]int64{}
	for page := range slices.Chunk(slices.Compact(keys), s.maxOps) {
		gets := make([]clientv3.Op, len(page))
		for i, k := range page {
			gets[i] = clientv3.OpGet(k, clientv3.WithKeysOnly())
		}
		resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).Then(gets...).Commit()
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) == 1 {
				out[string(kvs[0].Key)] = kvs[0].ModRevision
			}
		}
	}
	return out, nil
}

// stillLeads reads whether this daemon's leadership key is still the one
// its fence names.
func (s *State) stillLeads() bool {
	key, rev, ok := s.fence()
	if !ok {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	return err == nil && len(resp.Kvs) == 1 && resp.Kvs[0].CreateRevision == rev
}

// marker takes a marker key for one transaction; put it back with
// releaseMarker.
func (s *State) marker() string {
	s.markerMu.Lock()
	defer s.markerMu.Unlock()
	if n := len(s.freeMarks); n > 0 {
		k := s.freeMarks[n-1]
		s.freeMarks = s.freeMarks[:n-1]
		return k
	}
	k := s.markerBase + fmt.Sprint(len(s.markers))
	s.markers = append(s.markers, k)
	return k
}

func (s *State) releaseMarker(k string) {
	s.markerMu.Lock()
	defer s.markerMu.Unlock()
	s.freeMarks = append(s.freeMarks, k)
}

// Close deletes this State's marker keys (one per batch it had in flight
// at once, and one per batch whose outcome etcd left unknown); a daemon
// that crashes leaves them, a few small keys that nothing reads.
func (s *State) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.cli.Delete(ctx, s.markerBase, clientv3.WithPrefix())
	return err
}

// tooLarge reports whether err is etcd's or gRPC's refusal of a request
// for its size: etcd's --max-request-bytes or --max-txn-ops, or a message
// larger than the client may send or the server receive.
func tooLarge(err error) bool {
	switch rpctypes.Error(err) {
	case rpctypes.ErrRequestTooLarge, rpctypes.ErrTooManyOps:
		// Too many operations: the cluster's --max-txn-ops is below
		// Options.MaxTxnOps.
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max")
}

func randomNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// memberOp puts (or, with del, deletes) one membership: its key, and its
// key in the member's range (of), which a delete of the member compares
// (see batch.deleted); the two go in one transaction. must, when set, is
// the key of the member's object, which must exist when the membership is
// put. made, when set, is the key of the member's object when the batch
// creates it: its first transaction does, so only later ones compare it.
type memberOp struct {
	key    string
	of     string
	group  string // the key of the group's object
	header string // the key of the group's members header
	member string // the member's id
	del    bool
	must   string
	made   string
}

// exist returns the compares that the members ms adds still exist; later:
// in a transaction after the batch's first, where those the batch created
// may have been deleted by another daemon that saw them.
func exist(ms []memberOp, later bool) []clientv3.Cmp {
	var out []clientv3.Cmp
	for _, m := range ms {
		k := m.must
		if k == "" && later {
			k = m.made
		}
		if k != "" {
			out = append(out, clientv3.Compare(clientv3.CreateRevision(k), ">", 0))
		}
	}
	return out
}

// groupsExist returns the compares that the groups ms adds members to
// still exist, and that their members header is the one the batch's first
// transaction wrote at revision first, for a transaction after it: another
// daemon may have seen the first and deleted the group, with the
// memberships it knew, or changed its members, since. (The first compares
// its groups in the batch's compares, and a group it creates exists once
// it committed.)
func groupsExist(ms []memberOp, first int64) []clientv3.Cmp {
	var out []clientv3.Cmp
	seen := map[string]bool{}
	for _, m := range ms {
		if !m.del && !seen[m.group] {
			seen[m.group] = true
			out = append(out, clientv3.Compare(clientv3.CreateRevision(m.group), ">", 0), clientv3.Compare(clientv3.ModRevision(m.header), "=", first))
		}
	}
	return out
}

func ops(ms []memberOp) []clientv3.Op {
	out := make([]clientv3.Op, 0, opsPerMember*len(ms))
	for _, m := range ms {
		if m.del {
			out = append(out, clientv3.OpDelete(m.key), clientv3.OpDelete(m.of))
		} else {
			out = append(out, clientv3.OpPut(m.key, ""), clientv3.OpPut(m.of, ""))
		}
	}
	return out
}

// opsPerMember is the operations of one memberOp.
const opsPerMember = 2
