package gateway_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/proxytest"
)

// caddyfile is Caddy in front of an application, asking idrecon's
// /auth/verify before each request. Debian's Caddy copies an empty header
// of idrecon's answer as empty, but later releases skip it and leave the
// client's copy in place, so a user with no versions (an empty
// X-Idrecon-Versions) could send their own: the route deletes every
// identity header the client sent before forward_auth copies idrecon's in.
// A route keeps the order written; outside one, Caddy runs request_header
// after forward_auth, which would delete idrecon's copies too.
const caddyfile = `{
	admin off
	auto_https off
}
http://127.0.0.1 {
	bind unix/SOCKET
	handle /saml/* {
		reverse_proxy IDRECON
	}
	handle {
		route {
			request_header -username
			request_header -X-Idrecon-Roles
			request_header -X-Idrecon-Versions
			forward_auth IDRECON {
				uri /auth/verify
				copy_headers username X-Idrecon-Roles X-Idrecon-Versions
			}
			reverse_proxy APP
		}
	}
}
`

// TestCaddyForwardAuth runs a real Caddy (the Debian package) with
// forward_auth to idrecon's /auth/verify in front of an application that
// echoes what it receives.
func TestCaddyForwardAuth(t *testing.T) {
	ses := cookieSessions{"tok-ray": "ray"}
	for k, v := range sessions {
		ses[k] = v
	}
	// ray has a role but no versions: idrecon answers an empty
	// X-Idrecon-Versions for him, which Caddy does not copy.
	dec := gateway.DeciderFunc(func(ctx context.Context, name string) (gateway.Access, error) {
		if name == "ray" {
			return gateway.Access{UserName: "ray", Active: true, Roles: []string{"Developer"}}, nil
		}
		return deciders.Access(ctx, name)
	})
	g, err := gateway.New(gateway.Config{RolesHeader: "X-Idrecon-Roles", VersionsHeader: "X-Idrecon-Versions"},
		gateway.Deps{Sessions: ses, Decider: dec, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	idrecon := verifyServer(t, g)
	app, hits := echoUpstream(t)
	client := proxytest.Caddy(t, strings.NewReplacer(
		"IDRECON", strings.TrimPrefix(idrecon.URL, "http://"),
		"APP", strings.TrimPrefix(app.URL, "http://"),
	).Replace(caddyfile))
	// Caddy listens on a unix socket, so the host is only a name: the one
	// the site address matches, which the browser's Origin names.
	const base = "http://127.0.0.1"
	send := func(t *testing.T, method, path, token string, raw [][2]string) *http.Response {
		t.Helper()
		return doWith(t, client, method, base+path, token, raw)
	}
	spoofs := [][2]string{
		{"username", forged}, {"USERNAME", forged}, {"Username", forged + "2"},
		{"X-Idrecon-Roles", "Administrator," + forged}, {"x-idrecon-versions", "*/*," + forged},
		{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", "evil.example"}, {"X-Forwarded-Uri", "/" + forged},
	}

	t.Run("signed in", func(t *testing.T) {
		for _, raw := range [][][2]string{nil, spoofs} {
			got := decodeSeen(t, send(t, "GET", "/ssc/html/index.jsp?a=1&b=2", "tok-ann", raw))
			checkAnn(t, got)
			if got.URI != "/ssc/html/index.jsp?a=1&b=2" {
				t.Errorf("app saw URI %q", got.URI)
			}
		}
	})
	t.Run("empty identity header", func(t *testing.T) {
		got := decodeSeen(t, send(t, "GET", "/ssc/", "tok-ray", spoofs))
		if v := valuesFolded(got.Header, "username"); !slices.Equal(v, []string{"ray"}) {
			t.Errorf("app saw username %q, want [ray]", v)
		}
		if v := valuesFolded(got.Header, "x-idrecon-roles"); !slices.Equal(v, []string{"Developer"}) {
			t.Errorf("app saw roles %q, want [Developer]", v)
		}
		if v := valuesFolded(got.Header, "x-idrecon-versions"); strings.Join(v, "") != "" {
			t.Errorf("app saw versions %q, want none or empty", v)
		}
	})
	t.Run("signed out gets the sign-in", func(t *testing.T) {
		unreached(t, hits, "without a session", func() {
			for _, raw := range [][][2]string{nil, spoofs} {
				resp := send(t, "GET", "/ssc/html/index.jsp?a=1&b=2", "", raw)
				// Caddy hands idrecon's 401 back as it is, headers and body.
				if resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("status %d, want 401", resp.StatusCode)
				}
				want := "/saml/login?returnTo=%2Fssc%2Fhtml%2Findex.jsp%3Fa%3D1%26b%3D2"
				if got := resp.Header.Get(gateway.SigninHeader); got != want {
					t.Errorf("%s %q, want %q", gateway.SigninHeader, got, want)
				}
				if got := resp.Header.Get("Cache-Control"); got != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", got)
				}
				body, _ := io.ReadAll(resp.Body)
				if string(body) != "sign in at "+want+"\n" {
					t.Errorf("body %q", body)
				}
				next := send(t, "GET", want, "", nil)
				body, _ = io.ReadAll(next.Body)
				if string(body) != "sign in, then back to /ssc/html/index.jsp?a=1&b=2" {
					t.Errorf("sign-in page said %q", body)
				}
			}
		})
	})
	t.Run("signed in without access", func(t *testing.T) {
		unreached(t, hits, "without access", func() {
			if resp := send(t, "GET", "/ssc/", "tok-bob", spoofs); resp.StatusCode != http.StatusForbidden {
				t.Errorf("status %d, want 403", resp.StatusCode)
			}
		})
	})
	checkOrigins(t, g, hits, base, spoofs, func(t *testing.T, method string, raw [][2]string) *http.Response {
		return send(t, method, "/ssc/form", "tok-ann", raw)
	})
}
