package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/idrecon/idrecon/spec/redact"
)

// probeEtcd says why the members at endpoints cannot be reached, when the
// etcd client could only say that its calls ran out of time: it connects
// to each as the client would (TCP, then TLS for an https:// one with tc)
// and returns the first thing that failed, or "" when every member
// answered. The client's gRPC connection hides the cause, which etcd's own
// log has (a refused client certificate, a TLS port asked in plain text).
func probeEtcd(ctx context.Context, endpoints []string, tc *tls.Config) string {
	var why []string
	for _, ep := range endpoints {
		if err := probeMember(ctx, ep, tc); err != nil {
			why = append(why, fmt.Sprintf("%s: %v", redact.URL(ep), err))
		}
	}
	return strings.Join(why, "; ")
}

// probeWait bounds each step of a probe: a member that answers at all
// answers within it.
const probeWait = 2 * time.Second

func probeMember(ctx context.Context, endpoint string, tc *tls.Config) error {
	scheme, host := "http", endpoint
	if u, err := url.Parse(endpoint); err == nil && u.Host != "" {
		scheme, host = u.Scheme, u.Host
	}
	d := net.Dialer{Timeout: probeWait}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	defer conn.Close()
	if scheme != "https" {
		// A member that serves TLS only closes a plain connection: ask it
		// for a TLS handshake, which needs no certificate of ours to begin
		// (nor is what it presents trusted for anything: only whether it
		// speaks TLS is asked).
		if speaksTLS(ctx, host) {
			return errors.New("it serves TLS: use an https:// endpoint (and --etcd-ca to verify it)")
		}
		return nil
	}
	cfg := &tls.Config{}
	if tc != nil {
		cfg = tc.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(host)
	}
	tlsConn := tls.Client(conn, cfg)
	hctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	if err := tlsConn.HandshakeContext(hctx); err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	// With TLS 1.3 a server refuses the client's certificate after the
	// client finished its handshake: the alert comes with the first read.
	// A member that accepts it waits for the client to speak.
	tlsConn.SetReadDeadline(time.Now().Add(probeWait / 2))
	if _, err := tlsConn.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("TLS: %w", err)
	}
	return nil
}

// speaksTLS reports whether the server at host completes a TLS handshake.
func speaksTLS(ctx context.Context, host string) bool {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: probeWait}, Config: &tls.Config{InsecureSkipVerify: true}}
	hctx, cancel := context.WithTimeout(ctx, probeWait)
	defer cancel()
	conn, err := d.DialContext(hctx, "tcp", host)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}
