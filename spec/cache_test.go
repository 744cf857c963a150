package spec

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestCacheReturnsThePreviousLoadOnlyWhileInputsAreUnchanged(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("apps.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1\"]\n")
	write("token", "a-secret-token-from-a-file-0123456789abcdef")
	write("scim.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: ScimProvisioning\nmetadata:\n  name: s\nspec:\n  enabled: true\n  tokens:\n  - name: t\n    valueFrom: {file: token}\n  - name: e\n    valueFrom: {env: TOKEN}\n")
	env := map[string]string{"TOKEN": "an-env-token-0123456789abcdef0123456789"}
	cache := &Cache{}
	load := func() (*Set, error) {
		t.Helper()
		return Load(context.Background(), dir, LoadOptions{Cache: cache, Getenv: func(k string) string { return env[k] }})
	}
	first, err := load()
	if err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name   string
		change func()
		same   bool
	}{
		{"nothing changed", func() {}, true},
		{"a YAML file changed", func() {
			write("apps.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1\", \"2\"]\n")
		}, false},
		{"unchanged again", func() {}, true},
		{"a secret file changed", func() { write("token", "another-secret-token-0123456789abcdef") }, false},
		{"an env var changed", func() { env["TOKEN"] = "a-rotated-env-token-0123456789abcdef01" }, false},
		{"a YAML file added", func() {
			write("more.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: r\nspec:\n  permissions: [x]\n")
		}, false},
	}
	prev := first
	for _, st := range steps {
		st.change()
		got, err := load()
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if (got == prev) != st.same {
			t.Fatalf("%s: cached result reused = %v, want %v", st.name, got == prev, st.same)
		}
		if !st.same && got.Revision == prev.Revision {
			t.Fatalf("%s: revision did not change", st.name)
		}
		prev = got
	}

	// A bad spec is cached as an error, and fixing it is noticed.
	write("bad.yaml", "apiVersion: idrecon.io/v1alpha1\nkind: Nope\nmetadata:\n  name: x\nspec: {}\n")
	if _, err := load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad spec: %v", err)
	}
	if _, err := load(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad spec, cached: %v", err)
	}
	os.Remove(filepath.Join(dir, "bad.yaml"))
	if _, err := load(); err != nil {
		t.Fatalf("fixed spec: %v", err)
	}
}
