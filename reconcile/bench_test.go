package reconcile

import (
	"context"
	"fmt"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// largeSet is the scale target: 1,000 applications of 10 versions, 20,000
// assignments of which 5,000 are to groups, the builtin roles and a few more.
func largeSet(rev string) *spec.Set {
	var docs []*spec.Document
	docs = append(docs,
		doc(spec.KindScimProvisioning, "entra", &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "entra", SHA256: tokenA}}}),
		doc(spec.KindSamlServiceProvider, "entra", &spec.SamlServiceProvider{Enabled: true, EntityID: "https://sp", BaseURL: "https://sp"}),
	)
	for i := range 1000 {
		v := make([]string, 10)
		for j := range v {
			v[j] = fmt.Sprintf("%d.0", j+1)
		}
		docs = append(docs, doc(spec.KindApplication, fmt.Sprintf("app-%04d", i), &spec.Application{Versions: v}))
	}
	for name, r := range spec.BuiltinRoles {
		docs = append(docs, doc(spec.KindRole, name, &r))
	}
	for i := range 20 {
		docs = append(docs, doc(spec.KindRole, fmt.Sprintf("custom-%02d", i), &spec.Role{Permissions: []string{"version.view", "report.view"}}))
	}
	for i := range 20000 {
		subject := spec.Subject{User: fmt.Sprintf("user-%05d@contoso.com", i)}
		if i < 5000 {
			subject = spec.Subject{Group: fmt.Sprintf("group-%04d", i)}
		}
		docs = append(docs, doc(spec.KindAccessAssignment, fmt.Sprintf("assignment-%05d", i), &spec.AccessAssignment{
			Subject:             subject,
			Roles:               []string{"Developer", fmt.Sprintf("custom-%02d", i%20)},
			ApplicationVersions: []string{fmt.Sprintf("app-%04d/*", i%1000), fmt.Sprintf("app-%04d/2.0", (i+1)%1000)},
		}))
	}
	return newSet(rev, docs...)
}

// BenchmarkPlanFull plans the large set against an empty runtime, from cold
// caches.
func BenchmarkPlanFull(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	set := largeSet("rev-1")
	for b.Loop() {
		r := newReconciler(b, Config{Store: s})
		p, err := r.Plan(ctx, set)
		if err != nil || p.Summary.Create != len(set.Docs) {
			b.Fatal(err, p.Summary)
		}
	}
}

// BenchmarkApplyFull applies the large set to an empty runtime.
func BenchmarkApplyFull(b *testing.B) {
	ctx := context.Background()
	set := largeSet("rev-1")
	for b.Loop() {
		b.StopTimer()
		s := newStore(b)
		r := newReconciler(b, Config{Store: s})
		b.StartTimer()
		if _, err := r.Apply(ctx, set); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
}

// BenchmarkReplanNoChange is the steady state of the loop: the same revision,
// loaded again (new values, same Revision), planned against the converged
// runtime, drift check included.
func BenchmarkReplanNoChange(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	r := newReconciler(b, Config{Store: s})
	if _, err := r.Apply(ctx, largeSet("rev-1")); err != nil {
		b.Fatal(err)
	}
	reloaded := largeSet("rev-1")
	b.Run("plan", func(b *testing.B) {
		for b.Loop() {
			if p, err := r.Plan(ctx, reloaded); err != nil || !p.Empty() {
				b.Fatal(err, p.Summary)
			}
		}
	})
	b.Run("apply", func(b *testing.B) {
		for b.Loop() {
			if p, err := r.Apply(ctx, reloaded); err != nil || !p.Empty() {
				b.Fatal(err, p.Summary)
			}
		}
	})
}
