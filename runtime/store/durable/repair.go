package durable

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// uniqueNames renames, in objs (all groups or all users of the file), each
// object whose name folds equal to that of an object created before it
// (then: of a lower id), appending a Repair for each. The new name,
// "<name> (duplicate <id>)", holds the object's id, so it is free unless a
// name was chosen to clash with it; then the suffix is repeated until it
// is free. Renamed objects are copies: decoded records are not changed.
func uniqueNames(table string, objs []any, repairs *[]Repair) error {
	type row struct {
		i       int
		key     string
		id      string
		created time.Time
	}
	rows := make([]row, len(objs))
	for i, obj := range objs {
		id, name, created, err := nameOf(obj)
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, table, err)
		}
		rows[i] = row{i, store.Fold(name), id, created}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(strings.Compare(a.key, b.key), a.created.Compare(b.created), strings.Compare(a.id, b.id))
	})
	given := map[string]bool{} // keys of the new names
	taken := func(key string) bool {
		_, found := slices.BinarySearchFunc(rows, key, func(r row, k string) int { return strings.Compare(r.key, k) })
		return found || given[key]
	}
	holder := 0
	for j := 1; j < len(rows); j++ {
		if rows[j].key != rows[holder].key {
			holder = j
			continue
		}
		r := rows[j]
		_, from, _, _ := nameOf(objs[r.i])
		to := from
		for {
			to += " (duplicate " + r.id + ")"
			if key := store.Fold(to); !taken(key) {
				given[key] = true
				break
			}
		}
		obj, err := renamed(objs[r.i], to)
		if err != nil {
			return fmt.Errorf("%w: %s %q: %w", ErrCorrupt, table, r.id, err)
		}
		objs[r.i] = obj
		*repairs = append(*repairs, Repair{Table: table, ID: r.id, From: from, To: to, Holder: rows[holder].id, obj: obj})
	}
	return nil
}

// nameOf returns what uniqueNames needs of a group or user.
func nameOf(obj any) (id, name string, created time.Time, err error) {
	switch o := obj.(type) {
	case *store.Group:
		return o.ID, o.DisplayName, o.Created, nil
	case *store.User:
		return o.ID, o.UserName, o.Created, nil
	}
	return "", "", time.Time{}, fmt.Errorf("unexpected %T", obj)
}

// renamed returns a copy of a group or user with name, its version bumped
// (SCIM's meta.version and ETag change with what the resource shows). A
// user's stored attributes, which SCIM shows, get the new userName too.
func renamed(obj any, name string) (any, error) {
	switch o := obj.(type) {
	case *store.Group:
		g := *o
		g.DisplayName = name
		g.Version++
		return &g, nil
	case *store.User:
		u := *o
		u.UserName = name
		u.Version++
		attrs := map[string]json.RawMessage{}
		if len(o.Attributes) > 0 {
			if err := json.Unmarshal(o.Attributes, &attrs); err != nil {
				return nil, fmt.Errorf("attributes: %w", err)
			}
		}
		attrs["userName"], _ = json.Marshal(name) // a string always encodes
		b, err := json.Marshal(attrs)
		if err != nil {
			return nil, fmt.Errorf("attributes: %w", err)
		}
		u.Attributes = b
		return &u, nil
	}
	return nil, fmt.Errorf("unexpected %T", obj)
}
