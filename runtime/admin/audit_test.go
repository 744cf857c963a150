package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
)

// adminRecords are the admin API's action records among events.
func adminRecords(events []audit.Event) []audit.AdminAction {
	var out []audit.AdminAction
	for _, e := range events {
		if a, ok := e.(audit.AdminAction); ok {
			out = append(out, a)
		}
	}
	return out
}

// Every request that changes what the daemon does, or takes its state
// away, leaves one record; reads leave none.
func TestStateChangingRequestsAreAudited(t *testing.T) {
	var trail audit.Memory
	f := newFixtureWith(t, "", func(c *Config) {
		c.Audit = &trail
		c.Backup = func(w io.Writer) error { _, err := io.WriteString(w, "snapshot"); return err }
	})
	steps := []struct {
		method, path string
		body         func() io.Reader
		want         int
		op           string // "" for a request that changes nothing
	}{
		{"GET", "/v1/status", nil, http.StatusOK, ""},
		{"POST", "/v1/plan", func() io.Reader { return packDir(t, map[string]string{"apps.yaml": appDoc}) }, http.StatusOK, ""},
		{"POST", "/v1/suspend", nil, http.StatusOK, "suspend"},
		{"POST", "/v1/resume", nil, http.StatusOK, "resume"},
		{"POST", "/v1/reconcile", nil, http.StatusAccepted, "reconcile"},
		{"POST", "/v1/apply", func() io.Reader { return packDir(t, map[string]string{"apps.yaml": appDoc}) }, http.StatusOK, "apply"},
		{"GET", "/v1/backup", nil, http.StatusOK, "backup"},
	}
	for _, st := range steps {
		before := len(adminRecords(trail.Events()))
		var body io.Reader
		if st.body != nil {
			body = st.body()
		}
		code, resp := f.do(t, st.method, st.path, token, body)
		if code != st.want {
			t.Fatalf("%s %s: %d %s, want %d", st.method, st.path, code, resp, st.want)
		}
		got := adminRecords(trail.Events())[before:]
		switch {
		case st.op == "" && len(got) != 0:
			t.Errorf("%s %s changes nothing, yet recorded %+v", st.method, st.path, got)
		case st.op != "" && (len(got) != 1 || got[0].Action != st.op || got[0].Actor != "admin" || got[0].Outcome != ""):
			t.Errorf("%s %s recorded %+v, want one admin action %q by admin, made", st.method, st.path, got, st.op)
		case st.op == "apply" && got[0].Revision == "":
			t.Errorf("apply recorded %+v, without the revision pushed", got[0])
		}
	}
}

// A request whose change failed is recorded as failed, with why; one
// refused before anything was tried (apply on a daemon that follows a
// source) is no action.
func TestFailedRequestsAreAuditedAsFailed(t *testing.T) {
	var trail audit.Memory
	f := newFixtureWith(t, "https://git.example.com/spec.git", func(c *Config) {
		c.Audit = &trail
		c.Suspend = func(context.Context, bool) error { return errors.New("etcd unreachable") }
		c.Backup = func(io.Writer) error { return errors.New("disk gone") }
	})
	for _, st := range []struct {
		method, path string
		want         int
		action, why  string // "" for no record
	}{
		{"POST", "/v1/suspend", http.StatusInternalServerError, "suspend", "etcd unreachable"},
		{"POST", "/v1/resume", http.StatusInternalServerError, "resume", "etcd unreachable"},
		{"POST", "/v1/apply", http.StatusConflict, "", ""},
		{"GET", "/v1/backup", http.StatusInternalServerError, "backup", "disk gone"},
	} {
		before := len(adminRecords(trail.Events()))
		var body io.Reader
		if st.path == "/v1/apply" {
			body = packDir(t, map[string]string{"apps.yaml": appDoc})
		}
		if code, resp := f.do(t, st.method, st.path, token, body); code != st.want {
			t.Fatalf("%s %s: %d %s, want %d", st.method, st.path, code, resp, st.want)
		}
		got := adminRecords(trail.Events())[before:]
		switch {
		case st.action == "" && len(got) != 0:
			t.Errorf("%s %s recorded %+v, want none", st.method, st.path, got)
		case st.action != "" && (len(got) != 1 || got[0].Action != st.action || got[0].Outcome != "failed" || !strings.Contains(got[0].Error, st.why)):
			t.Errorf("%s %s recorded %+v, want one failed %s saying %q", st.method, st.path, got, st.action, st.why)
		}
	}
}

// The records land in the audit file with their time and actor, and
// without the token that made them.
func TestAuditFileRecordsSuspend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	trail, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, "", func(c *Config) { c.Audit = trail })
	if code, resp := f.do(t, "POST", "/v1/suspend", token, nil); code != http.StatusOK {
		t.Fatalf("suspend: %d %s", code, resp)
	}
	if err := trail.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), token) {
		t.Fatalf("the audit file holds the admin token:\n%s", data)
	}
	var found bool
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		var rec struct {
			Time, Msg, Actor, Action string
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("record %q: %v", sc.Text(), err)
		}
		if rec.Msg == "admin action" && rec.Action == "suspend" && rec.Actor == "admin" {
			found = rec.Time != ""
		}
	}
	if !found {
		t.Fatalf("no timed suspend record in the audit file:\n%s", data)
	}
}

// A resume whose reconcile request then fails still resumed: the record
// says so, as the reconcile of the next interval applies.
func TestResumeAuditedWhenItsRequestFails(t *testing.T) {
	var trail audit.Memory
	f := newFixtureWith(t, "https://git.example.com/spec.git", func(c *Config) {
		c.Audit = &trail
		c.Request = func(context.Context) (uint64, error) { return 0, errors.New("no leader") }
	})
	if code, resp := f.do(t, "POST", "/v1/resume", token, nil); code != http.StatusInternalServerError {
		t.Fatalf("resume: %d %s", code, resp)
	}
	if got := adminRecords(trail.Events()); len(got) != 1 || got[0] != (audit.AdminAction{Actor: "admin", Action: "resume"}) {
		t.Fatalf("resume recorded %+v, want one resume, made", got)
	}
}

// A backup cut off midway still handed out part of the state: it is
// recorded as partly made.
func TestBackupCutShortIsAudited(t *testing.T) {
	var trail audit.Memory
	f := newFixtureWith(t, "", func(c *Config) {
		c.Audit = &trail
		c.Backup = func(w io.Writer) error {
			io.WriteString(w, "part of a snapshot")
			return errors.New("disk gone")
		}
	})
	req, _ := http.NewRequest("GET", f.srv.URL+"/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if resp, err := f.srv.Client().Do(req); err == nil {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if got := adminRecords(trail.Events()); len(got) != 1 || got[0].Action != "backup" || got[0].Outcome != "partly" {
		t.Fatalf("backup cut short recorded %+v, want one backup, partly made", got)
	}
}

// The router answers HEAD with a GET route: a HEAD of /v1/backup took a
// whole snapshot, sent none of it, and put on record that a backup left
// the daemon. HEAD says what a GET would send, without taking one.
func TestBackupHeadTakesNoBackup(t *testing.T) {
	var trail audit.Memory
	var taken atomic.Int32
	f := newFixtureWith(t, "", func(c *Config) {
		c.Audit = &trail
		c.Backup = func(w io.Writer) error {
			taken.Add(1)
			_, err := io.WriteString(w, "snapshot")
			return err
		}
	})
	code, _ := f.do(t, "HEAD", "/v1/backup", token, nil)
	if code != http.StatusOK || taken.Load() != 0 {
		t.Errorf("HEAD /v1/backup: %d, %d backups taken; want 200 and none", code, taken.Load())
	}
	if got := adminRecords(trail.Events()); len(got) != 0 {
		t.Errorf("HEAD /v1/backup recorded %+v, want nothing", got)
	}
	if code, body := f.do(t, "GET", "/v1/backup", token, nil); code != http.StatusOK || body != "snapshot" || taken.Load() != 1 {
		t.Errorf("GET /v1/backup: %d %q, %d backups taken", code, body, taken.Load())
	}
}

// A resume whose reconcile request failed was answered and audited, but
// the daemon's log said nothing of it: whoever reads the log saw the
// suspension and never the resume.
func TestResumeLoggedWhenItsRequestFails(t *testing.T) {
	var logs logsink.Buffer
	f := newFixtureWith(t, "https://git.example.com/spec.git", func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Request = func(context.Context) (uint64, error) { return 0, errors.New("no leader") }
	})
	if code, resp := f.do(t, "POST", "/v1/resume", token, nil); code != http.StatusInternalServerError {
		t.Fatalf("resume: %d %s", code, resp)
	}
	if !strings.Contains(logs.String(), "reconciliation resumed") {
		t.Errorf("log after a resume whose request failed: %q, want the resume", logs.String())
	}
}
