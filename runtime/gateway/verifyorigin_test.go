package gateway_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestVerifyCrossOrigin: forward-auth refuses what the built-in proxy
// refuses, a cross-origin unsafe request or WebSocket handshake, judging
// the original request as each proxy describes it: Envoy keeps the
// original method and headers; nginx, Traefik and Caddy send a GET with the
// original headers, naming the method in X-Forwarded-Method (nginx as
// testdata/nginx-idrecon.conf sets it) and the host in X-Forwarded-Host.
func TestVerifyCrossOrigin(t *testing.T) {
	g, srv := newFrontDoor(t, gateway.Config{}, gateway.Deps{})
	u, _ := url.Parse(srv.URL)
	self := "http://" + u.Host // the Host the test client sends
	const app = "ssc.example.com"
	evil := [2]string{"Origin", "https://evil.example"}
	crossSite := [2]string{"Sec-Fetch-Site", "cross-site"}
	ws := [][2]string{{"Connection", "Upgrade"}, {"Upgrade", "websocket"}, {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}}
	tests := []struct {
		name   string
		method string
		raw    [][2]string
		want   int
	}{
		// The original method and headers (Envoy).
		{"original method cross-site POST", "POST", [][2]string{evil, crossSite}, 403},
		{"original method cross-site POST, old browser", "POST", [][2]string{evil}, 403},
		{"original method sibling subdomain POST", "POST", [][2]string{{"Origin", "https://other.example.com"}, {"Sec-Fetch-Site", "same-site"}}, 403},
		{"original method cross-site DELETE", "DELETE", [][2]string{evil, crossSite}, 403},
		{"original method same-origin POST", "POST", [][2]string{{"Origin", self}, {"Sec-Fetch-Site", "same-origin"}}, 200},
		{"original method same-origin POST, old browser", "POST", [][2]string{{"Origin", self}}, 200},
		{"original method POST without a browser", "POST", nil, 200},
		{"nginx cross-site GET", "GET", [][2]string{evil, crossSite, {"X-Forwarded-Method", "GET"}}, 200},
		{"nginx cross-site HEAD", "HEAD", [][2]string{evil, crossSite, {"X-Forwarded-Method", "HEAD"}}, 200},
		// nginx configured without X-Forwarded-Method: a GET whatever the
		// original was. One with an Origin may be a POST.
		{"unknown method, cross-site Origin", "GET", [][2]string{evil, crossSite}, 403},
		{"unknown method, cross-site Origin, old browser", "GET", [][2]string{evil}, 403},
		{"unknown method, same-origin Origin", "GET", [][2]string{{"Origin", self}, {"Sec-Fetch-Site", "same-origin"}}, 200},
		{"unknown method, same-origin Origin, old browser", "GET", [][2]string{{"Origin", self}}, 200},
		{"unknown method, link from another site", "GET", [][2]string{crossSite}, 200},
		{"unknown method, plain GET", "GET", [][2]string{{"Sec-Fetch-Site", "same-origin"}}, 200},
		{"POST claiming to be a GET", "POST", [][2]string{evil, crossSite, {"X-Forwarded-Method", "GET"}}, 403},
		// Traefik and Caddy: a GET describing the original.
		{"caddy cross-site POST", "GET", [][2]string{evil, crossSite, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}}, 403},
		{"caddy cross-site POST, old browser", "GET", [][2]string{evil, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}}, 403},
		{"caddy lower-case method", "GET", [][2]string{evil, {"X-Forwarded-Method", "post"}, {"X-Forwarded-Host", app}}, 403},
		{"caddy same-origin POST", "GET", [][2]string{{"Origin", "https://" + app}, {"Sec-Fetch-Site", "same-origin"}, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}}, 200},
		{"caddy same-origin POST, old browser", "GET", [][2]string{{"Origin", "https://" + app}, {"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}}, 200},
		{"caddy cross-site GET", "GET", [][2]string{evil, crossSite, {"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", app}}, 200},
		{"caddy plain GET", "GET", [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", app}}, 200},
		{"caddy plain POST", "GET", [][2]string{{"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}}, 200},
		// Traefik and Caddy always send X-Forwarded-Host; without it the
		// Origin is compared with the auth request's own Host, idrecon's
		// there: an old browser's same-origin POST is refused rather than a
		// cross-origin one passed.
		{"no forwarded host, old browser", "GET", [][2]string{{"Origin", "https://" + app}, {"X-Forwarded-Method", "POST"}}, 403},
		// WebSocket handshakes, with the upgrade headers (Caddy) or only
		// the key (Traefik and nginx drop hop-by-hop headers).
		{"cross-site WebSocket", "GET", append([][2]string{evil, crossSite, {"X-Forwarded-Method", "GET"}}, ws...), 403},
		{"cross-site WebSocket, key only", "GET", [][2]string{evil, crossSite, {"X-Forwarded-Method", "GET"}, ws[2]}, 403},
		{"same-origin WebSocket", "GET", append([][2]string{{"Origin", "https://" + app}, {"Sec-Fetch-Site", "same-origin"}, {"X-Forwarded-Method", "GET"}, {"X-Forwarded-Host", app}}, ws...), 200},
		// Ambiguous forwarding headers, refused even same-origin.
		{"two forwarded methods", "GET", [][2]string{{"X-Forwarded-Method", "GET"}, {"X-Forwarded-Method", "GET"}}, 403},
		{"method list", "GET", [][2]string{{"X-Forwarded-Method", "GET, POST"}}, 403},
		{"empty method", "GET", [][2]string{{"X-Forwarded-Method", ""}}, 403},
		{"method with a space", "GET", [][2]string{{"X-Forwarded-Method", "GE T"}}, 403},
		{"two forwarded hosts", "GET", [][2]string{{"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app}, {"X-Forwarded-Host", "evil.example"}}, 403},
		{"empty forwarded host", "GET", [][2]string{{"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", ""}}, 403},
		{"forwarded host list", "GET", [][2]string{{"X-Forwarded-Method", "POST"}, {"X-Forwarded-Host", app + ", evil.example"}}, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := g.Stats().Refusals[gateway.ReasonCrossOrigin]
			resp := do(t, tc.method, srv.URL+gateway.VerifyPath, "tok-ann", tc.raw)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			user := resp.Header.Get("Username")
			counted := g.Stats().Refusals[gateway.ReasonCrossOrigin] - before
			switch {
			case tc.want == 200 && (user != "ann" || counted != 0):
				t.Errorf("username %q, %d cross-origin refusals counted", user, counted)
			case tc.want == 403 && (user != "" || counted != 1):
				t.Errorf("username %q, %d cross-origin refusals counted, want 1", user, counted)
			}
		})
	}
	// Without a session, a cross-site POST is refused before the sign-in is
	// offered, as the proxy does.
	resp := do(t, "POST", srv.URL+gateway.VerifyPath, "", [][2]string{evil, crossSite})
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(gateway.SigninHeader) != "" {
		t.Errorf("no session: status %d, %s %q", resp.StatusCode, gateway.SigninHeader, resp.Header.Get(gateway.SigninHeader))
	}
}
