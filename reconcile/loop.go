package reconcile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

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
	// AppliedRevision is the spec revision (spec.Set.Revision) last applied.
	AppliedRevision string `json:"appliedRevision"`
	// SeenRevision is the source revision ID last fetched (for a plain
	// folder, the spec revision last loaded from it).
	SeenRevision string    `json:"seenRevision"`
	LastAttempt  time.Time `json:"lastAttempt,omitzero"`
	LastResult   string    `json:"lastResult,omitempty"`
	LastError    string    `json:"lastError,omitempty"`
	// Stalled is why the last reconcile stalled ("InvalidRevision",
	// "UnsafeRevision", "AuthenticationFailed", "HostKeyUntrusted",
	// "SignatureUnverified"), or "": the loop then retries at the interval,
	// without backoff, or when triggered.
	Stalled string `json:"stalled,omitempty"`
	// DriftCount and Drift describe the drift the last reconcile found.
	DriftCount int       `json:"driftCount"`
	Drift      []Change  `json:"drift,omitempty"`
	DriftMode  DriftMode `json:"driftMode"`
	Suspended  bool      `json:"suspended"`
	// PendingPlan counts the changes the last reconcile left unmade
	// (suspended, or drift kept in report mode).
	PendingPlan Summary `json:"pendingPlan"`
}

// Result describes one reconcile of the loop, for metrics.
type Result struct {
	Start    time.Time
	Duration time.Duration
	Outcome  string
	Err      error
	// Summary is the plan's; Applied is false when suspended or when no
	// revision could be planned.
	Summary Summary
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

// Suspend stops applying: reconciles still fetch, load, plan and report
// drift, but change nothing.
func (r *Reconciler) Suspend() { r.suspended.Store(true) }

// Resume undoes Suspend.
func (r *Reconciler) Resume() { r.suspended.Store(false) }

// Status returns a copy of the loop's state.
func (r *Reconciler) Status() Status {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	s := r.status
	s.Drift = append([]Change(nil), s.Drift...)
	s.Suspended = r.suspended.Load()
	if s.AppliedRevision == "" {
		// Before this process applied, the store may hold a revision that an
		// earlier run applied and the journal brought back.
		s.AppliedRevision, _ = r.cfg.Store.Read().MetaValue(store.MetaAppliedRevision)
	}
	return s
}

// CurrentPlan plans the last revision that loaded against the live runtime.
func (r *Reconciler) CurrentPlan(ctx context.Context) (*Plan, error) {
	r.statusMu.Lock()
	good := r.good
	r.statusMu.Unlock()
	if good == nil {
		return nil, ErrNoRevision
	}
	return r.Plan(ctx, good)
}

// Run reconciles on every interval and Trigger until ctx ends, then returns
// nil. After a failure it retries with exponential backoff instead.
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

// reconcile is ReconcileOnce, also telling the outcome the loop decides by.
func (r *Reconciler) reconcile(ctx context.Context) (*Plan, Result) {
	r.runMu.Lock()
	defer r.runMu.Unlock()

	start := r.cfg.Clock.Now()
	res := Result{Start: start, Outcome: OutcomeOK}

	rev, fetchErr := r.cfg.Source.Fetch(ctx)
	var set *spec.Set
	var loadErr error
	switch {
	case fetchErr != nil:
		loadErr = fmt.Errorf("fetch %s: %w", r.cfg.Source, fetchErr)
		res.Outcome = OutcomeError
		if stallReason(fetchErr) != "" {
			res.Outcome = OutcomeStalled
		}
	default:
		set, loadErr = r.cfg.Load(ctx, rev.Dir)
		switch {
		case loadErr == nil && set == nil:
			loadErr = fmt.Errorf("load revision %q: %w: loader returned no set", rev.ID, ErrInvalidSet)
			res.Outcome = OutcomeError
		case errors.Is(loadErr, spec.ErrInvalid):
			loadErr = &RefusedError{Revision: rev.ID, Err: loadErr}
			res.Outcome = OutcomeRefused
		case loadErr != nil:
			loadErr = fmt.Errorf("load revision %q: %w", rev.ID, loadErr)
			res.Outcome = OutcomeError
		}
	}

	r.statusMu.Lock()
	switch {
	case fetchErr != nil:
	case rev.ID == "" && set != nil:
		// A plain folder has no commit: its content revision stands in.
		r.status.SeenRevision = set.Revision
	default:
		r.status.SeenRevision = rev.ID
	}
	target := r.good
	r.statusMu.Unlock()

	var plan *Plan
	var planErr error
	suspended := r.suspended.Load()
	accepted := false
	if loadErr == nil {
		plan, planErr = r.converge(ctx, set, suspended)
		var unsafe *UnsafeError
		if errors.As(planErr, &unsafe) {
			// Refused like a revision that does not load: the last good
			// one stays, and is applied below.
			loadErr = &RefusedError{Revision: rev.ID, Err: unsafe}
			res.Outcome = OutcomeRefused
			plan, planErr = nil, nil
		} else {
			accepted, target = true, set
			r.statusMu.Lock()
			r.good = set
			r.statusMu.Unlock()
		}
	}
	if !accepted && target != nil {
		plan, planErr = r.converge(ctx, target, suspended)
	}
	res.Applied = !suspended && plan != nil && planErr == nil
	if planErr != nil {
		res.Outcome = OutcomeError
	}
	err := errors.Join(loadErr, planErr)
	if plan != nil {
		res.Summary = plan.Summary
		r.logDrift(plan, suspended)
		if res.Applied && pending(plan, true) != plan.Summary {
			r.log.Info("applied", "revision", target.Revision,
				"create", plan.Summary.Create, "update", plan.Summary.Update, "delete", plan.Summary.Delete)
			r.logApplied(plan, target.Revision)
		}
	}
	if ctx.Err() == nil {
		r.logError(err)
	}

	r.statusMu.Lock()
	s := &r.status
	s.LastAttempt = start
	s.LastResult = res.Outcome
	s.LastError, s.Stalled = "", ""
	if res.Outcome == OutcomeRefused || res.Outcome == OutcomeStalled {
		s.Stalled = stallReason(loadErr)
	}
	if err != nil {
		s.LastError = err.Error()
	}
	if plan != nil {
		s.Drift = plan.Drifted()
		s.DriftCount = len(s.Drift)
		s.PendingPlan = pending(plan, res.Applied)
		if res.Applied {
			s.AppliedRevision = target.Revision
		}
	}
	r.statusMu.Unlock()

	res.Err = err
	res.Duration = r.cfg.Clock.Now().Sub(start)
	if r.cfg.OnResult != nil {
		r.cfg.OnResult(res)
	}
	return plan, res
}

// converge applies set or, when suspended, only plans it. A plan the guard
// refuses returns its *UnsafeError either way.
func (r *Reconciler) converge(ctx context.Context, set *spec.Set, suspended bool) (*Plan, error) {
	if !suspended {
		return r.Apply(ctx, set)
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

// pending counts the changes of plan that were not made.
func pending(p *Plan, applied bool) Summary {
	if !applied {
		return p.Summary
	}
	var s Summary
	count := func(cs []Change, n *int) {
		for _, c := range cs {
			if c.Kept {
				*n++
				s.Drift++
			}
		}
	}
	count(p.Creates, &s.Create)
	count(p.Updates, &s.Update)
	count(p.Deletes, &s.Delete)
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
	case err != nil:
		r.log.Error("reconcile failed", "source", r.cfg.Source.String(), "err", msg)
	case prev != "":
		r.log.Info("reconcile recovered", "source", r.cfg.Source.String())
	}
}

// logDrift logs every drifted field (secrets are fingerprints already).
func (r *Reconciler) logDrift(p *Plan, suspended bool) {
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
				r.log.Warn("drift", "kind", c.Kind, "name", c.Name, "action", action.name, "corrected", corrected)
				continue
			}
			for _, f := range c.Fields {
				// Before is what the runtime holds, after what the spec says.
				r.log.Warn("drift", "kind", c.Kind, "name", c.Name, "action", action.name,
					"field", f.Path, "before", f.Before, "after", f.After, "corrected", corrected)
			}
		}
	}
}

// logApplied records each change an apply made, one line each, for the
// audit trail.
func (r *Reconciler) logApplied(p *Plan, revision string) {
	for _, group := range []struct {
		action  string
		changes []Change
	}{{"create", p.Creates}, {"update", p.Updates}, {"delete", p.Deletes}} {
		for _, c := range group.changes {
			if c.Kept {
				continue
			}
			r.log.Info("applied change", "revision", revision, "action", group.action,
				"kind", c.Kind, "name", c.Name, "drift", c.Drift)
		}
	}
}
