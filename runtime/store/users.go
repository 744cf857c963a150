package store

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"

	"github.com/benbjohnson/immutable"

	"github.com/idrecon/idrecon/runtime/store/internal/hamt"
)

// ErrUserNameTaken is returned when a user would take a userName another
// user holds (as Fold compares them). The SCIM server checks first and answers
// 409; this keeps the index from ever pointing two ways.
var ErrUserNameTaken = errors.New("store: userName is taken")

// Users are one memdb row each, indexed there by id only. Their userName and
// externalId indexes are persistent maps kept in two rows of
// TableUserIndexes, updated with the users in the same transaction. The maps
// cost a fraction of a radix-tree index entry per user
// (BenchmarkIndexEntryBytes), and a start-up builds them in place instead of
// inserting a million users into three trees.
const (
	userNamesKey   = "userName"   // Fold(userName) → id, ordered
	externalIDsKey = "externalId" // externalId → sorted ids
)

type userNamesRow struct {
	Key   string
	names *immutable.SortedMap[string, string]
}

type externalIDsRow struct {
	Key string
	ids *hamt.Map[[]string]
}

// userIndexes is a transaction's view of the two maps. A write that changes
// them keeps its versions here until flush stores them; while the store is
// filled by Load, a builder changes the names in place. The externalIds are
// edited in place by a batch (see hamt) in either case.
type userIndexes struct {
	names  *immutable.SortedMap[string, string]
	ext    *hamt.Map[[]string]
	namesB *immutable.SortedMapBuilder[string, string]
	extE   *hamt.Editor[[]string] // ext being changed, once it is
	// loaded are users LoadUser inserted whose index entries are not made
	// yet: settle makes them in bulk, in key order, which fills the
	// builders several times faster than one user at a time.
	loaded     []*User
	namesDirty bool
	extDirty   bool
}

// userIndexes returns the transaction's pending indexes, creating them from
// the stored rows for a write.
func (t *Txn) userIndexes() (*userIndexes, error) {
	if t.users != nil {
		return t.users, nil
	}
	x, err := t.storedUserIndexes(true, true)
	if err != nil {
		return nil, err
	}
	if t.loading && x.names.Len() == 0 && x.ext.Len() == 0 {
		x.namesB = immutable.NewSortedMapBuilder[string, string](stringComparer{})
	}
	t.users = x
	return x, nil
}

// readUserIndexes returns the indexes as this transaction sees them. A read
// of a stored state loads only the maps it asks for; the others are empty.
func (t *Txn) readUserIndexes(names, ext bool) (*userIndexes, error) {
	if t.users != nil {
		return t.users, t.users.settle()
	}
	return t.storedUserIndexes(names, ext)
}

// storedUserIndexes returns the stored maps asked for, the others empty.
func (t *Txn) storedUserIndexes(names, ext bool) (*userIndexes, error) {
	x := &userIndexes{
		names: immutable.NewSortedMap[string, string](stringComparer{}),
		ext:   &hamt.Map[[]string]{},
	}
	if names {
		raw, err := t.First(TableUserIndexes, IndexID, userNamesKey)
		if err != nil {
			return nil, fmt.Errorf("look up user names: %w", err)
		}
		if raw != nil {
			x.names = raw.(*userNamesRow).names
		}
	}
	if ext {
		raw, err := t.First(TableUserIndexes, IndexID, externalIDsKey)
		if err != nil {
			return nil, fmt.Errorf("look up user externalIds: %w", err)
		}
		if raw != nil {
			x.ext = raw.(*externalIDsRow).ids
		}
	}
	return x, nil
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

func (x *userIndexes) externalIDs(ext string) []string {
	if x.extE != nil {
		ids, _ := x.extE.Get(ext)
		return ids
	}
	ids, _ := x.ext.Get(ext)
	return ids
}

// changeExternalID adds id to (or removes it from) the users of ext.
func (x *userIndexes) changeExternalID(ext, id string, add bool) {
	if ext == "" {
		return
	}
	ids, changed := toggle(x.externalIDs(ext), id, add)
	if !changed {
		return
	}
	x.setExternalIDs(ext, ids)
}

// setExternalIDs sets the users of ext to ids (none: ext goes).
func (x *userIndexes) setExternalIDs(ext string, ids []string) {
	x.extDirty = true
	if x.extE == nil {
		x.extE = x.ext.Edit()
	}
	if len(ids) == 0 {
		x.extE.Delete(ext)
	} else {
		x.extE.Set(ext, ids)
	}
}

// store writes the changed maps into their rows.
func (x *userIndexes) store(t *Txn) error {
	if err := x.settle(); err != nil {
		return err
	}
	if x.namesB != nil {
		x.names, x.namesB = x.namesB.Map(), nil
	}
	if x.extE != nil {
		x.ext, x.extE = x.extE.Map(), nil
	}
	if x.namesDirty {
		if err := t.Txn.Insert(TableUserIndexes, &userNamesRow{Key: userNamesKey, names: x.names}); err != nil {
			return fmt.Errorf("store user names: %w", err)
		}
	}
	if x.extDirty {
		if err := t.Txn.Insert(TableUserIndexes, &externalIDsRow{Key: externalIDsKey, ids: x.ext}); err != nil {
			return fmt.Errorf("store user externalIds: %w", err)
		}
	}
	return nil
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
	if x.namesB == nil {
		return t.putUser(u, true)
	}
	if err := t.Txn.Insert(TableUsers, u); err != nil {
		return err
	}
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
	for i, u := range x.loaded {
		names[i] = entry{Fold(u.UserName), u.ID}
		if u.ExternalID != "" {
			ext[u.ExternalID] = append(ext[u.ExternalID], u.ID)
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
	for key, ids := range ext {
		ids = append(slices.Clone(x.externalIDs(key)), ids...)
		slices.Sort(ids)
		x.setExternalIDs(key, ids)
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
		if old, err = t.UserByID(u.ID); err != nil {
			return err
		}
	}
	if err := t.Txn.Insert(TableUsers, u); err != nil {
		return err
	}
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
	if old != nil && old.ExternalID != u.ExternalID {
		x.changeExternalID(old.ExternalID, u.ID, false)
	}
	if old == nil || old.ExternalID != u.ExternalID {
		x.changeExternalID(u.ExternalID, u.ID, true)
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
	if err := t.Txn.Delete(TableUsers, u); err != nil {
		return err
	}
	x.deleteName(Fold(u.UserName))
	x.changeExternalID(u.ExternalID, u.ID, false)
	return nil
}

// UserByName returns the user whose userName folds equal to name (see
// Fold), or nil.
func (t *Txn) UserByName(name string) (*User, error) {
	x, err := t.readUserIndexes(true, false)
	if err != nil {
		return nil, err
	}
	id, ok := x.name(Fold(name))
	if !ok {
		return nil, nil
	}
	return t.UserByID(id)
}

// UsersByExternalID returns the users whose externalId is ext (case-exact),
// in id order.
func (t *Txn) UsersByExternalID(ext string) ([]*User, error) {
	x, err := t.readUserIndexes(false, true)
	if err != nil {
		return nil, err
	}
	var out []*User
	for _, id := range x.externalIDs(ext) {
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
	x, err := t.readUserIndexes(true, false)
	if err != nil {
		return nil, err
	}
	names := x.names
	if x.namesB != nil {
		// Only Load's own transaction sees a builder; it has no pages.
		return nil, errors.New("store: UsersByName during Load")
	}
	return func(yield func(*User, error) bool) {
		it := names.Iterator()
		it.Seek(Fold(from))
		for !it.Done() {
			_, id, _ := it.Next()
			u, err := t.UserByID(id)
			if u == nil && err == nil {
				continue
			}
			if !yield(u, err) || err != nil {
				return
			}
		}
	}, nil
}

// stringComparer orders strings bytewise.
type stringComparer struct{}

func (stringComparer) Compare(a, b string) int { return strings.Compare(a, b) }

// UserCount returns how many users the transaction sees, without
// visiting them: every user holds one entry of the userName index.
func (t *Txn) UserCount() (int, error) {
	x, err := t.readUserIndexes(true, false)
	if err != nil {
		return 0, err
	}
	if x.namesB != nil {
		return x.namesB.Len(), nil
	}
	return x.names.Len(), nil
}

// UsersAfter yields the users whose id sorts after id, in id order; from
// "" it yields every user. A list paged by the last id it showed starts
// each page there instead of counting the users before it.
func (t *Txn) UsersAfter(id string) (iter.Seq[*User], error) {
	return rowsAfter(t, TableUsers, id, func(u *User) string { return u.ID })
}

// GroupsAfter is UsersAfter for groups.
func (t *Txn) GroupsAfter(id string) (iter.Seq[*Group], error) {
	return rowsAfter(t, TableGroups, id, func(g *Group) string { return g.ID })
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

// rowsAfter yields table's rows whose id (idOf) sorts after id, in id
// order.
func rowsAfter[T any](t *Txn, table, id string, idOf func(T) string) (iter.Seq[T], error) {
	it, err := t.LowerBound(table, IndexID, id)
	if err != nil {
		return nil, fmt.Errorf("%s after %q: %w", table, id, err)
	}
	return func(yield func(T) bool) {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			row := raw.(T)
			if idOf(row) == id {
				continue
			}
			if !yield(row) {
				return
			}
		}
	}, nil
}
