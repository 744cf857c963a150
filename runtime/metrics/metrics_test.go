package metrics

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
)

func TestHandlerExposesRecordedValues(t *testing.T) {
	m := New(func() reconcile.Status {
		return reconcile.Status{DriftCount: 3, AppliedRevision: "abc123", SeenRevision: "def456"}
	})
	m.Reconcile("ok", 20*time.Millisecond)
	m.SCIMRequest("POST /Users", 201, time.Millisecond)
	m.SAMLLogin("success")

	_, body := scrape(t, m)
	for _, want := range []string{
		`idrecon_reconcile_total{result="ok"} 1`,
		`idrecon_drift_resources 3`,
		`idrecon_suspended 0`,
		`idrecon_revision_info{revision="abc123",state="applied"} 1`,
		`idrecon_revision_info{revision="def456",state="seen"} 1`,
		`idrecon_scim_requests_total{code="201",route="POST /Users"} 1`,
		`idrecon_saml_logins_total{result="success"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// The status gauges are read from the status at scrape time: a change of
// the status (a suspend, a leader's reconcile shared through etcd) shows
// at the next scrape with no Reconcile recorded in between.
func TestStatusGaugesFollowTheStatus(t *testing.T) {
	var cur atomic.Pointer[reconcile.Status]
	cur.Store(&reconcile.Status{})
	m := New(func() reconcile.Status { return *cur.Load() })
	for _, tc := range []struct {
		name   string
		status reconcile.Status
		want   []string
		absent []string
	}{
		{
			name:   "nothing applied yet",
			status: reconcile.Status{},
			want:   []string{"idrecon_suspended 0\n", "idrecon_drift_resources 0\n"},
			absent: []string{"idrecon_revision_info{"},
		},
		{
			name:   "suspended",
			status: reconcile.Status{Suspended: true, AppliedRevision: "main@sha1:a", SeenRevision: "main@sha1:a"},
			want: []string{"idrecon_suspended 1\n", "idrecon_drift_resources 0\n",
				`idrecon_revision_info{revision="main@sha1:a",state="applied"} 1`, `idrecon_revision_info{revision="main@sha1:a",state="seen"} 1`},
		},
		{
			name:   "resumed, with drift and a newer revision seen",
			status: reconcile.Status{DriftCount: 2, AppliedRevision: "main@sha1:a", SeenRevision: "main@sha1:b"},
			want: []string{"idrecon_suspended 0\n", "idrecon_drift_resources 2\n",
				`idrecon_revision_info{revision="main@sha1:a",state="applied"} 1`, `idrecon_revision_info{revision="main@sha1:b",state="seen"} 1`},
			absent: []string{`revision="main@sha1:a",state="seen"`},
		},
	} {
		cur.Store(&tc.status)
		code, body := scrape(t, m)
		if code != http.StatusOK {
			t.Fatalf("%s: scrape answered %d", tc.name, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: metrics lack %q", tc.name, w)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(body, a) {
				t.Errorf("%s: metrics have %q", tc.name, a)
			}
		}
	}
	// No reconcile was recorded: the gauges moved on the status alone.
	if _, body := scrape(t, m); !strings.Contains(body, `idrecon_reconcile_total{result="ok"} 0`) {
		t.Error("metrics count a reconcile none recorded")
	}
}
