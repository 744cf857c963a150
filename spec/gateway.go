package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/idrecon/idrecon/spec/redact"
)

// MaxGatewayTimeout bounds a Gateway's timeouts: past it an upstream is not
// slow but gone, and a client would rather see the error page.
const MaxGatewayTimeout = 10 * time.Minute

// DefaultGatewayRequestsPerUser is a Gateway's bound on one user's
// requests in flight through it unless maxRequestsPerUser sets one: far
// above what a browser opens (six connections a host over HTTP/1.1, a
// hundred streams over HTTP/2, a few WebSockets), and a share of the
// daemon's connections no single user may take from the others.
const DefaultGatewayRequestsPerUser = 128

// MaxGatewayRequestsPerUser bounds maxRequestsPerUser: the daemon's own
// default bound on its connections.
const MaxGatewayRequestsPerUser = 10_000

// hopByHop are headers a proxy consumes: a Gateway header by one of these
// names would never reach the application.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"}

// ownedHeaders are the other names HTTP owns.
var ownedHeaders = []string{"Host", "Cookie", "Content-Length", "Content-Type", "Authorization"}

// ForwardingHeaders describe the request a proxy forwards, as do all names
// starting X-Original-: only a proxy may say them, so runtime/gateway strips
// every client copy, and no Gateway header may take their names.
var ForwardingHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
	"X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Prefix", "X-Forwarded-Port",
	"X-Forwarded-Server", "X-Forwarded-Ssl", "X-Real-Ip"}

// OriginalPrefix starts the names of headers that describe the original
// request (X-Original-URI, X-Original-Method, ...).
const OriginalPrefix = "X-Original-"

// DefaultGatewayUserHeader is the user header of a Gateway that names none:
// Application Security's default "HTTP header for username". runtime/gateway
// falls back to the same name, so the loader must count it among the
// Gateway's headers.
const DefaultGatewayUserHeader = "username"

// FoldHeaderName returns the one spelling every server may fold a header
// name into: lower case, with '_' and '.' read as '-'. CGI, WSGI, PHP and
// nginx (with underscores_in_headers on) take "User_Name" for "user-name",
// and PHP takes "User.Name" too, while Go keeps them apart: two names are
// the same header to an application exactly when their folds are equal.
// runtime/gateway strips client headers by this spelling, so the loader
// compares by it too.
func FoldHeaderName(name string) string {
	b := []byte(name)
	for i, c := range b {
		b[i] = FoldHeaderByte(c)
	}
	return string(b)
}

// FoldHeaderByte is FoldHeaderName of one byte of a name, for a caller
// that folds into a buffer of its own.
func FoldHeaderByte(c byte) byte {
	switch {
	case c >= 'A' && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_' || c == '.':
		return '-'
	}
	return c
}

// CheckGatewayHeader returns why name cannot name a header a Gateway sets
// (user, roles, versions, shared secret), or nil. The loader and
// runtime/gateway both ask it, so nothing loads that the gateway refuses.
// Names are compared as FoldHeaderName spells them.
func CheckGatewayHeader(name string) error {
	if !validHeaderName(name) {
		return fmt.Errorf("%q is not a valid HTTP header name (letters, digits, - and _ only)", name)
	}
	f := FoldHeaderName(name)
	named := func(h string) bool { return FoldHeaderName(h) == f }
	switch {
	case slices.ContainsFunc(hopByHop, named):
		return fmt.Errorf("%s is a hop-by-hop header, which proxies drop", name)
	case slices.ContainsFunc(ownedHeaders, named), slices.ContainsFunc(ForwardingHeaders, named), strings.HasPrefix(f, FoldHeaderName(OriginalPrefix)):
		return fmt.Errorf("%s is set by HTTP or proxies (Host, Cookie, Authorization, Content-Length, Content-Type, %s, X-Original-*)", name, strings.Join(ForwardingHeaders, ", "))
	}
	return nil
}

// resolveGateway checks a Gateway and resolves its shared secret. It runs
// after the roles it may name are checked.
func (l *loader) resolveGateway(p *parsedDoc, g *Gateway) {
	if g.Upstream != "" {
		u, err := url.Parse(g.Upstream)
		// The upstream is quoted only once it is known to carry no
		// credentials, and with its query values hidden: errors reach
		// logs, CI output and the admin API.
		switch {
		case err != nil:
			l.fail(p, "spec.upstream", "must be an http:// or https:// URL with a host")
		case u.User != nil:
			l.fail(p, "spec.upstream", "must not carry credentials (use sharedSecret)")
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			l.fail(p, "spec.upstream", "must be an http:// or https:// URL with a host, got %q", redact.URL(g.Upstream))
		case (u.Path != "" && u.Path != "/") || strings.ContainsAny(g.Upstream, "?#"):
			// A bare '?' or '#' is an empty query or fragment to url.Parse,
			// but one written all the same: refused as the schema refuses it.
			l.fail(p, "spec.upstream", "must have no path, query or fragment: requests keep their own path (set pathPrefix for the part forwarded)")
		}
	}
	l.checkGatewayTLS(p, g)
	switch {
	case g.PathPrefix != "" && !cleanAbsPath(g.PathPrefix):
		l.fail(p, "spec.pathPrefix", "must be an absolute URL path without . or .. segments, got %q", g.PathPrefix)
	case strings.Contains(g.PathPrefix, "%"):
		// Requests are matched on their decoded path: "/a%20b" would
		// match only a request for "/a%2520b".
		l.fail(p, "spec.pathPrefix", "must be written decoded, without '%%' escapes (requests are matched on their decoded path), got %q", g.PathPrefix)
	case strings.Contains(g.PathPrefix, ";"):
		// The daemon picks a Gateway by the path as the application maps
		// it, each segment's ";parameters" dropped (gateway.MappedPath): no
		// request would ever be under this prefix, and its requests would
		// go to another Gateway, with that one's requiredRole.
		l.fail(p, "spec.pathPrefix", "must not contain ';' (requests are matched with path parameters dropped, so none would reach this Gateway), got %q", g.PathPrefix)
	}
	headers := map[string]string{}
	if g.UserHeader == "" {
		// runtime/gateway sends the user in the default header, and
		// refuses another header spelled like it.
		headers[FoldHeaderName(DefaultGatewayUserHeader)] = "spec.userHeader (default " + DefaultGatewayUserHeader + ")"
	}
	for _, h := range []struct{ field, name string }{
		{"spec.userHeader", g.UserHeader}, {"spec.rolesHeader", g.RolesHeader}, {"spec.versionsHeader", g.VersionsHeader},
	} {
		l.checkGatewayHeader(p, h.field, h.name, headers)
	}
	switch {
	case g.RequiredRole == "":
	case !l.roleExists(g.RequiredRole):
		l.fail(p, "spec.requiredRole", "no Role named %q", g.RequiredRole)
	case strings.Contains(g.RequiredRole, ","):
		// runtime/gateway refuses it: the roles header is comma separated.
		l.fail(p, "spec.requiredRole", "must not contain commas (the roles header is comma separated)")
	}
	for _, t := range []struct {
		field string
		d     Duration
	}{{"spec.timeouts.dial", g.Timeouts.Dial}, {"spec.timeouts.responseHeader", g.Timeouts.ResponseHeader}} {
		if t.d < 0 || t.d.D() > MaxGatewayTimeout {
			l.fail(p, t.field, "must be between 0 (the default) and %s", MaxGatewayTimeout)
		}
	}
	if n := g.MaxRequestsPerUser; n < 0 || n > MaxGatewayRequestsPerUser {
		l.fail(p, "spec.maxRequestsPerUser", "must be between 0 (the default, %d) and %d", DefaultGatewayRequestsPerUser, MaxGatewayRequestsPerUser)
	}
	if s := g.SharedSecret; s != nil {
		l.checkGatewayHeader(p, "spec.sharedSecret.header", s.Header, headers)
		if s.Header == "" {
			l.fail(p, "spec.sharedSecret.header", "required")
		}
		if g.Upstream == "" {
			// runtime/gateway refuses a secret with nothing to send it to.
			l.fail(p, "spec.sharedSecret", "needs an upstream (the secret is sent on forwarded requests; forward-auth only has none)")
		}
		switch {
		case s.ValueFrom == nil:
			l.fail(p, "spec.sharedSecret.valueFrom", "required (env or file): the secret never lives in git")
		case l.resolved && s.Value != "":
			// Validate of a resolved document: keep what it resolved to.
		default:
			value, ok := l.secret(p, "spec.sharedSecret.valueFrom", s.ValueFrom)
			if !ok {
				return
			}
			s.Value = strings.TrimSpace(value)
			if !printableASCII(s.Value) {
				// runtime/gateway sends only such a value; the value
				// itself is never quoted.
				l.fail(p, "spec.sharedSecret.valueFrom", "the value from %s must be printable ASCII without spaces", s.ValueFrom.describe())
				s.Value = ""
				return
			}
			sum := sha256.Sum256([]byte(s.Value))
			s.SHA256 = hex.EncodeToString(sum[:])
		}
	}
}

// checkGatewayTLS checks the keystore references that secure the
// connection to an https upstream.
func (l *loader) checkGatewayTLS(p *parsedDoc, g *Gateway) {
	if len(g.UpstreamCAs) == 0 && g.ClientCertificate == "" {
		return
	}
	if !strings.HasPrefix(g.Upstream, "https://") {
		field := "spec.clientCertificate"
		if len(g.UpstreamCAs) > 0 {
			field = "spec.upstreamCAs"
		}
		l.fail(p, field, "needs an https:// upstream")
	}
	seen := map[string]bool{}
	for i, name := range g.UpstreamCAs {
		field := fmt.Sprintf("spec.upstreamCAs[%d]", i)
		if seen[name] {
			l.fail(p, field, "%q is listed twice", name)
			continue
		}
		seen[name] = true
		l.checkCertRef(p, field, name, UsageTLSCA)
	}
	if g.ClientCertificate != "" {
		l.checkCertRef(p, "spec.clientCertificate", g.ClientCertificate, UsageTLSClient)
	}
}

// checkGatewayHeader refuses a header name no proxy would pass on, or one
// the Gateway already uses for something else.
func (l *loader) checkGatewayHeader(p *parsedDoc, field, name string, seen map[string]string) {
	if name == "" {
		return
	}
	if err := CheckGatewayHeader(name); err != nil {
		l.fail(p, field, "%v", err)
		return
	}
	f := FoldHeaderName(name)
	if other, dup := seen[f]; dup {
		l.fail(p, field, "%s is already used by %s (names are compared ignoring case, - and _)", name, other)
		return
	}
	seen[f] = field
}

// validHeaderName reports whether s is a header name runtime/gateway
// accepts: letters, digits, - and _, a subset of RFC 9110's tokens (the
// other token characters were accepted here and refused there).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// printableASCII reports whether s is non-empty and all of it is in
// 0x21-0x7e, the header values runtime/gateway sends.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return s != ""
}

// cleanAbsPath reports whether p is "/" or an absolute path without empty,
// . or .. segments.
func cleanAbsPath(p string) bool {
	if p == "/" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#\\") {
		return false
	}
	for _, seg := range strings.Split(strings.TrimSuffix(p[1:], "/"), "/") {
		// "..;x" is a dot segment to servers that strip path parameters,
		// and runtime/gateway refuses it as one.
		name, _, _ := strings.Cut(seg, ";")
		if seg == "" || name == "." || name == ".." {
			return false
		}
	}
	return true
}

// gatewayPrefix is g's pathPrefix as the daemon matches it.
func gatewayPrefix(g *Gateway) string {
	if g.PathPrefix == "" || g.PathPrefix == "/" {
		return "/"
	}
	return strings.TrimSuffix(g.PathPrefix, "/")
}

// checkGatewayPaths keeps each Gateway's pathPrefix off idrecon's own
// routes and the SCIM basePath, and off another Gateway's. A prefix of "/"
// takes what no route of idrecon's serves, so it collides with nothing.
func (l *loader) checkGatewayPaths() {
	var scimBase, samlHome string
	for _, p := range l.docs {
		switch s := p.doc.Spec.(type) {
		case *ScimProvisioning:
			scimBase = s.BasePath
		case *SamlServiceProvider:
			if u, err := url.Parse(s.BaseURL); err == nil {
				samlHome = strings.TrimRight(u.Path, "/")
			}
		}
	}
	taken := map[string]string{} // prefix → Gateway name
	for _, p := range l.docs {
		g, ok := p.doc.Spec.(*Gateway)
		if !ok || p.failed["spec.pathPrefix"] {
			continue
		}
		prefix := gatewayPrefix(g)
		if other, dup := taken[prefix]; dup {
			l.fail(p, "spec.pathPrefix", "%s is also the pathPrefix of Gateway %q", prefix, other)
			continue
		}
		taken[prefix] = p.doc.Metadata.Name
		if samlHome != "" && !strings.HasPrefix(prefix, samlHome+"/") {
			// The session cookie's path is the baseURL's: a browser
			// sends it to nothing else, so every user reaching the
			// Gateway outside it would be sent to sign in again.
			l.warnings = append(l.warnings, fmt.Sprintf("%s: %s: the SamlServiceProvider baseURL has the path %s, and browsers send the session cookie only below it: users reaching this Gateway at %s are asked to sign in at every request; put the baseURL at the root of its host",
				p.doc.Pos, p.doc.Ref(), samlHome, prefix))
		}
		if prefix == "/" {
			continue
		}
		reserved := append(append([]string{}, ReservedPaths...), samlHome+SAMLPath, samlHome+SAMLUserPath)
		if scimBase != "" {
			reserved = append(reserved, scimBase)
		}
		if samlHome != "" && prefix == samlHome {
			l.fail(p, "spec.pathPrefix", "%s is the SAML home page (the path of the SamlServiceProvider baseURL)", prefix)
			continue
		}
		for _, r := range reserved {
			if overlaps(prefix, r) {
				l.fail(p, "spec.pathPrefix", "%s collides with %s, which idrecon serves itself", prefix, r)
				break
			}
		}
	}
}
