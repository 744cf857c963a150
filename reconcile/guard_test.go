package reconcile

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/spec"
)

func scimDoc(enabled bool) *spec.Document {
	return doc(spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: enabled, BasePath: spec.DefaultScimBasePath})
}

func samlDoc(enabled bool) *spec.Document {
	return doc(spec.KindSamlServiceProvider, "entra", &spec.SamlServiceProvider{Enabled: enabled, EntityID: "https://sp.example/saml/metadata"})
}

func appDoc() *spec.Document {
	return doc(spec.KindApplication, "webgoat", &spec.Application{Versions: []string{"1.0"}})
}

// TestGuardRefusesDeletingWhatEntraUses: a revision that deletes the SCIM
// provisioning or the SAML service provider while it is enabled is refused,
// in Plan and in Apply, and changes nothing; once an applied revision has
// switched it off, deleting it goes through.
func TestGuardRefusesDeletingWhatEntraUses(t *testing.T) {
	for _, tt := range []struct {
		kind string
		doc  func(enabled bool) *spec.Document
	}{
		{spec.KindScimProvisioning, scimDoc},
		{spec.KindSamlServiceProvider, samlDoc},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			ctx := context.Background()
			s := newStore(t)
			r := newReconciler(t, Config{Store: s})
			if _, err := r.Apply(ctx, newSet("r1", appDoc(), tt.doc(true))); err != nil {
				t.Fatal(err)
			}

			deleted := newSet("r2", appDoc())
			p, err := r.Plan(ctx, deleted)
			if err != nil {
				t.Fatal(err)
			}
			want := "delete " + tt.kind + "/entra while it is enabled"
			if !strings.Contains(p.Refused, want) || !strings.Contains(p.Refused, "enabled: false") {
				t.Errorf("plan.Refused = %q, want it to say %q and how (enabled: false first)", p.Refused, want)
			}
			if p.Summary.Delete != 1 {
				t.Errorf("the refused plan still shows its delete: %+v", p.Summary)
			}
			var text bytes.Buffer
			p.WriteText(&text)
			// The changes are listed for the review, but nothing of them
			// will be made: the text must not read like a plan to apply.
			if !strings.Contains(text.String(), "Refused: nothing will be applied") || strings.Contains(text.String(), "\nPlan: ") {
				t.Errorf("the plan's text does not say that nothing will be applied:\n%s", text.String())
			}

			_, err = r.Apply(ctx, deleted)
			var unsafe *UnsafeError
			if !errors.As(err, &unsafe) || !reflect.DeepEqual(unsafe.Deletes, []spec.Ref{{Kind: tt.kind, Name: "entra"}}) {
				t.Fatalf("Apply = %v, want an *UnsafeError naming %s/entra", err, tt.kind)
			}
			if !errors.Is(err, spec.ErrInvalid) {
				t.Errorf("the refusal is not a spec.ErrInvalid, so the admin API would not answer 422: %v", err)
			}
			if resource(t, s, tt.kind, "entra") == nil {
				t.Fatalf("the refused apply deleted %s/entra", tt.kind)
			}

			// First commit: enabled: false. Second commit: the delete.
			if _, err := r.Apply(ctx, newSet("r3", appDoc(), tt.doc(false))); err != nil {
				t.Fatalf("switching it off: %v", err)
			}
			if p, err := r.Plan(ctx, deleted); err != nil || p.Refused != "" {
				t.Fatalf("plan after it was switched off: %v, refused %q", err, p.Refused)
			}
			if _, err := r.Apply(ctx, deleted); err != nil {
				t.Fatalf("deleting it once switched off: %v", err)
			}
			if resource(t, s, tt.kind, "entra") != nil {
				t.Errorf("%s/entra not deleted", tt.kind)
			}
		})
	}
}

// A resource switched off outside git (the admin API) was not switched off
// by an applied revision: deleting it is still refused.
func TestGuardCountsOnlyAnAppliedSwitchOff(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), scimDoc(true))); err != nil {
		t.Fatal(err)
	}
	adminWrite(t, s, spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: false})
	_, err := r.Apply(ctx, newSet("r2", appDoc()))
	var unsafe *UnsafeError
	if !errors.As(err, &unsafe) {
		t.Fatalf("Apply = %v, want a refusal", err)
	}
}

// A ScimProvisioning created outside git was never in a revision: removing
// it is drift correction, which the drift mode governs, not the guard.
func TestGuardLeavesDriftToTheDriftMode(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	if _, err := r.Apply(ctx, newSet("r1", appDoc())); err != nil {
		t.Fatal(err)
	}
	adminWrite(t, s, spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: true})
	if _, err := r.Apply(ctx, newSet("r1", appDoc())); err != nil {
		t.Fatalf("correcting drift: %v", err)
	}
}

func TestGuardRefusesAnEmptySet(t *testing.T) {
	ctx := context.Background()
	builtinOnly := func(rev string) *spec.Set {
		var docs []*spec.Document
		for name, role := range spec.BuiltinRoles {
			docs = append(docs, doc(spec.KindRole, name, &role))
		}
		return newSet(rev, docs...)
	}
	for _, tt := range []struct {
		name  string
		set   *spec.Set
		allow bool
	}{
		{"no documents", newSet("e"), false},
		{"only the built-in roles", builtinOnly("b"), false},
		{"allowed", builtinOnly("b"), true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			r := newReconciler(t, Config{Store: s, AllowEmpty: tt.allow})
			if _, err := r.Apply(ctx, newSet("r1", appDoc(), scimDoc(true))); err != nil {
				t.Fatal(err)
			}
			p, err := r.Plan(ctx, tt.set)
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Apply(ctx, tt.set)
			if tt.allow {
				// Allowed to empty the runtime, SCIM included.
				if err != nil || p.Refused != "" || resource(t, s, spec.KindApplication, "webgoat") != nil ||
					resource(t, s, spec.KindScimProvisioning, "entra") != nil {
					t.Fatalf("allowed empty set: err %v, refused %q", err, p.Refused)
				}
				return
			}
			var unsafe *UnsafeError
			if !errors.As(err, &unsafe) || !unsafe.Empty || !strings.Contains(err.Error(), "no documents") ||
				!strings.Contains(err.Error(), "--allow-empty") {
				t.Fatalf("Apply = %v, want a refusal of the empty spec that says how to allow it", err)
			}
			if !strings.Contains(p.Refused, "no documents") {
				t.Errorf("plan.Refused = %q", p.Refused)
			}
			if resource(t, s, spec.KindApplication, "webgoat") == nil {
				t.Error("the refused empty set deleted webgoat")
			}
		})
	}
	if err := CheckEmpty(newSet("x", appDoc())); err != nil {
		t.Errorf("CheckEmpty of a set with a document: %v", err)
	}
}

// TestReconcileOnceRefusesEmptiedFolder: a folder emptied under the loop is
// refused like an invalid revision: the last good revision stays applied
// (and its drift corrected), status says why, and the loop does not back
// off as after a failure; a new revision goes through.
func TestReconcileOnceRefusesEmptiedFolder(t *testing.T) {
	results := make(chan Result, 10)
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results <- r })
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	<-results
	good := e.r.Status()

	e.src.write(t, "c2", nil)
	adminDelete(t, e.store, spec.KindApplication, "webgoat")
	p, err := e.r.ReconcileOnce(context.Background())
	var refused *RefusedError
	var unsafe *UnsafeError
	if !errors.As(err, &refused) || refused.Revision != "c2" || !errors.As(err, &unsafe) || !unsafe.Empty {
		t.Fatalf("err = %v, want c2 refused as empty", err)
	}
	if res := <-results; res.Outcome != OutcomeRefused || !res.Applied {
		t.Errorf("result %+v, want refused with the last good applied", res)
	}
	if p == nil || p.Summary.Create != 1 || !reflect.DeepEqual(versions(t, e.store, "webgoat"), []string{"1.0"}) {
		t.Errorf("the last good revision was not applied (drift corrected): %+v", p)
	}
	st := e.r.Status()
	if st.LastResult != OutcomeRefused || !strings.Contains(st.LastError, "no documents") ||
		st.SeenRevision != "c2" || st.AppliedRevision != good.AppliedRevision {
		t.Errorf("status after the emptied folder: %+v", st)
	}
	if cur, err := e.r.CurrentPlan(context.Background()); err != nil || cur.Refused != "" {
		t.Errorf("CurrentPlan plans the refused revision: %v %+v", err, cur)
	}

	e.src.write(t, "c3", map[string]string{"apps.yaml": app("webgoat", "1.0", "2.0")})
	e.once(t)
	if got := versions(t, e.store, "webgoat"); !reflect.DeepEqual(got, []string{"1.0", "2.0"}) {
		t.Errorf("webgoat %v after a new revision", got)
	}
}

func TestReconcileOnceSuspendedReportsRefusal(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	e.r.Suspend()
	e.src.write(t, "c2", nil)
	_, err := e.r.ReconcileOnce(context.Background())
	var unsafe *UnsafeError
	if !errors.As(err, &unsafe) {
		t.Fatalf("err = %v, want the suspended loop to report the refusal", err)
	}
	if st := e.r.Status(); st.LastResult != OutcomeRefused {
		t.Errorf("status %+v", st)
	}
}

func TestReconcileOnceAllowEmpty(t *testing.T) {
	e := newLoopEnv(t, DriftCorrect, nil)
	e.r.cfg.AllowEmpty = true
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	e.src.write(t, "c2", nil)
	e.once(t)
	if resource(t, e.store, spec.KindApplication, "webgoat") != nil {
		t.Error("AllowEmpty: webgoat not deleted")
	}
}

// A refused revision is stalled, not failing: retrying it sooner than the
// interval cannot help, only a new revision can.
func TestRunWaitsTheIntervalAfterRefusal(t *testing.T) {
	results := make(chan Result, 10)
	e := newLoopEnv(t, DriftCorrect, func(r Result) { results <- r })
	e.src.write(t, "c1", map[string]string{"apps.yaml": app("webgoat", "1.0")})
	e.once(t)
	<-results
	e.src.write(t, "c2", nil)
	runLoop(t, e.r)
	if res := waitFor(t, results, "the refused reconcile"); res.Outcome != OutcomeRefused {
		t.Fatalf("result %+v", res)
	}
	if d := waitFor(t, e.clock.waits, "the wait after the refusal"); d < 54*time.Second {
		t.Errorf("wait after a refusal %v, want the interval (1m ± 10%%), not a backoff", d)
	}
}

// TestGuardAsksKeeps: a revision Config.Keeps objects to (in the daemon:
// one without the TLS certificate it serves) is refused like one that cuts
// Entra off: plan says why, apply changes nothing.
func TestGuardAsksKeeps(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var asked int
	r := newReconciler(t, Config{Store: s, Keeps: func(docs []*spec.Document) error {
		asked++
		for _, d := range docs {
			if d.Kind == spec.KindScimProvisioning {
				return nil
			}
		}
		return errors.New("no ScimProvisioning (test)")
	}})
	if _, err := r.Apply(ctx, newSet("r1", appDoc(), scimDoc(false))); err != nil {
		t.Fatal(err)
	}
	without := newSet("r2", appDoc())
	p, err := r.Plan(ctx, without)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Refused, "no ScimProvisioning (test)") {
		t.Errorf("plan.Refused = %q, want Keeps' reason", p.Refused)
	}
	_, err = r.Apply(ctx, without)
	var unsafe *UnsafeError
	if !errors.As(err, &unsafe) || unsafe.Keeps == "" {
		t.Fatalf("Apply = %v, want an *UnsafeError from Keeps", err)
	}
	if res, _ := s.Read().Resource(spec.KindScimProvisioning, "entra"); res == nil {
		t.Error("the refused revision deleted the ScimProvisioning")
	}
	if asked < 3 {
		t.Errorf("Keeps asked %d times, want every plan and apply", asked)
	}
}
