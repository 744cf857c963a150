package gateway_test

import (
	"bufio"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// spellings returns n spellings of name that CGI, PHP, WSGI and nginx with
// underscores_in_headers all read as name: each letter upper or lower case
// and each '-' a '-' or '_', chosen by the bits of i.
func spellings(name string, n int) []string {
	out := make([]string, 0, n)
	for i := range n {
		b := []byte(strings.ToLower(name))
		x := uint64(i)*0x9e3779b97f4a7c15 + 1 // spread the bits so every position varies
		for j, c := range b {
			bit := x>>(j%64)&1 == 1
			switch {
			case c == '-' && bit:
				b[j] = '_'
			case c >= 'a' && c <= 'z' && bit:
				b[j] = c - 'a' + 'A'
			}
		}
		out = append(out, string(b))
	}
	return out
}

// TestManyHeaderSpellings: hundreds of client spellings of the identity
// and forwarding headers, repeated, next to a large cookie, still leave the
// upstream exactly the values idrecon set. X_Remote_User goes even with the
// default user header: nginx with underscores_in_headers and CGI servers
// read it as X-Remote-User, which an application once behind Apache or
// another front door may still trust.
func TestManyHeaderSpellings(t *testing.T) {
	for _, userHeader := range []string{"username", "X-Remote-User", "Remote_User"} {
		t.Run(userHeader, func(t *testing.T) {
			up, _ := echoUpstream(t)
			_, srv := newFrontDoor(t, spoofConfig(up.URL, userHeader), gateway.Deps{})
			raw := [][2]string{{"X_Remote_User", "admin"}, {"Cookie", "big=" + strings.Repeat("c", 16<<10)}}
			for _, name := range []string{userHeader, "X-Idrecon-Roles", "X-Gateway-Secret", "X-Remote-User",
				"Remote-User", "X-Forwarded-User", "X-Forwarded-For", "X-Real-IP", "X-Original-URI"} {
				for i, s := range spellings(name, 120) {
					raw = append(raw, [2]string{s, fmt.Sprintf("%s-%d", forged, i)}, [2]string{s, "admin"})
				}
			}
			got := decodeSeen(t, do(t, "GET", srv.URL+"/app", "tok-ann", raw))
			if v := valuesFolded(got.Header, userHeader); !slices.Equal(v, []string{"ann"}) {
				t.Errorf("upstream saw %s = %q, want [ann]", userHeader, v)
			}
			if v := valuesFolded(got.Header, "X-Gateway-Secret"); !slices.Equal(v, []string{"s3cret"}) {
				t.Errorf("upstream saw the secret header %d times", len(v))
			}
			for k, vs := range got.Header {
				if j := strings.Join(vs, ","); strings.Contains(j, forged) || strings.Contains(j, "admin") {
					t.Errorf("client value arrived in %s: %.80q", k, vs)
				}
			}
			if c := got.Header.Get("Cookie"); len(c) < 16<<10 {
				t.Errorf("the application's own cookie was lost (%d bytes)", len(c))
			}
		})
	}
}

// TestUpstreamResponseHeadersBounded: an upstream answering with megabytes
// of headers is a 502, not a response idrecon holds in memory whole and
// hands on (net/http's transport would read up to 10 MiB of them).
func TestUpstreamResponseHeadersBounded(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		want int
	}{
		{"64 KiB", 64 << 10, http.StatusOK},
		{"2 MiB", 2 << 20, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hits atomic.Int64
			up := rawUpstream(t, &hits, func(rw *bufio.ReadWriter, _ *http.Request) { writeBigHeaders(rw, tc.size) })
			g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
			resp := do(t, "GET", srv.URL+"/app", "tok-ann", nil)
			if resp.StatusCode != tc.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if hits.Load() != 1 {
				t.Fatalf("upstream hit %d times", hits.Load())
			}
			if tc.want == http.StatusBadGateway && g.Stats().UpstreamErrors != 1 {
				t.Errorf("upstream errors %d, want 1", g.Stats().UpstreamErrors)
			}
		})
	}
}

// writeBigHeaders writes a 200 response with about size bytes of headers.
func writeBigHeaders(rw *bufio.ReadWriter, size int) {
	rw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n")
	line := strings.Repeat("h", 1000)
	for i := 0; i*1024 < size; i++ {
		fmt.Fprintf(rw, "X-Big-%d: %s\r\n", i, line)
	}
	rw.WriteString("\r\nok")
	rw.Flush()
}
