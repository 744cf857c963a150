package access

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// versionRef is one application version a grant reaches and the spec entry
// ("app/v" or "app/*") that reaches it.
type versionRef struct {
	app, version, via string
}

// grant is one AccessAssignment reduced to what exists: roles that are
// defined and versions that applications list ("app/*" expanded).
type grant struct {
	name     string
	idx      int // position in specCatalog.grants
	subject  spec.Subject
	key      string // store.Fold of the subject name
	roles    []string
	versions []versionRef
}

func (g *grant) isGroup() bool { return g.subject.Group != "" }

// specCatalog holds the spec side of access: grants by subject and
// application.
type specCatalog struct {
	grants      []*grant // sorted by name
	byGroupName map[string][]*grant
	byUserName  map[string][]*grant
	byApp       map[string][]*grant
	apps        map[string][]string
	roles       map[string]bool
}

// catalog is a specCatalog with the recorded group bindings. The two are
// built and memoised apart because the Binder writes bindings while SCIM
// groups arrive, and that must not rebuild the spec side.
type catalog struct {
	*specCatalog
	bindings map[string]binding
	// byBoundGroup holds the group assignments by the group id their
	// binding names (bindings made for another subject name do not count).
	byBoundGroup map[string][]*grant
	// boundTo is that group id by grant idx, "" for none: grantsOf asks it
	// of every assignment a group's name matches.
	boundTo []string
}

// specInput is the raw material of a catalog.
type specInput struct {
	assignments map[string]*spec.AccessAssignment
	roles       map[string]bool
	apps        map[string][]string
	bindings    map[string]binding
}

func newCatalog(in specInput) *catalog {
	return withBindings(newSpecCatalog(in), in.bindings)
}

func withBindings(sc *specCatalog, bindings map[string]binding) *catalog {
	c := &catalog{specCatalog: sc, bindings: bindings, byBoundGroup: make(map[string][]*grant, len(bindings)),
		boundTo: make([]string, len(sc.grants))}
	for _, g := range sc.grants {
		if b, ok := bindings[g.name]; ok && g.isGroup() && b.madeFor(g.key) {
			c.byBoundGroup[b.GroupID] = append(c.byBoundGroup[b.GroupID], g)
			c.boundTo[g.idx] = b.GroupID
		}
	}
	return c
}

func newSpecCatalog(in specInput) *specCatalog {
	c := &specCatalog{
		grants:      make([]*grant, 0, len(in.assignments)),
		byGroupName: make(map[string][]*grant, len(in.assignments)),
		byUserName:  make(map[string][]*grant),
		byApp:       make(map[string][]*grant),
		apps:        in.apps,
		roles:       in.roles,
	}
	for name, a := range in.assignments {
		if a == nil {
			continue
		}
		g := &grant{name: name, subject: a.Subject}
		switch {
		case a.Subject.Group != "":
			g.key = store.Fold(a.Subject.Group)
		case a.Subject.User != "":
			g.key = store.Fold(a.Subject.User)
		default:
			continue
		}
		for _, r := range a.Roles {
			if in.roles[r] && !slices.Contains(g.roles, r) {
				g.roles = append(g.roles, r)
			}
		}
		slices.Sort(g.roles)
		g.versions = expandVersions(a.ApplicationVersions, in.apps)
		c.grants = append(c.grants, g)
	}
	slices.SortFunc(c.grants, func(a, b *grant) int { return strings.Compare(a.name, b.name) })
	// Filled in assignment order, the order effective access lists the
	// grants of a source in.
	for i, g := range c.grants {
		g.idx = i
		if g.isGroup() {
			c.byGroupName[g.key] = append(c.byGroupName[g.key], g)
		} else {
			c.byUserName[g.key] = append(c.byUserName[g.key], g)
		}
		var last string
		for _, v := range g.versions {
			if v.app != last {
				c.byApp[v.app] = append(c.byApp[v.app], g)
				last = v.app
			}
		}
	}
	return c
}

// expandVersions resolves "app/v" and "app/*" entries against the
// applications, dropping what does not exist; the result is sorted by
// application and version, one entry per version (an explicit entry wins
// over the wildcard so the reason shown is the most specific one).
func expandVersions(entries []string, apps map[string][]string) []versionRef {
	seen := make(map[[2]string]int)
	var out []versionRef
	add := func(app, version, via string) {
		k := [2]string{app, version}
		if i, ok := seen[k]; ok {
			if !strings.HasSuffix(via, "/*") {
				out[i].via = via
			}
			return
		}
		seen[k] = len(out)
		out = append(out, versionRef{app: app, version: version, via: via})
	}
	for _, e := range entries {
		app, version, ok := strings.Cut(e, "/")
		if !ok {
			continue
		}
		versions, known := apps[app]
		if !known {
			continue
		}
		if version == "*" {
			for _, v := range versions {
				add(app, v, e)
			}
			continue
		}
		if slices.Contains(versions, version) {
			add(app, version, e)
		}
	}
	slices.SortFunc(out, func(a, b versionRef) int {
		if c := strings.Compare(a.app, b.app); c != 0 {
			return c
		}
		return strings.Compare(a.version, b.version)
	})
	return out
}

// readSpec reads assignments, roles, applications and bindings from txn.
func readSpec(txn *store.Txn) (specInput, error) {
	in, err := readSpecOnly(txn)
	if err != nil {
		return in, err
	}
	in.bindings, err = readBindings(txn, len(in.assignments))
	return in, err
}

// readSpecOnly is readSpec without the bindings.
func readSpecOnly(txn *store.Txn) (specInput, error) {
	in := specInput{
		assignments: make(map[string]*spec.AccessAssignment),
		roles:       make(map[string]bool),
		apps:        make(map[string][]string),
	}
	res, err := txn.Resources(spec.KindAccessAssignment)
	if err != nil {
		return in, fmt.Errorf("read assignments: %w", err)
	}
	for _, r := range res {
		if a, ok := r.Spec.(*spec.AccessAssignment); ok {
			in.assignments[r.Name] = a
		}
	}
	if res, err = txn.Resources(spec.KindRole); err != nil {
		return in, fmt.Errorf("read roles: %w", err)
	}
	for _, r := range res {
		in.roles[r.Name] = true
	}
	if res, err = txn.Resources(spec.KindApplication); err != nil {
		return in, fmt.Errorf("read applications: %w", err)
	}
	for _, r := range res {
		if a, ok := r.Spec.(*spec.Application); ok {
			in.apps[r.Name] = a.Versions
		}
	}
	return in, nil
}

// target applies the binding rule to a group assignment: it applies to its
// bound group while that exists, whatever it is called now, else to the
// group of its subject name. deleted reports that the bound group is gone.
func (c *catalog) target(txn *store.Txn, g *grant) (grp *store.Group, deleted bool, err error) {
	if id := c.boundTo[g.idx]; id != "" {
		if grp, err = txn.GroupByID(id); err != nil || grp != nil {
			return grp, false, err
		}
		deleted = true
	}
	grp, err = txn.GroupByName(g.key)
	return grp, deleted, err
}

// grantsOf returns the group assignments that apply to grp, by name. buf
// is scratch space (see lookupFold).
func (c *catalog) grantsOf(txn *store.Txn, grp *store.Group, buf *[]byte) ([]*grant, error) {
	bound := c.byBoundGroup[grp.ID]
	named := lookupFold(c.byGroupName, grp.DisplayName, buf)
	var extra []*grant
	for _, g := range named {
		if id := c.boundTo[g.idx]; id != "" {
			if id == grp.ID {
				continue // already in bound: the steady state once bound
			}
			// Bound elsewhere: it applies here only if that group is gone.
			other, err := txn.GroupByID(id)
			if err != nil {
				return nil, err
			}
			if other != nil {
				continue
			}
		}
		extra = append(extra, g)
	}
	if len(extra) == 0 {
		return bound, nil
	}
	if len(bound) == 0 {
		return extra, nil
	}
	out := append(slices.Clone(bound), extra...)
	slices.SortFunc(out, func(a, b *grant) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// lookupFold returns m[store.Fold(name)] without allocating (m[string(b)]
// does not copy b); buf is reusable scratch space.
func lookupFold(m map[string][]*grant, name string, buf *[]byte) []*grant {
	*buf = store.AppendFold((*buf)[:0], name)
	return m[string(*buf)]
}

// memo keeps the value derived from the last snapshot state seen. Keys are
// the watch channels of immutable radix nodes: a committed node never
// changes, so an equal key means equal contents; a change builds new nodes
// with new channels.
type memo[K comparable, V any] struct {
	last atomic.Pointer[memoEntry[K, V]]
}

type memoEntry[K comparable, V any] struct {
	key K
	val V
}

func (m *memo[K, V]) get(key K, build func() (V, error)) (V, error) {
	if e := m.last.Load(); e != nil && e.key == key {
		return e.val, nil
	}
	v, err := build()
	if err != nil {
		return v, err
	}
	m.last.Store(&memoEntry[K, V]{key: key, val: v})
	return v, nil
}

type specKey struct {
	assignments, roles, apps <-chan struct{}
}

type bindingsKey struct {
	spec     *specCatalog
	bindings <-chan struct{}
}

// The memos are package state because the API takes a bare transaction.
// They hold only values derived from immutable snapshots, so sharing them
// between stores and goroutines is safe; at worst two callers build the same
// value.
var (
	specCatalogs memo[specKey, *specCatalog]
	catalogs     memo[bindingsKey, *catalog]
)

// snapshot freezes txn, so that the radix nodes behind the memo keys cannot
// change under them even when txn is a write transaction still in progress
// (memdb clones on reads inside write transactions today; this does not
// depend on it). The users and memberships such a write changed are not
// memdb rows: the write keeps them in txn until its batch commits, so the
// snapshot reads them from txn (see asStored for what that means to the
// per-user memo).
func snapshot(txn *store.Txn) *store.Txn {
	s := txn.Snapshot()
	if s == nil {
		return txn
	}
	v := *txn
	v.Txn = s
	return &v
}

func watch(txn *store.Txn, table, index string, args ...any) (<-chan struct{}, error) {
	it, err := txn.Get(table, index, args...)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", table, err)
	}
	return it.WatchCh(), nil
}

// catalogOf returns the catalog of a frozen snapshot (see snapshot).
func catalogOf(txn *store.Txn) (*catalog, error) {
	var k specKey
	var err error
	if k.assignments, err = watch(txn, store.TableResources, store.IndexKind, spec.KindAccessAssignment); err != nil {
		return nil, err
	}
	if k.roles, err = watch(txn, store.TableResources, store.IndexKind, spec.KindRole); err != nil {
		return nil, err
	}
	if k.apps, err = watch(txn, store.TableResources, store.IndexKind, spec.KindApplication); err != nil {
		return nil, err
	}
	bch, err := watch(txn, store.TableMeta, store.IndexID+"_prefix", bindingPrefix)
	if err != nil {
		return nil, err
	}
	buildSpec := func() (*specCatalog, error) {
		in, err := readSpecOnly(txn)
		if err != nil {
			return nil, err
		}
		return newSpecCatalog(in), nil
	}
	// Without watch channels a key cannot identify the contents.
	var sc *specCatalog
	if k.assignments == nil || k.roles == nil || k.apps == nil {
		sc, err = buildSpec()
	} else {
		sc, err = specCatalogs.get(k, buildSpec)
	}
	if err != nil {
		return nil, err
	}
	build := func() (*catalog, error) {
		b, err := readBindings(txn, len(sc.grants))
		if err != nil {
			return nil, err
		}
		return withBindings(sc, b), nil
	}
	if bch == nil {
		return build()
	}
	return catalogs.get(bindingsKey{spec: sc, bindings: bch}, build)
}

// Binding records are "v1", subject, group id, externalId and displayName
// separated by NUL: decoding thousands of them must be cheap, since the
// Binder writes them while groups arrive. No field of a binding can hold a
// NUL (encodeBinding refuses, and the assignment is then matched by name).
const (
	bindingVersion = "v1"
	bindingSep     = "\x00"
)

func encodeBinding(b binding) (string, bool) {
	fields := []string{bindingVersion, b.Subject, b.GroupID, b.ExternalID, b.DisplayName}
	for _, f := range fields[1:] {
		if strings.Contains(f, bindingSep) {
			return "", false
		}
	}
	return strings.Join(fields, bindingSep), true
}

// decodeBinding parses one binding record; a damaged record counts as absent
// so that the Binder rewrites it.
func decodeBinding(v string) (binding, bool) {
	var f [5]string
	rest := v
	for i := range 4 {
		var ok bool
		if f[i], rest, ok = strings.Cut(rest, bindingSep); !ok {
			return binding{}, false
		}
	}
	f[4] = rest
	if f[0] != bindingVersion || f[2] == "" {
		return binding{}, false
	}
	return binding{Subject: f[1], GroupID: f[2], ExternalID: f[3], DisplayName: f[4]}, true
}
