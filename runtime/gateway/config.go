package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/idrecon/idrecon/spec"
)

// Defaults for the optional Config fields.
const (
	DefaultPathPrefix            = "/"
	DefaultUserHeader            = spec.DefaultGatewayUserHeader
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
)

// Config is one front door. Its fields map 1:1 onto the spec kind Gateway;
// certificates and the shared secret arrive already resolved (PEM files and
// secret references are read by the spec loader, as for the keystore).
type Config struct {
	// Upstream is the application's base URL, http:// or https://, with no
	// path: requests are forwarded with their own path, so an application
	// under /ssc is reached as upstream + /ssc/... . Empty: no built-in
	// proxy, only forward-auth (/auth/verify).
	Upstream string
	// PathPrefix is the part of idrecon's URL space that is forwarded
	// (default "/"). idrecon's own paths (Deps.Reserved) never are.
	PathPrefix string

	// UserHeader carries the user name to the application (default
	// "username", Application Security's default "HTTP header for username").
	UserHeader string
	// RolesHeader, if set, carries the user's roles, comma separated.
	RolesHeader string
	// VersionsHeader, if set, carries the user's application versions as
	// "app/version", comma separated.
	VersionsHeader string
	// RequiredRole, if set, is a role a user must hold to pass; otherwise any
	// user with access (active, at least one role) passes.
	RequiredRole string

	// UpstreamCAs verify an https upstream (nil: the system roots).
	UpstreamCAs []*x509.Certificate
	// ClientCertificate, if set, is presented to the upstream (mTLS).
	ClientCertificate *tls.Certificate
	// SharedSecret, if set, is sent on every forwarded request so the
	// application (or a filter in front of it) can tell idrecon's requests
	// from anyone else's.
	SharedSecret *SharedSecret

	// DialTimeout bounds connecting to the upstream (default 5s), so an
	// unreachable upstream is a 502, not a hang.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers (default 60s); past it the client gets a 504.
	ResponseHeaderTimeout time.Duration

	// MaxRequestsPerUser bounds one user's proxied requests in flight
	// (default spec.DefaultGatewayRequestsPerUser); past it the user gets a
	// 429. Nothing else stops one user's script from holding every
	// connection the daemon takes, and the upstream's workers with them.
	MaxRequestsPerUser int
}

// MarshalJSON writes cfg with the client certificate's private key left
// out: encoding/json (and so slog's JSON handler) would follow the
// *tls.Certificate into the key's exported fields (an ECDSA D, RSA primes).
func (cfg Config) MarshalJSON() ([]byte, error) {
	type plain Config // no methods, so no recursion
	var cert any
	if c := cfg.ClientCertificate; c != nil {
		cert = struct {
			Certificate [][]byte
			PrivateKey  string
		}{c.Certificate, redacted}
	}
	return json.Marshal(struct {
		plain
		ClientCertificate any // shadows the embedded field
	}{plain(cfg), cert})
}

// SharedSecret is a header idrecon adds to every forwarded request.
type SharedSecret struct {
	Header string
	Value  Secret
}

// Secret is a string that never prints: fmt, slog and JSON all see a
// placeholder, so a Config can be logged or dumped whole.
type Secret string

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) reveal() string             { return string(s) }

var _ slog.LogValuer = Secret("")

// ErrConfig is wrapped by every error New returns for a bad Config.
var ErrConfig = errors.New("gateway: invalid config")

// normalized returns cfg with defaults filled in, or an error naming the
// field that is wrong.
func (cfg Config) normalized() (Config, *url.URL, error) {
	bad := func(field, format string, args ...any) (Config, *url.URL, error) {
		return Config{}, nil, fmt.Errorf("%w: %s: %s", ErrConfig, field, fmt.Sprintf(format, args...))
	}
	var target *url.URL
	if cfg.Upstream != "" {
		u, err := url.Parse(cfg.Upstream)
		switch {
		case err != nil:
			// Not err, nor what it wraps: url.Error quotes the whole URL,
			// and its cause the part the parse stopped at ("invalid port
			// \":pass\""), password and all, into the status and the console.
			return bad("upstream", "not a URL")
		case u.Scheme != "http" && u.Scheme != "https":
			return bad("upstream", "scheme must be http or https, got %q", u.Scheme)
		case u.Host == "":
			return bad("upstream", "no host")
		case u.User != nil:
			return bad("upstream", "must not carry credentials")
		case u.Path != "" && u.Path != "/", u.RawQuery != "", u.Fragment != "":
			return bad("upstream", "must have no path, query or fragment (requests keep their own path)")
		}
		u.Path = ""
		target = u
	}
	if cfg.PathPrefix == "" {
		cfg.PathPrefix = DefaultPathPrefix
	}
	if !strings.HasPrefix(cfg.PathPrefix, "/") || strings.Contains(cfg.PathPrefix, "//") || hasDotSegment(cfg.PathPrefix) {
		return bad("pathPrefix", "must be an absolute path without . or .. segments, got %q", cfg.PathPrefix)
	}
	if strings.Contains(cfg.PathPrefix, ";") {
		// The daemon picks a Gateway by MappedPath, each segment's
		// ";parameters" dropped: no request would ever be under this
		// prefix, and its requests would go to another Gateway. The spec
		// loader refuses it too.
		return bad("pathPrefix", "must not contain ';' (requests are matched with path parameters dropped), got %q", cfg.PathPrefix)
	}
	if strings.Contains(cfg.PathPrefix, "%") {
		// Requests are matched on their decoded path, so an escape in
		// the prefix would match only its own escape escaped again.
		return bad("pathPrefix", "must be written decoded, without '%%' escapes, got %q", cfg.PathPrefix)
	}
	if cfg.PathPrefix != "/" {
		cfg.PathPrefix = strings.TrimSuffix(cfg.PathPrefix, "/")
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = DefaultUserHeader
	}
	if cfg.SharedSecret != nil && cfg.SharedSecret.Header == "" {
		return bad("sharedSecret.header", "required with a shared secret")
	}
	seen := map[string]string{}
	for _, h := range []struct{ field, name string }{
		{"userHeader", cfg.UserHeader},
		{"rolesHeader", cfg.RolesHeader},
		{"versionsHeader", cfg.VersionsHeader},
		{"sharedSecret.header", secretHeader(cfg.SharedSecret)},
	} {
		if h.name == "" {
			continue
		}
		if err := spec.CheckGatewayHeader(h.name); err != nil {
			return bad(h.field, "%v", err)
		}
		key := spec.FoldHeaderName(h.name)
		if other, dup := seen[key]; dup {
			return bad(h.field, "%q is the same header as %s", h.name, other)
		}
		seen[key] = h.field
	}
	if cfg.SharedSecret != nil {
		if cfg.SharedSecret.Value == "" || !safeValue(cfg.SharedSecret.Value.reveal(), false) {
			return bad("sharedSecret.value", "must be non-empty printable ASCII")
		}
	}
	if strings.ContainsAny(cfg.RequiredRole, ",\r\n") {
		return bad("requiredRole", "must not contain commas or line breaks")
	}
	if target == nil && (cfg.UpstreamCAs != nil || cfg.ClientCertificate != nil || cfg.SharedSecret != nil) {
		return bad("upstream", "required when upstream TLS or a shared secret is configured")
	}
	if target != nil && target.Scheme == "http" && (cfg.UpstreamCAs != nil || cfg.ClientCertificate != nil) {
		return bad("upstream", "TLS settings need an https upstream")
	}
	if cfg.DialTimeout < 0 || cfg.ResponseHeaderTimeout < 0 {
		return bad("timeouts", "must not be negative")
	}
	if cfg.MaxRequestsPerUser < 0 {
		return bad("maxRequestsPerUser", "must not be negative")
	}
	if cfg.MaxRequestsPerUser == 0 {
		cfg.MaxRequestsPerUser = spec.DefaultGatewayRequestsPerUser
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.ResponseHeaderTimeout == 0 {
		cfg.ResponseHeaderTimeout = DefaultResponseHeaderTimeout
	}
	return cfg, target, nil
}

func secretHeader(s *SharedSecret) string {
	if s == nil {
		return ""
	}
	return s.Header
}
