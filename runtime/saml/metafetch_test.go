package saml

import (
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	// httptest's TLS servers share one certificate.
	roots := x509.NewCertPool()
	certSrc := httptest.NewTLSServer(nil)
	roots.AddCert(certSrc.Certificate())
	certSrc.Close()
	private := func(sp *spec.SamlServiceProvider) { sp.IDP.AllowPrivateMetadataHost = true }
	insecure := func(sp *spec.SamlServiceProvider) { sp.IDP.AllowInsecureMetadataURL = true }
	redirectTo := func(t *testing.T, target string) (string, *probe) {
		t.Helper()
		p := newProbe(t, http.RedirectHandler(target, http.StatusFound), true, "tcp4")
		return p.URL, nil
	}
	tests := []struct {
		name string
		// url returns the metadataURL and, when refused, the server that
		// must not have been reached.
		url  func(t *testing.T) (string, *probe)
		mods []func(*spec.SamlServiceProvider)
		want string // in the Ready reason; "" = fetched and ready
	}{
		{"loopback, allowPrivateMetadataHost", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return p.URL, p
		}, mods(private), ""},
		{"http, both allowed", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, false, "tcp4")
			return p.URL, p
		}, mods(private, insecure), ""},
		{"http loopback, allowInsecureMetadataURL only", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, false, "tcp4")
			return p.URL, p
		}, mods(insecure), "127.0.0.1 is a loopback address"},
		{"cloud metadata address, allowPrivateMetadataHost", func(*testing.T) (string, *probe) {
			return "https://169.254.169.254/metadata/instance", nil
		}, mods(private), "169.254.169.254 is a link-local address"},
		{"redirect to the cloud metadata address", func(t *testing.T) (string, *probe) {
			return redirectTo(t, "https://169.254.169.254/latest/meta-data/")
		}, mods(private), "169.254.169.254 is a link-local address"},
		{"redirect https to http", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, false, "tcp4")
			u, _ := redirectTo(t, p.URL)
			return u, p
		}, mods(private), "must be https"},
		{"redirect to ftp", func(t *testing.T) (string, *probe) {
			return redirectTo(t, "ftp://idp.example/md")
		}, mods(private, insecure), "is not an http(s) URL"},
		{"redirect loop", func(t *testing.T) (string, *probe) {
			p := newProbe(t, nil, true, "tcp4")
			p.Config.Handler = http.RedirectHandler(p.URL+"/again", http.StatusFound)
			return p.URL, nil
		}, mods(private), "more than 3 redirects"},
		{"http", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, false, "tcp4")
			return p.URL + "/federationmetadata.xml", p
		}, nil, "must be https"},
		{"loopback IPv4", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return p.URL, p
		}, nil, "127.0.0.1 is a loopback address"},
		{"name resolving to loopback", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "localhost", 1), p
		}, nil, "is a loopback address"},
		{"loopback IPv6", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp6")
			return p.URL, p
		}, nil, "::1 is a loopback address"},
		{"IPv4-mapped loopback", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "[::ffff:127.0.0.1]", 1), p
		}, nil, "127.0.0.1 is a loopback address"},
		{"unspecified", func(t *testing.T) (string, *probe) {
			p := newProbe(t, serveMD, true, "tcp4")
			return strings.Replace(p.URL, "127.0.0.1", "0.0.0.0", 1), p
		}, nil, "0.0.0.0 is an unspecified address"},
		{"cloud metadata address", func(*testing.T) (string, *probe) {
			return "https://169.254.169.254/metadata/instance", nil
		}, nil, "169.254.169.254 is a link-local address"},
		{"IPv6 link-local", func(*testing.T) (string, *probe) {
			return "https://[fe80::1]/md", nil
		}, nil, "fe80::1 is a link-local address"},
		{"RFC 1918", func(*testing.T) (string, *probe) {
			return "https://10.1.2.3/md", nil
		}, nil, "10.1.2.3 is a private address"},
		{"unique local IPv6", func(*testing.T) (string, *probe) {
			return "https://[fd00::1]/md", nil
		}, nil, "fd00::1 is a private address"},
		{"multicast", func(*testing.T) (string, *probe) {
			return "https://224.0.0.1/md", nil
		}, nil, "224.0.0.1 is a multicast address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, p := tc.url(t)
			e := newEnv(t, append([]func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) {
				sp.IDP.MetadataXML = nil
				sp.IDP.MetadataURL = u
			}}, tc.mods...)...)
			e.srv.metadataRoots = roots
			ok, why := e.srv.Ready()
			if tc.want == "" {
				if !ok {
					t.Fatalf("Ready() = false, %q; want the metadata fetched", why)
				}
				return
			}
			if ok || !strings.Contains(why, tc.want) || !strings.Contains(why, ErrMetadataURLRefused.Error()) {
				t.Fatalf("Ready() = %v, %q; want false, refused, mentioning %q", ok, why, tc.want)
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

func mods(m ...func(*spec.SamlServiceProvider)) []func(*spec.SamlServiceProvider) { return m }

func TestFetchPolicyAddresses(t *testing.T) {
	tests := []struct {
		addr          string
		strict, loose string // refusal in the reason, "" = allowed; loose = allowPrivateMetadataHost
	}{
		{"20.190.128.1", "", ""},
		{"2603:1006:2000::1", "", ""},
		{"64:ff9b::1433:8001", "", ""}, // NAT64 of 20.51.128.1
		{"127.0.0.53", "loopback", ""},
		{"::1", "loopback", ""},
		{"::ffff:10.0.0.1", "private", ""},
		{"172.16.0.1", "private", ""},
		{"192.168.1.1", "private", ""},
		{"fc00::1", "private", ""},
		{"100.64.0.1", "non-public", ""},
		{"64:ff9b::7f00:1", "loopback", ""}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::1", "non-public", ""},
		{"192.0.2.1", "non-public", ""},
		{"0.0.0.0", "unspecified", "unspecified"},
		{"0.1.2.3", "unspecified", "unspecified"},
		{"::", "unspecified", "unspecified"},
		{"169.254.169.254", "link-local", "link-local"},
		{"fe80::a9fe:a9fe", "link-local", "link-local"},
		{"64:ff9b::a9fe:a9fe", "link-local", "link-local"}, // NAT64 of 169.254.169.254
		{"239.1.1.1", "multicast", "multicast"},
		{"ff02::1", "multicast", "multicast"},
		{"255.255.255.255", "multicast", "multicast"},
	}
	for _, tc := range tests {
		a := netip.MustParseAddr(tc.addr)
		for _, c := range []struct {
			p    fetchPolicy
			want string
		}{{fetchPolicy{}, tc.strict}, {fetchPolicy{allowPrivate: true}, tc.loose}} {
			err := c.p.checkAddr(a)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s %+v: refused: %v", tc.addr, c.p, err)
			case c.want != "" && (!errors.Is(err, ErrMetadataURLRefused) || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%s %+v: err = %v, want refused as %s", tc.addr, c.p, err, c.want)
			}
		}
	}
}

// TestMetadataURLSecretsHidden: a metadataURL may carry a token in its
// query or userinfo (some IdPs and proxies take one there); why a fetch
// failed reaches status and the log, and must not carry it.
func TestMetadataURLSecretsHidden(t *testing.T) {
	keys(t)
	closed := newProbe(t, nil, true, "tcp4")
	closedURL := closed.URL
	closed.Close()
	private := func(sp *spec.SamlServiceProvider) { sp.IDP.AllowPrivateMetadataHost = true }
	tests := []struct {
		name string
		url  string
		mods []func(*spec.SamlServiceProvider)
	}{
		{"refused for http", "http://idp.example/md?token=S3CRET-T0KEN", nil},
		{"refused for its user", "https://S3CRET-T0KEN@idp.example/md", nil},
		{"connection refused", closedURL + "/md?access_token=S3CRET-T0KEN", mods(private)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, append([]func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) {
				sp.IDP.MetadataXML = nil
				sp.IDP.MetadataURL = tc.url
			}}, tc.mods...)...)
			ok, why := e.srv.Ready()
			if ok || why == "" {
				t.Fatalf("Ready() = %v, %q; want not ready", ok, why)
			}
			if strings.Contains(why, "S3CRET-T0KEN") {
				t.Fatalf("the reason shows the URL's secret: %q", why)
			}
		})
	}
}
