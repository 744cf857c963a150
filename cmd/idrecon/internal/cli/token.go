package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/idrecon/idrecon/spec"
)

// newToken returns a SCIM token that meets Application Security's rule: 32 to
// 512 characters of [A-Za-z0-9_-] from a secure random source. 48 random bytes
// give 64 characters (384 bits).
func newToken() (string, error) {
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func tokenCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "token new",
		Short: "Make a SCIM token and the sha256 line to commit",
		Long: `Make a fresh SCIM token for Entra (shown once) and the sha256 line to commit
under ScimProvisioning spec.tokens: git holds only the token's hash.

The entry is pasted next to the token in use, so it is named after today's
date (entra-2026-12-07), and never with a name the spec repo already holds:
the one --spec names, else the working directory when it is one.`,
		Example: `  idrecon token new --spec .
  idrecon token new --name entra-2026
  idrecon token new --output json`,
	}
	withVerbs(c, verb{word: "new"})
	name := c.Flags().String("name", "", "the token's name in the spec (default entra-DATE, numbered on when the spec holds that name)")
	specDir := c.Flags().String("spec", "", "the spec repo `DIR` whose token names the new one must not take (default the working directory, when it holds YAML files)")
	c.MarkFlagDirname("spec")
	output := outputFlag(c)
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		taken, where, err := takenTokenNames(cmd.Context(), env, *specDir)
		if err != nil {
			return err
		}
		n := *name
		switch {
		case !cmd.Flags().Changed("name"):
			n = freeTokenName("entra-"+env.Now().Format(time.DateOnly), taken)
		case taken[n]:
			return fmt.Errorf("--name %q: %s already holds a token of that name, and the entry goes next to it (the loader refuses two); pick another", n, where)
		}
		return runToken(env, n, *output)
	}
	return c
}

// takenTokenNames returns the names of the SCIM tokens of the spec in dir,
// and where they are. Without dir, the working directory is that spec when
// it holds YAML files and loads; a dir given must load.
func takenTokenNames(ctx context.Context, env Env, dir string) (map[string]bool, string, error) {
	given := dir != ""
	if !given {
		dir = "."
		if !holdsYAML(dir) {
			// Loading any folder token new is run in would read every
			// YAML file below it: a home folder is no spec repo.
			return nil, "", nil
		}
	}
	lim := &specLimits{bytes: spec.DefaultMaxBytes, docs: spec.DefaultMaxDocuments, nodes: spec.DefaultMaxNodes}
	set, err := loadSpec(ctx, env, dir, lim)
	if err != nil {
		if !given {
			return nil, "", nil
		}
		return nil, "", fmt.Errorf("--spec %s: %s", dir, firstProblem(err))
	}
	taken := map[string]bool{}
	if s := set.Scim(); s != nil {
		for _, t := range s.Tokens {
			taken[t.Name] = true
		}
	}
	where := "the spec in " + dir
	if !given {
		where = "the spec in the working directory"
	}
	return taken, where, nil
}

// holdsYAML reports whether dir itself holds a spec file.
func holdsYAML(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			return true
		}
	}
	return false
}

// freeTokenName is base, or base-2, base-3, ... when taken holds it.
func freeTokenName(base string, taken map[string]bool) string {
	name := base
	for i := 2; taken[name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	return name
}

func runToken(env Env, name, output string) error {
	switch {
	case name == "":
		return usageErrorf("--name: empty; the loader requires a token's name")
	case strings.ContainsFunc(name, unicode.IsControl):
		return usageErrorf("--name %q: holds control characters", name)
	}
	// The entry is pasted into YAML as printed: unquoted, a name such as
	// "#2" or "null" would read as no name, "a: b" as no YAML at all.
	quoted, err := yaml.Marshal(name)
	if err != nil {
		return err
	}
	tok, err := newToken()
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(tok))
	if output == "json" {
		return writeItem(env.Stdout, "Token", struct {
			Name   string `json:"name"`
			Token  string `json:"token"`
			SHA256 string `json:"sha256"`
		}{name, tok, hex.EncodeToString(sum[:])})
	}
	fmt.Fprintf(env.Stdout, `SCIM token (shown once; paste it into Entra as the Secret Token):

  %s

Commit only its hash, under ScimProvisioning spec.tokens:

  - name: %s
    sha256: %s
`, tok, strings.TrimSuffix(string(quoted), "\n"), hex.EncodeToString(sum[:]))
	return nil
}
