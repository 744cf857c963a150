package scim

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/internal/logsink"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
	"github.com/idrecon/idrecon/spec"
)

// newEnvOn is newEnv on a store the test made (with a journal), serving
// with opts; cfg, when not nil, is written first.
func newEnvOn(t *testing.T, st *store.Store, cfg *spec.ScimProvisioning, opts Options) *env {
	t.Helper()
	e := &env{t: t, st: st, logs: &logsink.Buffer{}, base: spec.DefaultScimBasePath}
	if cfg != nil {
		e.setConfig(cfg)
	}
	opts.Logger = slog.New(slog.NewJSONHandler(e.logs, nil))
	opts.Audit = &e.audit
	e.srv = httptest.NewServer(NewServer(st, opts))
	t.Cleanup(e.srv.Close)
	return e
}

// TestWorkEmailsAfterReload: the work email index a store loads from its
// state file finds every work email, as the one its writes built did.
func TestWorkEmailsAfterReload(t *testing.T) {
	for _, c := range workEmailCases {
		t.Run(c.name, func(t *testing.T) {
			path := durable.Path(t.TempDir())
			open := func() (*store.Store, func()) {
				db, err := durable.Open(path, durable.Options{})
				if err != nil {
					t.Fatal(err)
				}
				st, err := store.New(store.Options{Journal: db})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.LoadInto(st); err != nil {
					t.Fatal(err)
				}
				return st, func() { st.Close(); db.Close() }
			}
			st, closeFirst := open()
			e := newEnvOn(t, st, c.config(), Options{})
			ids := c.run(t, e)
			c.check(t, e, ids)
			e.srv.Close()
			closeFirst()

			st, closeSecond := open()
			defer closeSecond()
			c.check(t, newEnvOn(t, st, nil, Options{}), ids)
		})
	}
}

// etcdReplica is a daemon's store on a shared etcd state, with its mirror
// running and its SCIM server passing the mirror's barrier.
func etcdReplica(t *testing.T, state *etcdstate.State, cfg *spec.ScimProvisioning) *env {
	t.Helper()
	st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := state.Load(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- state.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("mirror: %v", err)
		}
		st.Close()
	})
	return newEnvOn(t, st, cfg, Options{Barrier: state.Barrier})
}

// TestWorkEmailsThroughEtcd: a replica that mirrors another's writes, and
// one that loads them later, find every work email as the writer does.
func TestWorkEmailsThroughEtcd(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	replica := func(t *testing.T, prefix string, cfg *spec.ScimProvisioning) *env {
		state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		return etcdReplica(t, state, cfg)
	}
	for i, c := range workEmailCases {
		t.Run(c.name, func(t *testing.T) {
			prefix := fmt.Sprintf("/workemail/%d/", i)
			writer := replica(t, prefix, c.config())
			mirror := replica(t, prefix, nil)
			ids := c.run(t, writer)
			c.check(t, writer, ids)
			c.check(t, mirror, ids)
			c.check(t, replica(t, prefix, nil), ids)
		})
	}
}
