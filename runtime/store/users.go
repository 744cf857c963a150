package store

import (
	"cmp"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/benbjohnson/immutable"
	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store/internal/hamt"
)

// ErrUserNameTaken is returned when a user would take a userName another
// user holds (as Fold compares them). The SCIM server checks first and answers
// 409; this keeps the index from ever pointing two ways.
var ErrUserNameTaken = errors.New("store: userName is taken")

// Users are not memdb rows: a memdb entry costs a radix-tree leaf and
// node with a watch channel each, several times what a user's entry in a
// persistent map costs (BenchmarkIndexEntryBytes). The users and their
// userName, externalId and work email indexes are four persistent maps, each
// kept in a row of TableUserIndexes and replaced by the transaction that
// changes it; a read transaction sees the four as they were when it began,
// like any memdb row. Txn's Insert, Delete, DeleteAll, First and Get
// take TableUsers as if it were a table, and the store adds the users'
// changes to the ones memdb tracked, so journals see no difference.
const (
	userRowsKey    = "users"      // id → *User, ordered
	userNamesKey   = "userName"   // Fold(userName) → id, ordered
	externalIDsKey = "externalId" // externalId → sorted ids
	// workEmailsKey: Fold(work email) → sorted ids, for every work email
	// of a user (it may have several) that is not its userName (in most
	// tenants the two are one address, found through the userName index;
	// see UsersByWorkEmail and workEmailKeys).
	workEmailsKey = "workEmail"
)

// indexRow is a row of TableUserIndexes: one of the four maps.
type indexRow[M any] struct {
	Key string
	m   M
}

// storedIndex returns the map in row key, or empty when there is none.
func storedIndex[M any](t *Txn, key string, empty M) (M, error) {
	raw, err := t.Txn.First(TableUserIndexes, IndexID, key)
	if err != nil || raw == nil {
		return empty, err
	}
	return raw.(*indexRow[M]).m, nil
}

// The maps of a store without users; persistent maps are safe to share.
var (
	noUsers = immutable.NewSortedMap[string, *User](stringComparer{})
	noNames = immutable.NewSortedMap[string, string](stringComparer{})
)

// userIndexes is a write transaction's view of the four maps. A write that
// changes them keeps its versions here until flush stores them; while the
// store is filled by Load, builders change the users and names in place. The
// id lists are edited in place by a batch (see hamt) in either case.
type userIndexes struct {
	rows   ordered[*User]
	names  ordered[string]
	ext    idLists
	emails idLists
	// loaded are users LoadUser inserted whose index entries are not made
	// yet: settle makes them in bulk, in key order, which fills the
	// builders several times faster than one user at a time.
	loaded []*User
}

// ordered is one of the ordered maps (the users by id, the ids by folded
// userName): a persistent map, or while Load fills an empty store, a
// builder changed in place.
type ordered[V any] struct {
	m     *immutable.SortedMap[string, V]
	b     *immutable.SortedMapBuilder[string, V]
	dirty bool
}

func (o *ordered[V]) get(key string) (V, bool) {
	if o.b != nil {
		return o.b.Get(key)
	}
	return o.m.Get(key)
}

func (o *ordered[V]) set(key string, v V) {
	o.dirty = true
	if o.b != nil {
		o.b.Set(key, v)
		return
	}
	o.m = o.m.Set(key, v)
}

func (o *ordered[V]) delete(key string) {
	o.dirty = true
	if o.b != nil {
		o.b.Delete(key)
		return
	}
	o.m = o.m.Delete(key)
}

func (o *ordered[V]) len() int {
	if o.b != nil {
		return o.b.Len()
	}
	return o.m.Len()
}

// build starts changing the map in place, from empty.
func (o *ordered[V]) build() {
	o.b = immutable.NewSortedMapBuilder[string, V](stringComparer{})
	o.dirty = true
}

// listed returns the map of o, as visibleUsers or visibleNames returned
// it, for iterating: only Load's own transaction sees a builder, and it
// lists no users.
func listed[V any](o ordered[V], err error) (*immutable.SortedMap[string, V], error) {
	if err != nil {
		return nil, err
	}
	if o.b != nil {
		return nil, errors.New("store: users listed during Load")
	}
	return o.m, nil
}

// store inserts the changed map as row key.
func (o *ordered[V]) store(t *Txn, key string) error {
	if o.b != nil {
		o.m, o.b = o.b.Map(), nil
	}
	if !o.dirty {
		return nil
	}
	if err := t.Txn.Insert(TableUserIndexes, &indexRow[*immutable.SortedMap[string, V]]{Key: key, m: o.m}); err != nil {
		return fmt.Errorf("store user %s index: %w", key, err)
	}
	return nil
}

// idLists is a map from a key to the sorted ids of the users holding it,
// edited in place by a transaction once it changes.
type idLists struct {
	m     *hamt.Map[[]string]
	e     *hamt.Editor[[]string]
	dirty bool
}

func (l *idLists) get(key string) []string {
	if l.e != nil {
		ids, _ := l.e.Get(key)
		return ids
	}
	ids, _ := l.m.Get(key)
	return ids
}

// change adds id to (or removes it from) the ids of key; an empty key is
// no entry.
func (l *idLists) change(key, id string, add bool) {
	if key == "" {
		return
	}
	if ids, changed := toggle(l.get(key), id, add); changed {
		l.set(key, ids)
	}
}

// set sets the ids of key (none: key goes).
func (l *idLists) set(key string, ids []string) {
	l.dirty = true
	if l.e == nil {
		l.e = l.m.Edit()
	}
	if len(ids) == 0 {
		l.e.Delete(key)
	} else {
		l.e.Set(key, ids)
	}
}

// store inserts the changed map as row key.
func (l *idLists) store(t *Txn, key string) error {
	if l.e != nil {
		l.m, l.e = l.e.Map(), nil
	}
	if !l.dirty {
		return nil
	}
	if err := t.Txn.Insert(TableUserIndexes, &indexRow[*hamt.Map[[]string]]{Key: key, m: l.m}); err != nil {
		return fmt.Errorf("store user %s index: %w", key, err)
	}
	return nil
}

// userIndexes returns the transaction's pending maps, creating them from
// the stored rows for a write.
func (t *Txn) userIndexes() (*userIndexes, error) {
	if t.users != nil {
		return t.users, nil
	}
	x := &userIndexes{}
	var err error
	if x.rows, err = t.storedUsers(); err != nil {
		return nil, err
	}
	if x.names, err = t.storedNames(); err != nil {
		return nil, err
	}
	if x.ext, err = t.storedIDLists(externalIDsKey); err != nil {
		return nil, err
	}
	if x.emails, err = t.storedIDLists(workEmailsKey); err != nil {
		return nil, err
	}
	if t.loading && x.rows.len() == 0 {
		x.rows.build()
		x.names.build()
	}
	t.users = x
	return x, nil
}

func (t *Txn) storedUsers() (ordered[*User], error) {
	m, err := storedIndex(t, userRowsKey, noUsers)
	return ordered[*User]{m: m}, err
}

func (t *Txn) storedNames() (ordered[string], error) {
	m, err := storedIndex(t, userNamesKey, noNames)
	return ordered[string]{m: m}, err
}

func (t *Txn) storedIDLists(key string) (idLists, error) {
	m, err := storedIndex(t, key, &hamt.Map[[]string]{})
	return idLists{m: m}, err
}

// visible returns one of the four maps as the transaction sees it: what
// pick takes from a write's pending maps (with LoadUser's users indexed),
// or for a transaction that has none, the stored one.
func visible[I any](t *Txn, pick func(*userIndexes) I, stored func() (I, error)) (I, error) {
	x := t.users
	if x == nil {
		return stored()
	}
	if err := x.settle(); err != nil {
		var none I
		return none, err
	}
	return pick(x), nil
}

// visibleUsers returns the users by id as the transaction sees them.
// LoadUser puts a user in them at once (settle indexes the others).
func (t *Txn) visibleUsers() (ordered[*User], error) {
	if x := t.users; x != nil {
		return x.rows, nil
	}
	return t.storedUsers()
}

// visibleNames returns the userName index as the transaction sees it.
func (t *Txn) visibleNames() (ordered[string], error) {
	return visible(t, func(x *userIndexes) ordered[string] { return x.names }, t.storedNames)
}

// store writes the changed maps into their rows.
func (x *userIndexes) store(t *Txn) error {
	if err := x.settle(); err != nil {
		return err
	}
	if err := x.rows.store(t, userRowsKey); err != nil {
		return err
	}
	if err := x.names.store(t, userNamesKey); err != nil {
		return err
	}
	if err := x.ext.store(t, externalIDsKey); err != nil {
		return err
	}
	return x.emails.store(t, workEmailsKey)
}

// LoadUser inserts u, which must be new to the store, as Load fills it from
// a journal: it skips looking up a previous version of u and, within Load,
// indexes users in bulk when they are next needed.
func (t *Txn) LoadUser(u *User) error {
	t.writes++
	u = withAllWorkEmails(u)
	x, err := t.userIndexes()
	if err != nil {
		return err
	}
	if x.rows.b == nil {
		return t.putUser(u, true)
	}
	x.rows.set(u.ID, u)
	x.loaded = append(x.loaded, u)
	return nil
}

// settle indexes the users LoadUser deferred.
func (x *userIndexes) settle() error {
	if len(x.loaded) == 0 {
		return nil
	}
	type entry struct{ name, id string }
	names := make([]entry, len(x.loaded))
	ext := make(map[string][]string)
	emails := make(map[string][]string)
	var buf [4]string
	for i, u := range x.loaded {
		names[i] = entry{Fold(u.UserName), u.ID}
		if u.ExternalID != "" {
			ext[u.ExternalID] = append(ext[u.ExternalID], u.ID)
		}
		for _, k := range workEmailKeys(u, buf[:]) {
			emails[k] = append(emails[k], u.ID)
		}
	}
	x.loaded = nil
	slices.SortFunc(names, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for i, e := range names {
		held, ok := x.names.get(e.name)
		if !ok && i > 0 && names[i-1].name == e.name {
			held, ok = names[i-1].id, true
		}
		if ok {
			return fmt.Errorf("%w: %q is held by user %s and %s", ErrUserNameTaken, e.name, held, e.id)
		}
		x.names.set(e.name, e.id)
	}
	for _, idx := range []struct {
		lists *idLists
		add   map[string][]string
	}{{&x.ext, ext}, {&x.emails, emails}} {
		for key, ids := range idx.add {
			ids = append(slices.Clone(idx.lists.get(key)), ids...)
			slices.Sort(ids)
			idx.lists.set(key, ids)
		}
	}
	return nil
}

// putUser inserts or replaces u and keeps its indexes; fresh says u has no
// previous version.
func (t *Txn) putUser(u *User, fresh bool) error {
	u = withAllWorkEmails(u)
	x, err := t.userIndexes()
	if err != nil {
		return err
	}
	if err := x.settle(); err != nil {
		return err
	}
	name := Fold(u.UserName)
	if id, ok := x.names.get(name); ok && id != u.ID {
		return fmt.Errorf("%w: %q is held by user %s", ErrUserNameTaken, u.UserName, id)
	}
	var old *User
	if !fresh {
		old, _ = x.rows.get(u.ID)
	}
	x.rows.set(u.ID, u)
	t.userChanged(old, u)
	oldName := ""
	if old != nil {
		oldName = Fold(old.UserName)
	}
	if old != nil && oldName != name {
		x.names.delete(oldName)
	}
	if old == nil || oldName != name {
		x.names.set(name, u.ID)
	}
	if old == nil || old.ExternalID != u.ExternalID {
		if old != nil {
			x.ext.change(old.ExternalID, u.ID, false)
		}
		x.ext.change(u.ExternalID, u.ID, true)
	}
	x.emails.changeWorkEmails(u.ID, old, u)
	return nil
}

// deleteUser deletes u and its index entries.
func (t *Txn) deleteUser(u *User) error {
	x, err := t.userIndexes()
	if err != nil {
		return err
	}
	if err := x.settle(); err != nil {
		return err
	}
	old, ok := x.rows.get(u.ID)
	if !ok {
		return memdb.ErrNotFound
	}
	x.rows.delete(u.ID)
	t.userChanged(old, nil)
	x.names.delete(Fold(old.UserName))
	x.ext.change(old.ExternalID, old.ID, false)
	x.emails.changeWorkEmails(old.ID, old, nil)
	return nil
}

// deleteAllUsers deletes every user: the four maps start again empty
// rather than losing their users one by one (a mirror's reload clears the
// users before it loads them again).
func (t *Txn) deleteAllUsers() (int, error) {
	x, err := t.userIndexes()
	if err != nil {
		return 0, err
	}
	if err := x.settle(); err != nil {
		return 0, err
	}
	n := x.rows.len()
	if x.rows.b != nil {
		// Load's own transaction, which tracks no changes.
		x.rows.build()
		x.names.build()
	} else {
		for it := x.rows.m.Iterator(); !it.Done(); {
			_, u, _ := it.Next()
			t.userChanged(u, nil)
		}
		x.rows = ordered[*User]{m: noUsers, dirty: true}
		x.names = ordered[string]{m: noNames, dirty: true}
	}
	x.ext = idLists{m: &hamt.Map[[]string]{}, dirty: true}
	x.emails = idLists{m: &hamt.Map[[]string]{}, dirty: true}
	return n, nil
}

// userChanged records a user's change for the journal, as memdb records
// its rows': one change per user and transaction, from its first before to
// its last after.
func (t *Txn) userChanged(before, after *User) {
	if !t.trackUsers {
		return
	}
	id := cmp.Or(after, before).ID
	if i, ok := t.userChangeAt[id]; ok {
		t.userChanges[i].After = asChange(after)
		return
	}
	if t.userChangeAt == nil {
		t.userChangeAt = make(map[string]int)
	}
	t.userChangeAt[id] = len(t.userChanges)
	t.userChanges = append(t.userChanges, memdb.Change{Table: TableUsers, Before: asChange(before), After: asChange(after)})
}

// asChange is u as a change holds it: nil, not a nil *User, when there is none.
func asChange(u *User) any {
	if u == nil {
		return nil
	}
	return u
}

// UserByID returns the user with id, or nil.
func (t *Txn) UserByID(id string) (*User, error) {
	users, err := t.visibleUsers()
	if err != nil {
		return nil, err
	}
	u, _ := users.get(id)
	return u, nil
}

// UserByName returns the user whose userName folds equal to name (see
// Fold), or nil.
func (t *Txn) UserByName(name string) (*User, error) {
	names, err := t.visibleNames()
	if err != nil {
		return nil, err
	}
	id, ok := names.get(Fold(name))
	if !ok {
		return nil, nil
	}
	return t.UserByID(id)
}

// UsersByExternalID returns the users whose externalId is ext (case-exact),
// in id order.
func (t *Txn) UsersByExternalID(ext string) ([]*User, error) {
	return t.usersListed(externalIDsKey, func(x *userIndexes) idLists { return x.ext }, ext)
}

// UsersByWorkEmail returns the users one of whose work emails folds equal
// to email (see Fold), in id order.
func (t *Txn) UsersByWorkEmail(email string) ([]*User, error) {
	key := Fold(email)
	out, err := t.usersListed(workEmailsKey, func(x *userIndexes) idLists { return x.emails }, key)
	if err != nil {
		return nil, err
	}
	// The index leaves out addresses that equal the userName.
	u, err := t.UserByName(email)
	if err != nil {
		return nil, err
	}
	if u != nil && hasWorkEmail(u, key) {
		i, _ := slices.BinarySearchFunc(out, u.ID, func(a *User, id string) int { return strings.Compare(a.ID, id) })
		out = slices.Insert(out, i, u)
	}
	return out, nil
}

// usersListed returns the users an id-list index (the row key, or pending
// in a write's lists) holds under key.
func (t *Txn) usersListed(row string, lists func(*userIndexes) idLists, key string) ([]*User, error) {
	l, err := visible(t, lists, func() (idLists, error) { return t.storedIDLists(row) })
	if err != nil {
		return nil, err
	}
	users, err := t.visibleUsers()
	if err != nil {
		return nil, err
	}
	var out []*User
	for _, id := range l.get(key) {
		if u, ok := users.get(id); ok {
			out = append(out, u)
		}
	}
	return out, nil
}

// UsersByName yields the users in the order of their folded userNames,
// starting at the first whose folded userName is at least Fold(from).
func (t *Txn) UsersByName(from string) (iter.Seq2[*User, error], error) {
	names, err := listed(t.visibleNames())
	if err != nil {
		return nil, err
	}
	users, err := t.visibleUsers()
	if err != nil {
		return nil, err
	}
	return func(yield func(*User, error) bool) {
		it := names.Iterator()
		it.Seek(Fold(from))
		for !it.Done() {
			_, id, _ := it.Next()
			if u, ok := users.get(id); ok && !yield(u, nil) {
				return
			}
		}
	}, nil
}

// stringComparer orders strings bytewise.
type stringComparer struct{}

func (stringComparer) Compare(a, b string) int { return strings.Compare(a, b) }

// UserCount returns how many users the transaction sees, without
// visiting them.
func (t *Txn) UserCount() (int, error) {
	users, err := t.visibleUsers()
	return users.len(), err
}

// UsersAfter yields the users whose id sorts after id, in id order; from
// "" it yields every user. A list paged by the last id it showed starts
// each page there instead of counting the users before it.
func (t *Txn) UsersAfter(id string) (iter.Seq[*User], error) {
	users, err := listed(t.visibleUsers())
	if err != nil {
		return nil, fmt.Errorf("users after %q: %w", id, err)
	}
	return func(yield func(*User) bool) {
		it := users.Iterator()
		it.Seek(id)
		for !it.Done() {
			key, u, _ := it.Next()
			if key == id {
				continue
			}
			if !yield(u) {
				return
			}
		}
	}, nil
}

// GroupsAfter is UsersAfter for groups.
func (t *Txn) GroupsAfter(id string) (iter.Seq[*Group], error) {
	it, err := t.LowerBound(TableGroups, IndexID, id)
	if err != nil {
		return nil, fmt.Errorf("groups after %q: %w", id, err)
	}
	return func(yield func(*Group) bool) {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			g := raw.(*Group)
			if g.ID == id {
				continue
			}
			if !yield(g) {
				return
			}
		}
	}, nil
}

// usersChanged returns a channel that stays the same while the users do
// (see Unchanged): the users row's watch channel, or a new, closed one when
// this write changed users it has not stored yet.
func (t *Txn) usersChanged() (<-chan struct{}, error) {
	if x := t.users; x != nil && (x.rows.dirty || x.rows.b != nil) {
		changed := make(chan struct{})
		close(changed)
		return changed, nil
	}
	it, err := t.Txn.Get(TableUserIndexes, IndexID, userRowsKey)
	if err != nil {
		return nil, err
	}
	return it.WatchCh(), nil
}

// getUsers is Txn.Get for the users: every user in id order (IndexID, no
// argument) or the one with an id.
func (t *Txn) getUsers(index string, args []any) (memdb.ResultIterator, error) {
	if index != IndexID || len(args) > 1 {
		return nil, fmt.Errorf("store: users are looked up by %s only, with at most one argument", IndexID)
	}
	watch, err := t.usersChanged()
	if err != nil {
		return nil, err
	}
	if len(args) == 1 {
		id, ok := args[0].(string)
		if !ok {
			return nil, fmt.Errorf("store: user id is %T, not a string", args[0])
		}
		u, err := t.UserByID(id)
		if err != nil {
			return nil, err
		}
		it := &usersIter{watch: watch}
		if u != nil {
			it.one = []*User{u}
		}
		return it, nil
	}
	users, err := listed(t.visibleUsers())
	if err != nil {
		return nil, err
	}
	return &usersIter{all: users.Iterator(), watch: watch}, nil
}

// usersIter is a memdb.ResultIterator over users.
type usersIter struct {
	all   *immutable.SortedMapIterator[string, *User]
	one   []*User
	watch <-chan struct{}
}

func (it *usersIter) WatchCh() <-chan struct{} { return it.watch }

func (it *usersIter) Next() any {
	if it.all == nil {
		if len(it.one) == 0 {
			return nil
		}
		u := it.one[0]
		it.one = it.one[1:]
		return u
	}
	if it.all.Done() {
		return nil
	}
	_, u, _ := it.all.Next()
	return u
}
