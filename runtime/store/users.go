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
	// workEmailsKey: Fold(work email) → sorted ids, for the users whose
	// work email is not their userName (in most tenants the two are one
	// address, found through the userName index; see UsersByWorkEmail).
	workEmailsKey = "workEmail"
)

type userRowsRow struct {
	Key   string
	users *immutable.SortedMap[string, *User]
}

type userNamesRow struct {
	Key   string
	names *immutable.SortedMap[string, string]
}

// idListsRow is the row of an index from a key to the ids holding it.
type idListsRow struct {
	Key string
	ids *hamt.Map[[]string]
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
	rows   *immutable.SortedMap[string, *User]
	names  *immutable.SortedMap[string, string]
	rowsB  *immutable.SortedMapBuilder[string, *User]
	namesB *immutable.SortedMapBuilder[string, string]
	ext    idLists
	emails idLists
	// loaded are users LoadUser inserted whose index entries are not made
	// yet: settle makes them in bulk, in key order, which fills the
	// builders several times faster than one user at a time.
	loaded     []*User
	rowsDirty  bool
	namesDirty bool
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
	if err := t.Txn.Insert(TableUserIndexes, &idListsRow{Key: key, ids: l.m}); err != nil {
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
	if x.ext.m, err = t.storedIDLists(externalIDsKey); err != nil {
		return nil, err
	}
	if x.emails.m, err = t.storedIDLists(workEmailsKey); err != nil {
		return nil, err
	}
	if t.loading && x.rows.Len() == 0 {
		x.rowsB = immutable.NewSortedMapBuilder[string, *User](stringComparer{})
		x.namesB = immutable.NewSortedMapBuilder[string, string](stringComparer{})
	}
	t.users = x
	return x, nil
}

// pendingUsers returns the write's pending maps with LoadUser's users
// indexed, or nil when the transaction reads the stored ones.
func (t *Txn) pendingUsers() (*userIndexes, error) {
	if t.users == nil {
		return nil, nil
	}
	return t.users, t.users.settle()
}

func (t *Txn) storedUsers() (*immutable.SortedMap[string, *User], error) {
	raw, err := t.Txn.First(TableUserIndexes, IndexID, userRowsKey)
	if err != nil || raw == nil {
		return noUsers, err
	}
	return raw.(*userRowsRow).users, nil
}

func (t *Txn) storedNames() (*immutable.SortedMap[string, string], error) {
	raw, err := t.Txn.First(TableUserIndexes, IndexID, userNamesKey)
	if err != nil || raw == nil {
		return noNames, err
	}
	return raw.(*userNamesRow).names, nil
}

func (t *Txn) storedIDLists(key string) (*hamt.Map[[]string], error) {
	raw, err := t.Txn.First(TableUserIndexes, IndexID, key)
	if err != nil || raw == nil {
		return &hamt.Map[[]string]{}, err
	}
	return raw.(*idListsRow).ids, nil
}

// errListedDuringLoad: only Load's own transaction sees builders, and it
// lists no users.
var errListedDuringLoad = errors.New("store: users listed during Load")

// usersMap returns the users as the transaction sees them.
func (t *Txn) usersMap() (*immutable.SortedMap[string, *User], error) {
	x, err := t.pendingUsers()
	switch {
	case err != nil:
		return nil, err
	case x == nil:
		return t.storedUsers()
	case x.rowsB != nil:
		return nil, errListedDuringLoad
	}
	return x.rows, nil
}

// namesMap is usersMap for the userName index.
func (t *Txn) namesMap() (*immutable.SortedMap[string, string], error) {
	x, err := t.pendingUsers()
	switch {
	case err != nil:
		return nil, err
	case x == nil:
		return t.storedNames()
	case x.namesB != nil:
		return nil, errListedDuringLoad
	}
	return x.names, nil
}

func (x *userIndexes) user(id string) *User {
	var u *User
	if x.rowsB != nil {
		u, _ = x.rowsB.Get(id)
	} else {
		u, _ = x.rows.Get(id)
	}
	return u
}

func (x *userIndexes) setUser(u *User) {
	x.rowsDirty = true
	if x.rowsB != nil {
		x.rowsB.Set(u.ID, u)
		return
	}
	x.rows = x.rows.Set(u.ID, u)
}

func (x *userIndexes) deleteUser(id string) {
	x.rowsDirty = true
	if x.rowsB != nil {
		x.rowsB.Delete(id)
		return
	}
	x.rows = x.rows.Delete(id)
}

func (x *userIndexes) name(key string) (string, bool) {
	if x.namesB != nil {
		return x.namesB.Get(key)
	}
	return x.names.Get(key)
}

func (x *userIndexes) setName(key, id string) {
	x.namesDirty = true
	if x.namesB != nil {
		x.namesB.Set(key, id)
		return
	}
	x.names = x.names.Set(key, id)
}

func (x *userIndexes) deleteName(key string) {
	x.namesDirty = true
	if x.namesB != nil {
		x.namesB.Delete(key)
		return
	}
	x.names = x.names.Delete(key)
}

// store writes the changed maps into their rows.
func (x *userIndexes) store(t *Txn) error {
	if err := x.settle(); err != nil {
		return err
	}
	if x.rowsB != nil {
		x.rows, x.rowsB = x.rowsB.Map(), nil
	}
	if x.namesB != nil {
		x.names, x.namesB = x.namesB.Map(), nil
	}
	if x.rowsDirty {
		if err := t.Txn.Insert(TableUserIndexes, &userRowsRow{Key: userRowsKey, users: x.rows}); err != nil {
			return fmt.Errorf("store users: %w", err)
		}
	}
	if x.namesDirty {
		if err := t.Txn.Insert(TableUserIndexes, &userNamesRow{Key: userNamesKey, names: x.names}); err != nil {
			return fmt.Errorf("store user names: %w", err)
		}
	}
	if err := x.ext.store(t, externalIDsKey); err != nil {
		return err
	}
	return x.emails.store(t, workEmailsKey)
}

// workEmailKey is u's key in the work email index: "" (no entry) when u has
// no work email or it is u's userName.
func workEmailKey(u *User) string {
	if u == nil || u.WorkEmail == "" {
		return ""
	}
	if k := Fold(u.WorkEmail); k != Fold(u.UserName) {
		return k
	}
	return ""
}

// LoadUser inserts u, which must be new to the store, as Load fills it from
// a journal: it skips looking up a previous version of u and, within Load,
// indexes users in bulk when they are next needed.
func (t *Txn) LoadUser(u *User) error {
	t.writes++
	x, err := t.userIndexes()
	if err != nil {
		return err
	}
	if x.rowsB == nil {
		return t.putUser(u, true)
	}
	x.setUser(u)
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
	for i, u := range x.loaded {
		names[i] = entry{Fold(u.UserName), u.ID}
		if u.ExternalID != "" {
			ext[u.ExternalID] = append(ext[u.ExternalID], u.ID)
		}
		if k := workEmailKey(u); k != "" {
			emails[k] = append(emails[k], u.ID)
		}
	}
	x.loaded = nil
	slices.SortFunc(names, func(a, b entry) int { return strings.Compare(a.name, b.name) })
	for i, e := range names {
		held, ok := x.name(e.name)
		if !ok && i > 0 && names[i-1].name == e.name {
			held, ok = names[i-1].id, true
		}
		if ok {
			return fmt.Errorf("%w: %q is held by user %s and %s", ErrUserNameTaken, e.name, held, e.id)
		}
		x.setName(e.name, e.id)
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
	x, err := t.userIndexes()
	if err != nil {
		return err
	}
	if err := x.settle(); err != nil {
		return err
	}
	name := Fold(u.UserName)
	if id, ok := x.name(name); ok && id != u.ID {
		return fmt.Errorf("%w: %q is held by user %s", ErrUserNameTaken, u.UserName, id)
	}
	var old *User
	if !fresh {
		old = x.user(u.ID)
	}
	x.setUser(u)
	t.userChanged(old, u)
	oldName := ""
	if old != nil {
		oldName = Fold(old.UserName)
	}
	if old != nil && oldName != name {
		x.deleteName(oldName)
	}
	if old == nil || oldName != name {
		x.setName(name, u.ID)
	}
	if old == nil || old.ExternalID != u.ExternalID {
		if old != nil {
			x.ext.change(old.ExternalID, u.ID, false)
		}
		x.ext.change(u.ExternalID, u.ID, true)
	}
	if before, after := workEmailKey(old), workEmailKey(u); before != after {
		x.emails.change(before, u.ID, false)
		x.emails.change(after, u.ID, true)
	}
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
	old := x.user(u.ID)
	if old == nil {
		return memdb.ErrNotFound
	}
	x.deleteUser(u.ID)
	t.userChanged(old, nil)
	x.deleteName(Fold(old.UserName))
	x.ext.change(old.ExternalID, old.ID, false)
	x.emails.change(workEmailKey(old), old.ID, false)
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
	var n int
	if x.rowsB != nil {
		// Load's own transaction, which tracks no changes.
		n = x.rowsB.Len()
		x.rowsB = immutable.NewSortedMapBuilder[string, *User](stringComparer{})
		x.namesB = immutable.NewSortedMapBuilder[string, string](stringComparer{})
	} else {
		n = x.rows.Len()
		for it := x.rows.Iterator(); !it.Done(); {
			_, u, _ := it.Next()
			t.userChanged(u, nil)
		}
		x.rows, x.names = noUsers, noNames
	}
	x.rowsDirty, x.namesDirty = true, true
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
	user, err := t.userLookup()
	if err != nil {
		return nil, err
	}
	return user(id), nil
}

// userLookup returns a func that finds a user by id as the transaction sees
// the users now, for looking up many with one lookup of their row.
func (t *Txn) userLookup() (func(id string) *User, error) {
	if x := t.users; x != nil {
		return x.user, nil
	}
	users, err := t.storedUsers()
	if err != nil {
		return nil, err
	}
	return func(id string) *User {
		u, _ := users.Get(id)
		return u
	}, nil
}

// UserByName returns the user whose userName folds equal to name (see
// Fold), or nil.
func (t *Txn) UserByName(name string) (*User, error) {
	var id string
	var ok bool
	if x, err := t.pendingUsers(); err != nil {
		return nil, err
	} else if x != nil {
		id, ok = x.name(Fold(name))
	} else {
		names, err := t.storedNames()
		if err != nil {
			return nil, err
		}
		id, ok = names.Get(Fold(name))
	}
	if !ok {
		return nil, nil
	}
	return t.UserByID(id)
}

// UsersByExternalID returns the users whose externalId is ext (case-exact),
// in id order.
func (t *Txn) UsersByExternalID(ext string) ([]*User, error) {
	return t.usersListed(externalIDsKey, func(x *userIndexes) *idLists { return &x.ext }, ext)
}

// UsersByWorkEmail returns the users whose work email folds equal to email
// (see Fold), in id order.
func (t *Txn) UsersByWorkEmail(email string) ([]*User, error) {
	out, err := t.usersListed(workEmailsKey, func(x *userIndexes) *idLists { return &x.emails }, Fold(email))
	if err != nil {
		return nil, err
	}
	// The index leaves out addresses that equal the userName.
	u, err := t.UserByName(email)
	if err != nil {
		return nil, err
	}
	if u != nil && Fold(u.WorkEmail) == Fold(email) {
		i, _ := slices.BinarySearchFunc(out, u.ID, func(a *User, id string) int { return strings.Compare(a.ID, id) })
		out = slices.Insert(out, i, u)
	}
	return out, nil
}

// usersListed returns the users an id-list index (the row key, or pending
// in a write's lists) holds under key.
func (t *Txn) usersListed(row string, lists func(*userIndexes) *idLists, key string) ([]*User, error) {
	var ids []string
	if x, err := t.pendingUsers(); err != nil {
		return nil, err
	} else if x != nil {
		ids = lists(x).get(key)
	} else {
		m, err := t.storedIDLists(row)
		if err != nil {
			return nil, err
		}
		ids, _ = m.Get(key)
	}
	var out []*User
	for _, id := range ids {
		u, err := t.UserByID(id)
		if err != nil {
			return nil, err
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// UsersByName yields the users in the order of their folded userNames,
// starting at the first whose folded userName is at least Fold(from).
func (t *Txn) UsersByName(from string) (iter.Seq2[*User, error], error) {
	names, err := t.namesMap()
	if err != nil {
		return nil, err
	}
	users, err := t.usersMap()
	if err != nil {
		return nil, err
	}
	return func(yield func(*User, error) bool) {
		it := names.Iterator()
		it.Seek(Fold(from))
		for !it.Done() {
			_, id, _ := it.Next()
			if u, ok := users.Get(id); ok && !yield(u, nil) {
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
	if x, err := t.pendingUsers(); err != nil {
		return 0, err
	} else if x != nil && x.rowsB != nil {
		return x.rowsB.Len(), nil
	}
	users, err := t.usersMap()
	if err != nil {
		return 0, err
	}
	return users.Len(), nil
}

// UsersAfter yields the users whose id sorts after id, in id order; from
// "" it yields every user. A list paged by the last id it showed starts
// each page there instead of counting the users before it.
func (t *Txn) UsersAfter(id string) (iter.Seq[*User], error) {
	users, err := t.usersMap()
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

// GroupCount returns how many groups the transaction sees. Unlike users,
// it counts them one by one: a tenant has far fewer groups than users.
func (t *Txn) GroupCount() (int, error) {
	it, err := t.Get(TableGroups, IndexID)
	if err != nil {
		return 0, fmt.Errorf("count groups: %w", err)
	}
	n := 0
	for raw := it.Next(); raw != nil; raw = it.Next() {
		n++
	}
	return n, nil
}

// usersChanged returns a channel that stays the same while the users do
// (see Unchanged): the users row's watch channel, or a new, closed one when
// this write changed users it has not stored yet.
func (t *Txn) usersChanged() (<-chan struct{}, error) {
	if x := t.users; x != nil && (x.rowsDirty || x.rowsB != nil) {
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
	users, err := t.usersMap()
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
