package saml

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// probe is a metadata host on loopback that counts the TCP connections it
// accepts, so a test can tell a refused fetch from one that was dialled.
type probe struct {
	*httptest.Server
	conns atomic.Int32
}

func newProbe(t *testing.T, h http.Handler, tlsOn bool, network string) *probe {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "tcp6" {
		addr = "[::1]:0"
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	p := &probe{Server: httptest.NewUnstartedServer(h)}
	p.Listener.Close()
	p.Listener = ln
	p.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			p.conns.Add(1)
		}
	}
	if tlsOn {
		p.StartTLS()
	} else {
		p.Start()
	}
	t.Cleanup(p.Close)
	return p
}

// TestMetadataURLRefused: idp.metadataURL is fetched only over https and
// only from public addresses, judged on the address actually dialled; the
// refusal is told to the administrator (Ready) and never on a public page.
func TestMetadataURLRefused(t *testing.T) {
	keys(t)
	md := defaultMetadata(t)
	serveMD := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(md) })
	tests := []struct {
		name string
		url  func(t *testing.T) (string, *probe)
		want string // in the Ready reason
	}{
		{"http", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, false, "tcp4")
			return p.URL + "/federationmetadata.xml", p
		}, "must be https"},
		{"loopback IPv4", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return p.URL, p
		}, "127.0.0.1 is a loopback address"},
		{"name resolving to loopback", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "localhost", 1), p
		}, "is a loopback address"},
		{"loopback IPv6", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp6")
			return p.URL, p
		}, "::1 is a loopback address"},
		{"IPv4-mapped loopback", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1), p
		}, "127.0.0.1 is a loopback address"},
		{"unspecified", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "0.0.0.0", 1), p
		}, "0.0.0.0 is an unspecified address"},
		{"cloud metadata address", func(*testing.T) (string, *probe) {
			return "https://169.254.169.254/metadata/instance", nil
		}, "169.254.169.254 is a link-local address"},
		{"IPv6 link-local", func(*testing.T) (string, *probe) {
			return "https://[fe80::1]/md", nil
		}, "fe80::1 is a link-local address"},
		{"RFC 1918", func(*testing.T) (string, *probe) {
			return "https://10.1.2.3/md", nil
		}, "10.1.2.3 is a private address"},
		{"unique local IPv6", func(*testing.T) (string, *probe) {
			return "https://[fd00::1]/md", nil
		}, "fd00::1 is a private address"},
		{"multicast", func(*testing.T) (string, *probe) {
			return "https://224.0.0.1/md", nil
		}, "224.0.0.1 is a multicast address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, p := tc.url(t)
			e := newEnv(t, func(sp *spec.SamlServiceProvider) {
				sp.IDP.MetadataXML = nil
				sp.IDP.MetadataURL = u
			})
			ok, why := e.srv.Ready()
			if ok || !strings.Contains(why, tc.want) {
				t.Fatalf("Ready() = %v, %q; want false mentioning %q", ok, why, tc.want)
			}
			if p != nil && p.conns.Load() != 0 {
				t.Fatalf("%d connections reached the refused host", p.conns.Load())
			}
			checkPublicPagesHide(t, e, why, u)
		})
	}
}

// checkPublicPagesHide asserts that the pages anyone can open say only that
// sign-on is unavailable, not why.
func checkPublicPagesHide(t *testing.T, e *env, details ...string) {
	t.Helper()
	for _, p := range []string{"/saml/login", "/saml/metadata", "/saml/acs", "/"} {
		r, b := e.get(p)
		if r.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b, "SAML single sign-on is unavailable") {
			t.Errorf("%s: status %d body %q, want 503 saying sign-on is unavailable", p, r.StatusCode, b)
		}
		for _, d := range details {
			if d != "" && strings.Contains(b, d) {
				t.Errorf("%s: public page shows %q: %q", p, d, b)
			}
		}
		if strings.Contains(b, "127.0.0.1") || strings.Contains(b, "metadata") {
			t.Errorf("%s: public page shows fetch details: %q", p, b)
		}
	}
}
