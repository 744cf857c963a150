package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store/internal/hamt"
)

// ErrClosed is returned by Update after Close.
var ErrClosed = errors.New("store: closed")

// ErrGroupNameTaken is returned when a group would take a displayName
// another group holds (as Fold compares them). The SCIM server checks first
// and answers 409; this keeps memdb's unique index, which an insert would
// silently take over, from hiding the other group.
var ErrGroupNameTaken = errors.New("store: displayName is taken")

// Journal makes committed changes durable. Commit must not return until the
// changes are on stable storage; when it fails, the batch is discarded and
// every writer in it gets the error, so nothing is acknowledged that is lost.
// Commit is called from one goroutine at a time.
type Journal interface {
	Commit(changes memdb.Changes) error
}

// A Pipeline is a Journal whose batches need not wait for each other: a
// replicated journal (etcd) takes a round trip per commit, and one batch in
// flight at a time would leave its consensus log batching nothing while
// every later write waits. The store prepares a batch on its committer
// (Prepare reads the journal's view of the state as of that batch, so a
// conflict with a batch still in flight is caught by the journal as
// ErrStale), discards its own transaction, and sends the batch while it
// goes on with the next one. The changes become visible only when the
// journal feeds them back through Mirror, as another replica's would; send
// returns once they are, or once they are committed and the feed is late.
type Pipeline interface {
	Journal
	// Prepare returns the commit of changes, or ok false when the batch
	// must be committed with Commit and made visible by the store (it
	// holds something the journal does not carry back, such as a secret).
	// send's first step must be the round trip to the journal; released
	// is called when that round trip ends, before send waits for the feed.
	//
	// writes is how many writes share the batch's fate. A journal that
	// commits one write's changes in several transactions when they do
	// not fit one must refuse a batch of several writes that needs more
	// with ErrTooLarge, and the store commits them one by one: should a
	// later transaction fail, the batch is partly made, and every write
	// of it would be answered with that failure, also those that
	// committed whole with the first.
	Prepare(changes memdb.Changes, writes int) (send func(released func()) error, ok bool, err error)
}

// ErrStale is wrapped by a Journal's Commit error when the batch was
// computed on a state that another writer (another replica sharing the
// journal) has since changed: Update then waits for Options.CatchUp and
// runs the write again on the newer state.
var ErrStale = errors.New("store: the state changed underneath this write")

// ErrUnavailable is wrapped by a Journal's errors when the state's backend
// (etcd) did not answer in time, has no quorum or no room: the client
// should retry. Whether the write may still take effect is
// ErrOutcomeUnknown's to say.
var ErrUnavailable = errors.New("store: the state's backend is unavailable")

// ErrOutcomeUnknown is wrapped, with ErrUnavailable, by a Journal's error
// when the backend may still make the write: its answer was lost or timed
// out (a lost quorum) and nothing could tell that it was not made, or it
// is partly made. Without it, an ErrUnavailable write was not made.
var ErrOutcomeUnknown = errors.New("store: the write's outcome is unknown: the state's backend may still make it")

// ErrTooLarge is wrapped by a Journal's Commit error when the batch does
// not fit in one of its transactions: the store then commits the batch's
// writes one by one, and a single write that does not fit fails alone.
var ErrTooLarge = errors.New("store: change too large for one journal transaction")

// PendingError is a Pipeline's Prepare error for a batch that writes a key
// a batch still in flight writes: computed without that batch's changes, it
// would only be refused. Update waits for Done (closed when the earlier
// batch is visible or failed) and runs the write again.
type PendingError struct {
	Done <-chan struct{}
}

func (e *PendingError) Error() string {
	return "store: an earlier batch in flight writes the same keys"
}

// maxStaleRetries bounds how often one write is run again after ErrStale,
// so a write that always conflicts fails instead of spinning.
const maxStaleRetries = 16

// staleBackoffBase is the pause before stale retry attempt (1, 2, …): none
// for the first two, as one conflict is the common case and its retry
// wins; then doubling from a millisecond to 16. A write that lost several
// times races writers on other replicas that keep winning the same keys
// (one counter, one group's members); run again at once it can lose every
// time, while a pause lets them drain. Update pauses a random time in
// [base/2, base), so that writers that lost together do not retry together.
func staleBackoffBase(attempt int) time.Duration {
	if attempt < 3 {
		return 0
	}
	return time.Millisecond << min(attempt-3, 4)
}

// Options configure a Store. The zero value is an in-memory store.
type Options struct {
	// Journal, when set, receives every batch before it becomes visible.
	Journal Journal
	// MaxBatch bounds how many writes share one transaction (default 256).
	MaxBatch int
	// OnCommit, when set, is called after each batch became visible, with its
	// changes, from the committer goroutine. It must be quick and must not
	// call Update.
	OnCommit func(memdb.Changes)
	// InFlight bounds how many batches a Pipeline journal has in flight at
	// once (default 16); while that many are, writes queue and the next
	// batch takes all of them.
	InFlight int
	// CatchUp, when set, is called after the Journal refused a batch with
	// ErrStale, before the write runs again: it returns once the store
	// holds what the Journal holds.
	CatchUp func(context.Context) error
}

// Store is the runtime state. Create it with New; it is safe for concurrent use.
type Store struct {
	db   *memdb.MemDB
	opts Options

	reqs      chan *request
	inFlight  chan struct{} // a slot per batch a Pipeline journal is committing
	sends     sync.WaitGroup
	closeOnce sync.Once
	closing   chan struct{}
	done      chan struct{}

	// resources is closed and replaced by each commit that changes a spec
	// resource; see ResourcesChanged.
	resources atomic.Pointer[chan struct{}]
}

type request struct {
	ctx  context.Context
	fn   func(*Txn) error
	errc chan error
	// mirror writes apply what the Journal already holds (another
	// replica's writes): they bypass it, in batches of their own.
	mirror bool
	// alone: the write was in a batch a Pipeline's send found too large,
	// so it runs again in a batch of its own (see requeueAlone).
	alone bool
}

// outcome is a write that ran in a batch's transaction: it succeeded (err
// nil) or failed without mutating after one that succeeded. Both share
// the batch's fate: a failure may have seen the earlier writes' changes
// (a userName they took), so it is answered only once they are committed,
// and with the batch's error when they are not.
type outcome struct {
	r   *request
	err error
}

// answer answers each write with batchErr or, when there is none, its own
// outcome.
func answer(ran []outcome, batchErr error) {
	for _, o := range ran {
		if batchErr != nil {
			o.r.errc <- batchErr
		} else {
			o.r.errc <- o.err
		}
	}
}

// New creates an empty store and starts its committer. Call Close to stop it.
func New(opts Options) (*Store, error) {
	db, err := memdb.NewMemDB(Schema())
	if err != nil {
		return nil, fmt.Errorf("store: schema: %w", err)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.InFlight <= 0 {
		opts.InFlight = 16
	}
	s := &Store{
		db:       db,
		opts:     opts,
		reqs:     make(chan *request),
		inFlight: make(chan struct{}, opts.InFlight),
		closing:  make(chan struct{}),
		done:     make(chan struct{}),
	}
	ch := make(chan struct{})
	s.resources.Store(&ch)
	go s.commitLoop()
	return s, nil
}

// Close stops the committer after the writes already taken are done.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.done
	s.sends.Wait()
	return nil
}

// Txn is a memdb transaction with typed helpers. Its write methods count
// mutations, so the committer can tell whether a failed write changed
// anything without copying the change list.
type Txn struct {
	*memdb.Txn
	writes int
	// memberOf is a batch's edit of the reverse membership index once a
	// write changed it; flush stores it, once per batch.
	memberOf *hamt.Editor[[]string]
	// memberOfChanged says memberOf holds changes: an edit is started by
	// reads in a write too.
	memberOfChanged bool
	// users is a write's user name and externalId indexes once they
	// changed; stored by flush, like memberOf.
	users *userIndexes
	// loading is set by Store.Load: the store is being filled from empty,
	// and derived indexes are built in place rather than copied per change.
	loading bool
	// trackUsers is set with memdb's TrackChanges: the users' changes,
	// which memdb does not see, are kept in userChanges (one per user, at
	// userChangeAt[id]).
	trackUsers   bool
	userChanges  memdb.Changes
	userChangeAt map[string]int
	// groups is the write's group count once it changed (groupsChanged),
	// stored by flush; memberships is the count of the reverse index
	// while memberOf is being edited (see counts.go).
	groups        int
	groupsChanged bool
	memberships   int
}

// trackChanges makes the transaction keep its changes, the users' with
// memdb's rows'.
func (t *Txn) trackChanges() {
	t.Txn.TrackChanges()
	t.trackUsers = true
}

// changes returns the tracked changes: the users' first, then memdb's.
func (t *Txn) changes() memdb.Changes {
	rows := t.Txn.Changes()
	if len(t.userChanges) == 0 {
		return rows
	}
	out := make(memdb.Changes, 0, len(t.userChanges)+len(rows))
	for _, c := range t.userChanges {
		// A user created and deleted in one transaction is no change.
		if c.Before != nil || c.After != nil {
			out = append(out, c)
		}
	}
	return append(out, rows...)
}

// First implements memdb.Txn.First, for the users too.
func (t *Txn) First(table, index string, args ...any) (any, error) {
	if table != TableUsers {
		return t.Txn.First(table, index, args...)
	}
	it, err := t.getUsers(index, args)
	if err != nil {
		return nil, err
	}
	return it.Next(), nil
}

// Get implements memdb.Txn.Get, for the users too (see getUsers).
func (t *Txn) Get(table, index string, args ...any) (memdb.ResultIterator, error) {
	if table != TableUsers {
		return t.Txn.Get(table, index, args...)
	}
	return t.getUsers(index, args)
}

// Insert implements memdb.Txn.Insert. Users go through putUser, which keeps
// their name and externalId indexes; a user whose userName another user
// holds is refused (ErrUserNameTaken), as is a group whose displayName
// another group holds (ErrGroupNameTaken).
func (t *Txn) Insert(table string, obj any) error {
	switch table {
	case TableUsers:
		u, ok := obj.(*User)
		if !ok {
			return fmt.Errorf("store: insert %T into users", obj)
		}
		// A refused userName is not counted, as for groups: the holder may
		// be a user an earlier write of the batch created, and a refusal
		// that counted as a mutation would be answered at once, before
		// that user is known to be committed. putUser refuses before it
		// changes anything.
		err := t.putUser(u, false)
		if !errors.Is(err, ErrUserNameTaken) {
			t.writes++
		}
		return err
	case TableGroups:
		// Checked before the write is counted: a refused group changes
		// nothing, so it does not make its batch run again.
		if err := t.checkGroupName(obj); err != nil {
			return err
		}
		cur, err := t.Txn.First(TableGroups, IndexID, obj.(*Group).ID)
		if err != nil {
			return err
		}
		t.writes++
		if err := t.Txn.Insert(table, obj); err != nil {
			return err
		}
		if cur == nil {
			return t.countGroups(1)
		}
		return nil
	}
	t.writes++
	return t.Txn.Insert(table, obj)
}

func (t *Txn) checkGroupName(obj any) error {
	g, ok := obj.(*Group)
	if !ok {
		return fmt.Errorf("store: insert %T into groups", obj)
	}
	other, err := t.GroupByName(g.DisplayName)
	if err != nil {
		return err
	}
	if other != nil && other.ID != g.ID {
		return fmt.Errorf("%w: %q is held by group %s", ErrGroupNameTaken, g.DisplayName, other.ID)
	}
	return nil
}

// Delete implements memdb.Txn.Delete.
func (t *Txn) Delete(table string, obj any) error {
	var err error
	if table == TableUsers {
		u, ok := obj.(*User)
		if !ok {
			return fmt.Errorf("store: delete %T from users", obj)
		}
		err = t.deleteUser(u)
	} else {
		err = t.Txn.Delete(table, obj)
		if err == nil && table == TableGroups {
			err = t.countGroups(-1)
		}
	}
	// Deleting what is not there changes nothing (both deletes find out
	// before they change anything), so it is not counted: what was there
	// may have been deleted by an earlier write of the batch, and a
	// counted failure would be answered before that write is committed.
	if !errors.Is(err, memdb.ErrNotFound) {
		t.writes++
	}
	return err
}

// DeleteAll implements memdb.Txn.DeleteAll.
func (t *Txn) DeleteAll(table, index string, args ...any) (int, error) {
	t.writes++
	if table != TableUsers {
		n, err := t.Txn.DeleteAll(table, index, args...)
		if err == nil && table == TableGroups {
			err = t.countGroups(-n)
		}
		return n, err
	}
	if index == IndexID && len(args) == 0 {
		return t.deleteAllUsers()
	}
	it, err := t.Get(table, index, args...)
	if err != nil {
		return 0, err
	}
	var gone []*User
	for raw := it.Next(); raw != nil; raw = it.Next() {
		gone = append(gone, raw.(*User))
	}
	for _, u := range gone {
		if err := t.deleteUser(u); err != nil {
			return 0, err
		}
	}
	return len(gone), nil
}

// DeletePrefix implements memdb.Txn.DeletePrefix.
func (t *Txn) DeletePrefix(table, prefixIndex, prefix string) (bool, error) {
	t.writes++
	if table == TableUsers || table == TableGroups {
		return false, fmt.Errorf("store: DeletePrefix on %s would bypass their indexes", table)
	}
	return t.Txn.DeletePrefix(table, prefixIndex, prefix)
}

// Read returns a read-only snapshot. It never blocks writers and needs no
// closing.
func (s *Store) Read() *Txn { return &Txn{Txn: s.db.Txn(false)} }

// ResourcesChanged returns a channel that the next commit changing a spec
// resource closes. Servers that derive their configuration from resources
// on every request take it before reading them and keep what they derived
// until it closes, which costs a request no transaction.
func (s *Store) ResourcesChanged() <-chan struct{} { return *s.resources.Load() }

// resourcesChanged closes the channel ResourcesChanged returned, after
// the commit it stands for became visible.
func (s *Store) resourcesChanged() {
	ch := make(chan struct{})
	close(*s.resources.Swap(&ch))
}

// touches reports whether changes hold a change to table.
func touches(changes memdb.Changes, table string) bool {
	for _, c := range changes {
		if c.Table == table {
			return true
		}
	}
	return false
}

// Snapshot returns a point-in-time copy of the whole database, for backups.
func (s *Store) Snapshot() *memdb.MemDB { return s.db.Snapshot() }

// Load runs fn in a write transaction that bypasses the journal. It is for
// filling the store at start-up from what the journal already holds.
func (s *Store) Load(fn func(*Txn) error) error {
	txn := s.db.Txn(true)
	t := &Txn{Txn: txn, loading: true}
	err := fn(t)
	if err == nil {
		err = t.flush()
	}
	if err != nil {
		txn.Abort()
		return err
	}
	txn.Commit()
	s.resourcesChanged()
	return nil
}

// Update runs fn in a write transaction and returns once its changes are
// committed (and durable, with a journal) or discarded.
//
// fn may be run more than once (when a write in its batch, itself
// included, fails after mutating), so it must derive everything from the
// transaction and must not have side effects outside it. If fn returns an
// error its changes are discarded and Update returns that error; validate
// before mutating where you can, since a failure after a mutation makes the
// whole batch run again. fn sees the changes of the writes batched before
// it, so when those are not committed (the journal failed) Update returns
// the journal's error instead.
func (s *Store) Update(ctx context.Context, fn func(*Txn) error) error {
	for attempt := 0; ; {
		err := s.submit(&request{ctx: ctx, fn: fn, errc: make(chan error, 1)})
		var pending *PendingError
		if errors.As(err, &pending) {
			select {
			case <-pending.Done:
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if !errors.Is(err, ErrStale) || s.opts.CatchUp == nil || attempt == maxStaleRetries {
			return err
		}
		attempt++
		if base := staleBackoffBase(attempt); base > 0 {
			pause := time.NewTimer(base/2 + rand.N(base/2))
			select {
			case <-pause.C:
			case <-ctx.Done():
				pause.Stop()
				return ctx.Err()
			}
		}
		if cerr := s.opts.CatchUp(ctx); cerr != nil {
			// The write was not made: it stays stale, so that callers
			// still tell it to retry whatever the catch-up's error is.
			return fmt.Errorf("store: catch up after a conflicting write: %w (%w)", cerr, err)
		}
	}
}

// Mirror runs fn like Update, but its changes bypass the Journal: they
// apply what the Journal already holds, written by another replica.
func (s *Store) Mirror(ctx context.Context, fn func(*Txn) error) error {
	return s.submit(&request{ctx: ctx, fn: fn, errc: make(chan error, 1), mirror: true})
}

func (s *Store) submit(r *request) error {
	select {
	case s.reqs <- r:
	case <-s.closing:
		return ErrClosed
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	// Once taken, a write is always answered: waiting here keeps the caller
	// from reporting failure for a write that then commits.
	return <-r.errc
}

func (s *Store) commitLoop() {
	defer close(s.done)
	var next *request // taken, but of the other kind than the batch before it
	for {
		first := next
		next = nil
		if first == nil {
			select {
			case first = <-s.reqs:
			case <-s.closing:
				return
			}
		}
		batch := []*request{first}
	drain:
		for len(batch) < s.opts.MaxBatch && !first.alone {
			select {
			case r := <-s.reqs:
				if r.mirror != first.mirror || r.alone {
					next = r
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commitBatch(batch)
	}
}

// commitBatch runs the batch's writes in one transaction. A write that fails
// without mutating is simply answered (once the batch's fate is known, when
// an earlier write of it succeeded); one that fails after mutating poisons
// the transaction, so the batch is run again without it (and it is run
// again alone, after, when an earlier write of the batch succeeded).
func (s *Store) commitBatch(batch []*request) {
	// Writes that poisoned the batch after an earlier write of it
	// succeeded: their failure may rest on that write, which the journal
	// may yet discard, so they run again alone once the batch is decided.
	var alone []*request
	defer func() {
		for _, r := range alone {
			s.commitBatch([]*request{r})
		}
	}()
	for len(batch) > 0 {
		txn := s.db.Txn(true)
		t := &Txn{Txn: txn}
		t.trackChanges()
		var ran []outcome // see outcome
		succeeded := 0
		poisoned := false
		for i, r := range batch {
			if err := r.ctx.Err(); err != nil {
				r.errc <- err
				continue
			}
			before := t.writes
			err := runWrite(r.fn, t)
			if err == nil {
				succeeded++
				ran = append(ran, outcome{r: r})
				continue
			}
			if t.writes != before {
				if succeeded == 0 {
					r.errc <- err
				} else {
					alone = append(alone, r)
				}
				txn.Abort()
				// The failures kept in ran run again too: the writes
				// they saw do.
				again := make([]*request, 0, len(ran)+len(batch)-i-1)
				for _, o := range ran {
					again = append(again, o.r)
				}
				batch = append(again, batch[i+1:]...)
				poisoned = true
				break
			}
			if succeeded == 0 {
				// It saw only committed state: its answer stands.
				r.errc <- err
				continue
			}
			ran = append(ran, outcome{r: r, err: err})
		}
		if poisoned {
			continue
		}
		if err := t.flush(); err != nil {
			txn.Abort()
			answer(ran, err)
			return
		}
		changes := t.changes()
		if s.opts.Journal != nil && len(changes) > 0 && !batch[0].mirror {
			sent, err := s.journal(changes, ran)
			if err != nil {
				txn.Abort()
				if errors.Is(err, ErrTooLarge) && len(ran) > 1 {
					for _, o := range ran {
						s.commitBatch([]*request{o.r})
					}
					return
				}
				answer(ran, fmt.Errorf("store: journal: %w", err))
				return
			}
			if sent {
				txn.Abort()
				return
			}
		}
		txn.Commit()
		if touches(changes, TableResources) {
			s.resourcesChanged()
		}
		if s.opts.OnCommit != nil && len(changes) > 0 {
			s.opts.OnCommit(changes)
		}
		answer(ran, nil)
		return
	}
}

// journal hands a batch's changes to the Journal. With a Pipeline that takes
// the batch, it returns sent true at once: a goroutine of the store's sends
// it and answers the batch's writes. Otherwise it commits them and returns.
func (s *Store) journal(changes memdb.Changes, writes []outcome) (sent bool, err error) {
	p, ok := s.opts.Journal.(Pipeline)
	if !ok {
		return false, s.opts.Journal.Commit(changes)
	}
	send, ok, err := p.Prepare(changes, len(writes))
	if err != nil {
		return false, err
	}
	if !ok {
		return false, s.opts.Journal.Commit(changes)
	}
	// Waiting for a slot holds the committer, so the writes arriving
	// meanwhile make the next batch; a slot frees when a round trip ends,
	// never on the feed (which needs the committer for its Mirror writes).
	s.inFlight <- struct{}{}
	s.sends.Add(1)
	go func() {
		defer s.sends.Done()
		var once sync.Once
		release := func() { once.Do(func() { <-s.inFlight }) }
		err := send(release)
		release()
		if errors.Is(err, ErrTooLarge) && len(writes) > 1 {
			// As for Commit: the writes are committed one by one, and
			// one that does not fit alone fails alone.
			for _, o := range writes {
				s.requeueAlone(o.r)
			}
			return
		}
		if err != nil {
			err = fmt.Errorf("store: journal: %w", err)
		}
		answer(writes, err)
	}()
	return true, nil
}

// requeueAlone hands r, taken and not yet answered, back to the committer,
// to run in a batch of its own. Its slot in flight is released, so the
// committer is not waiting for this goroutine.
func (s *Store) requeueAlone(r *request) {
	r.alone = true
	select {
	case s.reqs <- r:
	case <-s.closing:
		r.errc <- ErrClosed
	}
}

// runWrite turns a panic in a write into an error, so one bad write cannot
// take the committer (and every later write) down with it.
func runWrite(fn func(*Txn) error, t *Txn) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("store: write panicked: %v", p)
		}
	}()
	return fn(t)
}

// Resource returns the spec-owned resource kind/name, or nil.
func (t *Txn) Resource(kind, name string) (*Resource, error) {
	raw, err := t.First(TableResources, IndexID, kind, name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Resource), nil
}

// Resources returns every resource of kind (every resource when kind is ""),
// sorted by kind and name.
func (t *Txn) Resources(kind string) ([]*Resource, error) {
	var it memdb.ResultIterator
	var err error
	if kind == "" {
		it, err = t.Get(TableResources, IndexID)
	} else {
		it, err = t.Get(TableResources, IndexKind, kind)
	}
	if err != nil {
		return nil, err
	}
	var out []*Resource
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*Resource))
	}
	return out, nil
}

// GroupByID returns the group with id, or nil.
func (t *Txn) GroupByID(id string) (*Group, error) {
	raw, err := t.First(TableGroups, IndexID, id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Group), nil
}

// GroupByName returns the group whose displayName folds equal to name
// (see Fold), or nil.
func (t *Txn) GroupByName(name string) (*Group, error) {
	raw, err := t.First(TableGroups, IndexName, name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*Group), nil
}

// Unchanged returns a channel that stands for table's current contents: it
// is closed by the next write to the table, and a transaction that sees the
// same channel sees the same rows. Writers use it to skip re-validating
// what they checked on an earlier snapshot.
func (t *Txn) Unchanged(table string) (<-chan struct{}, error) {
	if table == TableUsers {
		return t.usersChanged()
	}
	it, err := t.Get(table, IndexID)
	if err != nil {
		return nil, err
	}
	return it.WatchCh(), nil
}

// MetaValue returns the meta record key, or "".
func (t *Txn) MetaValue(key string) (string, error) {
	raw, err := t.First(TableMeta, IndexID, key)
	if err != nil || raw == nil {
		return "", err
	}
	return raw.(*Meta).Value, nil
}
