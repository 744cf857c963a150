package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// stressJournal is a journal that fails at random: the sequence of its
// decisions is fixed by the seed (Commit runs on one goroutine at a time),
// and "too large" depends only on a batch's contents, so a write that fits
// alone always fits. What it takes it applies to a model of the state, the
// one a restart would load, checking each change starts from what the model
// holds.
type stressJournal struct {
	mu    sync.Mutex
	rng   *rand.Rand
	users map[string]*User
	other map[string]any // table/key → row, for groups, members and meta
	err   error
}

func newStressJournal(seed uint64) *stressJournal {
	return &stressJournal{rng: rand.New(rand.NewPCG(seed, 0x5eed)), users: map[string]*User{}, other: map[string]any{}}
}

// objectChanges counts a batch's changes to users, groups, members and meta:
// the rows a real journal writes.
func objectChanges(changes memdb.Changes) int {
	n := 0
	for _, c := range changes {
		switch c.Table {
		case TableUsers, TableGroups, TableMembers, TableMeta:
			n++
		}
	}
	return n
}

func rowKey(table string, obj any) string {
	switch o := obj.(type) {
	case *Group:
		return table + "/" + o.ID
	case *Members:
		return table + "/" + o.GroupID
	case *Meta:
		return table + "/" + o.Key
	}
	return ""
}

func (j *stressJournal) Commit(changes memdb.Changes) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if objectChanges(changes) > 6 {
		return fmt.Errorf("stress: %w", ErrTooLarge)
	}
	switch j.rng.IntN(12) {
	case 0, 1:
		return errJournal
	case 2:
		return fmt.Errorf("stress: %w", ErrStale)
	case 3:
		return fmt.Errorf("stress: %w", ErrUnavailable)
	}
	j.apply(changes)
	return nil
}

// apply applies changes to the model; j.mu is held.
func (j *stressJournal) apply(changes memdb.Changes) {
	for _, c := range changes {
		switch c.Table {
		case TableUsers:
			var before, after *User
			if c.Before != nil {
				before = c.Before.(*User)
			}
			if c.After != nil {
				after = c.After.(*User)
			}
			id := before
			if id == nil {
				id = after
			}
			if j.users[id.ID] != before && j.err == nil {
				j.err = fmt.Errorf("change of user %s from %+v, the journal holds %+v", id.ID, before, j.users[id.ID])
			}
			if after == nil {
				delete(j.users, id.ID)
			} else {
				j.users[id.ID] = after
			}
		case TableGroups, TableMembers, TableMeta:
			obj := c.Before
			if obj == nil {
				obj = c.After
			}
			key := rowKey(c.Table, obj)
			if held := j.other[key]; c.Before != nil && held != c.Before || c.Before == nil && held != nil {
				if j.err == nil {
					j.err = fmt.Errorf("change of %s from %+v, the journal holds %+v", key, c.Before, held)
				}
			}
			if c.After == nil {
				delete(j.other, key)
			} else {
				j.other[key] = c.After
			}
		}
	}
}

// holds reports whether the journal holds meta key.
func (j *stressJournal) holds(key string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	_, ok := j.other[rowKey(TableMeta, &Meta{Key: key})]
	return ok
}

var errPoison = errors.New("stress: fail after mutating")

// stressOp is one random write. Every write that succeeds inserts its own
// token (a meta key) last, so the journal and the store can be asked
// whether it happened; the pair keys are written together, so a reader
// that sees them differ saw half a write.
func stressOp(r *rand.Rand, token string) func(*Txn) error {
	userID := func() string { return fmt.Sprintf("u%d", r.IntN(6)) }
	groupID := func() string { return fmt.Sprintf("g%d", r.IntN(3)) }
	// Names that fold together, so renames and creates collide.
	names := []string{"ada", "ADA", "bob", "Bob", "cy", "ſam", "SAM", "dee"}
	name := func() string { return names[r.IntN(len(names))] }
	done := func(tx *Txn) error { return tx.Insert(TableMeta, &Meta{Key: token, Value: "1"}) }
	now := time.Unix(int64(r.IntN(1000)), 0)
	switch r.IntN(9) {
	case 0: // create or rename a user, checking the name first
		id, n := userID(), name()
		return func(tx *Txn) error {
			if u, err := tx.UserByName(n); err != nil || u != nil && u.ID != id {
				return errors.Join(err, errTaken)
			}
			old, err := tx.UserByID(id)
			if err != nil {
				return err
			}
			u := &User{ID: id, UserName: n, Created: now}
			if old != nil {
				c := *old
				c.UserName, c.Version = n, old.Version+1
				u = &c
			}
			if err := tx.Insert(TableUsers, u); err != nil {
				return err
			}
			return done(tx)
		}
	case 1: // insert a user without checking: the store refuses a taken name
		id, n := userID(), name()
		return func(tx *Txn) error {
			if err := tx.Insert(TableUsers, &User{ID: id, UserName: n}); err != nil {
				return err
			}
			return done(tx)
		}
	case 2: // delete a user and its memberships
		id := userID()
		return func(tx *Txn) error {
			u, err := tx.UserByID(id)
			if err != nil || u == nil {
				return errors.Join(err, memdb.ErrNotFound)
			}
			if err := tx.DeleteMemberships(id, now); err != nil {
				return err
			}
			if err := tx.Delete(TableUsers, u); err != nil {
				return err
			}
			return done(tx)
		}
	case 3: // create or rename a group
		id, n := groupID(), name()
		return func(tx *Txn) error {
			if err := tx.Insert(TableGroups, &Group{ID: id, DisplayName: n, Modified: now}); err != nil {
				return err
			}
			return done(tx)
		}
	case 4: // delete a group and its memberships
		id := groupID()
		return func(tx *Txn) error {
			g, err := tx.GroupByID(id)
			if err != nil || g == nil {
				return errors.Join(err, memdb.ErrNotFound)
			}
			if err := tx.DeleteMemberships(id, now); err != nil {
				return err
			}
			if err := tx.Delete(TableGroups, g); err != nil {
				return err
			}
			return done(tx)
		}
	case 5: // add members that exist, remove others
		g, add, remove := groupID(), []string{userID(), userID()}, []string{userID()}
		return func(tx *Txn) error {
			if grp, err := tx.GroupByID(g); err != nil || grp == nil {
				return errors.Join(err, memdb.ErrNotFound)
			}
			held, unknown, err := tx.Members(add)
			if err != nil {
				return err
			}
			if len(unknown) > 0 {
				return memdb.ErrNotFound
			}
			if err := tx.ChangeMembers(g, held, remove, now); err != nil {
				return err
			}
			return done(tx)
		}
	case 6: // the pair, written together
		v := token
		return func(tx *Txn) error {
			for _, k := range []string{"pair-a", "pair-b"} {
				if err := tx.Insert(TableMeta, &Meta{Key: k, Value: v}); err != nil {
					return err
				}
			}
			return done(tx)
		}
	case 7: // mutate, then fail
		id, n := userID(), name()
		return func(tx *Txn) error {
			if err := tx.Insert(TableMeta, &Meta{Key: "poison", Value: token}); err != nil {
				return err
			}
			if u, _ := tx.UserByName(n); u != nil {
				return errPoison
			}
			if err := tx.Insert(TableUsers, &User{ID: id, UserName: n}); err != nil {
				return err
			}
			return errPoison
		}
	default: // a write that changes too much for the journal's transaction
		return func(tx *Txn) error {
			for i := range 4 {
				if err := tx.Insert(TableMeta, &Meta{Key: fmt.Sprintf("big-%d", i), Value: token}); err != nil {
					return err
				}
			}
			for i := range 3 {
				if err := tx.Insert(TableMeta, &Meta{Key: fmt.Sprintf("big-x%d", i), Value: token}); err != nil {
					return err
				}
			}
			return done(tx)
		}
	}
}

// checkStoreInvariants checks what every snapshot must show: the unique
// indexes agree with Fold, memberships name users and groups that exist,
// the reverse index agrees with the members rows, the pair is whole, no
// write that failed is visible and everything visible is in the journal.
func checkStoreInvariants(tx *Txn, j *stressJournal) error {
	users, err := tx.UsersAfter("")
	if err != nil {
		return err
	}
	n := 0
	for u := range users {
		n++
		if got, err := tx.UserByName(u.UserName); err != nil || got != u {
			return fmt.Errorf("UserByName(%q) = %+v, %v; want user %s", u.UserName, got, err, u.ID)
		}
		groups, err := tx.GroupIDsOf(u.ID)
		if err != nil {
			return err
		}
		for _, g := range groups {
			if in, _ := tx.IsMember(g, u.ID); !in {
				return fmt.Errorf("reverse index puts %s in %s, its row does not", u.ID, g)
			}
		}
	}
	byName, err := tx.UsersByName("")
	if err != nil {
		return err
	}
	m := 0
	for _, err := range byName {
		if err != nil {
			return err
		}
		m++
	}
	if c, _ := tx.UserCount(); c != n || m != n {
		return fmt.Errorf("%d users by id, %d by name, count %d", n, m, c)
	}
	it, err := tx.Get(TableGroups, IndexID)
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		g := raw.(*Group)
		if got, err := tx.GroupByName(g.DisplayName); err != nil || got != g {
			return fmt.Errorf("GroupByName(%q) = %+v, %v; want group %s", g.DisplayName, got, err, g.ID)
		}
	}
	it, err = tx.Get(TableMembers, IndexID)
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		row := raw.(*Members)
		if g, _ := tx.GroupByID(row.GroupID); g == nil {
			return fmt.Errorf("members row of group %s, which does not exist", row.GroupID)
		}
		for id := range row.IDs.All() {
			if u, _ := tx.UserByID(id); u == nil {
				return fmt.Errorf("group %s lists %s, who does not exist", row.GroupID, id)
			}
			groups, _ := tx.GroupIDsOf(id)
			if !slices.Contains(groups, row.GroupID) {
				return fmt.Errorf("group %s lists %s, the reverse index does not", row.GroupID, id)
			}
		}
	}
	a, _ := tx.MetaValue("pair-a")
	b, _ := tx.MetaValue("pair-b")
	if a != b {
		return fmt.Errorf("half a write visible: pair %q, %q", a, b)
	}
	if p, _ := tx.MetaValue("poison"); p != "" {
		return fmt.Errorf("a failed write is visible: poison %q", p)
	}
	it, err = tx.Get(TableMeta, IndexID)
	if err != nil {
		return err
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if k := raw.(*Meta).Key; !j.holds(k) {
			return fmt.Errorf("meta %s visible, not in the journal", k)
		}
	}
	return nil
}

// TestStressRandomJournalFailures: writers make random writes (some fail
// after mutating, some collide on folded names, some do not fit the
// journal) while the journal fails at random; after each write, the writer
// checks the snapshot's invariants and that its answer matches the
// journal: acknowledged means journaled, failed means neither journaled
// nor visible. At the end the store holds what the journal holds, and
// Close, with writers still submitting, answers every one of them.
func TestStressRandomJournalFailures(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("commit/seed ", seed), func(t *testing.T) {
			j := newStressJournal(seed)
			stress(t, seed, j, j, nil)
		})
		t.Run(fmt.Sprint("pipeline/seed ", seed), func(t *testing.T) {
			j := newStressJournal(seed)
			p := &stressPipeline{stressJournal: j, rng: rand.New(rand.NewPCG(seed, 0x5e4d)), pending: map[string]chan struct{}{}}
			stress(t, seed, p, j, &p.s)
		})
	}
}

func stress(t *testing.T, seed uint64, journal Journal, j *stressJournal, store **Store) {
	const writers, ops = 6, 150
	{
		{
			s, err := New(Options{Journal: journal, MaxBatch: 8, InFlight: 3, CatchUp: func(context.Context) error { return nil }})
			if err != nil {
				t.Fatal(err)
			}
			if store != nil {
				*store = s
			}
			var wg sync.WaitGroup
			errs := make(chan error, writers)
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := rand.New(rand.NewPCG(seed, uint64(w)))
					for i := range ops {
						token := fmt.Sprintf("w%d-%d", w, i)
						err := s.Update(context.Background(), stressOp(r, token))
						if err == nil && !j.holds(token) {
							errs <- fmt.Errorf("write %s acknowledged, not in the journal", token)
							return
						}
						if err != nil {
							if v, _ := s.Read().MetaValue(token); v != "" || j.holds(token) {
								errs <- fmt.Errorf("write %s answered %v, but made", token, err)
								return
							}
						}
						if bad := checkStoreInvariants(s.Read(), j); bad != nil {
							errs <- fmt.Errorf("after write %s (answered %v): %w", token, err, bad)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			j.mu.Lock()
			if j.err != nil {
				t.Error(j.err)
			}
			compareWithJournal(t, s.Read(), j)
			j.mu.Unlock()

			// Close while writers keep submitting: each is answered.
			var closing sync.WaitGroup
			for w := range writers {
				closing.Add(1)
				go func() {
					defer closing.Done()
					r := rand.New(rand.NewPCG(seed, uint64(100+w)))
					for i := 0; ; i++ {
						token := fmt.Sprintf("c%d-%d", w, i)
						err := s.Update(context.Background(), stressOp(r, token))
						if err == nil && !j.holds(token) {
							t.Errorf("write %s acknowledged, not in the journal", token)
						}
						if errors.Is(err, ErrClosed) {
							return
						}
					}
				}()
			}
			s.Close()
			answered := make(chan struct{})
			go func() { closing.Wait(); close(answered) }()
			select {
			case <-answered:
			case <-time.After(time.Minute):
				t.Fatal("writers still waiting a minute after Close")
			}
		}
	}
}

// compareWithJournal checks that the store holds exactly the journal's
// users, groups, members and meta.
func compareWithJournal(t *testing.T, tx *Txn, j *stressJournal) {
	t.Helper()
	users, _ := tx.UsersAfter("")
	n := 0
	for u := range users {
		n++
		if j.users[u.ID] != u {
			t.Errorf("store has user %+v, the journal %+v", u, j.users[u.ID])
		}
	}
	if n != len(j.users) {
		t.Errorf("store has %d users, the journal %d", n, len(j.users))
	}
	n = 0
	for _, table := range []string{TableGroups, TableMembers, TableMeta} {
		it, _ := tx.Get(table, IndexID)
		for raw := it.Next(); raw != nil; raw = it.Next() {
			n++
			if k := rowKey(table, raw); j.other[k] != raw {
				t.Errorf("store has %s = %+v, the journal %+v", k, raw, j.other[k])
			}
		}
	}
	if n != len(j.other) {
		t.Errorf("store has %d rows, the journal %d", n, len(j.other))
	}
}

// stressPipeline is stressJournal as a Pipeline: a batch is refused while
// one in flight writes one of its keys (PendingError), a batch of several
// writes is now and then refused as too large at Prepare, and a send fails
// at random; what it commits becomes visible through Mirror, as etcd's
// watch makes it.
type stressPipeline struct {
	*stressJournal
	s   *Store
	rng *rand.Rand // for sends, under stressJournal.mu

	pendingMu sync.Mutex
	pending   map[string]chan struct{}
}

func (p *stressPipeline) Commit(memdb.Changes) error { return errors.New("Commit on a pipeline") }

// pipelineKeys are the keys a batch writes: its objects, and the folded
// names it takes or frees, which are unique. A membership change holds its
// group and the members it adds too, as etcdstate compares them: they must
// not go while the batch is in flight.
func pipelineKeys(changes memdb.Changes) []string {
	var keys []string
	for _, c := range changes {
		if after, ok := c.After.(*Members); ok {
			keys = append(keys, rowKey(TableGroups, &Group{ID: after.GroupID}))
			var before []string
			if c.Before != nil {
				before = c.Before.(*Members).IDs.Slice()
			}
			for _, id := range subtract(after.IDs.Slice(), before) {
				keys = append(keys, "user/"+id)
			}
		}
		for _, obj := range []any{c.Before, c.After} {
			switch o := obj.(type) {
			case *User:
				keys = append(keys, "user/"+o.ID, "userName/"+Fold(o.UserName))
			case *Group:
				keys = append(keys, rowKey(c.Table, o), "displayName/"+Fold(o.DisplayName))
			case *Members, *Meta:
				keys = append(keys, rowKey(c.Table, o))
			}
		}
	}
	return keys
}

func (p *stressPipeline) Prepare(changes memdb.Changes, writes int) (func(func()) error, bool, error) {
	keys := pipelineKeys(changes)
	p.pendingMu.Lock()
	for _, k := range keys {
		if ch, ok := p.pending[k]; ok {
			p.pendingMu.Unlock()
			return nil, false, &PendingError{Done: ch}
		}
	}
	p.mu.Lock()
	tooLarge := writes > 1 && p.stressJournal.rng.IntN(8) == 0
	p.mu.Unlock()
	if tooLarge {
		p.pendingMu.Unlock()
		return nil, false, fmt.Errorf("stress: %w", ErrTooLarge)
	}
	done := make(chan struct{})
	for _, k := range keys {
		p.pending[k] = done
	}
	p.pendingMu.Unlock()
	return func(released func()) error {
		defer func() {
			p.pendingMu.Lock()
			for _, k := range keys {
				delete(p.pending, k)
			}
			p.pendingMu.Unlock()
			close(done)
		}()
		p.mu.Lock()
		var err error
		switch {
		case objectChanges(changes) > 6:
			err = fmt.Errorf("stress: %w", ErrTooLarge)
		default:
			switch p.rng.IntN(12) {
			case 0, 1:
				err = errJournal
			case 2:
				err = fmt.Errorf("stress: %w", ErrStale)
			case 3:
				err = fmt.Errorf("stress: %w", ErrUnavailable)
			}
		}
		if err == nil {
			p.apply(changes)
		}
		p.mu.Unlock()
		released()
		if err != nil {
			return err
		}
		err = p.s.Mirror(context.Background(), func(tx *Txn) error { return mirrorChanges(tx, changes) })
		if err != nil && !errors.Is(err, ErrClosed) {
			p.mu.Lock()
			if p.err == nil {
				p.err = fmt.Errorf("mirror of a committed batch: %w", err)
			}
			p.mu.Unlock()
		}
		return nil
	}, true, nil
}

// mirrorChanges applies a committed batch's changes to the store: what
// leaves first, so that a name one object freed can be taken by another.
func mirrorChanges(tx *Txn, changes memdb.Changes) error {
	for _, c := range changes {
		if c.Before == nil || c.Table != TableUsers && c.Table != TableGroups {
			continue
		}
		if err := tx.Delete(c.Table, c.Before); err != nil {
			return err
		}
	}
	for _, c := range changes {
		var err error
		switch c.Table {
		case TableUsers, TableGroups:
			if c.After != nil {
				err = tx.Insert(c.Table, c.After)
			}
		case TableMeta:
			if c.After != nil {
				err = tx.Insert(c.Table, c.After)
			} else {
				err = tx.Delete(c.Table, c.Before)
			}
		case TableMembers:
			if c.After == nil {
				err = tx.MirrorDropMembers(c.Before.(*Members).GroupID)
				break
			}
			after := c.After.(*Members)
			var before []string
			if c.Before != nil {
				before = c.Before.(*Members).IDs.Slice()
			}
			now := after.IDs.Slice()
			err = tx.MirrorMembers(after.GroupID, subtract(now, before), subtract(before, now))
			if err == nil {
				err = tx.Insert(TableMembers, after)
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}
