package spec

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

func TestLoadRefusesSpecsPastTheLimits(t *testing.T) {
	app := func(name string) string {
		return "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name + "\nspec:\n  versions: [\"1.0\"]\n"
	}
	tests := []struct {
		name     string
		files    map[string]string
		opts     LoadOptions
		wantErr  string
		wantUnit string
	}{
		{
			name: "bytes across files",
			// c.yaml is broken: the limit must stop the load before it is parsed.
			files:    map[string]string{"a.yaml": app("a"), "b.yaml": app("b"), "c.yaml": "key: [unclosed\n"},
			opts:     LoadOptions{MaxBytes: int64(len(app("a")) + 10)},
			wantErr:  "the spec is larger than " + strconv.Itoa(len(app("a"))+10) + " bytes (reached at b.yaml); if it is meant to be this large, raise the limit with --max-spec-bytes",
			wantUnit: "bytes",
		},
		{
			name:     "documents in one file",
			files:    map[string]string{"apps.yaml": app("a") + "---\n" + app("b") + "---\n" + app("c") + "---\n" + "key: [unclosed\n"},
			opts:     LoadOptions{MaxDocuments: 2},
			wantErr:  "the spec has more than 2 documents; if it is meant to be this large, raise the limit with --max-spec-documents",
			wantUnit: "documents",
		},
		{
			name:     "documents across files",
			files:    map[string]string{"a.yaml": app("a"), "b.yaml": app("b"), "c.yaml": app("c")},
			opts:     LoadOptions{MaxDocuments: 2},
			wantErr:  "the spec has more than 2 documents",
			wantUnit: "documents",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(context.Background(), writeTree(t, tt.files), tt.opts)
			var le *LimitError
			if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want a *LimitError %q", err, tt.wantErr)
			}
			if le.Unit != tt.wantUnit || !errors.Is(err, ErrInvalid) {
				t.Errorf("unit %q (want %q), errors.Is(ErrInvalid) = %v", le.Unit, tt.wantUnit, errors.Is(err, ErrInvalid))
			}
		})
	}
}

func TestLoadAcceptsSpecsAtTheLimits(t *testing.T) {
	app := "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: a\nspec:\n  versions: [\"1.0\"]\n"
	root := writeTree(t, map[string]string{"a.yaml": app, "notes.txt": strings.Repeat("x", 1000)})
	if _, err := Load(context.Background(), root, LoadOptions{MaxBytes: int64(len(app)), MaxDocuments: 1}); err != nil {
		t.Fatalf("a spec exactly at the limits (files the loader skips do not count): %v", err)
	}
}

// TestErrorListTextIsBounded: a spec wrong in every one of many places gives
// a status and log line of bounded size, while the list keeps every problem
// for validate to print.
func TestErrorListTextIsBounded(t *testing.T) {
	for _, n := range []int{1, maxListedErrors, maxListedErrors + 1, 5000} {
		var l ErrorList
		for i := range n {
			l.add(Position{File: "roles.yaml", Line: i + 1, Column: 3}, "spec.name", "bad")
		}
		lines := strings.Split(l.Error(), "\n")
		wantLines := min(n, maxListedErrors)
		if n > maxListedErrors {
			wantLines++
			if want := fmt.Sprintf("... and %d more problems", n-maxListedErrors); !strings.HasPrefix(lines[len(lines)-1], want) {
				t.Errorf("%d problems: last line %q, want it to start %q", n, lines[len(lines)-1], want)
			}
		}
		if len(lines) != wantLines {
			t.Errorf("%d problems: %d lines of text, want %d", n, len(lines), wantLines)
		}
		if got := len(l.Unwrap()); got != n {
			t.Errorf("%d problems: the list unwraps to %d", n, got)
		}
	}
}
