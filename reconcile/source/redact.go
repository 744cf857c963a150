package source

import "strings"

// RedactURL hides the user information of a URL that is about to be shown
// in an error or a log. It works on the text, so it also covers a URL that
// url.Parse refuses (url.URL.Redacted needs one that parses): a generated
// password often holds a '^', a space or a '%' that is no escape, and the
// refused value is exactly what gets echoed back.
//
// After "scheme://", everything up to the last '@' is replaced, the user
// name included, since a token is often passed as the user name. Splitting
// at the last '@' keeps a '/', '?', '#' or '@' in a password from cutting
// the userinfo short and showing its tail; it may hide part of a path that
// holds an '@', which is the better mistake. Without a scheme only
// "user:password@" counts as userinfo: scp-like "git@host:path" names a
// login, not a secret, and is returned unchanged.
func RedactURL(raw string) string {
	const redacted = "REDACTED@"
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
