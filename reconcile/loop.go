package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// Outcomes of a reconcile, as Status.LastResult and Result.Outcome give them.
// Refused and stalled reconciles are not retried with backoff: retrying
// cannot help until something changes, so the loop waits for the next
// interval or trigger (a webhook, a push, a folder change), as after
// success. Credentials and keys are files and environment variables that
// change without a trigger, so the interval poll stays.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"   // fetching or applying failed; retried with backoff
	OutcomeRefused = "refused" // the revision is invalid or unsafe; the last good one stays
	// OutcomeStalled: the fetch failed in a way retrying cannot fix
	// (rejected credentials, an untrusted host key or commit signature).
	OutcomeStalled = "stalled"
)

// stallReason returns why err stalls the loop (a machine reason, for
// Status.Stalled), or "" when err is worth retrying with backoff. Errors
// stall by having a StallReason method: *RefusedError here, the
// reconcile/source errors that need new credentials, keys or commits.
func stallReason(err error) string {
	var s interface{ StallReason() string }
	if errors.As(err, &s) {
		return s.StallReason()
	}
	return ""
}

// RefusedError is returned when a fetched revision does not load, or the
// guard refuses it: none of it is applied.
type RefusedError struct {
	Revision string // source revision ID, "" for a folder
	// Err is a spec.ErrorList, with file:line positions, or an *UnsafeError.
	Err error
}

func (e *RefusedError) Error() string {
	if e.Revision == "" {
		return fmt.Sprintf("revision refused: %v", e.Err)
	}
	return fmt.Sprintf("revision %s refused: %v", e.Revision, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// StallReason says that a refused revision stays refused: only a new one
// can change the outcome.
func (e *RefusedError) StallReason() string {
	if _, ok := errors.AsType[*UnsafeError](e.Err); ok {
		return "UnsafeRevision"
	}
	return "InvalidRevision"
}

// Status is the loop's state, for the admin API.
type Status struct {
	Source string `json:"source"`
	// AppliedRevision and SeenRevision are the revisions last applied and
	// last fetched, named alike so that they compare: from git
	// "<branch>@sha1:<commit>"; from a folder, the content revision
	// (spec.Set.Revision) of the spec, or, for a folder whose spec did not
	// load, "files:<sha256>" of its files' names, sizes and modification
	// times (spec.FilesRevision).
	AppliedRevision string `json:"appliedRevision"`
	SeenRevision    string `json:"seenRevision"`
	// AppliedContent is the content revision (sha256 of the documents) of
	// the spec applied, whichever source it came from: two commits that
	// change nothing in the spec have the same.
	AppliedContent string    `json:"appliedContent,omitempty"`
	LastAttempt    time.Time `json:"lastAttempt,omitzero"`
	LastResult     string    `json:"lastResult,omitempty"`
	LastError      string    `json:"lastError,omitempty"`
	// Stalled is why the last reconcile stalled ("InvalidRevision",
	// "UnsafeRevision", "AuthenticationFailed", "HostKeyUntrusted",
	// "SignatureUnverified"), or "": the loop then retries at the interval,
	// without backoff, or when triggered.
	Stalled string `json:"stalled,omitempty"`
	// Request is the number of the newest reconcile request (see
	// Reconciler.Request) made before the last attempt began, or
	// Config.FirstRequest when there was none. That attempt answers it and every earlier one: it began
	// after them, and after any Suspend or Resume made before them. A
	// client that waits for the reconcile its request started waits for
	// Request to reach its number: LastAttempt alone cannot tell an attempt
	// that was under way when the request came (maybe suspended, or reading
	// the spec before the change the client waits for) from a later one.
	Request uint64 `json:"request,omitempty"`
	// DriftCount and Drift describe the drift present now: in report
	// mode, or suspended, all the last reconcile found; in correct mode,
	// what it could not correct (a group Entra renamed). DriftSince is
	// when the drift present was first found, zero while there is none.
	DriftCount int       `json:"driftCount"`
	Drift      []Change  `json:"drift,omitempty"`
	DriftSince time.Time `json:"driftSince,omitzero"`
	// Corrected is the drift the latest correcting reconcile put back, at
	// CorrectedAt; it stays until a later reconcile corrects more.
	Corrected   []Change  `json:"corrected,omitempty"`
	CorrectedAt time.Time `json:"correctedAt,omitzero"`
	DriftMode   DriftMode `json:"driftMode"`
	Suspended   bool      `json:"suspended"`
	// PendingPlan counts what the last reconcile left unmade as a plan's
	// text counts its changes: Create, Update and Delete are the changes an
	// apply would make (none once one applied; suspended, or after a failed
	// apply, all of them), Kept the drift drift mode report leaves in
	// place, Drift how many of these concern a change made outside git.
	PendingPlan PlanSummary `json:"pendingPlan"`
}

// Result describes one reconcile of the loop, for metrics.
type Result struct {
	Start    time.Time
	Duration time.Duration
	Outcome  string
	Err      error
	// Summary is the plan's; Applied is false when suspended or when no
	// revision could be planned.
	Summary PlanSummary
	Applied bool
}

// Trigger asks the loop to reconcile now. It never blocks; triggers that
// arrive while one is pending are merged into it.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Request asks the loop to reconcile now, as Trigger does, and returns the
// request's number: once Status.Request is at least that number, an
// attempt that began after the call has ended, and Status tells how it
// ended. That attempt sees every Suspend and Resume made before the call.
// Numbers count up from Config.FirstRequest+1; use RequestNumbered instead
// where requests must compare between daemons, never both.
func (r *Reconciler) Request() uint64 {
	n := r.requested.Add(1)
	r.Trigger()
	return n
}

// RequestNumbered is Request with a number the caller chose, which must
// grow from one request to the next: with several daemons sharing a state,
// the revision at which etcd stored the request, so that a client asking
// any daemon compares it with the Status the leader shared. A number no
// higher than one already given triggers a reconcile but numbers nothing.
func (r *Reconciler) RequestNumbered(n uint64) {
	for {
		cur := r.requested.Load()
		if n <= cur || r.requested.CompareAndSwap(cur, n) {
			break
		}
	}
	r.Trigger()
}

// Suspend stops applying: reconciles still fetch, load, plan and report
// drift, but change nothing.
func (r *Reconciler) Suspend() { r.suspended.Store(true) }

// Resume undoes Suspend.
func (r *Reconciler) Resume() { r.suspended.Store(false) }

// Status returns a copy of the loop's state.
func (r *Reconciler) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.Drift = append([]Change(nil), s.Drift...)
	s.Corrected = append([]Change(nil), s.Corrected...)
	s.Suspended = r.suspended.Load()
	if r.cfg.ShareStatus {
		if shared, ok := r.sharedStatus(s); ok {
			s = shared
		}
	}
	if s.AppliedRevision == "" {
		// Before this process applied, the store may hold a revision that an
		// earlier run (or another daemon on the same state) applied; the
		// store keeps its content revision.
		s.AppliedContent, _ = r.cfg.Store.Read().MetaValue(store.MetaAppliedRevision)
		s.AppliedRevision = s.AppliedContent
	}
	return s
}

// share records s in the state for the daemons that do not reconcile.
func (r *Reconciler) share(ctx context.Context, s Status) {
	b, err := json.Marshal(s)
	if err == nil {
		err = r.cfg.Store.Update(ctx, func(tx *store.Txn) error {
			return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaReconcileStatus, Value: string(b)})
		})
	}
	if err != nil && ctx.Err() == nil {
		r.log.Warn("reconcile status not shared with the other daemons", "err", err)
	}
}

// sharedStatus returns the Status the reconciling daemon last shared, if
// it is newer than s.
func (r *Reconciler) sharedStatus(s Status) (Status, bool) {
	raw, _ := r.cfg.Store.Read().MetaValue(store.MetaReconcileStatus)
	var shared Status
	if raw == "" || json.Unmarshal([]byte(raw), &shared) != nil || !shared.LastAttempt.After(s.LastAttempt) {
		return s, false
	}
	shared.Source, shared.Suspended = s.Source, s.Suspended
	return shared, true
}

// CurrentPlan plans the last revision that loaded against the live runtime.
func (r *Reconciler) CurrentPlan(ctx context.Context) (*Plan, error) {
	r.mu.Lock()
	good := r.good
	r.mu.Unlock()
	if good == nil {
		return nil, ErrNoRevision
	}
	return r.Plan(ctx, good)
}

// Run reconciles on every interval and Trigger until ctx ends, then returns
// nil. After a failure it retries with exponential backoff instead, unless
// the failure stalls (OutcomeRefused, OutcomeStalled): retrying sooner
// cannot help, so the interval and triggers stay the only retries.
func (r *Reconciler) Run(ctx context.Context) error {
	if r.cfg.Source == nil {
		return ErrNoSource
	}
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	failures := 0
	for {
		if _, res := r.reconcile(ctx); res.Outcome == OutcomeError {
			failures++
		} else {
			failures = 0
		}
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.trigger:
		case <-r.cfg.Clock.After(r.nextDelay(failures)):
		}
	}
}

func (r *Reconciler) nextDelay(failures int) time.Duration {
	if failures > 0 {
		return r.cfg.Backoff.delay(failures)
	}
	j := r.cfg.Jitter * (2*rand.Float64() - 1)
	return time.Duration(float64(r.cfg.Interval) * (1 + j))
}

// ReconcileOnce fetches the source, loads the revision and applies it (or,
// when suspended, only plans it). A revision that fails to load, or that the
// guard refuses (*UnsafeError), is refused as a whole (*RefusedError): the
// runtime keeps the last good revision, which is still planned and applied
// so that drift is checked on every reconcile.
func (r *Reconciler) ReconcileOnce(ctx context.Context) (*Plan, error) {
	if r.cfg.Source == nil {
		return nil, ErrNoSource
	}
	plan, res := r.reconcile(ctx)
	return plan, res.Err
}

// ReconcileChange runs change, which puts a new spec in the source's place
// (a push), and a pass on it, under the lock every pass holds: no other
// pass reads the source half replaced, and two changes never interleave.
// When the pass refuses the revision, undo puts the previous spec back,
// still under the lock, so the source keeps what the runtime kept. While
// suspended it runs neither and returns ErrSuspended.
func (r *Reconciler) ReconcileChange(ctx context.Context, change, undo func() error) (*Plan, error) {
	if r.cfg.Source == nil {
		return nil, ErrNoSource
	}
	r.runMu.Lock()
	defer r.runMu.Unlock()
	// Suspension is read once, before the change: a pass that only
	// planned would answer with a plan nothing made, and the pushed spec
	// would be applied later, unreviewed, by whichever resume came.
	p := r.newPass()
	if p.suspended {
		return nil, ErrSuspended
	}
	if err := change(); err != nil {
		return nil, err
	}
	plan, res := r.run(ctx, p)
	if refused := (*RefusedError)(nil); errors.As(res.Err, &refused) {
		return nil, errors.Join(res.Err, undo())
	}
	return plan, res.Err
}

// reconcile is ReconcileOnce, also telling the outcome the loop decides by.
func (r *Reconciler) reconcile(ctx context.Context) (*Plan, Result) {
	r.runMu.Lock()
	defer r.runMu.Unlock()
	return r.reconcileLocked(ctx)
}

// reconcileLocked is reconcile with runMu held. Its steps: fetch, load and
// converge on the fetched revision, stopping at the first that fails; if
// that revision was not adopted, converge on the last good one instead, so
// that drift is still checked; then record.
func (r *Reconciler) reconcileLocked(ctx context.Context) (*Plan, Result) {
	return r.run(ctx, r.newPass())
}

// newPass begins a pass. The request number is read before the suspended
// flag: an attempt that answers a request (see Status.Request) then also
// sees a Resume made before the request.
func (r *Reconciler) newPass() *pass {
	p := &pass{request: r.requested.Load()}
	p.start, p.suspended = r.cfg.Clock.Now(), r.suspended.Load()
	return p
}

// run is reconcileLocked for a pass begun by newPass.
func (r *Reconciler) run(ctx context.Context, p *pass) (*Plan, Result) {
	for _, step := range []func(context.Context, *pass) error{r.fetch, r.load, r.adopt} {
		if p.revErr = step(ctx, p); p.revErr != nil {
			break
		}
	}
	if !p.adopted {
		r.keepLastGood(ctx, p)
	}
	return p.plan, r.record(ctx, p)
}

// pass is one reconcile in progress: what each step found, for the next.
type pass struct {
	start     time.Time
	request   uint64 // the newest request made before it began
	suspended bool
	fetched   bool
	rev       source.Revision
	loaded    *spec.Set // what the loader returned, nil when nothing loaded
	adopted   bool      // loaded is the new last good revision
	target    *spec.Set // the revision converged on: loaded, or the last good one
	// targetName names target as Status shows it (see revisionName).
	targetName string
	plan       *Plan
	// revErr is why the fetched revision was not adopted; convergeErr why
	// converging on the target failed.
	revErr, convergeErr error
}

// fetch brings the source up to date.
func (r *Reconciler) fetch(ctx context.Context, p *pass) error {
	rev, err := r.cfg.Source.Fetch(ctx)
	if errors.Is(err, spec.ErrInvalid) {
		// The source refused the revision's content (a git tree over the
		// size limit, a *spec.LimitError) before the loader could: it is
		// as invalid as a spec that does not load, so it is refused, not
		// retried with backoff like a network failure.
		return &RefusedError{Err: fmt.Errorf("fetch %s: %w", r.cfg.Source, err)}
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", r.cfg.Source, err)
	}
	p.fetched, p.rev = true, rev
	return nil
}

// load reads the fetched revision. One that is not a valid spec is refused.
func (r *Reconciler) load(ctx context.Context, p *pass) error {
	set, err := r.cfg.Load(ctx, p.rev.Dir)
	p.loaded = set
	switch {
	case err == nil && set == nil:
		return fmt.Errorf("load revision %q: %w: loader returned no set", p.rev.ID, ErrInvalidSet)
	case errors.Is(err, spec.ErrInvalid):
		return &RefusedError{Revision: p.rev.ID, Err: err}
	case err != nil:
		return fmt.Errorf("load revision %q: %w", p.rev.ID, err)
	}
	return nil
}

// adopt converges on the loaded revision, which becomes the last good one
// unless the guard refuses it. A failure to apply it is the convergence's,
// not the revision's: it stays adopted and is retried.
func (r *Reconciler) adopt(ctx context.Context, p *pass) error {
	plan, err := r.converge(ctx, p.loaded, p.suspended)
	if unsafe, ok := errors.AsType[*UnsafeError](err); ok {
		return &RefusedError{Revision: p.rev.ID, Err: unsafe}
	}
	if errors.Is(err, store.ErrTooLarge) {
		// Its changes do not fit one journal transaction (etcd's bound
		// on operations): no retry can apply it, and nothing of it was.
		return &RefusedError{Revision: p.rev.ID, Err: fmt.Errorf("%w: split the change over several commits", err)}
	}
	p.adopted, p.target, p.plan, p.convergeErr = true, p.loaded, plan, err
	p.targetName = revisionName(p.rev, p.loaded)
	return nil
}

// keepLastGood converges on the last good revision, if any.
func (r *Reconciler) keepLastGood(ctx context.Context, p *pass) {
	if r.good == nil {
		return
	}
	p.target, p.targetName = r.good, r.goodName
	p.plan, p.convergeErr = r.converge(ctx, r.good, p.suspended)
	if r.last == nil || r.last == r.good || !refusedByApply(p.convergeErr) {
		return
	}
	// good was adopted by a suspended pass, which could not know that
	// applying it is refused: it is no good revision after all.
	r.mu.Lock()
	r.good, r.goodName = r.last, r.lastName
	r.mu.Unlock()
	p.target, p.targetName = r.good, r.goodName
	p.plan, p.convergeErr = r.converge(ctx, r.good, p.suspended)
}

// refusedByApply reports whether err refuses the revision itself, as adopt
// does, rather than tells that applying it failed this time.
func refusedByApply(err error) bool {
	_, unsafe := errors.AsType[*UnsafeError](err)
	return unsafe || errors.Is(err, store.ErrTooLarge)
}

// outcome is what the errors of p say about it.
func (p *pass) outcome() string {
	switch {
	case p.convergeErr != nil:
		return OutcomeError
	case p.revErr == nil:
		return OutcomeOK
	case stallReason(p.revErr) == "":
		return OutcomeError
	}
	if _, ok := errors.AsType[*RefusedError](p.revErr); ok {
		return OutcomeRefused
	}
	return OutcomeStalled
}

// applied reports whether p changed the runtime to match its plan.
func (p *pass) applied() bool { return !p.suspended && p.plan != nil && p.convergeErr == nil }

// seenRevision is the revision p fetched, named as Status shows it. A
// folder's revision that did not load has no content revision to be named
// by; it is named by its files (spec.FilesRevision), as a git revision is by
// its commit whether or not it loads, so that status says which save was
// refused.
func (p *pass) seenRevision(ctx context.Context) string {
	if name := revisionName(p.rev, p.loaded); name != "" || p.rev.Dir == "" {
		return name
	}
	name, _ := spec.FilesRevision(ctx, p.rev.Dir) // "" when the folder cannot be read either
	return name
}

// revisionName names a fetched revision: by its source's name (git's
// "<branch>@sha1:<commit>"), else, for a folder, which has no commit, by
// the content revision of the spec loaded from it.
func revisionName(rev source.Revision, loaded *spec.Set) string {
	switch {
	case rev.Name != "":
		return rev.Name
	case rev.ID == "" && loaded != nil:
		return loaded.Revision
	}
	return rev.ID
}

// record logs p, publishes it in Status and tells OnResult.
func (r *Reconciler) record(ctx context.Context, p *pass) Result {
	err := errors.Join(p.revErr, p.convergeErr)
	res := Result{Start: p.start, Outcome: p.outcome(), Err: err, Applied: p.applied()}
	if err != nil && ctx.Err() != nil && !res.Applied {
		// Cut short by the end of ctx (shutdown, a lost leadership): the
		// pass neither failed nor answered a request, so status, history
		// and metrics keep the last real outcome. A revision it adopted
		// still is the last good one.
		if p.adopted {
			r.mu.Lock()
			r.good, r.goodName = p.loaded, p.targetName
			r.mu.Unlock()
		}
		return res
	}
	var corrected []Change
	if p.plan != nil {
		res.Summary = p.plan.Summary
		r.logPlan(p.plan, p.target.Revision, p.targetName, p.suspended, res.Applied)
		r.planDrift = p.plan.Drifted()
		if res.Applied {
			// Applying the plan put back the drift it did not keep (report
			// mode keeps it all); what it kept is still present.
			var kept []Change
			for _, c := range r.planDrift {
				if c.Kept {
					kept = append(kept, c)
				} else {
					corrected = append(corrected, c)
				}
			}
			r.planDrift = kept
		}
	}
	var unmade *Plan
	if p.plan == nil && p.convergeErr != nil && p.target != nil {
		// The apply failed and made none of its plan: status tells what it
		// left pending and the drift still present, as after a suspended
		// pass, rather than what an earlier apply left.
		if pl, err := r.plan(ctx, p.target); err == nil {
			unmade = pl.plan
			r.planDrift = unmade.Drifted()
		}
	}
	if ctx.Err() == nil {
		r.logError(err)
	}
	drift := r.planDrift
	if r.cfg.DriftCheck != nil {
		drift = append(slices.Clip(drift), r.cfg.DriftCheck(r.cfg.Store.Read())...)
	}

	seen := ""
	if p.fetched {
		seen = p.seenRevision(ctx)
	}
	r.mu.Lock()
	s := &r.status
	if p.fetched {
		s.SeenRevision = seen
	}
	if p.adopted {
		r.good, r.goodName = p.loaded, p.targetName
	}
	if res.Applied {
		r.last, r.lastName = p.target, p.targetName
	}
	s.LastAttempt, s.Request = p.start, p.request
	s.LastResult = res.Outcome
	s.LastError, s.Stalled = "", ""
	if err != nil {
		s.LastError = err.Error()
	}
	if res.Outcome == OutcomeRefused || res.Outcome == OutcomeStalled {
		s.Stalled = stallReason(p.revErr)
	}
	switch {
	case len(drift) == 0:
		s.DriftSince = time.Time{}
	case s.DriftCount == 0:
		s.DriftSince = p.start
	}
	s.Drift, s.DriftCount = drift, len(drift)
	if len(corrected) > 0 {
		s.Corrected, s.CorrectedAt = corrected, p.start
	}
	if p.plan != nil {
		s.PendingPlan = pending(p.plan, res.Applied)
		if res.Applied {
			s.AppliedRevision, s.AppliedContent = p.targetName, p.target.Revision
		}
	} else if unmade != nil {
		s.PendingPlan = pending(unmade, false)
	}
	h := HistoryEntry{First: p.start, Last: p.start, Count: 1, Revision: p.targetName, Outcome: res.Outcome,
		Error: s.LastError, Stalled: s.Stalled, Applied: res.Applied}
	if p.fetched {
		h.Seen = seen
	}
	if res.Applied {
		// What the apply changed: the plan less what it left in place.
		h.Summary = p.plan.Made()
	}
	r.addHistory(h)
	shared := r.status
	r.mu.Unlock()
	if r.cfg.ShareStatus {
		r.share(ctx, shared)
	}

	res.Duration = r.cfg.Clock.Now().Sub(p.start)
	if r.cfg.OnResult != nil {
		r.cfg.OnResult(res)
	}
	return res
}

// logPlan logs and audits the drift plan found and, when it was applied,
// each change made.
func (r *Reconciler) logPlan(plan *Plan, revision, source string, suspended, applied bool) {
	r.reportDrift(plan, suspended)
	if applied && plan.Changes() {
		// The totals are what the apply made, as its change records are,
		// without the drift kept in place.
		m := plan.Made()
		r.log.Info("applied", "revision", revision, "source", source, "create", m.Create, "update", m.Update, "delete", m.Delete)
		r.cfg.Audit.Record(audit.Applied{Revision: revision, Source: source, Create: m.Create, Update: m.Update, Delete: m.Delete})
		r.auditApplied(plan, revision)
	}
}

// converge applies set or, when suspended, only plans it. A plan the guard
// refuses returns its *UnsafeError either way.
func (r *Reconciler) converge(ctx context.Context, set *spec.Set, suspended bool) (*Plan, error) {
	if !suspended {
		return r.apply(ctx, set)
	}
	p, err := r.plan(ctx, set)
	if err != nil {
		return nil, err
	}
	if p.refusal != nil {
		return nil, p.refusal
	}
	return p.plan, nil
}

// pending counts the changes of plan that were not made: all of them when
// it was not applied, else the drift it kept. Status shows them as the
// pending plan, so kept drift counts in it by action, unlike in the plan's
// Summary, where it is apart from what Apply makes.
func pending(p *Plan, applied bool) PlanSummary {
	kept := p.tally(true)
	s := PlanSummary{Kept: kept.Create + kept.Update + kept.Delete, Drift: kept.Drift}
	if !applied {
		m := p.Made()
		s.Create, s.Update, s.Delete, s.Drift = m.Create, m.Update, m.Delete, m.Drift+kept.Drift
	}
	return s
}

// logError logs err when it differs from the last one logged, and logs a
// recovery when an error clears, so a failure repeated by every retry is
// logged once.
func (r *Reconciler) logError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg == r.lastLogged {
		return
	}
	prev := r.lastLogged
	r.lastLogged = msg
	switch {
	case errors.Is(err, source.ErrNothingPushed):
		// A push-mode daemon before its first push: waiting, not failing.
		r.log.Info("waiting for a spec to be pushed", "source", r.cfg.Source.String())
	case err != nil:
		r.log.Error("reconcile failed", "source", r.cfg.Source.String(), "err", msg)
	case prev != "":
		r.log.Info("reconcile recovered", "source", r.cfg.Source.String())
	}
}

// reportDrift logs and audits every drifted field (secrets are
// fingerprints already). Drift left in place is found again by every
// reconcile; it is reported when it appears, not on every tick, which
// would push the audit trail's other records out of its rotated files.
func (r *Reconciler) reportDrift(p *Plan, suspended bool) {
	present := map[string]bool{}
	defer func() { r.reported = present }()
	// fresh reports whether uncorrected drift under key was not reported
	// by the last reconcile, and notes it as present.
	fresh := func(corrected bool, key ...string) bool {
		if corrected {
			return true
		}
		k := strings.Join(key, "\x00")
		present[k] = true
		return !r.reported[k]
	}
	for _, action := range []struct {
		name    string
		changes []Change
	}{{"create", p.Creates}, {"update", p.Updates}, {"delete", p.Deletes}} {
		for _, c := range action.changes {
			if !c.Drift {
				continue
			}
			corrected := !c.Kept && !suspended
			if action.name != "update" {
				if !fresh(corrected, action.name, c.Kind, c.Name) {
					continue
				}
				r.log.Warn("drift", "kind", c.Kind, "name", c.Name, "action", action.name, "corrected", corrected)
				r.cfg.Audit.Record(audit.Drift{Kind: c.Kind, Name: c.Name, Action: action.name, Corrected: corrected})
				continue
			}
			for _, f := range c.Fields {
				if !fresh(corrected, action.name, c.Kind, c.Name, f.Path, f.Before, f.After) {
					continue
				}
				// Before is what the runtime holds, after what the spec says.
				r.log.Warn("drift", "kind", c.Kind, "name", c.Name, "action", action.name,
					"field", f.Path, "before", f.Before, "after", f.After, "corrected", corrected)
				r.cfg.Audit.Record(audit.Drift{Kind: c.Kind, Name: c.Name, Action: action.name,
					Field: f.Path, Before: f.Before, After: f.After, Corrected: corrected})
			}
		}
	}
}

// auditApplied records each change an apply made.
func (r *Reconciler) auditApplied(p *Plan, revision string) {
	for _, group := range []struct {
		action  string
		changes []Change
	}{{"create", p.Creates}, {"update", p.Updates}, {"delete", p.Deletes}} {
		for _, c := range group.changes {
			if c.Kept {
				continue
			}
			r.cfg.Audit.Record(audit.AppliedChange{Revision: revision, Action: group.action,
				Kind: c.Kind, Name: c.Name, Drift: c.Drift})
		}
	}
}
