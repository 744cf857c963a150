package daemon

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec/bundle"
)

func push(t *testing.T, d *running, dir string) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := bundle.Pack(&buf, dir); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.admin+"/v1/apply", &buf)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.Bytes()
}

// TestPushMode: a daemon without a source takes its spec from idrecon apply,
// keeps it across a restart, and corrects drift against it like any source.
func TestPushMode(t *testing.T) {
	dataDir := t.TempDir()
	d := start(t, Config{DataDir: dataDir})
	if st := d.status(t); st.Mode != "push" || st.Ready {
		t.Fatalf("before the first push: %+v", st)
	}
	// Waiting for the first push is not a failure.
	if logs := d.logs.String(); strings.Contains(logs, `"level":"ERROR"`) || strings.Contains(logs, `"level":"WARN"`) {
		t.Fatalf("a push-mode daemon logs a failure before anything was pushed:\n%s", logs)
	}
	if code, b := push(t, d, "../../examples/entra"); code != 200 {
		t.Fatalf("push: %d %s", code, b)
	}
	want := versionsOf(resourceJSON(t, d, "Application", "webgoat"))

	d.call(t, "PUT", d.admin+"/v1/resources/Application/webgoat", adminTok, map[string]any{"versions": []string{"0.1"}})
	d.call(t, "POST", d.admin+"/v1/reconcile", adminTok, nil)
	eventually(t, "drift corrected in push mode", func() bool {
		return versionsOf(resourceJSON(t, d, "Application", "webgoat")) == want
	})

	bad := copyDir(t, "../../examples/entra")
	writeFile(t, bad+"/bad.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: x\nspec: {permisions: []}\n")
	if code, b := push(t, d, bad); code != http.StatusUnprocessableEntity || !bytes.Contains(b, []byte("bad.yaml:5")) {
		t.Fatalf("bad push: %d %s", code, b)
	}

	applied := d.status(t).AppliedRevision
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d2 := start(t, Config{DataDir: dataDir})
	st := d2.status(t)
	if st.AppliedRevision != applied || st.LastResult != "ok" || !st.Ready {
		b, _ := json.Marshal(st)
		t.Fatalf("after restart the pushed spec is not served: %s", b)
	}
}

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
