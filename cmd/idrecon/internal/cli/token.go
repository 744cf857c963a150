package cli

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
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

func runToken(_ context.Context, env Env, args []string) error {
	fs := newFlags(env, "token", "new [--name NAME] [--output json]")
	name := fs.String("name", "entra", "the token's name in the spec")
	output := outputFlag(fs)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if err := subcommand(fs, pos, "new"); err != nil {
		return err
	}
	if err := wantArgs(fs, pos, "new"); err != nil {
		return err
	}
	tok, err := newToken()
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(tok))
	if *output == "json" {
		return writeItem(env.Stdout, "Token", struct {
			Name   string `json:"name"`
			Token  string `json:"token"`
			SHA256 string `json:"sha256"`
		}{*name, tok, hex.EncodeToString(sum[:])})
	}
	fmt.Fprintf(env.Stdout, `SCIM token (shown once; paste it into Entra as the Secret Token):

  %s

Commit only its hash, under ScimProvisioning spec.tokens:

  - name: %s
    sha256: %s
`, tok, *name, hex.EncodeToString(sum[:]))
	return nil
}
