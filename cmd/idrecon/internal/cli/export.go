package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/spec"
)

// exported is one document as export writes it.
type exported struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec any `yaml:"spec"`
}

func exportCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "export -o DIR",
		Short: "Write a daemon's live spec-owned state as a spec repository",
		Long: `Write a daemon's live spec-owned state as a spec repository (one file per kind,
builtin roles left out), for adopting a running set-up. It lists the files the
documents reference (certificates, IdP metadata) to copy over; then
'idrecon plan DIR --server URL' shows no changes.`,
		Example: `  idrecon export -o adopted --server http://127.0.0.1:9090`,
		Args:    noArgs,
	}
	out := c.Flags().StringP("out", "o", "", "the directory to write the spec repository into (new or empty)")
	c.MarkFlagDirname("out")
	mkClient := serverFlags(c, env)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		if *out == "" {
			return usageErrorf("missing -o DIR")
		}
		return runExport(cmd.Context(), env, *out, mkClient)
	}
	return c
}

func runExport(ctx context.Context, env Env, dir string, mkClient func() (*client, error)) error {
	// Checked before the daemon is asked too, to fail fast.
	if _, err := newRepoDir(dir, "export"); err != nil {
		return err
	}
	c, err := mkClient()
	if err != nil {
		return err
	}
	var resources []admin.Resource
	if err := c.getJSON(ctx, "/v1/resources", &resources); err != nil {
		return err
	}
	byKind := map[string][]exported{}
	var files []string
	written := 0 // the builtin roles left out are not counted as exported
	for _, r := range resources {
		doc, refs, err := exportDoc(r)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", r.Kind, r.Name, err)
		}
		if doc == nil {
			continue
		}
		written++
		byKind[r.Kind] = append(byKind[r.Kind], *doc)
		files = append(files, refs...)
	}
	yamls := map[string][]byte{}
	for _, kind := range spec.Kinds {
		docs := byKind[kind]
		if len(docs) == 0 {
			continue
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "# yaml-language-server: $schema=%s/%s.schema.json\n# Exported from the live state by idrecon export.\n", schemaDir, strings.ToLower(kind))
		for i, d := range docs {
			if i > 0 {
				b.WriteString("---\n")
			}
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(d); err != nil {
				return err
			}
			enc.Close()
		}
		yamls[strings.ToLower(kind)+".yaml"] = b.Bytes()
	}
	err = writeRepo(dir, "export", func(dir string) error {
		if err := copySchemas(dir); err != nil {
			return err
		}
		for name, b := range yamls {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "exported %d document(s) into %s\n", written, dir)
	if len(files) > 0 {
		slices.Sort(files)
		fmt.Fprintf(env.Stdout, "copy these files from the spec repository the daemon runs, to the same paths:\n  %s\n",
			strings.Join(slices.Compact(files), "\n  "))
	}
	return nil
}

// exportDoc turns a live resource into the document that declares it, and
// the files it references. Built-in roles unchanged are left out: every
// spec has them. What the loader resolved (fingerprints, key hashes, the
// content of referenced files) is not part of a document: yaml.v3 leaves
// those fields out by their tags.
func exportDoc(r admin.Resource) (*exported, []string, error) {
	typed, ok := spec.NewSpec(r.Kind)
	if !ok {
		return nil, nil, fmt.Errorf("unknown kind")
	}
	raw, err := json.Marshal(r.Spec)
	if err != nil {
		return nil, nil, err
	}
	if err := json.Unmarshal(raw, typed); err != nil {
		return nil, nil, err
	}
	if role, ok := typed.(*spec.Role); ok {
		if builtin, isBuiltin := spec.BuiltinRoles[r.Name]; isBuiltin && reflect.DeepEqual(*role, builtin) {
			return nil, nil, nil
		}
	}
	var refs []string
	switch s := typed.(type) {
	case *spec.Certificate:
		if s.File != "" {
			refs = append(refs, s.File)
		}
	case *spec.SamlServiceProvider:
		if s.IDP.MetadataFile != "" {
			refs = append(refs, s.IDP.MetadataFile)
		}
	}
	doc := &exported{APIVersion: spec.APIVersion, Kind: r.Kind, Spec: typed}
	doc.Metadata.Name = r.Name
	return doc, refs, nil
}
