package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/spec/redact"
)

// DefaultServer is the admin API a daemon started with defaults listens on.
const DefaultServer = "http://127.0.0.1:9090"

// client talks to a daemon's admin API.
type client struct {
	base  string
	token string
	// tokenFrom says where token was read from (never the token), for the
	// error of a daemon that refuses it.
	tokenFrom string
	http      *http.Client
}

// serverFlags registers --server and --admin-token-file and returns a
// function that builds the client once flags are parsed.
func serverFlags(c *cobra.Command, env Env) func() (*client, error) {
	def := env.Getenv("IDRECON_SERVER")
	if def == "" {
		def = DefaultServer
	}
	server := c.Flags().String("server", def, "admin API of the daemon (env IDRECON_SERVER)")
	tokenFile := c.Flags().String("admin-token-file", "", "file holding the admin token (default: env IDRECON_ADMIN_TOKEN, else "+strings.Join(adminTokenFiles, " or ")+")")
	c.MarkFlagFilename("admin-token-file")
	return func() (*client, error) {
		tok, from, err := readAdminToken(env, *tokenFile, true)
		if err != nil {
			return nil, err
		}
		base, err := serverURL(*server)
		if err != nil {
			return nil, err
		}
		return &client{base: base, token: tok, tokenFrom: from, http: &http.Client{Timeout: 5 * time.Minute}}, nil
	}
}

// serverURL checks --server (or IDRECON_SERVER) before any request: an
// http(s) URL with a host. Unchecked, "localhost:9090" failed as an
// "unsupported protocol scheme", and a URL that did not parse was echoed
// whole in the error, a password in it included.
func serverURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErrorf("--server %q: want the admin API's http(s) URL, such as %s", redactURL(raw), DefaultServer)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Each request's path is appended to the URL: after a query it
		// would become part of the query.
		return "", usageErrorf("--server %q: want the admin API's http(s) URL without a query or fragment, such as %s", redactURL(raw), DefaultServer)
	}
	return strings.TrimRight(raw, "/"), nil
}

// redactURL hides the user information and the query's values of a URL,
// also of one that does not parse (url.URL.Redacted needs one that does).
// It is the rule of every URL idrecon prints (a git source, a spec's
// metadataURL), so that a secret is hidden alike in every message.
func redactURL(raw string) string { return redact.URL(raw) }

// readAdminToken reads the admin token from --admin-token-file, then
// IDRECON_ADMIN_TOKEN, then (for clients, when fallback is set) the token a
// daemon generated in a well-known place (adminTokenFiles). from says
// which, for messages: it never holds the token.
func readAdminToken(env Env, file string, fallback bool) (tok, from string, err error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", "", fmt.Errorf("admin token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", "", fmt.Errorf("admin token file %s is empty", file)
		}
		return tok, file + " (--admin-token-file)", nil
	}
	if tok := env.Getenv("IDRECON_ADMIN_TOKEN"); tok != "" {
		return tok, "env IDRECON_ADMIN_TOKEN", nil
	}
	if fallback {
		tok, file, err := defaultAdminToken(adminTokenFiles)
		if err != nil {
			return "", "", err
		}
		return tok, file + " (found there: no --admin-token-file or IDRECON_ADMIN_TOKEN given)", nil
	}
	return "", "", nil
}

// apiError is a non-2xx answer from the admin API.
type apiError struct {
	Status  int
	Message string
	Details []string
	// Problems are Details with their parts apart (spec errors), from a
	// daemon that sends them.
	Problems []admin.Problem
	// Hint says what to do, after the status.
	Hint string
}

func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (HTTP %d)", e.Message, e.Status)
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	for _, d := range e.Details {
		b.WriteString("\n  ")
		b.WriteString(d)
	}
	return b.String()
}

// do sends a request and decodes a JSON answer into out (when non-nil), or
// copies the raw body to raw (when non-nil).
func (c *client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any, raw io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// net/http names the URL with its password hidden but its user
		// name, often a token, shown: name it as idrecon names every URL.
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("reach daemon: %s %q: %w", ue.Op, redactURL(c.base)+path, ue.Err)
		}
		return fmt.Errorf("reach daemon: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		ae := &apiError{Status: resp.StatusCode, Message: strings.TrimSpace(string(b))}
		var e admin.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			ae = &apiError{Status: resp.StatusCode, Message: e.Error, Details: e.Details, Problems: e.Problems}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			// The token is another daemon's, say one `make run` left in
			// ./data while this daemon keeps its own elsewhere.
			ae.Hint = "the token sent was read from " + c.tokenFrom +
				"; give the daemon's own with --admin-token-file (admin-token in its data dir)"
		}
		return ae
	}
	if raw != nil {
		_, err = io.Copy(raw, resp.Body)
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

func (c *client) getJSON(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodGet, path, nil, "", out, nil)
}

func (c *client) post(ctx context.Context, path string, out any) error {
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(nil), "", out, nil)
}

// printJSON writes v indented.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
