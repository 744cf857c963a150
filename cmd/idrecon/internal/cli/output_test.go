package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// envelopeOf parses out as the one JSON object every --output json writes.
func envelopeOf(t *testing.T, out string) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value:\n%s", out)
	}
	if m["formatVersion"] != FormatVersion {
		t.Fatalf("formatVersion %v, want %s:\n%s", m["formatVersion"], FormatVersion, out)
	}
	return m
}

// TestJSONOutputs: every --output json is one envelope with formatVersion
// and kind; lists are [] when empty; failures are JSON too, with the exit
// code; validate's errors carry file (relative to the working directory),
// line, column and field, and --output github writes them as annotations.
func TestJSONOutputs(t *testing.T) {
	example, _ := filepath.Abs("../../../../examples/entra")
	work := t.TempDir()
	t.Chdir(work)
	os.MkdirAll("spec", 0o755)
	os.WriteFile("spec/bad.yaml", []byte("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n  verions: []\n"), 0o644)

	code, out, _ := run(t, nil, "validate", example, "--output", "json")
	if m := envelopeOf(t, out); code != 0 || m["kind"] != "Validation" || m["item"].(map[string]any)["valid"] != true {
		t.Errorf("validate json: %d %s", code, out)
	}

	code, out, _ = run(t, nil, "validate", "spec", "--output", "json")
	m := envelopeOf(t, out)
	e, _ := m["error"].(map[string]any)
	problems, _ := e["problems"].([]any)
	if code != 1 || m["kind"] != "Error" || e["exitCode"] != float64(1) || len(problems) != 2 {
		t.Fatalf("validate json of a bad spec: %d %s", code, out)
	}
	p := problems[0].(map[string]any)
	if p["file"] != filepath.Join("spec", "bad.yaml") || p["line"] != float64(6) || p["column"] != float64(3) || p["field"] != "spec.verions" {
		t.Errorf("problem %v, want spec/bad.yaml:6:3 spec.verions", p)
	}

	code, out, _ = run(t, nil, "validate", example, "--output", "github")
	// Named as errors are: relative to the working directory, or whole.
	if code != 0 || !strings.HasPrefix(out, "::warning::"+filepath.Join(example, "scim.yaml")+":22:15:") || !strings.Contains(out, "published demo token") {
		t.Errorf("validate github of the example (its demo-token warning as an annotation): %d\n%s", code, out)
	}

	code, out, errs := run(t, nil, "validate", "spec", "--output", "github")
	if code != 1 || !strings.HasPrefix(out, "::error file=spec/bad.yaml,line=6,col=3::spec.verions: ") || !strings.Contains(errs, "spec/bad.yaml:6:3: spec.verions") {
		t.Errorf("validate github: %d\n%s\n%s", code, out, errs)
	}

	code, out, _ = run(t, nil, "token", "new", "--output", "json")
	m = envelopeOf(t, out)
	tok, _ := m["item"].(map[string]any)
	sum := sha256.Sum256([]byte(tok["token"].(string)))
	if code != 0 || m["kind"] != "Token" || tok["sha256"] != hex.EncodeToString(sum[:]) ||
		!regexp.MustCompile(`^entra-\d{4}-\d\d-\d\d$`).MatchString(fmt.Sprint(tok["name"])) {
		t.Errorf("token json: %d %s", code, out)
	}

	code, out, _ = run(t, nil, "plan", example, "--output", "json")
	m = envelopeOf(t, out)
	plan, _ := m["item"].(map[string]any)
	if code != 2 || m["kind"] != "Plan" || plan["deletes"] == nil || plan["warnings"] == nil {
		t.Errorf("plan json (deletes and warnings are [] not null): %d %s", code, out)
	}

	code, out, _ = run(t, map[string]string{"IDRECON_ADMIN_TOKEN": "x"}, "status", "--server", "http://127.0.0.1:1", "--output", "json")
	m = envelopeOf(t, out)
	if e, _ := m["error"].(map[string]any); code != 1 || m["kind"] != "Error" || e["exitCode"] != float64(1) || e["message"] == "" {
		t.Errorf("status json without a daemon: %d %s", code, out)
	}
}

// TestGitHubAnnotationEscaping: a workflow command's properties end at a
// comma and its properties at "::", so a file whose path holds ',' or ':'
// (or '%', or a line break) is escaped as GitHub's toolkit escapes
// properties; the message escapes '%' and line breaks only.
func TestGitHubAnnotationEscaping(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := "team a,b:c%d"
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: x\nspec:\n  verions: []\n"), 0o644)
	code, out, errs := run(t, nil, "validate", dir, "--output", "github")
	want := "::error file=team a%2Cb%3Ac%25d/bad.yaml,line=6,col=3::spec.verions: "
	if code != 1 || !strings.HasPrefix(out, want) {
		t.Errorf("exit %d, want 1 and stdout starting %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errs)
	}
	for _, tc := range []struct{ in, prop, msg string }{
		{"a:b,c", "a%3Ab%2Cc", "a:b,c"},
		{"50%\r\nx", "50%25%0D%0Ax", "50%25%0D%0Ax"},
	} {
		if got := githubEscapeProperty(tc.in); got != tc.prop {
			t.Errorf("property %q escaped as %q, want %q", tc.in, got, tc.prop)
		}
		if got := githubEscape(tc.in); got != tc.msg {
			t.Errorf("message %q escaped as %q, want %q", tc.in, got, tc.msg)
		}
	}
}
