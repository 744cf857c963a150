package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestProbeEtcdSaysWhy: what the etcd client reports as its calls running
// out of time has a cause an operator can act on, and the probe finds it
// as etcd's own log would: nothing listening, a TLS port asked in plain
// text, a member certificate not trusted, a client certificate refused. A
// member that answers is no cause.
func TestProbeEtcdSaysWhy(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	tlsOnly := httptest.NewTLSServer(http.NotFoundHandler())
	defer tlsOnly.Close()
	needsCert := httptest.NewUnstartedServer(http.NotFoundHandler())
	needsCert.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert}
	needsCert.StartTLS()
	defer needsCert.Close()
	trusted := func(s *httptest.Server) *tls.Config {
		pool := x509.NewCertPool()
		pool.AddCert(s.Certificate())
		return &tls.Config{RootCAs: pool}
	}
	host := func(s *httptest.Server) string {
		return strings.TrimPrefix(strings.TrimPrefix(s.URL, "https://"), "http://")
	}

	for _, tc := range []struct {
		name     string
		endpoint string
		tls      *tls.Config
		want     string // "" for no cause
	}{
		{"nothing listening", "http://" + closedAddr, nil, "connection refused"},
		{"a TLS port asked in plain text", "http://" + host(tlsOnly), nil, "it serves TLS: use an https:// endpoint"},
		{"an untrusted member", "https://" + host(tlsOnly), nil, "certificate signed by unknown authority"},
		{"a client certificate required", "https://" + host(needsCert), trusted(needsCert), "certificate required"},
		{"a plain member", "http://" + host(plain), nil, ""},
		{"a TLS member trusted", "https://" + host(tlsOnly), trusted(tlsOnly), ""},
		{"no scheme", host(plain), nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := probeEtcd(context.Background(), []string{tc.endpoint}, tc.tls)
			switch {
			case tc.want == "" && got != "":
				t.Errorf("probe says %q, want nothing", got)
			case tc.want != "" && (!strings.Contains(got, tc.want) || !strings.HasPrefix(got, tc.endpoint+": ")):
				t.Errorf("probe says %q, want the endpoint and %q", got, tc.want)
			}
		})
	}
}
