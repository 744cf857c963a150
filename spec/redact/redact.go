// Package redact hides the secrets a URL may carry before it is shown: in a
// plan, a status, an error or a log. It is idrecon's one rule for that, so
// that a secret is hidden alike wherever a URL is printed: a git source's
// URL, a spec's URL-valued fields (an IdP's metadataURL, a Gateway's
// upstream), the CLI's --server. Only the display changes: callers keep
// the real URL to use it.
package redact

import (
	"net/url"
	"strings"
)

// Redacted replaces what is hidden.
const Redacted = "REDACTED"

// URL shows raw with its user information and its query's values hidden:
// a token is often passed as the user name or in the query ("?token=",
// "?private_token=", "?access_token="). The query's keys stay, so that the
// reader sees which parameters there are, but for one without '=', which
// is a value; a fragment is kept. A URL that
// parses is redacted by its parts, so an '@' in its query cannot pass for
// the end of a userinfo; one that does not parse (a password with a '^', a
// space, a '%' that is no escape: exactly what gets echoed back) is
// redacted by its text, as Userinfo says.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" {
		// "user:pass@host" parses as scheme "user" with an opaque rest.
		base, query, frag := CutQuery(Userinfo(raw))
		if query == "" {
			return base + frag
		}
		return base + Query(url.URL{RawQuery: query}) + frag
	}
	if u.User == nil && u.RawQuery == "" {
		return raw // as written: nothing to hide
	}
	if u.User != nil {
		u.User = url.User(Redacted)
	}
	return Query(*u)
}

// Userinfo hides the user information of a URL. It works on the text, so
// it also covers a URL that url.Parse refuses (url.URL.Redacted needs one
// that parses).
//
// After "scheme://", everything up to the last '@' is replaced, the user
// name included, since a token is often passed as the user name. Splitting
// at the last '@' keeps a '/', '?', '#' or '@' in a password from cutting
// the userinfo short and showing its tail; it may hide part of a path that
// holds an '@', which is the better mistake. Without a scheme only
// "user:password@" counts as userinfo: scp-like "git@host:path" names a
// login, not a secret, and is returned unchanged.
func Userinfo(raw string) string {
	const redacted = Redacted + "@"
	at := strings.LastIndex(raw, "@")
	if at < 0 {
		return raw
	}
	if scheme, _, ok := strings.Cut(raw, "://"); ok && isScheme(scheme) {
		// A scheme holds no '@', so the last one is past "://".
		start := len(scheme) + len("://")
		return raw[:start] + redacted + raw[at+1:]
	}
	// No scheme: the text before the first '@' is a login ("git") or a
	// login and a password ("admin:s3cret").
	first := strings.Index(raw, "@")
	if !strings.Contains(raw[:first], ":") {
		return raw
	}
	return redacted + raw[at+1:]
}

// Query shows u with its query values hidden. A parameter written without
// '=' is a value with no name ("md.xml?<key>"), hidden whole. A query that
// does not parse is hidden whole.
func Query(u url.URL) string {
	if u.RawQuery == "" {
		return u.String()
	}
	if _, err := url.ParseQuery(u.RawQuery); err != nil {
		u.RawQuery = Redacted
		return u.String()
	}
	named := url.Values{}
	bare := false
	for part := range strings.SplitSeq(u.RawQuery, "&") {
		key, _, hasValue := strings.Cut(part, "=")
		switch {
		case part == "":
		case !hasValue:
			bare = true
		default:
			// ParseQuery took every escape, so this one cannot fail.
			name, _ := url.QueryUnescape(key)
			named.Set(name, Redacted)
		}
	}
	u.RawQuery = named.Encode()
	if bare {
		if u.RawQuery != "" {
			u.RawQuery += "&"
		}
		u.RawQuery += Redacted
	}
	return u.String()
}

// CutQuery splits the text of a URL that url.Parse refuses into what comes
// before its query, the query (without '?') and the fragment (with its
// '#'). Cut from Userinfo's result, a '?' or '#' in a password cannot pass
// for the query's start.
func CutQuery(s string) (base, query, frag string) {
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s, frag = s[:i], s[i:]
	}
	base, query, _ = strings.Cut(s, "?")
	return base, query, frag
}

// isScheme reports whether s is a URL scheme (RFC 3986: a letter, then
// letters, digits, '+', '-' or '.'), so that a "://" further on, in the
// query of a scheme-less value, is not taken for the scheme's.
func isScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}
