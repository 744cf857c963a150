package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

// compileSchema compiles schemas/document.schema.json the way an editor
// does: from the file, its relative $refs resolved against the file's own
// location, so a sibling schema that does not resolve on disk fails here.
func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	for _, f := range schemaFiles(t) {
		// An editor resolves relative $refs against $id; an $id naming a
		// server would send it there instead of to the sibling files.
		if id, ok := readJSON(t, f).(map[string]any)["$id"]; ok {
			t.Errorf("%s: $id %v: leave $id out so $refs resolve next to the file", f, id)
		}
	}
	sch, err := jsonschema.NewCompiler().Compile(filepath.Join("..", "schemas", "document.schema.json"))
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return sch
}

// schemaFiles lists schemas/*.schema.json.
func schemaFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "schemas", "*.schema.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	return files
}

func readJSON(t *testing.T, name string) any {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// yamlDocs reads the documents of every YAML file below root the way an
// editor's schema validation would: plain YAML to JSON, no loader rules. A
// file that is not valid YAML yields an error instead.
func yamlDocs(t *testing.T, root string) (docs map[string]any, parseErr error) {
	t.Helper()
	docs = map[string]any{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parseErr = err
				break
			}
			if v == nil {
				continue
			}
			js, err := json.Marshal(v)
			if err != nil {
				return err
			}
			jv, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			docs[rel+"#"+strconv.Itoa(i)] = jv
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return docs, parseErr
}

// TestSchemasAgreeWithLoader proves the JSON Schemas and the loader agree:
// what the loader accepts the schemas accept, structural mistakes are
// rejected by both, and the loader-only mistakes pass the schemas (so the
// table's marking is right).
func TestSchemasAgreeWithLoader(t *testing.T) {
	sch := compileSchema(t)

	var good []string
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "*"))
	for _, e := range examples {
		if fi, err := os.Stat(e); err == nil && fi.IsDir() {
			good = append(good, e)
		}
	}
	for _, name := range caseDirs(t, filepath.Join("testdata", "good")) {
		good = append(good, filepath.Join("testdata", "good", name))
	}
	if len(good) < 3 {
		t.Fatalf("only %d good trees: %v", len(good), good)
	}
	for _, dir := range good {
		t.Run(dir, func(t *testing.T) {
			docs, perr := yamlDocs(t, dir)
			if len(docs) == 0 && perr == nil && filepath.Base(dir) != "entra" && strings.HasPrefix(dir, "..") {
				t.Skip("no YAML documents (an example of something else)")
			}
			if perr != nil || len(docs) == 0 {
				t.Fatalf("%d documents, parse error %v", len(docs), perr)
			}
			for name, v := range docs {
				if err := sch.Validate(v); err != nil {
					t.Errorf("%s: schema rejects a good document: %v", name, err)
				}
			}
		})
	}

	for name, c := range badCases {
		t.Run("bad/"+name, func(t *testing.T) {
			docs, perr := yamlDocs(t, filepath.Join("testdata", "bad", name))
			var rejected []string
			for doc, v := range docs {
				if err := sch.Validate(v); err != nil {
					rejected = append(rejected, doc)
				}
			}
			switch {
			case c.structural && perr == nil && len(rejected) == 0:
				t.Errorf("structural mistake, but the schema accepts all %d documents", len(docs))
			case !c.structural && (perr != nil || len(rejected) > 0):
				t.Errorf("marked loader-only, but the schema rejects %v (parse error %v); mark it structural", rejected, perr)
			}
		})
	}
}

// TestSchemaEnumsMatchGo keeps the enumerations written into the schemas in
// step with the loader's lists.
func TestSchemaEnumsMatchGo(t *testing.T) {
	enum := func(file string, path ...string) []string {
		t.Helper()
		var out []string
		for _, e := range schemaAt(t, file, path...).([]any) {
			out = append(out, e.(string))
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	tests := []struct {
		name string
		got  []string
		want []string
	}{
		{"userAttributes", enum("scimprovisioning.schema.json", "properties", "spec", "properties", "userAttributes", "items", "enum"), sorted(UserAttributes)},
		{"usages", enum("certificate.schema.json", "properties", "spec", "properties", "usage", "enum"), sorted(usages)},
		{"nameIDFormats", enum("samlserviceprovider.schema.json", "properties", "spec", "properties", "nameIDFormat", "anyOf", "0", "enum"), sorted(nameIDFormats)},
		{"builtin roles", enum("role.schema.json", "properties", "metadata", "allOf", "1", "properties", "name", "not", "anyOf", "0", "enum"), sortedKeys(BuiltinRoles)},
		{"builtin roles in any case", []string{schemaString(t, "role.schema.json", "properties", "metadata", "allOf", "1", "properties", "name", "not", "anyOf", "1", "pattern")}, []string{foldedPattern(sortedKeys(BuiltinRoles))}},
		{"kinds", enum("document.schema.json", "properties", "kind", "enum"), sorted(Kinds)},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: schema has %q, loader has %q", tt.name, tt.got, tt.want)
		}
	}
}

// TestSchemaMetadataURLScheme: the schema, like the loader, takes an http
// metadataURL only with allowInsecureMetadataURL: true.
func TestSchemaMetadataURLScheme(t *testing.T) {
	sch := compileSchema(t)
	doc := func(idp string) any {
		t.Helper()
		var v any
		y := "apiVersion: idrecon.io/v1alpha1\nkind: SamlServiceProvider\nmetadata:\n  name: entra\nspec:\n  entityID: urn:x\n  baseURL: https://x.example\n  idp:\n    requireSignedMetadata: false\n" + idp
		if err := yaml.Unmarshal([]byte(y), &v); err != nil {
			t.Fatal(err)
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		jv, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			t.Fatal(err)
		}
		return jv
	}
	tests := []struct {
		name string
		idp  string
		ok   bool
	}{
		{"https", "    metadataURL: https://idp.example/md\n", true},
		{"http", "    metadataURL: http://idp.example/md\n", false},
		{"HTTP", "    metadataURL: HTTP://idp.example/md\n", false},
		{"http, allow false", "    metadataURL: http://idp.example/md\n    allowInsecureMetadataURL: false\n", false},
		{"http, allowed", "    metadataURL: http://idp.example/md\n    allowInsecureMetadataURL: true\n", true},
		{"private host allowed", "    metadataURL: https://10.0.0.1/md\n    allowPrivateMetadataHost: true\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := sch.Validate(doc(tt.idp))
			if (err == nil) != tt.ok {
				t.Fatalf("schema validation error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// TestSchemaDescriptions: every property and every $defs entry carries a
// description, since that is what an editor shows on hover and completion.
// Constraint subschemas (if/then/else, not, anyOf, oneOf) restate properties
// declared elsewhere and are not walked.
func TestSchemaDescriptions(t *testing.T) {
	described := 0
	for _, f := range schemaFiles(t) {
		var missing []string
		var walk func(node any, at string)
		walk = func(node any, at string) {
			m, ok := node.(map[string]any)
			if !ok {
				return
			}
			for _, group := range []string{"properties", "$defs"} {
				children, _ := m[group].(map[string]any)
				for _, name := range slices.Sorted(maps.Keys(children)) {
					child := children[name]
					p := at + "/" + group + "/" + name
					if d, _ := child.(map[string]any)["description"].(string); strings.TrimSpace(d) == "" {
						missing = append(missing, p)
					} else {
						described++
					}
					walk(child, p)
				}
			}
			walk(m["items"], at+"/items")
			if all, ok := m["allOf"].([]any); ok {
				for i, s := range all {
					walk(s, at+"/allOf/"+strconv.Itoa(i))
				}
			}
		}
		walk(readJSON(t, f), "#")
		if len(missing) > 0 {
			t.Errorf("%s: %d properties without a description:\n\t%s", filepath.Base(f), len(missing), strings.Join(missing, "\n\t"))
		}
	}
	t.Logf("%d properties and definitions described", described)
}

// modelinePrefix starts the first line of an example file: the comment
// yaml-language-server (the VS Code YAML extension and other editors) reads
// to validate and complete the file against a schema.
const modelinePrefix = "# yaml-language-server: $schema="

// TestExampleModelines: every YAML file under examples/ names, in its first
// line, a schema file that exists relative to it and accepts every document
// in the file, so an editor opening it validates against the right kind.
func TestExampleModelines(t *testing.T) {
	root := filepath.Join("..", "examples")
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (filepath.Ext(path) != ".yaml" && filepath.Ext(path) != ".yml") {
			return err
		}
		checked++
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		first, _, _ := strings.Cut(string(data), "\n")
		ref, ok := strings.CutPrefix(first, modelinePrefix)
		if !ok {
			t.Errorf("%s: first line %q, want %s<path of the schema>", path, first, modelinePrefix)
			return nil
		}
		sch, err := jsonschema.NewCompiler().Compile(filepath.Join(filepath.Dir(path), filepath.FromSlash(ref)))
		if err != nil {
			t.Errorf("%s: modeline schema %s: %v", path, ref, err)
			return nil
		}
		docs, perr := yamlDocs(t, path)
		if perr != nil || len(docs) == 0 {
			t.Errorf("%s: %d documents, parse error %v", path, len(docs), perr)
		}
		for name, v := range docs {
			if err := sch.Validate(v); err != nil {
				t.Errorf("%s document %s: %s rejects it: %v", path, name, ref, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked == 0 {
		t.Fatal("no YAML files under examples/")
	}
}

// schemaAt is the value at path in the schema file: object keys, and
// array indices as numbers.
func schemaAt(t *testing.T, file string, path ...string) any {
	t.Helper()
	var v any = readJSON(t, filepath.Join("..", "schemas", file))
	for _, p := range path {
		switch c := v.(type) {
		case map[string]any:
			v = c[p]
		case []any:
			i, err := strconv.Atoi(p)
			if err != nil || i >= len(c) {
				t.Fatalf("%s: no %s", file, strings.Join(path, "/"))
			}
			v = c[i]
		default:
			t.Fatalf("%s: no %s", file, strings.Join(path, "/"))
		}
	}
	return v
}

// schemaString is the string at path in the schema file.
func schemaString(t *testing.T, file string, path ...string) string {
	t.Helper()
	s, ok := schemaAt(t, file, path...).(string)
	if !ok {
		t.Fatalf("%s: no string at %s", file, strings.Join(path, "/"))
	}
	return s
}

// foldedPattern is the JSON Schema pattern matching exactly the names that
// fold (Fold) like one of names: each letter stands for every rune of its
// case folding orbit (the Kelvin sign for k, the long s for s).
func foldedPattern(names []string) string {
	alts := make([]string, len(names))
	for i, n := range names {
		var b strings.Builder
		for _, r := range n {
			orbit := []rune{r}
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				orbit = append(orbit, f)
			}
			if len(orbit) == 1 {
				b.WriteString(regexp.QuoteMeta(string(r)))
				continue
			}
			slices.Sort(orbit)
			b.WriteString("[" + string(orbit) + "]")
		}
		alts[i] = b.String()
	}
	return "^(?:" + strings.Join(alts, "|") + ")$"
}
