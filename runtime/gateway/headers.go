package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/spec"
)

// stripper removes every client-sent copy of the headers idrecon sets or
// that describe the request, in any spelling.
type stripper struct {
	// banned are the folded names of the identity and secret headers and of
	// the forwarding headers; names starting "x-original-" or
	// "x-forwarded-" go too.
	banned map[string]bool
}

// originalPrefix is spec.OriginalPrefix folded.
var originalPrefix = spec.FoldHeaderName(spec.OriginalPrefix)

// forwardedPrefix starts every X-Forwarded-* name, folded. Beyond the ones
// spec.ForwardingHeaders lists, proxies and applications read many more as
// facts about the client (X-Forwarded-Client-Cert, -Scheme, -Ssl-Client-Dn,
// -Access-Token): only a proxy may say any of them.
const forwardedPrefix = "x-forwarded-"

// bannedPrefix reports whether a folded name starts with a prefix whose
// every header is stripped.
func bannedPrefix[T string | []byte](f T) bool {
	return strings.HasPrefix(string(f), originalPrefix) || strings.HasPrefix(string(f), forwardedPrefix)
}

// otherIdentityHeaders are the user headers of other front doors
// (oauth2-proxy, Authelia, Apache): an application once set up behind one
// of them may still read them, so a client's copy never passes.
var otherIdentityHeaders = []string{"x-forwarded-user", "x-forwarded-email", "x-forwarded-groups",
	"x-forwarded-preferred-username", "remote-user", "x-remote-user"}

func newStripper(cfg Config) stripper {
	s := stripper{banned: map[string]bool{}}
	for _, h := range slices.Concat(spec.ForwardingHeaders, otherIdentityHeaders) {
		s.banned[spec.FoldHeaderName(h)] = true
	}
	for _, h := range []string{cfg.UserHeader, cfg.RolesHeader, cfg.VersionsHeader, secretHeader(cfg.SharedSecret)} {
		if h != "" {
			s.banned[spec.FoldHeaderName(h)] = true
		}
	}
	return s
}

// strip deletes the headers in place. Keys are visited as Go stored them,
// so "USER_NAME", "User_name", "User.Name" and "User-Name" (four keys) all
// go. It runs
// on every proxied request, so it folds into a stack buffer.
func (s stripper) strip(h http.Header) {
	var buf [64]byte
	for k := range h {
		if len(k) > len(buf) {
			if f := spec.FoldHeaderName(k); s.banned[f] || bannedPrefix(f) {
				delete(h, k)
			}
			continue
		}
		f := buf[:len(k)]
		for i := 0; i < len(k); i++ {
			f[i] = spec.FoldHeaderByte(k[i])
		}
		if s.banned[string(f)] || bannedPrefix(f) {
			delete(h, k)
		}
	}
}

// withoutCookie returns the Cookie header values with every cookie called
// name removed, keeping the others byte for byte; nil when none is left.
func withoutCookie(values []string, own func(name string) bool) []string {
	var out []string
	for _, v := range values {
		var kept []string
		dropped := false
		for part := range strings.SplitSeq(v, ";") {
			p := strings.TrimSpace(part)
			n, _, _ := strings.Cut(p, "=")
			if p == "" || own(strings.TrimSpace(n)) {
				dropped = true
				continue
			}
			kept = append(kept, p)
		}
		switch {
		case !dropped:
			out = append(out, v)
		case len(kept) > 0:
			out = append(out, strings.Join(kept, "; "))
		}
	}
	return out
}

// safeValue reports whether v can go into a header that Tomcat and friends
// read the same way idrecon wrote it: printable ASCII (space only when
// allowed), so no CR/LF smuggling and no charset guessing.
func safeValue(v string, space bool) bool {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x21 || c > 0x7e {
			if c == ' ' && space {
				continue
			}
			return false
		}
	}
	return v != ""
}

// joinSafe joins list items with ", ", leaving out any an application could
// misread (a comma inside an item, control or non-ASCII bytes): a dropped
// grant is less access, never more.
func joinSafe(items []string) string {
	var b strings.Builder
	for _, it := range items {
		if strings.Contains(it, ",") || !safeValue(it, true) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it)
	}
	return b.String()
}

// localPath returns p if it is a path on this origin that a sign-in may
// return to: it starts with a single '/', has no backslash (browsers read
// "/\evil" as "//evil") and no control bytes. Otherwise "".
func localPath(p string) string {
	if len(p) == 0 || len(p) > 4096 || p[0] != '/' {
		return ""
	}
	if len(p) > 1 && (p[1] == '/' || p[1] == '\\') {
		return ""
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c < 0x21 || c == 0x7f || c == '\\' {
			return ""
		}
	}
	return p
}

// hasDotSegment reports whether a path holds a "." or ".." segment. A
// segment's ";parameters" do not count: Tomcat (and Jetty) drop them before
// resolving dot segments, so "/ssc/..;/manager" is "/manager" to them.
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		seg, _, _ = strings.Cut(seg, ";")
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

// MappedPath returns the path p as Tomcat (and Jetty, and Spring) map it
// to the application: each segment's ";parameters" dropped and runs of '/'
// merged, so "/;/a;b/c" is "/a/c". nginx and Traefik pass a path on as
// sent, so a Gateway chosen by the path's prefix must be chosen by this
// one: "/strict;x/y" and "//strict/x" are under /strict for the
// application. A p that does not start with '/' is returned as it is.
func MappedPath(p string) string {
	if !strings.HasPrefix(p, "/") || !strings.Contains(p, ";") && !strings.Contains(p, "//") {
		return p
	}
	mapped, _ := mapSegments(p, func(seg string) (string, error) { return seg, nil })
	return mapped
}

// SentPath returns the path the application (Tomcat, Jetty) maps for the
// escaped path p it is sent: each segment's ";parameters" dropped at the
// semicolons sent as such, runs of '/' merged, and only then each segment
// decoded. A segment that decodes to hold '/' keeps it escaped as "%2F",
// and one holding an escaped ';' keeps it, so neither ever matches a
// prefix (which holds no '%' or ';'), as it never matches a context path
// for the application. ok is false for a p that does not start with '/'
// or does not decode.
func SentPath(p string) (mapped string, ok bool) {
	if !strings.HasPrefix(p, "/") {
		return "", false
	}
	return mapSegments(p, func(seg string) (string, error) {
		d, err := url.PathUnescape(seg)
		return strings.ReplaceAll(strings.ReplaceAll(d, "%", "%25"), "/", "%2F"), err
	})
}

// mapSegments is the path p, which starts with '/', as the application
// maps it: each segment's ";parameters" dropped, empty segments merged,
// and each other segment as seg gives it (false when one fails).
func mapSegments(p string, seg func(string) (string, error)) (string, bool) {
	var b strings.Builder
	for s := range strings.SplitSeq(p[1:], "/") {
		s, _, _ = strings.Cut(s, ";")
		if s == "" {
			continue
		}
		m, err := seg(s)
		if err != nil {
			return "", false
		}
		b.WriteString("/")
		b.WriteString(m)
	}
	if strings.HasSuffix(p, "/") || b.Len() == 0 {
		b.WriteString("/")
	}
	return b.String(), true
}
