package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// MaxGatewayTimeout bounds a Gateway's timeouts: past it an upstream is not
// slow but gone, and a client would rather see the error page.
const MaxGatewayTimeout = 10 * time.Minute

// hopByHop are headers a proxy consumes: a Gateway header by one of these
// names would never reach the application.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Proxy-Connection"}

// resolveGateway checks a Gateway and resolves its shared secret. It runs
// after the roles it may name are checked.
func (l *loader) resolveGateway(p *parsedDoc, g *Gateway) {
	if g.Upstream != "" {
		u, err := url.Parse(g.Upstream)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			l.fail(p, "spec.upstream", "must be an http:// or https:// URL with a host, got %q", g.Upstream)
		case u.User != nil:
			l.fail(p, "spec.upstream", "must not carry credentials (use sharedSecret)")
		case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			l.fail(p, "spec.upstream", "must have no path, query or fragment: requests keep their own path (set pathPrefix for the part forwarded)")
		}
	}
	l.checkGatewayTLS(p, g)
	if g.PathPrefix != "" && !cleanAbsPath(g.PathPrefix) {
		l.fail(p, "spec.pathPrefix", "must be an absolute URL path without . or .. segments, got %q", g.PathPrefix)
	}
	headers := map[string]string{}
	for _, h := range []struct{ field, name string }{
		{"spec.userHeader", g.UserHeader}, {"spec.rolesHeader", g.RolesHeader}, {"spec.versionsHeader", g.VersionsHeader},
	} {
		l.checkGatewayHeader(p, h.field, h.name, headers)
	}
	if g.RequiredRole != "" && !l.roleExists(g.RequiredRole) {
		l.fail(p, "spec.requiredRole", "no Role named %q", g.RequiredRole)
	}
	for _, t := range []struct {
		field string
		d     Duration
	}{{"spec.timeouts.dial", g.Timeouts.Dial}, {"spec.timeouts.responseHeader", g.Timeouts.ResponseHeader}} {
		if t.d < 0 || t.d.D() > MaxGatewayTimeout {
			l.fail(p, t.field, "must be between 0 (the default) and %s", MaxGatewayTimeout)
		}
	}
	if s := g.SharedSecret; s != nil {
		l.checkGatewayHeader(p, "spec.sharedSecret.header", s.Header, headers)
		if s.Header == "" {
			l.fail(p, "spec.sharedSecret.header", "required")
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
	if !validHeaderName(name) {
		l.fail(p, field, "%q is not a valid HTTP header name", name)
		return
	}
	canon := http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
	for _, h := range hopByHop {
		if canon == h {
			l.fail(p, field, "%s is a hop-by-hop header, which proxies drop", name)
			return
		}
	}
	if other, dup := seen[canon]; dup {
		l.fail(p, field, "%s is already used by %s (names are compared ignoring case, - and _)", name, other)
		return
	}
	seen[canon] = field
}

// validHeaderName reports whether s is an RFC 9110 field name (a token).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
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
		if seg == "" || seg == "." || seg == ".." {
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
