package cli

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
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
under ScimProvisioning spec.tokens: git holds only the token's hash.`,
		Example: `  idrecon token new --name entra-2026
  idrecon token new --output json`,
	}
	withVerbs(c, verb{word: "new"})
	name := c.Flags().String("name", "entra", "the token's name in the spec")
	output := outputFlag(c)
	c.RunE = func(*cobra.Command, []string) error { return runToken(env, *name, *output) }
	return c
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
