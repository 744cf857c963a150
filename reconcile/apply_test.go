package reconcile

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func TestApplyWritesResourcesAndRevision(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	want := specA()
	p, err := r.Apply(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Create != len(want.Docs) {
		t.Fatalf("created %d, want %d", p.Summary.Create, len(want.Docs))
	}
	for _, d := range want.Docs {
		got := resource(t, s, d.Kind, d.Metadata.Name)
		if got == nil {
			t.Fatalf("%s not stored", d.Ref())
		}
		if got.Spec != d.Spec || got.Revision != "rev-a" || got.ModifiedBy != ModifiedBy || !got.Modified.Equal(t0) {
			t.Errorf("%s stored as %+v", d.Ref(), got)
		}
	}
	if rev, _ := s.Read().MetaValue(store.MetaAppliedRevision); rev != "rev-a" {
		t.Errorf("applied revision %q, want rev-a", rev)
	}
	again, err := r.Plan(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Empty() {
		t.Errorf("plan after apply is not empty: %+v", again.Summary)
	}
}

func TestPlanIsWhatApplyDoes(t *testing.T) {
	ctx := context.Background()
	for _, next := range []func() *spec.Set{specA, specB, specC} {
		s := newStore(t)
		r := newReconciler(t, Config{Store: s})
		applyA(t, r, s)
		planned, err := r.Plan(ctx, next())
		if err != nil {
			t.Fatal(err)
		}
		applied, err := r.Apply(ctx, next())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(planned, applied) {
			t.Errorf("%s: plan and apply differ:\n plan  %+v\n apply %+v", next().Revision, planned, applied)
		}
		if p, _ := r.Plan(ctx, next()); !p.Empty() {
			t.Errorf("%s: not converged: %+v", next().Revision, p.Summary)
		}
	}
}

// failAfter wraps a store so that every write fails after it ran: the store
// must then discard everything the write did.
type failAfter struct {
	*store.Store
	err error
}

func (f failAfter) Update(ctx context.Context, fn func(*store.Txn) error) error {
	return f.Store.Update(ctx, func(txn *store.Txn) error {
		if err := fn(txn); err != nil {
			return err
		}
		return f.err
	})
}

func TestApplyIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	applyA(t, r, s)

	boom := errors.New("disk on fire")
	failing := newReconciler(t, Config{Store: failAfter{s, boom}})
	failing.applied = r.applied
	if _, err := failing.Apply(ctx, specB()); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got := resource(t, s, spec.KindApplication, "webgoat").Spec.(*spec.Application).Versions; !reflect.DeepEqual(got, []string{"1.0"}) {
		t.Errorf("webgoat versions %v after failed apply", got)
	}
	if rev, _ := s.Read().MetaValue(store.MetaAppliedRevision); rev != "rev-a" {
		t.Errorf("applied revision %q after failed apply", rev)
	}
	// The failed apply did not count as applied: the changes are still
	// spec changes, not drift.
	p, err := failing.Plan(ctx, specB())
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Update != 4 || p.Summary.Drift != 0 {
		t.Errorf("plan after failed apply: %+v", p.Summary)
	}
}

func TestDrift(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		mode       DriftMode
		next       *spec.Set // applied after the drift
		webgoat    []string  // versions expected after
		releaseMgr []string  // permissions expected after (nil: absent)
		backdoor   bool      // whether the admin's resource survives
		driftAfter int       // drift a plan still shows afterwards
	}{
		{name: "corrected", next: specA(), webgoat: []string{"1.0"}, releaseMgr: []string{"version.create", "version.edit"}},
		{name: "reported", mode: DriftReport, next: specA(), webgoat: []string{"1.0", "3.0-hotfix"}, backdoor: true, driftAfter: 3},
		{
			name: "reported, but spec changes win", mode: DriftReport, next: specB(),
			webgoat: []string{"1.0", "2.0"}, releaseMgr: []string{"version.create", "version.edit", "report.view"},
			backdoor: true, driftAfter: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			r := newReconciler(t, Config{Store: s, DriftMode: tt.mode})
			applyAThenDrift(t, r, s)
			p, err := r.Apply(ctx, tt.next)
			if err != nil {
				t.Fatal(err)
			}
			if p.Summary.Drift != 3 {
				t.Errorf("drift %d, want 3", p.Summary.Drift)
			}
			if got := resource(t, s, spec.KindApplication, "webgoat").Spec.(*spec.Application).Versions; !reflect.DeepEqual(got, tt.webgoat) {
				t.Errorf("webgoat versions %v, want %v", got, tt.webgoat)
			}
			rm := resource(t, s, spec.KindRole, "Release Manager")
			switch {
			case tt.releaseMgr == nil && rm != nil:
				t.Errorf("deleted role was recreated in report mode")
			case tt.releaseMgr != nil && (rm == nil || !reflect.DeepEqual(rm.Spec.(*spec.Role).Permissions, tt.releaseMgr)):
				t.Errorf("Release Manager = %+v, want permissions %v", rm, tt.releaseMgr)
			}
			if got := resource(t, s, spec.KindAccessAssignment, "backdoor") != nil; got != tt.backdoor {
				t.Errorf("backdoor present = %v, want %v", got, tt.backdoor)
			}
			// An unchanged revision (cached rendering) still finds the drift.
			again, err := r.Plan(ctx, tt.next)
			if err != nil {
				t.Fatal(err)
			}
			if again.Summary.Drift != tt.driftAfter {
				t.Errorf("later plan drift %d, want %d: %+v", again.Summary.Drift, tt.driftAfter, again)
			}
		})
	}
}

// A new process on a state without a baseline record (written by a version
// that kept none) knows no last apply: what "reconcile" wrote is the
// baseline, anything written by someone else is drift. (With the record, see
// TestBaselineSurvivesRestart.)
func TestDriftAfterRestart(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	first := newReconciler(t, Config{Store: s})
	applyA(t, first, s)
	adminWrite(t, s, spec.KindRole, "Release Manager", &spec.Role{Permissions: []string{"*"}})
	if err := s.Update(ctx, func(txn *store.Txn) error {
		_, err := txn.DeleteAll(store.TableMeta, store.IndexID, store.MetaAppliedBaseline)
		return err
	}); err != nil {
		t.Fatal(err)
	}

	r := newReconciler(t, Config{Store: s, DriftMode: DriftReport})
	if got := r.Status().AppliedRevision; got != "rev-a" {
		t.Errorf("status before the first apply shows revision %q, want the stored rev-a", got)
	}
	p, err := r.Apply(ctx, specB())
	if err != nil {
		t.Fatal(err)
	}
	drift := map[string]bool{}
	for _, c := range p.Updates {
		drift[c.Kind+"/"+c.Name] = c.Drift
	}
	want := map[string]bool{
		"ScimProvisioning/entra": false, "Certificate/entra-signing": false,
		"Application/webgoat": false, "Role/Release Manager": true,
	}
	if !reflect.DeepEqual(drift, want) {
		t.Errorf("drift %v, want %v", drift, want)
	}
	if got := resource(t, s, spec.KindRole, "Release Manager").Spec.(*spec.Role).Permissions; !reflect.DeepEqual(got, []string{"*"}) {
		t.Errorf("report mode overwrote drifted role: %v", got)
	}
}

func TestInvalidSet(t *testing.T) {
	role := &spec.Role{Permissions: []string{"x"}}
	tests := []struct {
		name string
		set  *spec.Set
	}{
		{"nil", nil},
		{"duplicate", newSet("r", doc(spec.KindRole, "a", role), doc(spec.KindRole, "a", role))},
		{"no spec", newSet("r", doc(spec.KindRole, "a", nil))},
		{"no name", newSet("r", doc(spec.KindRole, "", role))},
		{"nil document", &spec.Set{Docs: []*spec.Document{nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReconciler(t, Config{Store: newStore(t)})
			if _, err := r.Plan(context.Background(), tt.set); !errors.Is(err, ErrInvalidSet) {
				t.Errorf("Plan err = %v", err)
			}
			if _, err := r.Apply(context.Background(), tt.set); !errors.Is(err, ErrInvalidSet) {
				t.Errorf("Apply err = %v", err)
			}
		})
	}
}

func TestParseDriftMode(t *testing.T) {
	tests := []struct {
		in      string
		want    DriftMode
		wantErr bool
	}{
		{"", DriftCorrect, false},
		{"correct", DriftCorrect, false},
		{"report", DriftReport, false},
		{"ignore", "", true},
	}
	for _, tt := range tests {
		got, err := ParseDriftMode(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseDriftMode(%q) = %q, %v", tt.in, got, err)
		}
	}
	if _, err := New(Config{Store: newStore(t), DriftMode: "ignore"}); err == nil {
		t.Error("New accepted an unknown drift mode")
	}
}

// newCertificate generates a key and a self-signed certificate, the way the
// loader would present one.
func newCertificate(t *testing.T, cn string) *spec.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: t0, NotAfter: t0.Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	fp, kfp := sha256.Sum256(der), sha256.Sum256(pub)
	return &spec.Certificate{
		Usage:          spec.UsageSamlSPSigning,
		PEM:            string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		PrivateKeyFrom: &spec.ValueFrom{File: "keys/sp.key"},
		Fingerprint:    hex.EncodeToString(fp[:]),
		Subject:        "CN=" + cn,
		NotBefore:      tmpl.NotBefore,
		NotAfter:       tmpl.NotAfter,
		DER:            der,
		KeyFingerprint: hex.EncodeToString(kfp[:]),
		PrivateKey:     key,
	}
}

func randomToken(t *testing.T) (plain, hash string) {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	plain = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(plain))
	return plain, hex.EncodeToString(sum[:])
}

// Secrets appear nowhere: not in plans (text or JSON), not in drift logs.
func TestSecretsStayHidden(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	logs := &logRecorder{}
	r := newReconciler(t, Config{Store: s, Logger: slog.New(logs)})

	oldCert, newCert := newCertificate(t, "sp old"), newCertificate(t, "sp new")
	oldPlain, oldHash := randomToken(t)
	newPlain, newHash := randomToken(t)
	_, adminHash := randomToken(t)
	set := func(rev string, c *spec.Certificate, tokenHash string) *spec.Set {
		return newSet(rev,
			doc(spec.KindCertificate, "sp", c),
			doc(spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "entra", SHA256: tokenHash}}}),
		)
	}
	var out bytes.Buffer
	show := func(p *Plan) {
		t.Helper()
		if err := p.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		if err := p.WriteJSON(&out); err != nil {
			t.Fatal(err)
		}
	}
	p, err := r.Apply(ctx, set("1", oldCert, oldHash))
	if err != nil {
		t.Fatal(err)
	}
	show(p)
	p, err = r.Plan(ctx, set("2", newCert, newHash))
	if err != nil {
		t.Fatal(err)
	}
	show(p)
	if p.Summary.Update != 2 {
		t.Fatalf("rotation not planned: %+v", p)
	}
	// The admin API swaps the token: drift, logged.
	adminWrite(t, s, spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "entra", SHA256: adminHash}}})
	p, err = r.Apply(ctx, set("1", oldCert, oldHash))
	if err != nil {
		t.Fatal(err)
	}
	show(p)
	r.reportDrift(p, false)
	drift := logs.find("drift")
	if len(drift) != 1 || drift[0]["field"] != "spec.tokens[entra].sha256" || drift[0]["before"] != "sha256:"+adminHash[:12] {
		t.Errorf("drift log = %v", drift)
	}
	all := out.String() + logs.all()
	for name, secret := range map[string]string{
		"old token": oldPlain, "new token": newPlain,
		"old token hash": oldHash, "new token hash": newHash, "admin token hash": adminHash,
		"old PEM": strings.Split(oldCert.PEM, "\n")[1], "new PEM": strings.Split(newCert.PEM, "\n")[1],
		"old DER": hex.EncodeToString(oldCert.DER)[:40], "new DER": hex.EncodeToString(newCert.DER)[:40],
		"DER base64": base64.StdEncoding.EncodeToString(newCert.DER)[:40],
	} {
		if strings.Contains(all, secret) {
			t.Errorf("%s appears in plan or log output", name)
		}
	}
	if !strings.Contains(all, newCert.KeyFingerprint) || !strings.Contains(all, "sha256:"+newHash[:12]) {
		t.Error("plan lacks the fingerprints that identify the rotation")
	}
}

// Plans, applies and admin writes at once: every apply is atomic, and the
// reconciler converges once the writers stop.
func TestConcurrentPlanAndApply(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := newReconciler(t, Config{Store: s})
	sets := []*spec.Set{specA(), specB(), specC()}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			for j := range 20 {
				set := sets[(i+j)%len(sets)]
				var err error
				if i%2 == 0 {
					_, err = r.Apply(ctx, set)
				} else {
					_, err = r.Plan(ctx, set)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for j := range 20 {
			err := s.Update(ctx, func(txn *store.Txn) error {
				return txn.Insert(store.TableResources, &store.Resource{
					Kind: spec.KindApplication, Name: "webgoat", ModifiedBy: "admin",
					Spec: &spec.Application{Versions: []string{fmt.Sprint(j)}},
				})
			})
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if _, err := r.Apply(ctx, specB()); err != nil {
		t.Fatal(err)
	}
	if p, err := r.Plan(ctx, specB()); err != nil || !p.Empty() {
		t.Errorf("not converged: %v %+v", err, p)
	}
}
