package cli

import (
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestTokenNewEntryMeansItsName: the entry token new prints is pasted under
// spec.tokens as it is, so it must read back as the name given, whatever
// YAML makes of that text unquoted (a comment, a mapping, a number, null);
// a name the loader refuses is refused here, before a token is shown.
func TestTokenNewEntryMeansItsName(t *testing.T) {
	for _, name := range []string{"entra", "entra: old", "#2", "123", "null", "- a", "'q'", "a\"b", "yes", " entra ", strings.Repeat("long name ", 25)} {
		code, out, errs := run(t, nil, "token", "new", "--name", name)
		if code != 0 {
			t.Errorf("token new --name %q: exit %d\n%s", name, code, errs)
			continue
		}
		entry := regexp.MustCompile(`(?ms)^  - name: .*\n    sha256: [0-9a-f]{64}\n`).FindString(out)
		var got []struct{ Name, SHA256 string }
		if err := yaml.Unmarshal([]byte(entry), &got); err != nil || len(got) != 1 || got[0].Name != name || len(got[0].SHA256) != 64 {
			t.Errorf("token new --name %q: the entry reads back as %+v (%v):\n%s", name, got, err, entry)
		}
	}
	for _, name := range []string{"", "a\nb", "tab\there"} {
		code, out, errs := run(t, nil, "token", "new", "--name", name)
		if code != 1 || !strings.Contains(errs, "--name") || strings.Contains(out, "sha256") {
			t.Errorf("token new --name %q: exit %d, want 1 naming --name and no token\nstdout:\n%s\nstderr:\n%s", name, code, out, errs)
		}
	}
}
