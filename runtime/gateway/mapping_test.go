package gateway_test

import (
	"net/http"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestProxyEncodedSeparatorsAsTheApplicationMaps: Tomcat drops ";parameters"
// at the semicolons sent as such and decodes the path afterwards, so
// "/ssc%3Bx/secret" is the path "/ssc;x/secret" to it, whose first segment
// is not "ssc": outside the /ssc application (in ROOT, or whatever another
// Gateway guards). Go decodes "%3B" before the Gateway sees the path, so
// only the escaped path tells. The same goes for "%2F", which Tomcat keeps
// inside its segment or refuses.
func TestProxyEncodedSeparatorsAsTheApplicationMaps(t *testing.T) {
	up, hits := echoUpstream(t)
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL, PathPrefix: "/ssc"}, gateway.Deps{})
	for _, path := range []string{"/ssc%3Bx/secret", "/ssc%3bx", "/ssc%2Fx/secret", "//ssc%3B/x"} {
		t.Run(path, func(t *testing.T) {
			before := hits.Load()
			resp := getAsAnn(t, srv.URL, path)
			if resp.StatusCode != http.StatusNotFound || hits.Load() != before {
				t.Errorf("status %d, forwarded %d times; want 404, never", resp.StatusCode, hits.Load()-before)
			}
		})
	}
	// Escapes the application decodes into the same segments still pass,
	// and so does an escaped ';' below the prefix.
	for _, path := range []string{"/ss%63/x", "/ssc/a%3Bb", "/ssc;jsessionid=1/x%2Fy"} {
		t.Run(path, func(t *testing.T) {
			before := hits.Load()
			resp := getAsAnn(t, srv.URL, path)
			if resp.StatusCode != http.StatusOK || hits.Load()-before != 1 {
				t.Errorf("status %d, forwarded %d times; want 200, once", resp.StatusCode, hits.Load()-before)
			}
		})
	}
}

// TestProxyReservedEncoded: a reserved path spelled with escapes stays
// reserved.
func TestProxyReservedEncoded(t *testing.T) {
	up, hits := echoUpstream(t)
	_, root := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	for _, path := range []string{"/sa%6Dl/login", "/%73aml;x/login", "/metrics%3Bx"} {
		t.Run(path, func(t *testing.T) {
			before := hits.Load()
			resp := getAsAnn(t, root.URL, path)
			if resp.StatusCode != http.StatusNotFound || hits.Load() != before {
				t.Errorf("status %d, forwarded %d times; want 404, never", resp.StatusCode, hits.Load()-before)
			}
		})
	}
}
