package daemon

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/spec"
)

// TestMatchChoosesTheGatewayTheApplicationServes: with a Gateway for "/"
// and a stricter one for /strict, a path that the application maps under
// /strict ("//strict/x", "/strict;x/y": Tomcat merges slashes and drops
// path parameters) must be decided by the stricter one, in proxy mode (the
// request's path) and for /auth/verify (the original URI's path).
func TestMatchChoosesTheGatewayTheApplicationServes(t *testing.T) {
	strict, root := namedHandler("strict"), namedHandler("root")
	rs := []routed{{prefix: "/strict", h: strict}, {prefix: "/", h: root}}
	for _, uri := range []string{"/strict/x", "//strict/x", "///strict//x?q=1", "/strict;x/y", "/strict;jsessionid=1", "/;/strict/x"} {
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			t.Fatal(err)
		}
		if h := match(rs, u.Path); h != http.Handler(strict) {
			t.Errorf("%s is decided by the Gateway of /, not /strict", uri)
		}
	}
	for _, uri := range []string{"/strictly", "/other;strict/x", "/"} {
		if h := match(rs, uri); h != http.Handler(root) {
			t.Errorf("%s is not decided by the Gateway of /", uri)
		}
	}
}

// namedHandler is a comparable handler, told apart by its name.
type namedHandler string

func (namedHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// TestGatewayConfigCarriesTheDocument: each field of a Gateway document
// that the runtime takes reaches its Config.
func TestGatewayConfigCarriesTheDocument(t *testing.T) {
	doc := &spec.Gateway{Upstream: "http://127.0.0.1:8180", PathPrefix: "/ssc", UserHeader: "remote-user",
		RolesHeader: "x-roles", VersionsHeader: "x-versions", RequiredRole: "Developer", MaxRequestsPerUser: 7,
		Timeouts: spec.GatewayTimeouts{Dial: spec.Duration(2 * time.Second), ResponseHeader: spec.Duration(3 * time.Second)}}
	got, err := gatewayConfig(doc, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := gateway.Config{Upstream: doc.Upstream, PathPrefix: "/ssc", UserHeader: "remote-user", RolesHeader: "x-roles",
		VersionsHeader: "x-versions", RequiredRole: "Developer", MaxRequestsPerUser: 7,
		DialTimeout: 2 * time.Second, ResponseHeaderTimeout: 3 * time.Second}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("gatewayConfig = %+v\nwant %+v", got, want)
	}
}
