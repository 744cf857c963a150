package gateway_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// forged is the value every spoofed header carries; it must never reach
// the upstream or come back from /auth/verify.
const forged = "root-forged"

// spoofCases are client headers that try to pass as idrecon's. userHeader
// is the configured user header the case is aimed at.
func spoofCases(userHeader string) []struct {
	name string
	raw  [][2]string
} {
	lower := strings.ToLower(userHeader)
	under := strings.ReplaceAll(lower, "-", "_")
	return []struct {
		name string
		raw  [][2]string
	}{
		{"same name", [][2]string{{lower, forged}}},
		{"upper case", [][2]string{{strings.ToUpper(userHeader), forged}}},
		{"canonical", [][2]string{{http.CanonicalHeaderKey(userHeader), forged}}},
		{"repeated", [][2]string{{lower, forged}, {lower, forged + "2"}}},
		{"two spellings", [][2]string{{lower, forged}, {strings.ToUpper(userHeader), forged + "2"}}},
		{"underscores", [][2]string{{under, forged}}},
		{"underscores upper", [][2]string{{strings.ToUpper(under), forged}}},
		{"dashes for underscores", [][2]string{{strings.ReplaceAll(lower, "_", "-"), forged}}},
		{"dots", [][2]string{{strings.NewReplacer("-", ".", "_", ".").Replace(lower), forged},
			{"X.Forwarded.For", forged}, {"x.original.uri", "/" + forged}, {"remote.user", forged}}},
		{"connection names the user header", [][2]string{{"Connection", lower}, {lower, forged}}},
		{"connection list", [][2]string{{"Connection", "close, " + lower}}},
		{"connection names forwarding headers", [][2]string{{"Connection", "X-Forwarded-For, X-Forwarded-Host"}, {"X-Forwarded-For", forged}}},
		{"roles", [][2]string{{"x-idrecon-roles", forged}, {"X_IDRECON_ROLES", forged}}},
		{"versions", [][2]string{{"X-Idrecon-Versions", forged}, {"x_idrecon_versions", forged}}},
		{"shared secret", [][2]string{{"X-Gateway-Secret", forged}, {"x_gateway_secret", forged}}},
		{"x-forwarded", [][2]string{
			{"X-Forwarded-For", forged}, {"X-Forwarded-Host", forged}, {"X-Forwarded-Proto", forged},
			{"X-Forwarded-Uri", "/" + forged}, {"X-Forwarded-Method", forged}, {"X-Forwarded-Prefix", forged},
			{"X-Forwarded-Port", forged}, {"x_forwarded_for", forged}, {"X_FORWARDED_HOST", forged},
		}},
		{"any x-forwarded-", [][2]string{
			{"X-Forwarded-Client-Cert", "By=spiffe://x;URI=spiffe://" + forged}, {"X-Forwarded-Scheme", forged},
			{"X-Forwarded-Access-Token", forged}, {"x_forwarded_ssl_client_dn", "CN=" + forged},
			{"X-Forwarded-" + strings.Repeat("Long-", 20), forged},
		}},
		{"x-original and real-ip", [][2]string{
			{"X-Original-URI", "/" + forged}, {"X-Original-URL", forged}, {"X-Original-Method", forged},
			{"x_original_uri", forged}, {"X-Real-IP", forged}, {"x_real_ip", forged},
		}},
		{"long names", [][2]string{{"X-Original-" + strings.Repeat("Long_", 20), forged}, {strings.Repeat("X", 80), "harmless"}}},
		{"forwarded", [][2]string{{"Forwarded", "for=" + forged}, {"FORWARDED", "for=" + forged}}},
		{"other front doors' user headers", [][2]string{
			{"X-Forwarded-User", forged}, {"x_forwarded_email", forged}, {"X-Forwarded-Groups", forged},
			{"X-Forwarded-Preferred-Username", forged}, {"Remote-User", forged}, {"REMOTE_USER", forged}, {"X-Remote-User", forged},
		}},
	}
}

func spoofConfig(upstream, userHeader string) gateway.Config {
	return gateway.Config{
		Upstream:       upstream,
		UserHeader:     userHeader,
		RolesHeader:    "X-Idrecon-Roles",
		VersionsHeader: "X-Idrecon-Versions",
		SharedSecret:   &gateway.SharedSecret{Header: "X-Gateway-Secret", Value: "s3cret"},
	}
}

// TestProxyStripsSpoofedHeaders: whatever a client sends, the upstream
// sees exactly one value of each identity header, the session's, and none
// of the forged forwarding headers.
func TestProxyStripsSpoofedHeaders(t *testing.T) {
	for _, userHeader := range []string{"username", "Remote-User", "user_name"} {
		up, hits := echoUpstream(t)
		_, srv := newFrontDoor(t, spoofConfig(up.URL, userHeader), gateway.Deps{})
		for _, tc := range spoofCases(userHeader) {
			t.Run(userHeader+"/"+tc.name, func(t *testing.T) {
				got := decodeSeen(t, do(t, "GET", srv.URL+"/app/page?x=1", "tok-ann", tc.raw))
				want := map[string][]string{
					userHeader:           {"ann"},
					"X-Idrecon-Roles":    {"Developer, Manager"},
					"X-Idrecon-Versions": {"ledger/1, payments/2.0"},
					"X-Gateway-Secret":   {"s3cret"},
					"X-Forwarded-For":    {"127.0.0.1"},
					"X-Forwarded-Host":   {strings.TrimPrefix(srv.URL, "http://")},
					"X-Forwarded-Proto":  {"http"},
				}
				for name, w := range want {
					if v := valuesFolded(got.Header, name); !slices.Equal(v, w) {
						t.Errorf("upstream saw %s = %q, want %q", name, v, w)
					}
				}
				for k, vs := range got.Header {
					if strings.Contains(strings.Join(vs, ","), forged) {
						t.Errorf("forged value arrived in %s: %q", k, vs)
					}
					f := fold(k)
					if strings.HasPrefix(f, "x-original-") || f == "forwarded" || f == "x-real-ip" ||
						(strings.HasPrefix(f, "x-forwarded-") && f != "x-forwarded-for" && f != "x-forwarded-host" && f != "x-forwarded-proto") {
						t.Errorf("upstream saw %s: %q", k, vs)
					}
				}
				if got.URI != "/app/page?x=1" {
					t.Errorf("upstream URI %q", got.URI)
				}
			})
		}
		t.Run(userHeader+"/signed out never reaches the upstream", func(t *testing.T) {
			unreached(t, hits, "without a session", func() {
				for _, tc := range spoofCases(userHeader) {
					resp := do(t, "GET", srv.URL+"/app/page", "", tc.raw)
					if resp.StatusCode != http.StatusFound {
						t.Errorf("%s: status %d, want 302", tc.name, resp.StatusCode)
					}
				}
			})
		})
	}
}

// TestVerifyIgnoresSpoofedHeaders: /auth/verify answers from the session
// alone; no client header comes back as identity.
func TestVerifyIgnoresSpoofedHeaders(t *testing.T) {
	for _, userHeader := range []string{"username", "Remote-User"} {
		cfg := spoofConfig("", userHeader)
		cfg.SharedSecret = nil
		_, srv := newFrontDoor(t, cfg, gateway.Deps{})
		for _, tc := range spoofCases(userHeader) {
			t.Run(userHeader+"/"+tc.name, func(t *testing.T) {
				resp := do(t, "GET", srv.URL+gateway.VerifyPath, "tok-ann", tc.raw)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want 200", resp.StatusCode)
				}
				if v := valuesFolded(resp.Header, userHeader); !slices.Equal(v, []string{"ann"}) {
					t.Errorf("%s = %q, want [ann]", userHeader, v)
				}
				for k, vs := range resp.Header {
					if strings.Contains(strings.Join(vs, ","), forged) {
						t.Errorf("forged value came back in %s: %q", k, vs)
					}
				}
				out := do(t, "GET", srv.URL+gateway.VerifyPath, "", tc.raw)
				if out.StatusCode != http.StatusUnauthorized {
					t.Errorf("signed out: status %d, want 401", out.StatusCode)
				}
				if v := valuesFolded(out.Header, userHeader); v != nil {
					t.Errorf("signed out: %s = %q", userHeader, v)
				}
			})
		}
	}
}
