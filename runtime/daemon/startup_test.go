package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store/durable"
)

// freeAddr returns a loopback address no one listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// slowSpec returns a spec folder whose every load, the first reconcile's
// included, reads the environment variable GW_SECRET, and a Getenv that,
// when it is read, calls reached (once) and then blocks until release is
// closed: a stand-in for a slow first reconcile such as a large git clone.
func slowSpec(t *testing.T, reached func(), release <-chan struct{}) (specDir string, getenv func(string) string) {
	t.Helper()
	specDir, _ = gatewaySpec(t, map[string]string{"gw.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Gateway\nmetadata:\n  name: app\nspec:\n" +
		"  upstream: http://127.0.0.1:1\n  pathPrefix: /app\n  sharedSecret:\n    header: X-Gateway-Secret\n    valueFrom: {env: GW_SECRET}\n"})
	var once sync.Once
	return specDir, func(k string) string {
		if k != "GW_SECRET" {
			return ""
		}
		once.Do(reached)
		<-release
		return "s3cret"
	}
}

// TestStopDuringFirstReconcile: a stop (SIGTERM) that arrives while the
// first reconcile runs ends Run without serving: Started, which tells
// systemd READY=1, is never called and "idrecon serving" never logged.
func TestStopDuringFirstReconcile(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	specDir, getenv := slowSpec(t, cancel, ctx.Done())
	logs := &logsink.Buffer{}
	started := make(chan struct{}, 1)
	cfg := Config{SpecDir: specDir, DataDir: t.TempDir(), Getenv: getenv,
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour,
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
		Started: func(string, string) { started <- struct{}{} }}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want nil or context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
	select {
	case <-started:
		t.Error("Started was called after the context was cancelled: systemd would hear READY=1 from a daemon shutting down")
	default:
	}
	if strings.Contains(logs.String(), "idrecon serving") {
		t.Errorf("logged serving after the context was cancelled:\n%s", logs)
	}
}

// TestStartFailuresAreClear: a daemon that cannot start says why, fails
// before it serves anything (Started is never called, so systemd never
// hears READY), fails fast, and leaves no listener open behind it.
func TestStartFailuresAreClear(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	held := t.TempDir()
	start(t, Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: held})

	tests := []struct {
		name   string
		cfg    func(c *Config)
		want   string
		wantIs error
		// slow makes the first reconcile last until the test gives up on
		// Run: a failure that is not one of the spec must come first.
		slow bool
	}{
		{name: "spec folder missing", cfg: func(c *Config) { c.SpecDir = filepath.Join(t.TempDir(), "missing") }, want: "spec folder"},
		{name: "spec folder is a file", cfg: func(c *Config) { c.SpecDir = notDir }, want: "spec folder"},
		{name: "port in use", cfg: func(c *Config) { c.Listen = busy.Addr().String() }, want: "address already in use"},
		{name: "admin port in use", cfg: func(c *Config) { c.AdminListen = busy.Addr().String() }, want: "address already in use"},
		{name: "port in use, slow first reconcile", cfg: func(c *Config) { c.Listen = busy.Addr().String() }, want: "address already in use", slow: true},
		{name: "admin port in use, slow first reconcile", cfg: func(c *Config) { c.AdminListen = busy.Addr().String() }, want: "address already in use", slow: true},
		{name: "data dir not creatable", cfg: func(c *Config) { c.DataDir = filepath.Join(notDir, "data") }, want: "data dir"},
		{name: "data dir held by another daemon", cfg: func(c *Config) { c.DataDir = held }, wantIs: durable.ErrLocked},
		// The etcd client says only that its calls ran out of time.
		{name: "etcd not listening", cfg: func(c *Config) {
			c.Etcd = &EtcdConfig{Endpoints: []string{"http://" + freeAddr(t)}, Timeout: time.Second}
		}, want: "connection refused"},
		{name: "etcd client certificate without its key", cfg: func(c *Config) {
			c.Etcd = &EtcdConfig{Endpoints: []string{"https://" + freeAddr(t)}, CertFile: notDir}
		}, want: "--etcd-cert and --etcd-key go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir(),
				Listen: freeAddr(t), AdminListen: freeAddr(t), InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if tt.slow {
				cfg.SpecDir, cfg.Getenv = slowSpec(t, func() {}, ctx.Done())
			}
			tt.cfg(&cfg)
			started := false
			cfg.Started = func(string, string) { started = true }
			err := Run(ctx, cfg)
			switch {
			case started:
				t.Errorf("the daemon served before it failed (%v)", err)
			case ctx.Err() != nil:
				t.Fatalf("Run did not fail fast: %v", err)
			case err == nil:
				t.Fatal("Run = nil, want an error")
			case tt.wantIs != nil && !errors.Is(err, tt.wantIs):
				t.Errorf("Run = %v, want %v", err, tt.wantIs)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("Run = %v, want it to say %q", err, tt.want)
			}
			for _, addr := range []string{cfg.Listen, cfg.AdminListen} {
				if addr == busy.Addr().String() {
					continue
				}
				ln, err := net.Listen("tcp", addr)
				if err != nil {
					t.Errorf("%s still held after Run failed: %v", addr, err)
					continue
				}
				ln.Close()
			}
		})
	}
}

// TestEtcdDataDirHeldByAnotherDaemon: with --etcd the state is not in the
// data dir, so nothing locked it, and a second daemon given the same one
// (two instances of a unit on one host) ran beside the first, both
// appending to and rotating one audit log and fetching into one git cache.
// It is refused at start, before it serves, saying why.
func TestEtcdDataDirHeldByAnotherDaemon(t *testing.T) {
	c := etcdtest.Start(t, 1)
	dataDir := t.TempDir()
	specDir := copyDir(t, "../../examples/entra")
	etcdCfg := func(name string) *EtcdConfig {
		return &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/", Name: name}
	}
	start(t, Config{SpecDir: specDir, DataDir: dataDir, Etcd: etcdCfg("first")})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := false
	err := Run(ctx, Config{SpecDir: specDir, DataDir: dataDir, Etcd: etcdCfg("second"),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour,
		Logger: slog.New(slog.DiscardHandler), Started: func(string, string) { started = true; cancel() }})
	switch {
	case started:
		t.Fatalf("a second daemon served on a data dir in use (Run = %v)", err)
	case err == nil || !strings.Contains(err.Error(), dataDir) || !strings.Contains(err.Error(), "another idrecon"):
		t.Fatalf("Run = %v, want it to say another idrecon uses %s", err, dataDir)
	}

	// Another data dir is fine.
	start(t, Config{SpecDir: specDir, DataDir: t.TempDir(), Etcd: etcdCfg("third")})
}

// TestStopWhileLoadingFromEtcd: a stop (SIGTERM) that arrives while the
// state is being loaded from etcd (an etcd that does not answer, a large
// state) ends Run at once, without serving and without an error, rather
// than once each etcd call reaches its timeout. Before, the load did not
// see the stop: with etcd unreachable, Run returned only at --etcd-timeout,
// with an error that made systemd call the stop a failure.
func TestStopWhileLoadingFromEtcd(t *testing.T) {
	// Nothing answers at the address once it is closed; a daemon that
	// started would fail there, not pass.
	dead := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the stop came during the start
	started := false
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{DataDir: t.TempDir(),
			Etcd:   &EtcdConfig{Endpoints: []string{"http://" + dead}, Prefix: "/idrecon-test/", Timeout: time.Hour},
			Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour,
			Logger: slog.New(slog.DiscardHandler), Started: func(string, string) { started = true }})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil: the daemon was asked to stop", err)
		}
		if started {
			t.Error("the daemon served after it was asked to stop")
		}
	case <-time.After(30 * time.Second): // far below the etcd timeout
		t.Fatal("Run did not return after its context was cancelled while it loaded the state from etcd")
	}
}
