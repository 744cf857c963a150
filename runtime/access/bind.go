package access

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// bindingPrefix starts the Meta keys of group bindings; the assignment name
// follows.
const bindingPrefix = "access/binding/"

// binding records the group a group assignment matched, so that the
// assignment keeps applying to that group after Entra renames it.
type binding struct {
	// Subject is the subject.group the binding was made for, folded
	// (store.Fold; see madeFor for older records); a spec change of the
	// subject makes the binding stale.
	Subject     string
	GroupID     string
	ExternalID  string
	DisplayName string // when bound, for people reading the record
}

// madeFor reports whether b was made for the subject whose store.Fold key
// is key. Records written before store.Fold hold the strings.ToLower key,
// which differs for some letters (ToLower keeps a final ς, Fold gives σ, so
// most Greek names): folded again they still match, rather than losing a
// renamed group its access.
func (b binding) madeFor(key string) bool {
	return b.Subject == key || store.Fold(b.Subject) == key
}

// readBindings reads the binding records; sizeHint is the expected count.
func readBindings(txn *store.Txn, sizeHint int) (map[string]binding, error) {
	it, err := txn.Get(store.TableMeta, store.IndexID+"_prefix", bindingPrefix)
	if err != nil {
		return nil, fmt.Errorf("read bindings: %w", err)
	}
	out := make(map[string]binding, sizeHint)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		m := raw.(*store.Meta)
		if b, ok := decodeBinding(m.Value); ok {
			out[strings.TrimPrefix(m.Key, bindingPrefix)] = b
		}
	}
	return out, nil
}

// SyncBindings records a binding for every group assignment that matches a
// group and has none (or a stale one), and removes bindings of assignments
// that are gone. It is a store.Update function: it derives everything from
// txn and computes all changes before making any. It returns how many
// records it wrote or deleted.
func SyncBindings(txn *store.Txn) (int, error) {
	snap := snapshot(txn)
	cat, err := catalogOf(snap)
	if err != nil {
		return 0, err
	}
	put := make(map[string]binding)
	var del []string
	groupGrants := make(map[string]bool)
	for _, g := range cat.grants {
		groupGrants[g.name] = g.isGroup()
	}
	for name := range cat.bindings {
		if !groupGrants[name] {
			del = append(del, name)
		}
	}
	for _, g := range cat.grants {
		if !g.isGroup() {
			continue
		}
		b, bound := cat.bindings[g.name]
		grp, deleted, err := cat.target(snap, g)
		if err != nil {
			return 0, fmt.Errorf("look up group: %w", err)
		}
		switch {
		case grp == nil && deleted:
			// Keep the record: it tells "deleted" from "not provisioned".
		case grp == nil:
			if bound {
				del = append(del, g.name)
			}
		case !bound || b.Subject != g.key || b.GroupID != grp.ID:
			// A record of an old subject key (see madeFor) is rewritten too.
			nb := binding{Subject: g.key, GroupID: grp.ID, ExternalID: grp.ExternalID, DisplayName: grp.DisplayName}
			if _, ok := encodeBinding(nb); ok {
				put[g.name] = nb
			}
		}
	}
	for _, name := range del {
		if _, err := txn.DeleteAll(store.TableMeta, store.IndexID, bindingPrefix+name); err != nil {
			return 0, fmt.Errorf("delete binding of %s: %w", name, err)
		}
	}
	for name, b := range put {
		v, _ := encodeBinding(b) // checked above
		if err := txn.Insert(store.TableMeta, &store.Meta{Key: bindingPrefix + name, Value: v}); err != nil {
			return 0, fmt.Errorf("store binding of %s: %w", name, err)
		}
	}
	return len(del) + len(put), nil
}

// Updater is the part of the store the Binder writes through.
type Updater interface {
	Update(ctx context.Context, fn func(*store.Txn) error) error
}

// Binder keeps the group bindings current. Feed it the store's commits
// (store.Options.OnCommit calling Notify) and run it with Run.
type Binder struct {
	logger *slog.Logger
	kick   chan struct{}
}

// NewBinder returns a Binder that logs to logger.
func NewBinder(logger *slog.Logger) *Binder {
	return &Binder{logger: logger, kick: make(chan struct{}, 1)}
}

// Notify tells the Binder about committed changes. It never blocks, so it is
// safe to call from store.Options.OnCommit; changes that cannot affect a
// binding (including the Binder's own) are ignored.
func (b *Binder) Notify(changes memdb.Changes) {
	for _, c := range changes {
		if relevant(c) {
			select {
			case b.kick <- struct{}{}:
			default:
			}
			return
		}
	}
}

func relevant(c memdb.Change) bool {
	switch c.Table {
	case store.TableGroups:
		// Membership changes rewrite the group too; only arrivals, renames
		// and deletions matter here.
		before, _ := c.Before.(*store.Group)
		after, _ := c.After.(*store.Group)
		return before == nil || after == nil || before.DisplayName != after.DisplayName
	case store.TableResources:
		for _, v := range []any{c.Before, c.After} {
			if r, ok := v.(*store.Resource); ok && r.Kind == spec.KindAccessAssignment {
				return true
			}
		}
	}
	return false
}

// Run syncs the bindings once and then after every relevant commit, until
// ctx is done. A failed sync is logged and retried at the next commit.
func (b *Binder) Run(ctx context.Context, st Updater) error {
	b.sync(ctx, st)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.kick:
			b.sync(ctx, st)
		}
	}
}

func (b *Binder) sync(ctx context.Context, st Updater) {
	var n int
	err := st.Update(ctx, func(txn *store.Txn) error {
		var err error
		n, err = SyncBindings(txn)
		return err
	})
	switch {
	case err != nil && ctx.Err() == nil:
		b.logger.Error("sync group bindings", "err", err)
	case err == nil && n > 0:
		b.logger.Info("group bindings updated", "changes", n)
	}
}
