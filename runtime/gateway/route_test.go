package gateway_test

import (
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// TestMappedPath: the path the application maps, which the daemon chooses a
// Gateway by. nginx (merge_slashes merges only for its own matching) and
// Traefik pass the path on as sent, and Tomcat drops ";parameters" and
// merges "//" before it maps the request.
func TestMappedPath(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/strict/x", "/strict/x"},
		{"//strict/x", "/strict/x"},
		{"///strict//x", "/strict/x"},
		{"/strict;x/y", "/strict/y"},
		{"/strict;jsessionid=1", "/strict"},
		{"/;/strict/x", "/strict/x"},
		{"/strict/", "/strict/"},
		{"/ssc/a;jsessionid=1", "/ssc/a"},
		{"/", "/"},
		{"/;x", "/"},
		{"", ""},
		{"strict;x", "strict;x"},
	} {
		if got := gateway.MappedPath(tc.in); got != tc.want {
			t.Errorf("MappedPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
