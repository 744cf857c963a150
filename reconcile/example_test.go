package reconcile

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// The shipped example loads, plans, applies and then converges.
func TestExampleSpecConverges(t *testing.T) {
	ctx := context.Background()
	set, err := spec.Load(ctx, "../examples/entra", spec.LoadOptions{Now: t0, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("the shipped example does not load: %v", err)
	}
	r := newReconciler(t, Config{Store: newStore(t)})
	p, err := r.Apply(ctx, set)
	if err != nil {
		t.Fatal(err)
	}
	if p.Summary.Create != len(set.Docs) {
		t.Errorf("created %d of %d", p.Summary.Create, len(set.Docs))
	}
	var out bytes.Buffer
	if err := p.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"+ Role/Administrator", "+ Application/webgoat", "spec.tokens[entra].sha256: sha256:cefbcfe77053\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	for _, secret := range []string{"cefbcfe77053847ab41c", "BEGIN CERTIFICATE", "<EntityDescriptor", "<md:EntityDescriptor"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("plan shows %q", secret)
		}
	}
	again, err := spec.Load(ctx, "../examples/entra", spec.LoadOptions{Now: t0, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := r.Plan(ctx, again); err != nil || !p.Empty() {
		t.Errorf("reloaded example not converged: %v %+v", err, p)
	}
}
