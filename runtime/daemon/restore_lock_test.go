package daemon

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store/durable"
)

// TestEtcdDataDirHeldAgainstRestore: a daemon with --etcd keeps no state
// file, so nothing stopped `idrecon restore --data-dir` into its data dir
// while it ran: the restore reported success, the daemons went on serving
// etcd's state, and the file was left for the next start without --etcd to
// serve as the state. The daemon holds the data dir's restore lock
// (shared) for its life, so such a restore is refused and writes nothing,
// and a daemon does not start on a data dir a restore is writing.
func TestEtcdDataDirHeldAgainstRestore(t *testing.T) {
	c := etcdtest.Start(t, 1)
	dataDir := t.TempDir()
	specDir := copyDir(t, "../../examples/entra")
	etcdCfg := func(name string) *EtcdConfig {
		return &EtcdConfig{Endpoints: c.Endpoints, Prefix: "/idrecon-test/", Name: name}
	}
	d := start(t, Config{SpecDir: specDir, DataDir: dataDir, Etcd: etcdCfg("running")})
	eventually(t, "the daemon ready", func() bool {
		code, _ := d.call(t, "GET", d.admin+"/readyz", "", nil)
		return code == 200
	})
	provision(t, d, "alice@contoso.com")
	code, backup := d.call(t, "GET", d.admin+"/v1/backup", adminTok, nil)
	if code != 200 {
		t.Fatalf("backup: %d %s", code, backup)
	}

	err := durable.Restore(bytes.NewReader(backup), durable.Path(dataDir))
	if !errors.Is(err, durable.ErrLocked) {
		t.Errorf("restore into a running --etcd daemon's data dir = %v, want %v", err, durable.ErrLocked)
	}
	if _, err := os.Stat(durable.Path(dataDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused restore left %s: %v", durable.Path(dataDir), err)
	}

	// Stopped, the daemon holds nothing.
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	if err := durable.Restore(bytes.NewReader(backup), durable.Path(dataDir)); err != nil {
		t.Fatalf("restore once the daemon stopped: %v", err)
	}
	if err := os.Remove(durable.Path(dataDir)); err != nil {
		t.Fatal(err)
	}

	// A restore holds the data dir exclusively from start to end (the
	// test stands in for one): a daemon does not start beside it.
	dir, err := os.Open(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	if err := syscall.Flock(int(dir.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	started := false
	err = Run(ctx, Config{SpecDir: specDir, DataDir: dataDir, Etcd: etcdCfg("during-restore"),
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", InsecureHTTP: true, AdminToken: adminTok, Interval: time.Hour,
		Logger: slog.New(slog.DiscardHandler), Started: func(string, string) { started = true; cancel() }})
	switch {
	case started:
		t.Fatalf("a daemon served on a data dir a restore holds (Run = %v)", err)
	case err == nil || !strings.Contains(err.Error(), dataDir) || !strings.Contains(err.Error(), "restore"):
		t.Fatalf("Run = %v, want it to say a restore holds %s", err, dataDir)
	}
}
