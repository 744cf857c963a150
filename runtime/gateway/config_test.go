package gateway_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/prometheus/client_golang/prometheus"
)

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name      string
		cfg       gateway.Config
		wantField string
	}{
		{"ftp upstream", gateway.Config{Upstream: "ftp://x"}, "upstream"},
		{"upstream without host", gateway.Config{Upstream: "http://"}, "upstream"},
		{"upstream with path", gateway.Config{Upstream: "http://ssc:8080/ssc"}, "upstream"},
		{"upstream with credentials", gateway.Config{Upstream: "http://u:p@ssc"}, "upstream"},
		{"relative prefix", gateway.Config{PathPrefix: "ssc"}, "pathPrefix"},
		{"prefix with dots", gateway.Config{PathPrefix: "/ssc/../x"}, "pathPrefix"},
		// Requests are matched with ";parameters" dropped (MappedPath), so
		// none would ever be under this prefix.
		{"prefix with path parameter", gateway.Config{PathPrefix: "/ssc;v=1"}, "pathPrefix"},
		{"prefix with a percent escape", gateway.Config{PathPrefix: "/a%20b"}, "pathPrefix"},
		{"prefix with empty path parameter", gateway.Config{PathPrefix: "/ssc/;"}, "pathPrefix"},
		{"header with space", gateway.Config{UserHeader: "user name"}, "userHeader"},
		{"header with colon", gateway.Config{RolesHeader: "x:y"}, "rolesHeader"},
		{"hop-by-hop header", gateway.Config{UserHeader: "Connection"}, "userHeader"},
		{"X-Forwarded-User is an identity header", gateway.Config{UserHeader: "X-Forwarded-User"}, ""},
		{"forwarding header", gateway.Config{UserHeader: "X-Forwarded-Host"}, "userHeader"},
		{"x-original header", gateway.Config{UserHeader: "X-Original-User"}, "userHeader"},
		{"same header twice", gateway.Config{UserHeader: "remote-user", RolesHeader: "Remote_User"}, "rolesHeader"},
		{"secret without header", gateway.Config{Upstream: "http://ssc", SharedSecret: &gateway.SharedSecret{Value: "x"}}, "sharedSecret.header"},
		{"secret without value", gateway.Config{Upstream: "http://ssc", SharedSecret: &gateway.SharedSecret{Header: "X-S"}}, "sharedSecret.value"},
		{"secret with newline", gateway.Config{Upstream: "http://ssc", SharedSecret: &gateway.SharedSecret{Header: "X-S", Value: "a\nb"}}, "sharedSecret.value"},
		{"secret without upstream", gateway.Config{SharedSecret: &gateway.SharedSecret{Header: "X-S", Value: "v"}}, "upstream"},
		{"client certificate for http", gateway.Config{Upstream: "http://ssc", ClientCertificate: &tls.Certificate{}}, "upstream"},
		{"TLS without upstream", gateway.Config{UpstreamCAs: []*x509.Certificate{{}}}, "upstream"},
		{"required role with comma", gateway.Config{RequiredRole: "a,b"}, "requiredRole"},
		{"negative timeout", gateway.Config{DialTimeout: -1}, "timeouts"},
		{"negative requests per user", gateway.Config{MaxRequestsPerUser: -1}, "maxRequestsPerUser"},
	}
	deps := gateway.Deps{Sessions: sessions, Decider: deciders}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := gateway.New(tc.cfg, deps)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, gateway.ErrConfig) || !strings.Contains(err.Error(), ": "+tc.wantField+": ") {
				t.Fatalf("err = %v, want ErrConfig naming %s", err, tc.wantField)
			}
		})
	}
	if _, err := gateway.New(gateway.Config{}, gateway.Deps{}); err == nil {
		t.Error("New without Deps succeeded")
	}
}

// TestUpstreamThatDoesNotParseHidesItsPassword: the error of an upstream
// that is no URL names why, not the URL, which the status and the console
// show: its password would be there whole.
func TestUpstreamThatDoesNotParseHidesItsPassword(t *testing.T) {
	// The second and third stop the parse at the password, which url.Parse
	// then quotes as a port.
	for _, upstream := range []string{"http://app:s3cr^t@ssc:8080", "http://app:s3cr3t/x@ssc", "http://app:s3cr3t#x@ssc"} {
		_, err := gateway.New(gateway.Config{Upstream: upstream}, gateway.Deps{Sessions: sessions, Decider: deciders})
		if !errors.Is(err, gateway.ErrConfig) || strings.Contains(err.Error(), "s3cr") {
			t.Errorf("%s: err = %v, want ErrConfig without the password", upstream, err)
		}
	}
}

// TestSecretNeverPrinted: a Config can be logged or dumped without its
// shared secret.
func TestSecretNeverPrinted(t *testing.T) {
	cfg := gateway.Config{Upstream: "http://ssc", SharedSecret: &gateway.SharedSecret{Header: "X-S", Value: "hunter2"}}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "secret", cfg.SharedSecret.Value)
	js, _ := json.Marshal(cfg)
	for _, out := range []string{fmt.Sprintf("%v %+v %#v %s", *cfg.SharedSecret, *cfg.SharedSecret, *cfg.SharedSecret, cfg.SharedSecret.Value), logged.String(), string(js)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("secret printed: %s", out)
		}
	}
	_, err := gateway.New(gateway.Config{Upstream: "ftp://x", SharedSecret: cfg.SharedSecret}, gateway.Deps{Sessions: sessions, Decider: deciders})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("err = %v", err)
	}
}

func TestMetrics(t *testing.T) {
	up, _ := echoUpstream(t)
	g, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	do(t, "GET", srv.URL+"/x", "tok-ann", nil)
	do(t, "GET", srv.URL+"/x", "", nil)
	do(t, "GET", srv.URL+gateway.VerifyPath, "tok-bob", nil)
	want := gateway.Stats{
		Requests: map[string]uint64{gateway.ModeProxy: 2, gateway.ModeVerify: 1},
		Refusals: map[string]uint64{gateway.ReasonNoSession: 1, gateway.ReasonNoRole: 1},
	}
	if got := g.Stats(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats() = %v, want %v", got, want)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(g)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
		if f.GetName() == "idrecon_gateway_upstream_duration_seconds" {
			if n := f.GetMetric()[0].GetHistogram().GetSampleCount(); n != 1 {
				t.Errorf("latency samples %d, want 1", n)
			}
		}
	}
	for _, name := range []string{"idrecon_gateway_requests_total", "idrecon_gateway_refusals_total",
		"idrecon_gateway_upstream_errors_total", "idrecon_gateway_upstream_duration_seconds"} {
		if !got[name] {
			t.Errorf("%s not gathered", name)
		}
	}
}
