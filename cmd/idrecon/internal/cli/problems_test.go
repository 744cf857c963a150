package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestDaemonSpecProblemsAsLocal: a spec the daemon refuses (plan --server,
// apply) is reported as the local plan reports it: on stdout with --output
// json, each problem with its file (relative to the working directory),
// line, column, field and message, so that CI reading the JSON sees why;
// on stderr one a line otherwise.
func TestDaemonSpecProblemsAsLocal(t *testing.T) {
	const bad = "testdata/badspec"
	env, _ := startDaemon(t, "") // push mode: it takes apply too
	server := env["IDRECON_SERVER"]
	_, localJSON, _ := run(t, nil, "plan", bad, "--output", "json")
	_, _, localText := run(t, nil, "plan", bad)
	tests := []struct {
		name         string
		args         []string
		stdout       string // "" when stdout is to be empty
		stderrPrefix string // the problems, one a line
	}{
		{"plan json", []string{"plan", bad, "--server", server, "--output", "json"}, localJSON, ""},
		{"plan text", []string{"plan", bad, "--server", server}, "", localText[:strings.LastIndex(localText, "idrecon plan:")]},
		{"apply json", []string{"apply", bad, "--output", "json"}, localJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := run(t, env, tt.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if out != tt.stdout {
				t.Errorf("stdout:\n%s\nwant (as the local plan's):\n%s", out, tt.stdout)
			}
			if tt.stdout != "" {
				var env errorEnvelope
				if err := json.Unmarshal([]byte(out), &env); err != nil || len(env.Error.Problems) != 3 {
					t.Errorf("stdout does not hold the 3 problems (%v): %+v", err, env)
				}
			}
			if !strings.HasPrefix(errs, tt.stderrPrefix) {
				t.Errorf("stderr:\n%s\nwant it to start with (as the local plan's):\n%s", errs, tt.stderrPrefix)
			}
		})
	}
}
