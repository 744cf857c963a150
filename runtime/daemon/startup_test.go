package daemon

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	}{
		{name: "spec folder missing", cfg: func(c *Config) { c.SpecDir = filepath.Join(t.TempDir(), "missing") }, want: "spec folder"},
		{name: "spec folder is a file", cfg: func(c *Config) { c.SpecDir = notDir }, want: "spec folder"},
		{name: "port in use", cfg: func(c *Config) { c.Listen = busy.Addr().String() }, want: "address already in use"},
		{name: "admin port in use", cfg: func(c *Config) { c.AdminListen = busy.Addr().String() }, want: "address already in use"},
		{name: "data dir not creatable", cfg: func(c *Config) { c.DataDir = filepath.Join(notDir, "data") }, want: "data dir"},
		{name: "data dir held by another daemon", cfg: func(c *Config) { c.DataDir = held }, wantIs: durable.ErrLocked},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{SpecDir: copyDir(t, "../../examples/entra"), DataDir: t.TempDir(),
				Listen: freeAddr(t), AdminListen: freeAddr(t), InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour}
			tt.cfg(&cfg)
			started := false
			cfg.Started = func(string, string) { started = true }
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
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
