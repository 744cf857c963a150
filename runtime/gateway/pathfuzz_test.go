package gateway

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// tomcatPath is the path a servlet container serves for the escaped path
// it is sent: ";parameters" dropped, empty segments merged, each segment
// decoded, then dot segments resolved. ok is false where it answers 400
// (an escaped '/', a bad escape, or ".." above the root).
func tomcatPath(escaped string) (string, bool) {
	var out []string
	for _, s := range strings.Split(escaped, "/") {
		s, _, _ = strings.Cut(s, ";")
		if s == "" {
			continue
		}
		d, err := url.PathUnescape(s)
		if err != nil || strings.Contains(d, "/") {
			return "", false
		}
		switch d {
		case ".":
		case "..":
			if len(out) == 0 {
				return "", false
			}
			out = out[:len(out)-1]
		default:
			out = append(out, d)
		}
	}
	return "/" + strings.Join(out, "/"), true
}

// FuzzProxiedPath: a request the Gateway of /ssc proxies lands, as the
// application maps it, under /ssc and never under a reserved prefix.
func FuzzProxiedPath(f *testing.F) {
	for _, s := range []string{"/ssc/x", "/ssc/%2e%2e/saml/login", "/ssc;x/../saml", "//ssc/x", "/ssc%3Bx/y", "/ssc/%252e%252e/x", "/ssc/..%3b/saml", "/ssc/.%2e/auth/verify"} {
		f.Add(s)
	}
	g := &Gateway{cfg: Config{PathPrefix: "/ssc"}, deps: Deps{Reserved: []string{"/saml", "/auth"}}}
	f.Fuzz(func(t *testing.T, target string) {
		r, err := http.NewRequest(http.MethodGet, "http://h"+target, nil)
		if err != nil || r.URL.Host != "h" || !strings.HasPrefix(r.URL.Path, "/") {
			return
		}
		p := r.URL.Path
		if !g.forwards(p) || !g.forwardsSent(r.URL.EscapedPath()) || hasDotSegment(p) {
			return
		}
		got, ok := tomcatPath(r.URL.EscapedPath())
		if !ok {
			return
		}
		if !underPrefix(got, "/ssc") || underPrefix(got, "/saml") || underPrefix(got, "/auth") {
			t.Fatalf("%q (escaped %q) is proxied and lands at %q", p, r.URL.EscapedPath(), got)
		}
	})
}

// FuzzOriginalURI: the URI a forward-auth request names is refused when it
// holds a dot segment, as sent or decoded, or is given twice.
func FuzzOriginalURI(f *testing.F) {
	f.Add("/x", "", "/auth/verify")
	f.Add("/a/%2e%2e/b", "/c", "/auth/verify/x")
	f.Add("", "", "/auth/verify//..;/x")
	f.Fuzz(func(t *testing.T, orig, fwd, target string) {
		r, err := http.NewRequest(http.MethodGet, "http://h"+target, nil)
		if err != nil {
			return
		}
		if orig != "" {
			r.Header["X-Original-Uri"] = []string{orig}
		}
		if fwd != "" {
			r.Header["X-Forwarded-Uri"] = []string{fwd}
		}
		uri, ok := OriginalURI(r)
		if !ok || uri == "" {
			return
		}
		p, _, _ := strings.Cut(uri, "?")
		if d, err := url.PathUnescape(p); err != nil || hasDotSegment(p) || hasDotSegment(d) {
			t.Fatalf("OriginalURI = %q, with a dot segment", uri)
		}
	})
}
