package admin

import (
	"net/http"
	"strings"
	"testing"
)

// A daemon that follows a source refuses apply and says where the change
// goes instead: a git repository takes a commit pushed to it, a watched
// folder takes the files saved in it.
func TestApplyRefusalSaysWhereTheChangeGoes(t *testing.T) {
	tests := []struct {
		name, source string
		kind         SourceKind
		want, not    []string
	}{
		{"git", "https://git.example.com/spec.git", SourceGit,
			[]string{"git.example.com/spec.git", "commit", "push"}, nil},
		{"folder", "/srv/idrecon/spec", SourceFolder,
			[]string{"/srv/idrecon/spec", "save"}, []string{"commit"}},
		{"folder without a name", "", SourceFolder,
			[]string{"watches a local folder", "save"}, []string{"commit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixtureWith(t, tt.source, func(c *Config) { c.SourceKind, c.Push = tt.kind, nil })
			code, body := f.do(t, "POST", "/v1/apply", token, packDir(t, map[string]string{"apps.yaml": appDoc}))
			if code != http.StatusConflict {
				t.Fatalf("apply: %d %s, want 409", code, body)
			}
			for _, w := range tt.want {
				if !strings.Contains(body, w) {
					t.Errorf("refusal %s does not say %q", body, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(body, n) {
					t.Errorf("refusal %s says %q", body, n)
				}
			}
		})
	}
}
