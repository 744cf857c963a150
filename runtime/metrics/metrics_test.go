package metrics

import (
	"strings"
	"testing"
	"time"
)

func TestHandlerExposesRecordedValues(t *testing.T) {
	m := New()
	m.Reconcile("ok", 20*time.Millisecond, 3, false)
	m.Revisions("abc123", "def456")
	m.SCIMRequest("POST /Users", 201, time.Millisecond)
	m.SAMLLogin("success")

	_, body := scrape(t, m)
	for _, want := range []string{
		`idrecon_reconcile_total{result="ok"} 1`,
		`idrecon_drift_resources 3`,
		`idrecon_revision_info{revision="abc123",state="applied"} 1`,
		`idrecon_scim_requests_total{code="201",route="POST /Users"} 1`,
		`idrecon_saml_logins_total{result="success"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
