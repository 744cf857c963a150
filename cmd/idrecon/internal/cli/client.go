package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/spec/redact"
)

// DefaultServer is the admin API a daemon started with defaults listens on.
const DefaultServer = "http://127.0.0.1:9090"

// DefaultRequestTimeout is how long a command waits for the daemon to
// answer (and, in a long answer, for its next bytes) unless told otherwise.
const DefaultRequestTimeout = 30 * time.Second

// client talks to a daemon's admin API.
type client struct {
	base  string
	token string
	// tokenFrom says where token was read from (never the token), for the
	// error of a daemon that refuses it.
	tokenFrom string
	// timeout bounds each wait on the daemon: to connect, for the answer's
	// headers, and each wait for more of its body. It does not bound a
	// whole answer, so a backup that keeps coming is downloaded whole.
	timeout time.Duration
	http    *http.Client
}

// serverFlags registers --server, --admin-token-file and --request-timeout
// and returns a function that builds the client once flags are parsed.
func serverFlags(c *cobra.Command, env Env) func() (*client, error) {
	def := env.Getenv("IDRECON_SERVER")
	if def == "" {
		def = DefaultServer
	}
	server := c.Flags().String("server", def, "admin API of the daemon (env IDRECON_SERVER)")
	tokenFile := c.Flags().String("admin-token-file", "", "file holding the admin token (default: env IDRECON_ADMIN_TOKEN, else "+strings.Join(adminTokenFiles, " or ")+")")
	c.MarkFlagFilename("admin-token-file")
	timeoutFlag := c.Flags().Duration("request-timeout", DefaultRequestTimeout,
		"how long to wait for the daemon to answer, and for more of a long answer such as a backup (env IDRECON_REQUEST_TIMEOUT)")
	return func() (*client, error) {
		timeout, err := requestTimeout(env, *timeoutFlag, c.Flags().Changed("request-timeout"))
		if err != nil {
			return nil, err
		}
		// The command line's mistakes first: a missing token is the
		// machine's.
		base, err := serverURL(*server)
		if err != nil {
			return nil, err
		}
		tok, from, err := readAdminToken(env, *tokenFile, true)
		if err != nil {
			return nil, err
		}
		return &client{base: base, token: tok, tokenFrom: from, timeout: timeout, http: newHTTPClient(timeout)}, nil
	}
}

// requestTimeout is --request-timeout when given, else
// IDRECON_REQUEST_TIMEOUT when set, else the flag's default.
func requestTimeout(env Env, flag time.Duration, given bool) (time.Duration, error) {
	if !given {
		if v := env.Getenv("IDRECON_REQUEST_TIMEOUT"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return 0, usageErrorf("IDRECON_REQUEST_TIMEOUT %q: want a positive request timeout, such as 30s", v)
			}
			return d, nil
		}
	}
	if flag <= 0 {
		return 0, usageErrorf("--request-timeout %s: want a positive request timeout, such as 30s", flag)
	}
	return flag, nil
}

// newHTTPClient bounds each step of a request that waits on the daemon by
// timeout. http.Client.Timeout is left unset on purpose: it bounds the
// whole exchange, body included, and would cut a large backup that is
// still coming; do bounds the pauses in a body instead (idleBody).
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = timeout
	tr.ResponseHeaderTimeout = timeout
	return &http.Client{Transport: tr}
}

// errStalled is why a request is canceled when the daemon sent nothing of
// its answer's body for the request timeout.
var errStalled = errors.New("stalled")

// idleBody cancels its request when a read of the body waited timeout for
// a byte, and then says so rather than "context canceled". The clock runs
// only inside Read: time spent writing what was read (to a pipe that a
// slow consumer drains, say) is not the daemon's.
type idleBody struct {
	r       io.Reader
	ctx     context.Context // the request's, canceled with errStalled
	timer   *time.Timer
	timeout time.Duration
	what    string // the request, its URL redacted, for the error
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.timeout)
	n, err := b.r.Read(p)
	b.timer.Stop()
	if err != nil && errors.Is(context.Cause(b.ctx), errStalled) {
		err = fmt.Errorf("read answer of %s: the daemon sent nothing for %s (--request-timeout): %w", b.what, b.timeout, errStalled)
	}
	return n, err
}

// serverURL checks --server (or IDRECON_SERVER) before any request: an
// http(s) URL with a host, and maybe a path, but no user information, query
// or fragment. Unchecked, "localhost:9090" failed as an
// "unsupported protocol scheme", and a URL that did not parse was echoed
// whole in the error, a password in it included.
func serverURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageErrorf("--server %q: want the admin API's http(s) URL, such as %s", redactURL(raw), DefaultServer)
	}
	if u.User != nil {
		// net/http sends user information only as basic auth, and not at
		// all beside the bearer token every request carries: a URL that
		// seems to authenticate would not.
		return "", usageErrorf("--server %q: want the admin API's URL without a user name or password (it takes the admin token: --admin-token-file or IDRECON_ADMIN_TOKEN), such as %s", redactURL(raw), DefaultServer)
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		// Each request's path is appended to the URL: after a query it
		// would become part of the query.
		return "", usageErrorf("--server %q: want the admin API's http(s) URL without a query or fragment, such as %s", redactURL(raw), DefaultServer)
	}
	// A path stays: each request's path is appended to it, which reaches
	// a daemon a proxy serves below a prefix.
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
	tok, from, err = findAdminToken(env, file, fallback)
	if err == nil && strings.ContainsFunc(tok, unicode.IsControl) {
		// net/http refuses it in a header with an error that names neither
		// the token's source nor what is wrong with it.
		return "", "", fmt.Errorf("admin token read from %s holds a control character or a line break inside: give the token alone", from)
	}
	return tok, from, err
}

func findAdminToken(env Env, file string, fallback bool) (tok, from string, err error) {
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
	// Trimmed as a file's is: a variable filled from a file or a CI
	// secret often ends in a newline.
	if tok := strings.TrimSpace(env.Getenv("IDRECON_ADMIN_TOKEN")); tok != "" {
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
	parent := ctx
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
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
		switch {
		case errors.As(err, &ue) && ue.Timeout() && parent.Err() == nil:
			// The transport's own limits (connect, TLS, headers), not the
			// caller's deadline (reconcile --wait --timeout says that one).
			return fmt.Errorf("reach daemon: %s %q: the daemon did not answer within %s (--request-timeout): %w; is it hung, or is --server another service's port?",
				ue.Op, redactURL(c.base)+path, c.timeout, ue.Err)
		case errors.As(err, &ue):
			return fmt.Errorf("reach daemon: %s %q: %w", ue.Op, redactURL(c.base)+path, ue.Err)
		}
		return fmt.Errorf("reach daemon: %w", err)
	}
	defer resp.Body.Close()
	// The headers came in time; now the body may take as long as it keeps
	// coming.
	idle := &idleBody{r: resp.Body, ctx: ctx, timeout: c.timeout, what: fmt.Sprintf("%s %q", method, redactURL(c.base)+path),
		timer: time.AfterFunc(c.timeout, func() { cancel(errStalled) })}
	idle.timer.Stop() // armed by each Read
	page := isWebPage(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(idle, 1<<20))
		var e admin.Error
		var ae *apiError
		switch {
		case json.Unmarshal(b, &e) == nil && e.Error != "":
			ae = &apiError{Status: resp.StatusCode, Message: e.Error, Details: e.Details, Problems: e.Problems}
		case page:
			// A proxy's error page, or another service's: its markup
			// would fill the terminal and say less than its status.
			ae = &apiError{Status: resp.StatusCode, Message: statusText(resp.StatusCode), Hint: c.notTheAdminAPI("a web page")}
		default:
			ae = &apiError{Status: resp.StatusCode, Message: statusText(resp.StatusCode), Hint: firstTextLine(b)}
			if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
				// The admin API refuses a path it does not route in its
				// JSON: this refusal is another service's, at a wrong port.
				ae.Hint = strings.TrimPrefix(ae.Hint+"; "+c.notTheAdminAPI("not JSON"), "; ")
			}
		}
		if resp.StatusCode == http.StatusUnauthorized {
			// The token is another daemon's, say one `make run` left in
			// ./data while this daemon keeps its own elsewhere.
			ae.Hint = "the token sent was read from " + c.tokenFrom +
				"; give the daemon's own with --admin-token-file (admin-token in its data dir)"
		}
		return ae
	}
	if page {
		// The daemon answers JSON, a backup or SP metadata, never a web
		// page: this one (a proxy's sign-in page, say) would otherwise be
		// saved as the backup or the metadata.
		return fmt.Errorf("%s %q: %s", method, redactURL(c.base)+path, c.notTheAdminAPI("a web page"))
	}
	if raw != nil {
		_, err = io.Copy(raw, idle)
		return err
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(idle).Decode(out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// isWebPage reports whether a Content-Type is that of a web page, which the
// admin API never answers.
func isWebPage(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "text/html" || mt == "application/xhtml+xml"
}

// notTheAdminAPI says what an answer that is what (a web page) means.
func (c *client) notTheAdminAPI(what string) string {
	return fmt.Sprintf("the answer is %s, not the admin API's: is --server (or IDRECON_SERVER) %s the daemon's admin API, not its SCIM and SAML port or a proxy's page?",
		what, redactURL(c.base))
}

// statusText names an HTTP status for an answer that says nothing more.
func statusText(code int) string {
	if s := http.StatusText(code); s != "" {
		return s
	}
	return "HTTP status"
}

// firstTextLine is the first non-blank line of an error body that is not
// the admin API's, escaped and shortened: a proxy's body is no message of
// the daemon's, and may hold anything.
func firstTextLine(b []byte) string {
	const maxRunes = 200
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if r := []rune(line); len(r) > maxRunes {
			line = string(r[:maxRunes]) + "…"
		}
		return printable(line)
	}
	return ""
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
