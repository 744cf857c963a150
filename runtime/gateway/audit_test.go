package gateway_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestRefusalsAreAudited: a signed-in user refused is audited once a
// minute however often they reload; a visitor without a session is not
// audited at all, so no client can fill the audit log.
func TestRefusalsAreAudited(t *testing.T) {
	var trail audit.Memory
	_, srv := newFrontDoor(t, gateway.Config{}, gateway.Deps{Name: "appsec", Audit: &trail})
	for range 5 {
		if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-bob", nil); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bob: %d, want 403", resp.StatusCode)
		}
		if resp := do(t, "GET", srv.URL+gateway.VerifyPath, "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no session: %d, want 401", resp.StatusCode)
		}
	}
	want := []audit.Event{audit.GatewayRefusal{Gateway: "appsec", User: "bob", Reason: gateway.ReasonNoRole}}
	if got := trail.Events(); !slices.Equal(got, want) {
		t.Fatalf("audit events %v, want %v", got, want)
	}
}
