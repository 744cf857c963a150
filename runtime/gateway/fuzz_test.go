package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

// mappedSegments is the path as Tomcat maps it, segment by segment: each
// segment's ";parameters" dropped and empty segments skipped. It is the
// model FuzzMappedPath holds MappedPath to, written apart from it.
func mappedSegments(p string) []string {
	var segs []string
	for _, s := range strings.Split(p, "/") {
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		if s != "" {
			segs = append(segs, s)
		}
	}
	return segs
}

// FuzzMappedPath checks the path the daemon picks a Gateway by: for a path
// the client sends (starting with '/'), MappedPath keeps exactly the
// segments the application maps, leaves no ';' or "//" for a prefix match
// to trip on, and is a fixed point, so the choice cannot depend on how
// often the path is mapped.
func FuzzMappedPath(f *testing.F) {
	for _, s := range []string{"/strict/x", "//strict/x", "/strict;x/y", "/;/strict/x", "/strict/", "/", "/;x", "", "a;b", "/a/;", "/a;b;c//d;/", "/..;/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		got := MappedPath(p)
		if !strings.HasPrefix(p, "/") {
			if got != p {
				t.Fatalf("MappedPath(%q) = %q, want it unchanged", p, got)
			}
			return
		}
		if !strings.HasPrefix(got, "/") || strings.Contains(got, ";") || strings.Contains(got, "//") {
			t.Fatalf("MappedPath(%q) = %q: not a plain absolute path", p, got)
		}
		if want, have := mappedSegments(p), mappedSegments(got); !slices.Equal(have, want) {
			t.Fatalf("MappedPath(%q) = %q: segments %q, the application maps %q", p, got, have, want)
		}
		if again := MappedPath(got); again != got {
			t.Fatalf("MappedPath(%q) = %q, but MappedPath(%q) = %q", p, got, got, again)
		}
	})
}

// FuzzForwardedHeaders feeds client header names and Cookie values to what
// the gateway strips before proxying. Every name that folds (lower case,
// '_' as '-') into a banned name or prefix must go, and no other; no
// cookie of idrecon's, as net/http parses cookies, may reach the upstream,
// and every other cookie net/http saw must still be there.
func FuzzForwardedHeaders(f *testing.F) {
	f.Add("X-Remote-User\nuser_NAME\nX-Original-URI\nAccept", "a=1; idrecon_session=s; b=2")
	f.Add("x_forwarded_client_cert\n"+strings.Repeat("x", 70)+"\nX-Forwarded-"+strings.Repeat("Y", 60), "idrecon_x=1")
	f.Add("Forwarded\nX-Real-IP\nRemote-User", ";;sid=abc ; idrecon_state=q;c")
	f.Add("", "")
	cfg := Config{UserHeader: "User-Name", RolesHeader: "X-Roles", VersionsHeader: "X-App-Versions",
		SharedSecret: &SharedSecret{Header: "X-Proxy-Secret"}}
	s := newStripper(cfg)
	const session = "sid"
	own := func(name string) bool { return name == session || strings.HasPrefix(name, "idrecon_") }
	f.Fuzz(func(t *testing.T, names, cookie string) {
		h := http.Header{}
		for n := range strings.SplitSeq(names, "\n") {
			h[n] = []string{"v"}
		}
		before := http.Header{}
		for k, v := range h {
			before[k] = v
		}
		s.strip(h)
		for k := range before {
			// ASCII folding, as CGI and nginx do it: strings.ToLower
			// would also fold the Kelvin sign into 'k'.
			f := strings.Map(func(r rune) rune {
				switch {
				case r >= 'A' && r <= 'Z':
					return r + 'a' - 'A'
				case r == '_':
					return '-'
				}
				return r
			}, k)
			ban := s.banned[f] || strings.HasPrefix(f, "x-original-") || strings.HasPrefix(f, "x-forwarded-")
			if _, kept := h[k]; kept == ban {
				t.Fatalf("header %q (folded %q): banned %v, kept %v", k, f, ban, kept)
			}
		}

		values := strings.Split(cookie, "\n")
		kept := withoutCookie(values, own)
		sent := (&http.Request{Header: http.Header{"Cookie": values}}).Cookies()
		got := (&http.Request{Header: http.Header{"Cookie": kept}}).Cookies()
		for _, c := range got {
			if own(c.Name) {
				t.Fatalf("cookie %q reaches the upstream: %q kept of %q", c.Name, kept, values)
			}
		}
		for _, c := range sent {
			if own(c.Name) {
				continue
			}
			if !slices.ContainsFunc(got, func(g *http.Cookie) bool { return g.Name == c.Name && g.Value == c.Value }) {
				t.Fatalf("cookie %s=%s lost: %q kept of %q", c.Name, c.Value, kept, values)
			}
		}
	})
}
