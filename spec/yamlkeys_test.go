package spec

import (
	"strings"
	"testing"
)

// TestMappingKeyErrors: a key the loader cannot take is reported at the key,
// under the field of the mapping it is in, saying what is wrong with it. A
// merge key read "mapping keys must be strings", though "<<" looks like one.
func TestMappingKeyErrors(t *testing.T) {
	const head = "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: app\nspec:\n"
	tests := []struct {
		name, data, want string
	}{
		{"merge key with a mapping", head + "  <<: {versions: [\"1.0\"]}\n",
			"f.yaml:6:3: spec: YAML merge keys (<<) are not supported; write the fields out"},
		{"merge key with an alias", "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata: &m\n  name: app\nspec:\n  <<: *m\n",
			"f.yaml:6:3: spec: YAML merge keys (<<) are not supported; write the fields out"},
		{"merge key in the envelope", "<<: {apiVersion: idrecon.io/v1alpha1}\nkind: Application\nmetadata: {name: app}\nspec: {versions: [\"1\"]}\n",
			"f.yaml:1:1: YAML merge keys (<<) are not supported; write the fields out"},
		{"quoted << is a plain unknown field", head + "  \"<<\": {versions: [\"1.0\"]}\n",
			"f.yaml:6:3: spec.<<: unknown field (want one of versions)"},
		{"null key", head + "  ~: [\"1.0\"]\n", "f.yaml:6:3: spec: mapping keys must be strings"},
		{"number key", head + "  1: [\"1.0\"]\n", "f.yaml:6:3: spec: mapping keys must be strings"},
		{"key with a byte order mark", head + "  \ufeffversions: [\"1.0\"]\n",
			`f.yaml:6:3: spec: the key "\ufeffversions" starts with a byte order mark (U+FEFF)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}
