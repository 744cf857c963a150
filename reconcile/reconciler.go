package reconcile

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/idrecon/idrecon/reconcile/internal/fields"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// ModifiedBy is the store.Resource.ModifiedBy of everything the reconciler writes.
const ModifiedBy = "reconcile"

// Errors callers test for.
var (
	// ErrInvalidSet is returned for a Set the reconciler cannot plan: a
	// document without kind, name or spec, or the same resource twice.
	ErrInvalidSet = errors.New("reconcile: invalid spec set")
	// ErrNoSource is returned by Run and ReconcileOnce without a Config.Source.
	ErrNoSource = errors.New("reconcile: no source configured")
	// ErrRunning is returned by Run when the loop already runs.
	ErrRunning = errors.New("reconcile: already running")
	// ErrNoRevision is returned by CurrentPlan before any revision loaded.
	ErrNoRevision = errors.New("reconcile: no revision loaded yet")
	// ErrSuspended is returned by ReconcileChange while suspended: the
	// change is not made, since a suspended reconciler would only plan it
	// and a pusher would take that plan for what was applied.
	ErrSuspended = errors.New("reconcile: suspended: nothing was changed or applied; resume first")
)

// DriftMode says what a reconcile does with drift.
type DriftMode string

// Drift modes.
const (
	// DriftCorrect puts drifted resources back to the spec (the default).
	DriftCorrect DriftMode = "correct"
	// DriftReport only reports drift; spec changes still apply, and a
	// drifted resource whose spec changed gets the new spec.
	DriftReport DriftMode = "report"
)

// ParseDriftMode reads a --drift flag value.
func ParseDriftMode(s string) (DriftMode, error) {
	switch m := DriftMode(s); m {
	case DriftCorrect, DriftReport:
		return m, nil
	case "":
		return DriftCorrect, nil
	}
	return "", fmt.Errorf("reconcile: unknown drift mode %q (want %q or %q)", s, DriftCorrect, DriftReport)
}

// Store is the part of *store.Store the reconciler uses.
type Store interface {
	Read() *store.Txn
	Update(ctx context.Context, fn func(*store.Txn) error) error
}

var _ Store = (*store.Store)(nil)

// Clock tells the time and waits; tests replace it.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Backoff spaces out retries after failed reconciles: Initial after the first
// failure, doubling up to Max.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
}

func (b Backoff) delay(failures int) time.Duration {
	d := b.Initial
	for i := 1; i < failures && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

// Config configures a Reconciler. Only Store is required; Source is needed
// for the loop (Run, ReconcileOnce).
type Config struct {
	Store  Store
	Source Source
	// Load turns a fetched revision's directory into a Set; default
	// spec.Load with default options.
	Load func(ctx context.Context, dir string) (*spec.Set, error)
	// Interval between reconciles (default 1m), varied by ±Jitter (a
	// fraction, default 0.1) so that many daemons do not poll in step.
	Interval time.Duration
	Jitter   float64
	// DriftMode defaults to DriftCorrect.
	DriftMode DriftMode
	// AllowEmpty applies a Set with no documents, deleting every resource;
	// without it such a Set is refused (*UnsafeError), as a folder emptied
	// by mistake looks the same.
	AllowEmpty bool
	// Keeps, when set, returns why a revision (its documents) would take
	// what the daemon serves with, such as the TLS certificate of its
	// listener, or nil; the guard refuses such a revision as one that cuts
	// Entra off.
	Keeps func(docs []*spec.Document) error
	// Backoff after failures; default 5s doubling to 5m.
	Backoff Backoff
	Logger  *slog.Logger
	// Audit records each apply, change and drift (default audit.Discard).
	Audit audit.Recorder
	Clock Clock
	// DriftCheck, when set, finds drift that no plan shows because only a
	// spec change resolves it (in the daemon: groups that Entra renamed
	// under an assignment). It runs after every reconcile of the loop, on
	// the store as the reconcile left it, and its changes join Status.Drift.
	DriftCheck func(*store.Txn) []Change
	// OnResult, when set, is called after every reconcile of the loop (for
	// metrics), once Status tells its outcome. It must be quick.
	OnResult func(Result)
	// ShareStatus is set when several daemons share the state and one of
	// them reconciles: it records each reconcile's Status in the state, and
	// Status reports the newer of that and this daemon's own, so that
	// status and reconcile --wait tell the truth at any daemon.
	ShareStatus bool
	// FirstRequest is the number above which Request numbers requests
	// (default 0). A daemon that restarts should pass one above every
	// number its previous process gave, such as the time in microseconds,
	// so that a client waiting across the restart for its request's number
	// is answered by the new process's first reconcile, which began after
	// the request. Not with RequestNumbered, whose numbers are the caller's.
	FirstRequest uint64
}

// Reconciler plans and applies spec sets against the runtime store and runs
// the convergence loop. Create it with New; it is safe for concurrent use.
type Reconciler struct {
	cfg Config
	log *slog.Logger

	// mu guards the caches and the loop's state below. It is held only to
	// read or swap them, never across a fetch, a load or a store
	// transaction, so Status and Plan never wait for a reconcile.
	mu sync.Mutex
	// desired is the rendering of the last Set planned, reused while the
	// Set's Revision stays the same.
	desired *desiredState
	// actual memoises renderings of stored resources; stored values are
	// immutable, so a pointer identifies its content.
	actual map[*store.Resource]*fields.Rendered
	// applied holds, per resource, the hash of what this process's last
	// apply wrote; nil until it applied once. Each apply also records it in
	// the state (store.MetaAppliedBaseline), which plans read first (see
	// baseline): a restart forgets nothing, and a daemon sharing the state
	// sees what another applied since.
	applied map[spec.Ref][sha256.Size]byte
	// appliedFrom is the revision applied holds in full (nothing kept), so
	// that an apply with nothing to do can leave it as it is.
	appliedFrom string
	// stored is the last baseline record read, decoded once.
	stored storedBaseline
	// warnedBaseline: a baseline too large to record was logged.
	warnedBaseline bool
	status         Status
	// good is the last revision that loaded. It is written holding both mu
	// and runMu, so a reconcile, which holds runMu, reads it without mu.
	good *spec.Set
	// goodName names good as Status shows it ("<branch>@sha1:<commit>").
	goodName string
	// last is the last revision a pass applied, and lastName its name,
	// written like good. A suspended pass adopts what it only planned, so
	// good may be a revision that apply then refuses (too large for one
	// journal transaction); last is what the runtime keeps then.
	last     *spec.Set
	lastName string
	// history is the loop's reconciles, oldest first (see History).
	history []HistoryEntry

	// runMu serialises reconciles and Apply: one writer at a time, so that
	// the record of what was applied follows the order in which the store
	// committed. It also guards the loop's own bookkeeping below.
	runMu      sync.Mutex
	planDrift  []Change // the drift of the last reconcile that planned
	lastLogged string   // last error logged, so a repeated error is logged once
	// reported is the uncorrected drift the last reconcile reported, so
	// that drift left in place is reported once.
	reported map[string]bool

	running   atomic.Bool // Run is looping; a second Run returns ErrRunning
	suspended atomic.Bool
	// requested is the number of the newest reconcile request (Request,
	// RequestNumbered); each attempt notes it as it begins.
	requested atomic.Uint64
	trigger   chan struct{}
}

// New returns a Reconciler for cfg, filling in defaults.
func New(cfg Config) (*Reconciler, error) {
	if cfg.Store == nil {
		return nil, errors.New("reconcile: config without store")
	}
	if cfg.Load == nil {
		cfg.Load = func(ctx context.Context, dir string) (*spec.Set, error) {
			return spec.Load(ctx, dir, spec.LoadOptions{})
		}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Jitter <= 0 {
		cfg.Jitter = 0.1
	}
	cfg.Jitter = min(cfg.Jitter, 1)
	mode, err := ParseDriftMode(string(cfg.DriftMode))
	if err != nil {
		return nil, err
	}
	cfg.DriftMode = mode
	if cfg.Backoff.Initial <= 0 {
		cfg.Backoff.Initial = 5 * time.Second
	}
	if cfg.Backoff.Max < cfg.Backoff.Initial {
		cfg.Backoff.Max = max(5*time.Minute, cfg.Backoff.Initial)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.Discard
	}
	r := &Reconciler{
		cfg:     cfg,
		log:     cfg.Logger,
		actual:  map[*store.Resource]*fields.Rendered{},
		trigger: make(chan struct{}, 1),
	}
	r.requested.Store(cfg.FirstRequest)
	r.status.DriftMode = cfg.DriftMode
	if cfg.Source != nil {
		r.status.Source = cfg.Source.String()
	}
	return r, nil
}

// desiredState is a Set rendered for comparison.
type desiredState struct {
	revision string
	docs     []*spec.Document
	rendered []*fields.Rendered // parallel to docs
	index    map[spec.Ref]int
}

// op is one planned write.
type op struct {
	ref    spec.Ref
	doc    *spec.Document // nil for a delete
	actual *store.Resource
	want   *fields.Rendered
	kept   bool
}

// planned is the outcome of one comparison.
type planned struct {
	plan *Plan
	ops  []op
	seen map[*store.Resource]*fields.Rendered
	// refusal is why the guard refuses the plan, or nil.
	refusal *UnsafeError
}

// Plan computes what Apply would change, against a read snapshot of the
// store. It writes nothing. Sets with the same non-empty Revision must have
// the same content (spec.Load guarantees it): their rendering is reused.
// A plan that Apply would refuse says why in Plan.Refused.
func (r *Reconciler) Plan(ctx context.Context, desired *spec.Set) (*Plan, error) {
	p, err := r.plan(ctx, desired)
	if err != nil {
		return nil, err
	}
	return p.plan, nil
}

func (r *Reconciler) plan(ctx context.Context, desired *spec.Set) (*planned, error) {
	ds, err := r.render(desired)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	applied := r.applied
	r.mu.Unlock()
	txn := r.cfg.Store.Read()
	p, err := r.compare(txn, ds, r.baseline(txn, applied))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.actual = p.seen
	r.mu.Unlock()
	return p, nil
}

// Apply plans desired against the store and executes exactly that plan in
// one store transaction, all or nothing, recording desired.Revision as the
// applied revision and, with it, the baseline that tells drift from a spec
// change after a restart. It returns the plan it executed; changes marked Kept
// were reported, not made. A plan the guard refuses is not executed: Apply
// returns an *UnsafeError. The Set must not be modified afterwards: the
// store keeps its spec values. Apply waits for a reconcile in progress.
func (r *Reconciler) Apply(ctx context.Context, desired *spec.Set) (*Plan, error) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	return r.apply(ctx, desired)
}

// apply is Apply with runMu held.
func (r *Reconciler) apply(ctx context.Context, desired *spec.Set) (*Plan, error) {
	ds, err := r.render(desired)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	applied, appliedFrom := r.applied, r.appliedFrom
	r.mu.Unlock()

	var p *planned
	var written []*store.Resource
	var next map[spec.Ref][sha256.Size]byte
	var nextFrom string
	recorded, record := true, true
	update := func(txn *store.Txn) error {
		// This may run more than once: everything it leaves behind is reset here.
		p, written, next, nextFrom, recorded = nil, nil, nil, "", true
		base := r.baseline(txn, applied)
		var err error
		if p, err = r.compare(txn, ds, base); err != nil {
			return err
		}
		if p.refusal != nil {
			return p.refusal
		}
		now := r.cfg.Clock.Now()
		for _, o := range p.ops {
			if o.kept {
				continue
			}
			if o.doc == nil {
				if err := txn.Delete(store.TableResources, o.actual); err != nil {
					return fmt.Errorf("delete %s: %w", o.ref, err)
				}
				continue
			}
			res := &store.Resource{
				Kind:       o.ref.Kind,
				Name:       o.ref.Name,
				Spec:       o.doc.Spec,
				Revision:   ds.revision,
				ModifiedBy: ModifiedBy,
				Modified:   now,
			}
			if err := txn.Insert(store.TableResources, res); err != nil {
				return fmt.Errorf("write %s: %w", o.ref, err)
			}
			written = append(written, res)
		}
		cur, err := txn.MetaValue(store.MetaAppliedRevision)
		if err != nil {
			return fmt.Errorf("read applied revision: %w", err)
		}
		if cur != ds.revision {
			if err := txn.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: ds.revision}); err != nil {
				return fmt.Errorf("write applied revision: %w", err)
			}
		}
		var same bool
		next, nextFrom, same = nextBaseline(ds, p, base, appliedFrom)
		if same {
			return nil
		}
		// In this transaction, so that the record is always the baseline
		// of the applied revision it names.
		recorded, err = recordBaseline(txn, ds.revision, next, record)
		return err
	}
	err = r.cfg.Store.Update(ctx, update)
	if errors.Is(err, store.ErrTooLarge) {
		// The record may be what tipped the transaction over the journal's
		// bound (etcd's): an apply without it beats a refused revision.
		record = false
		err = r.cfg.Store.Update(ctx, update)
	}
	if err != nil {
		return nil, fmt.Errorf("apply revision %q: %w", ds.revision, err)
	}

	seen := p.seen
	if len(written) > 0 || len(p.ops) > 0 {
		// Remember what the store holds now: the written values instead of
		// those they replaced or deleted.
		seen = maps.Clone(seen)
		for _, o := range p.ops {
			if !o.kept && o.actual != nil {
				delete(seen, o.actual)
			}
		}
		for _, res := range written {
			seen[res] = ds.rendered[ds.index[res.Ref()]]
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actual = seen
	r.applied, r.appliedFrom = next, nextFrom
	if !recorded && !r.warnedBaseline {
		r.warnedBaseline = true
		r.log.Warn(baselineTooLarge, "resources", len(next), "limitBytes", maxBaselineBytes)
	}
	return p.plan, nil
}

// render validates desired and renders its documents, reusing the last
// rendering when the revision is the same.
func (r *Reconciler) render(desired *spec.Set) (*desiredState, error) {
	if desired == nil {
		return nil, fmt.Errorf("%w: nil set", ErrInvalidSet)
	}
	r.mu.Lock()
	cached := r.desired
	r.mu.Unlock()
	if cached != nil && desired.Revision != "" && cached.revision == desired.Revision && len(cached.docs) == len(desired.Docs) {
		if slices.Equal(cached.docs, desired.Docs) {
			return cached, nil
		}
		// Same revision loaded again: same content, new values. Keep the
		// renderings, take the new documents.
		ds := *cached
		ds.docs = desired.Docs
		if ds.sameRefs() {
			r.mu.Lock()
			r.desired = &ds
			r.mu.Unlock()
			return &ds, nil
		}
	}
	ds := &desiredState{
		revision: desired.Revision,
		docs:     desired.Docs,
		rendered: make([]*fields.Rendered, len(desired.Docs)),
		index:    make(map[spec.Ref]int, len(desired.Docs)),
	}
	for i, d := range desired.Docs {
		if d == nil || d.Kind == "" || d.Metadata.Name == "" || d.Spec == nil {
			return nil, fmt.Errorf("%w: document %d has no kind, name or spec", ErrInvalidSet, i)
		}
		ref := d.Ref()
		if _, dup := ds.index[ref]; dup {
			return nil, fmt.Errorf("%w: %s appears twice", ErrInvalidSet, ref)
		}
		ds.index[ref] = i
		ds.rendered[i] = fields.Render("spec", d.Spec)
	}
	if desired.Revision != "" {
		r.mu.Lock()
		r.desired = ds
		r.mu.Unlock()
	}
	return ds, nil
}

func (ds *desiredState) sameRefs() bool {
	for i, d := range ds.docs {
		if d == nil || d.Spec == nil {
			return false
		}
		if j, ok := ds.index[d.Ref()]; !ok || j != i {
			return false
		}
	}
	return true
}

// compare computes the plan of ds against the resources in txn. applied is
// the last apply's hashes (nil when unknown; see baseline). It has no side
// effects, so it can run inside a store.Update that is retried.
func (r *Reconciler) compare(txn *store.Txn, ds *desiredState, applied map[spec.Ref][sha256.Size]byte) (*planned, error) {
	actual, err := txn.Resources("")
	if err != nil {
		return nil, fmt.Errorf("read resources: %w", err)
	}
	r.mu.Lock()
	cache := r.actual
	r.mu.Unlock()

	out := &planned{plan: &Plan{Revision: ds.revision}}
	var missed map[*store.Resource]*fields.Rendered
	renderActual := func(a *store.Resource) *fields.Rendered {
		if rd, ok := cache[a]; ok {
			return rd
		}
		rd := fields.Render("spec", a.Spec)
		if missed == nil {
			missed = map[*store.Resource]*fields.Rendered{}
		}
		missed[a] = rd
		return rd
	}
	defer func() {
		// The next cache holds exactly the resources seen; in the steady
		// state that is the current cache, and no map is built.
		if len(missed) == 0 && len(cache) == len(actual) {
			out.seen = cache
			return
		}
		out.seen = make(map[*store.Resource]*fields.Rendered, len(actual))
		for _, a := range actual {
			if rd, ok := cache[a]; ok {
				out.seen[a] = rd
			} else {
				out.seen[a] = missed[a]
			}
		}
	}()
	report := r.cfg.DriftMode == DriftReport
	// base returns the hash the runtime should hold for ref if nobody touched
	// it: what the last apply wrote or, failing that, a resource the
	// reconciler itself wrote.
	base := func(ref spec.Ref, a *store.Resource, have *fields.Rendered) ([sha256.Size]byte, bool) {
		if h, ok := applied[ref]; ok {
			return h, true
		}
		if a != nil && a.ModifiedBy == ModifiedBy {
			return have.Hash, true
		}
		return [sha256.Size]byte{}, false
	}

	var cut []spec.Ref
	found := make([]bool, len(ds.docs))
	for _, a := range actual {
		ref := a.Ref()
		have := renderActual(a)
		i, ok := ds.index[ref]
		if !ok {
			h, known := base(ref, a, have)
			drift := a.ModifiedBy != ModifiedBy || !known || h != have.Hash
			o := op{ref: ref, actual: a, kept: drift && report && !known}
			out.ops = append(out.ops, o)
			// Only what an applied revision holds is guarded: removing what
			// was created outside git is drift, which the drift mode governs.
			// A process that has not applied yet and found no baseline record
			// to read (applied == nil, as after a restart from a state that
			// has none or an unreadable one) cannot tell an admin edit of an
			// applied resource from a resource created outside git, so it
			// guards both; a delete that is kept deletes nothing and needs no
			// guard.
			if (known || applied == nil) && !o.kept && cutsOff(a) {
				cut = append(cut, ref)
			}
			out.plan.Deletes = append(out.plan.Deletes, Change{
				Kind: ref.Kind, Name: ref.Name, Fields: only(have.Fields, false), Drift: drift, Kept: o.kept,
			})
			continue
		}
		found[i] = true
		want := ds.rendered[i]
		if have.Hash == want.Hash {
			if lacksKey(a, ds.docs[i]) {
				// Not a change, so not in the plan: only the key material,
				// which is never rendered or persisted, goes back in.
				out.ops = append(out.ops, op{ref: ref, doc: ds.docs[i], actual: a, want: want})
			}
			continue
		}
		h, known := base(ref, a, have)
		drift := a.ModifiedBy != ModifiedBy || (known && h != have.Hash)
		// A baseline lists every document of the revision it was applied
		// from: one it lacks was added in git since, which is a spec change
		// even where someone had already made the resource outside git.
		_, inBaseline := applied[ref]
		specChanged := (known && h != want.Hash) || (applied != nil && !inBaseline)
		o := op{ref: ref, doc: ds.docs[i], actual: a, want: want, kept: drift && report && !specChanged}
		out.ops = append(out.ops, o)
		out.plan.Updates = append(out.plan.Updates, Change{
			Kind: ref.Kind, Name: ref.Name, Fields: changes(fields.Diff(have.Fields, want.Fields)), Drift: drift, Kept: o.kept,
		})
	}
	for i, d := range ds.docs {
		if found[i] {
			continue
		}
		ref := d.Ref()
		want := ds.rendered[i]
		h, known := applied[ref]
		specChanged := !known || h != want.Hash
		o := op{ref: ref, doc: d, want: want, kept: known && report && !specChanged}
		out.ops = append(out.ops, o)
		out.plan.Creates = append(out.plan.Creates, Change{
			Kind: ref.Kind, Name: ref.Name, Fields: only(want.Fields, true), Drift: known, Kept: o.kept,
		})
	}
	sortChanges(out.plan.Creates, false)
	sortChanges(out.plan.Updates, false)
	sortChanges(out.plan.Deletes, true)
	out.plan.summarise()
	if out.refusal = r.guard(ds, unreplaced(cut, ds, out.ops)); out.refusal != nil {
		out.plan.Refused = out.refusal.Error()
	} else {
		out.plan.Cautions = cautions(out.ops)
	}
	return out, nil
}

// only lists every field of one side, for a create (after) or a delete (before).
func only(fs []fields.Field, after bool) []FieldChange {
	out := make([]FieldChange, len(fs))
	for i, f := range fs {
		if after {
			out[i] = FieldChange{Path: f.Path, After: f.Display()}
		} else {
			out[i] = FieldChange{Path: f.Path, Before: f.Display()}
		}
	}
	return out
}

func changes(cs []fields.Change) []FieldChange {
	out := make([]FieldChange, len(cs))
	for i, c := range cs {
		out[i] = FieldChange(c)
	}
	return out
}

// kindRank orders kinds as spec.Kinds does; unknown kinds go last.
func kindRank(kind string) int {
	if i := slices.Index(spec.Kinds, kind); i >= 0 {
		return i
	}
	return len(spec.Kinds)
}

func sortChanges(cs []Change, reverse bool) {
	slices.SortFunc(cs, func(a, b Change) int {
		ka, kb := kindRank(a.Kind), kindRank(b.Kind)
		if reverse {
			ka, kb = kb, ka
		}
		return cmp.Or(cmp.Compare(ka, kb), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
	})
}

// lacksKey reports whether the stored resource lacks secret material the
// spec resolves: a Certificate's private key, a Gateway's shared secret.
// Neither is rendered (so the hashes match) nor persisted, so after a
// restart they come back without it until an apply puts it back.
func lacksKey(have *store.Resource, want *spec.Document) bool {
	switch h := have.Spec.(type) {
	case *spec.Certificate:
		w, ok := want.Spec.(*spec.Certificate)
		return h.PrivateKey == nil && ok && w.PrivateKey != nil
	case *spec.Gateway:
		w, ok := want.Spec.(*spec.Gateway)
		return h.SharedSecret != nil && h.SharedSecret.Value == "" && ok && w.SharedSecret != nil && w.SharedSecret.Value != ""
	}
	return false
}
