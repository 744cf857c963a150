package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the strict decoder: it must never panic,
// must return either documents or an ErrorList, and must return the same
// on a second parse.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "*", "*", "*.yaml"))
	examples, _ := filepath.Glob(filepath.Join("..", "examples", "entra", "*.yaml"))
	for _, name := range append(seeds, examples...) {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("{\"apiVersion\": 1, kind: [], metadata: {name: {}}, spec: null}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		docs, err := Parse("fuzz.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range list {
				if e.Pos.File != "fuzz.yaml" {
					t.Fatalf("error without the file name: %v", e)
				}
			}
		}
		for _, d := range docs {
			if d == nil || d.Spec == nil {
				t.Fatalf("document without a spec: %+v", d)
			}
		}
		// A spec is parsed on every daemon of a cluster and on every
		// poll: the outcome, errors and their order included, must not
		// depend on map order or any other state.
		docs2, err2 := Parse("fuzz.yaml", data)
		if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(docs, docs2) {
			t.Fatalf("parsed twice:\n%v\n%v", err, err2)
		}
	})
}

// TestDecoderFieldLimit guards the decoder's duplicate-field bitmask.
func TestDecoderFieldLimit(t *testing.T) {
	for _, k := range kinds {
		for _, typ := range []reflect.Type{reflect.TypeOf(k.newSpec()).Elem(), reflect.TypeFor[ScimToken](), reflect.TypeFor[SamlIDP](), reflect.TypeFor[ValueFrom]()} {
			if typ.NumField() >= 64 {
				t.Errorf("%s has %d fields; the duplicate check handles fewer than 64", typ, typ.NumField())
			}
		}
	}
}
