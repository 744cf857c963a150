package daemon

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/idrecon/idrecon/runtime/saml/samletcd"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

// EtcdConfig puts the state in etcd, shared by every daemon given the same
// endpoints and prefix, instead of the data dir.
type EtcdConfig struct {
	// Endpoints are the members' client URLs (http:// or https://).
	Endpoints []string
	// Prefix is the key prefix of the state (default etcdstate.DefaultPrefix).
	Prefix string
	// CAFile verifies the members' certificates; CertFile and KeyFile are
	// this daemon's client certificate, for clusters that require one.
	CAFile, CertFile, KeyFile string
	// Timeout bounds every call to etcd (default etcdstate.DefaultTimeout).
	Timeout time.Duration
}

// shared is what the daemons on one etcd share: the state, mirrored into
// the store, and the SAML sign-ins.
type shared struct {
	state      *etcdstate.State
	saml       *samletcd.Store
	pendingKey []byte
}

// openEtcdStore connects to etcd and loads the state into a fresh store
// whose Journal is etcd; the returned State's Run keeps it a mirror.
func openEtcdStore(ctx context.Context, ec *EtcdConfig, log *slog.Logger, onCommit func(memdb.Changes)) (*store.Store, *shared, func(), error) {
	if len(ec.Endpoints) == 0 {
		return nil, nil, nil, errors.New("etcd: no endpoints")
	}
	ccfg := clientv3.Config{Endpoints: ec.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second}
	if ec.CAFile != "" || ec.CertFile != "" {
		tc, err := (transport.TLSInfo{CertFile: ec.CertFile, KeyFile: ec.KeyFile, TrustedCAFile: ec.CAFile}).ClientConfig()
		if err != nil {
			return nil, nil, nil, fmt.Errorf("etcd client TLS: %w", err)
		}
		ccfg.TLS = tc
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("etcd: %w", err)
	}
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: ec.Prefix, Timeout: ec.Timeout, Logger: log.With("component", "etcd")})
	if err != nil {
		cli.Close()
		return nil, nil, nil, err
	}
	// Batches stay well inside etcd's 128 operations per transaction.
	st, err := store.New(store.Options{Journal: state, CatchUp: state.CatchUp, OnCommit: onCommit, MaxBatch: 16})
	if err != nil {
		cli.Close()
		return nil, nil, nil, err
	}
	stats, err := state.Load(ctx, st)
	if err != nil {
		st.Close()
		cli.Close()
		return nil, nil, nil, fmt.Errorf("load state from etcd %v: %w", ec.Endpoints, err)
	}
	log.Info("state loaded from etcd", "endpoints", ec.Endpoints, "revision", stats.Revision, "users", stats.Users,
		"groups", stats.Groups, "memberships", stats.Memberships, "resources", stats.Resources, "elapsed", stats.Elapsed)
	prefix := ec.Prefix
	if prefix == "" {
		prefix = etcdstate.DefaultPrefix
	}
	timeout := cmp.Or(ec.Timeout, etcdstate.DefaultTimeout)
	sh := &shared{state: state, saml: samletcd.New(cli, prefix, timeout, log.With("component", "saml-etcd"))}
	if sh.pendingKey, err = sh.saml.PendingKey(ctx); err != nil {
		st.Close()
		cli.Close()
		return nil, nil, nil, fmt.Errorf("etcd: the pending sign-in key: %w", err)
	}
	return st, sh, func() { st.Close(); cli.Close() }, nil
}
