package daemon

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/idrecon/idrecon/reconcile"
	"github.com/idrecon/idrecon/runtime/admin"
	"github.com/idrecon/idrecon/runtime/admin/console"
	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/durable"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/redact"
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
	// Name is this daemon in the reconciler election and in status
	// (default: the host name and process id).
	Name string
	// MaxStale bounds how long the daemon lets users in from a mirror it
	// cannot confirm holds etcd's state (default DefaultMaxStale; below
	// zero, no bound): a daemon cut off from etcd learns of no user
	// disabled and no access revoked through the others.
	MaxStale time.Duration
	// MaxTxnOps is the cluster's --max-txn-ops (default
	// etcdstate.DefaultMaxTxnOps, etcd's own): raised on both, a spec
	// change of more documents applies, and a group's members go in
	// fewer transactions.
	MaxTxnOps int

	// dialOptions are added to the etcd client's (tests intercept one
	// daemon's calls with them).
	dialOptions []grpc.DialOption
}

// DefaultMaxStale is EtcdConfig.MaxStale's default: long enough to ride
// out an election, a member's restart or a short outage of etcd, whose
// writes stop everywhere meanwhile; short beside the 40 minutes or so
// between Entra's provisioning cycles, which bound how soon a change made
// in Entra arrives at all.
const DefaultMaxStale = 5 * time.Minute

// Shown is the endpoints as idrecon prints every URL: an endpoint may
// carry user:password@ (the etcd client ignores it), which logs, errors
// and status must not show.
func (ec *EtcdConfig) Shown() string {
	shown := make([]string, len(ec.Endpoints))
	for i, e := range ec.Endpoints {
		shown[i] = redact.URL(e)
	}
	return strings.Join(shown, ",")
}

func replicaName(name string) string {
	if name != "" {
		return name
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", cmp.Or(host, "idrecon"), os.Getpid())
}

// etcdClient connects to ec's endpoints (the client connects lazily: an
// unreachable cluster shows as calls failing at their deadline).
func etcdClient(ec *EtcdConfig) (*clientv3.Client, error) {
	if len(ec.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	tc, err := etcdTLS(ec)
	if err != nil {
		return nil, err
	}
	ccfg := clientv3.Config{Endpoints: ec.Endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop(),
		DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second, DialOptions: ec.dialOptions, TLS: tc}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return cli, nil
}

// etcdTLS is the etcd client's TLS configuration, nil without one.
func etcdTLS(ec *EtcdConfig) (*tls.Config, error) {
	if (ec.CertFile == "") != (ec.KeyFile == "") {
		return nil, errors.New("etcd client TLS: --etcd-cert and --etcd-key go together: give the client certificate and its key, or neither")
	}
	if ec.CAFile == "" && ec.CertFile == "" {
		return nil, nil
	}
	tc, err := (transport.TLSInfo{CertFile: ec.CertFile, KeyFile: ec.KeyFile, TrustedCAFile: ec.CAFile}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("etcd client TLS: %w", err)
	}
	return tc, nil
}

// shared is what the daemons on one etcd share: the state, mirrored into
// the store, and the SAML sign-ins.
type shared struct {
	state      *etcdstate.State
	saml       *samletcd.Store
	pendingKey []byte
	// untaggedUntil: see saml.Options.UntaggedSessionsUntil.
	untaggedUntil time.Time

	cli       *clientv3.Client
	raw       []string // the endpoints, as the client dials them
	endpoints []string // as status shows them
	prefix    string
	timeout   time.Duration
	name      string // this replica, in the election and status
	log       *slog.Logger
	held      atomic.Pointer[leadership] // while this daemon leads
	// renewals counts the election lease's keep-alives etcd answered,
	// lapses the leases that ended while this daemon held them.
	renewals, lapses atomic.Uint64
	// mirror says whether the mirror follows etcd (see watchMirror).
	mirror mirrorHealth
	// maxStale is EtcdConfig.MaxStale; 0: no bound.
	maxStale time.Duration
}

// mirrorHealth is why this daemon's mirror cannot follow etcd (nil while
// it does), and a channel closed when that changes.
type mirrorHealth struct {
	mu      sync.Mutex
	err     error
	changed chan struct{}
}

// get returns a channel closed at the next change, and why the mirror is
// stuck (nil: it follows).
func (h *mirrorHealth) get() (<-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.changed == nil {
		h.changed = make(chan struct{})
	}
	return h.changed, h.err
}

// set records err (nil: the mirror follows); true if that changed.
func (h *mirrorHealth) set(err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if (h.err == nil) == (err == nil) {
		h.err = err // the newest reason
		return false
	}
	h.err = err
	if h.changed != nil {
		close(h.changed)
	}
	h.changed = make(chan struct{})
	return true
}

// stuck returns why the mirror cannot follow etcd, nil while it does.
func (sh *shared) stuck() error {
	_, err := sh.mirror.get()
	return err
}

// stale returns, once the mirror was last confirmed to hold etcd's state
// longer than maxStale ago, why it is not to be trusted; else nil.
func (sh *shared) stale() error {
	if sh.maxStale <= 0 {
		return nil
	}
	if age := time.Since(sh.state.Confirmed()); age > sh.maxStale {
		return fmt.Errorf("the mirror is not known to hold etcd's state: it was last confirmed %s ago, longer than the %s allowed (--etcd-max-stale); is this daemon cut off from etcd?",
			age.Round(time.Millisecond), sh.maxStale)
	}
	return nil
}

// untrusted returns why this daemon must not decide who gets in (its
// mirror is stuck, or stale), nil while it may. Stale is checked here at
// each decision, not only when watchMirror records it, so the bound holds
// to the request.
func (sh *shared) untrusted() error {
	if err := sh.stuck(); err != nil {
		return err
	}
	return sh.stale()
}

// mirrorCheck is how often watchMirror asks whether the mirror follows
// etcd: how soon a stuck daemon gives up the lead and refuses sign-ins.
const mirrorCheck = time.Second

func isStuck(err error) bool { return errors.Is(err, etcdstate.ErrStuck) }

// watchMirror asks the mirror, every mirrorCheck until ctx ends, whether
// it follows etcd (State.Stuck, which costs etcd nothing) and whether it
// was confirmed lately (see stale). A stuck mirror serves a state frozen
// at some revision: its leader cannot apply (and would keep the lead, its
// lease renewing, so no other daemon applies either), and a user disabled
// since would still be let in here. So would one on a daemon cut off from
// etcd while the others go on, for as long as the cut lasts: past
// maxStale, that daemon is treated as stuck. Shorter failures (a moment's
// lag, an election) change nothing: they pass, or end the lease by
// themselves.
func (sh *shared) watchMirror(ctx context.Context) error {
	for ctx.Err() == nil {
		why := sh.state.Stuck()
		if why == nil {
			why = sh.stale()
		}
		sh.recordMirror(why)
		sh.confirmIdle(ctx)
		sleep(ctx, mirrorCheck)
	}
	return nil
}

// confirmIdle confirms the mirror with a Barrier (one read of etcd) when
// nothing did for a quarter of maxStale: SCIM requests and readiness
// checks confirm it as they go, Gateway decisions do not.
func (sh *shared) confirmIdle(ctx context.Context) {
	if sh.maxStale > 0 && time.Since(sh.state.Confirmed()) >= sh.maxStale/4 {
		sh.state.Barrier(ctx) // bounded by the etcd timeout; its failure is stale's to report
	}
}

// checkMirror calls Barrier for the readiness check and records whether
// the mirror is stuck, so that what status says is what the daemon
// enforces.
func (sh *shared) checkMirror(ctx context.Context) error {
	err := sh.state.Barrier(ctx)
	if ctx.Err() != nil {
		return err
	}
	switch {
	case isStuck(err):
		sh.recordMirror(err)
	case err == nil:
		sh.recordMirror(nil)
	}
	return err
}

// recordMirror records why the mirror is stuck (nil: it follows), logging
// a change once.
func (sh *shared) recordMirror(stuck error) {
	if !sh.mirror.set(stuck) {
		return
	}
	if stuck != nil {
		sh.log.Error("the mirror cannot follow etcd: giving up the reconciler lead, refusing sign-ins and Gateway decisions until it does", "err", stuck)
	} else {
		sh.log.Info("the mirror follows etcd again: campaigning for the reconciler lead, serving sign-ins")
	}
}

// whileFollowing returns a context that ends with ctx or once the mirror is
// stuck.
func (sh *shared) whileFollowing(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		for {
			changed, err := sh.mirror.get()
			if err != nil {
				cancel()
				return
			}
			select {
			case <-changed:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, cancel
}

// waitFollowing returns once the mirror follows etcd; false if ctx ended
// first.
func (sh *shared) waitFollowing(ctx context.Context) bool {
	for {
		changed, err := sh.mirror.get()
		if err == nil {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return false
		}
	}
}

// leadership is this daemon's key in the reconciler election.
type leadership struct {
	key string
	rev int64
}

// fence tells etcdstate which key proves this daemon leads (see
// etcdstate.Options.Fence).
func (sh *shared) fence() (string, int64, bool) {
	l := sh.held.Load()
	if l == nil {
		return "", 0, false
	}
	return l.key, l.rev, true
}

// leading is 1 while this daemon leads the reconciler, for /metrics.
func (sh *shared) leading() float64 {
	if sh.held.Load() != nil {
		return 1
	}
	return 0
}

// openEtcdStore connects to etcd and loads the state into a fresh store
// whose Journal is etcd; the returned State's Run keeps it a mirror.
func openEtcdStore(ctx context.Context, ec *EtcdConfig, log *slog.Logger, onCommit func(memdb.Changes)) (*store.Store, *shared, func(), error) {
	cli, err := etcdClient(ec)
	if err != nil {
		return nil, nil, nil, err
	}
	sh := &shared{}
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: ec.Prefix, Timeout: ec.Timeout, MaxTxnOps: ec.MaxTxnOps,
		Logger: log.With("component", "etcd"), Fence: sh.fence})
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
		if ctx.Err() == nil && errors.Is(err, store.ErrUnavailable) {
			// The client says only that it ran out of time.
			tc, _ := etcdTLS(ec)
			if why := probeEtcd(ctx, ec.Endpoints, tc); why != "" {
				return nil, nil, nil, fmt.Errorf("load state from etcd %s: %w (%s)", ec.Shown(), err, why)
			}
		}
		return nil, nil, nil, fmt.Errorf("load state from etcd %s: %w", ec.Shown(), err)
	}
	log.Info("state loaded from etcd", "endpoints", ec.Shown(), "revision", stats.Revision, "users", stats.Users,
		"groups", stats.Groups, "memberships", stats.Memberships, "resources", stats.Resources, "elapsed", stats.Elapsed)
	prefix := ec.Prefix
	if prefix == "" {
		prefix = etcdstate.DefaultPrefix
	}
	timeout := cmp.Or(ec.Timeout, etcdstate.DefaultTimeout)
	sh.state, sh.saml = state, samletcd.New(cli, prefix, timeout, log.With("component", "saml-etcd"))
	sh.cli, sh.raw, sh.endpoints, sh.prefix, sh.timeout = cli, ec.Endpoints, strings.Split(ec.Shown(), ","), prefix, timeout
	sh.name, sh.log = replicaName(ec.Name), log.With("component", "etcd")
	if sh.maxStale = cmp.Or(ec.MaxStale, DefaultMaxStale); sh.maxStale < 0 {
		sh.maxStale = 0
	}
	if sh.pendingKey, err = sh.saml.PendingKey(ctx); err != nil {
		st.Close()
		cli.Close()
		return nil, nil, nil, fmt.Errorf("etcd: the pending sign-in key: %w", err)
	}
	if sh.untaggedUntil, err = sh.saml.UntaggedSessionsUntil(ctx); err != nil {
		st.Close()
		cli.Close()
		return nil, nil, nil, fmt.Errorf("etcd: the end of the sessions of older releases: %w", err)
	}
	return st, sh, func() {
		st.Close()
		if err := state.Close(context.Background()); err != nil {
			log.Warn("could not delete this daemon's etcd marker keys", "err", err)
		}
		cli.Close()
	}, nil
}

// leaderTTL is the lease of the reconcile leader: a leader that dies is
// replaced within it.
const leaderTTL = 5

// lead runs run while this daemon leads the reconciler election, until ctx
// ends: one daemon applies spec revisions, the others follow the state it
// writes. A leader whose lease lapses (etcd unreachable, the process
// paused) stops applying at once and campaigns again. request is the
// reconciler's RequestNumbered, for the requests of every daemon.
func (sh *shared) lead(ctx context.Context, run func(context.Context) error, request func(uint64)) error {
	for ctx.Err() == nil {
		// A daemon whose mirror is stuck does not campaign: it could not
		// apply, and it would keep a daemon that can from leading.
		if !sh.waitFollowing(ctx) {
			return nil
		}
		session, err := concurrency.NewSession(sh.cli, concurrency.WithTTL(leaderTTL), concurrency.WithContext(ctx))
		if err != nil {
			sh.log.Warn("reconcile election: no etcd session", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		stopCounting := sh.countRenewals(ctx, session.Lease())
		el := concurrency.NewElection(session, sh.prefix+"reconcile-leader")
		// A campaign ended by a stuck mirror withdraws its key, so that the
		// next daemon in line leads.
		cctx, stopCampaign := sh.whileFollowing(ctx)
		err = el.Campaign(cctx, sh.name)
		stopCampaign()
		if err != nil {
			stopCounting()
			session.Close()
			if ctx.Err() == nil && sh.stuck() == nil {
				sh.log.Warn("reconcile election", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		sh.log.Info("leading the reconciler", "replica", sh.name)
		sh.held.Store(&leadership{key: el.Key(), rev: el.Rev()})
		// The lead ends with the lease, or once the mirror is stuck.
		lctx, cancel := sh.whileFollowing(ctx)
		go func() {
			select {
			case <-session.Done():
			case <-lctx.Done():
			}
			cancel()
		}()
		followed := make(chan struct{})
		go func() { defer close(followed); sh.followRequests(lctx, request) }()
		err = run(lctx)
		sh.held.Store(nil)
		cancel()
		<-followed
		rctx, stop := context.WithTimeout(context.Background(), time.Second)
		el.Resign(rctx)
		stop()
		stopCounting()
		session.Close()
		if err != nil {
			return err
		}
		if why := sh.stuck(); ctx.Err() == nil && why != nil {
			sh.log.Warn("resigned the reconciler lead: the mirror cannot follow etcd", "replica", sh.name, "err", why)
		} else if ctx.Err() == nil {
			sh.lapses.Add(1)
			sh.log.Warn("lost the reconciler lease; campaigning again", "replica", sh.name)
		}
	}
	return nil
}

// countRenewals counts the keep-alives etcd answers for lease until the
// returned stop is called. It listens on the session's own keep-alive
// stream (the client sends one per lease however many listen), so it
// adds no requests.
func (sh *shared) countRenewals(ctx context.Context, lease clientv3.LeaseID) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		renewals, err := sh.cli.KeepAlive(ctx, lease)
		if err != nil {
			return
		}
		for range renewals {
			sh.renewals.Add(1)
		}
	}()
	return func() { cancel(); <-done }
}

// requestKey is where a daemon asked to reconcile (a webhook, `idrecon
// reconcile`, its folder watch) asks the leader to: behind a load balancer
// the request reaches any daemon, and only the leader's loop applies.
func (sh *shared) requestKey() string { return sh.prefix + "reconcile-request" }

// requestReconcile makes the leader reconcile now: this daemon's own loop
// when it leads, else through requestKey. reconcile is this daemon's
// reconciler's trigger.
func (sh *shared) requestReconcile(reconcile func()) {
	if sh.held.Load() != nil {
		reconcile()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sh.timeout)
	defer cancel()
	if _, err := sh.cli.Put(clientv3.WithRequireLeader(ctx), sh.requestKey(), sh.name); err != nil {
		// The leader's poll still converges, one interval later.
		sh.log.Warn("could not pass a reconcile request to the leader", "err", err)
	}
}

// request passes a numbered reconcile request to the leader (see
// forwarding.Request) and returns its number: the revision etcd stored it
// at, which orders it among the requests of every daemon.
func (sh *shared) request(ctx context.Context) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout)
	defer cancel()
	resp, err := sh.cli.Put(clientv3.WithRequireLeader(ctx), sh.requestKey(), sh.name)
	if err != nil {
		return 0, fmt.Errorf("pass the reconcile request to the leader: %w", err)
	}
	return uint64(resp.Header.Revision), nil
}

// followRequests hands each request written to requestKey to request, with
// its revision as its number, until ctx ends (the leader runs it while it
// leads). The newest request already there is handed over first: it may
// have been made while no daemon led, or while this one's watch was down.
func (sh *shared) followRequests(ctx context.Context, request func(uint64)) {
	for ctx.Err() == nil {
		resp, err := sh.cli.Get(clientv3.WithRequireLeader(ctx), sh.requestKey())
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		if len(resp.Kvs) > 0 {
			sh.answer(ctx, request, resp.Kvs[0].ModRevision)
		}
		// From the revision read on, so that no request falls between.
		for w := range sh.cli.Watch(clientv3.WithRequireLeader(ctx), sh.requestKey(), clientv3.WithRev(resp.Header.Revision+1)) {
			if n := len(w.Events); n > 0 {
				sh.answer(ctx, request, w.Events[n-1].Kv.ModRevision)
			}
		}
		sleep(ctx, time.Second)
	}
}

// answer hands request rev to the reconciler once this daemon's store holds
// every write made before it: a resume (the suspended flag, written just
// before its request) must have reached the reconciler when the reconcile
// that answers the request begins. Without that, the request still
// triggers a reconcile, but numbers none.
func (sh *shared) answer(ctx context.Context, request func(uint64), rev int64) {
	if err := sh.state.Barrier(ctx); err != nil {
		if ctx.Err() == nil {
			sh.log.Warn("reconcile request: the state did not catch up; reconciling without answering it", "revision", rev, "err", err)
		}
		request(0)
		return
	}
	request(uint64(rev))
}

// forwarding is the reconciler the admin API drives: its Trigger and
// Request reach the leader.
type forwarding struct {
	*reconcile.Reconciler
	trigger func()
	sh      *shared
}

func (f forwarding) Trigger() { f.trigger() }

// Request is admin.Config.Request: it passes the request through etcd even
// from the leader, so that its number is an etcd revision like every other
// daemon's. The status a daemon answers with is the leader's, shared
// (reconcile.Config.ShareStatus), and a number from its own Reconciler
// would not compare with it; that is also why this method hides
// Reconciler.Request. And even at the leader, a resume reaches the
// reconciler only once the mirror brings the flag back from etcd, which
// answer waits for.
func (f forwarding) Request(ctx context.Context) (uint64, error) { return f.sh.request(ctx) }

// leader returns the name of the daemon leading the reconciler, or "".
func (sh *shared) leader(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, sh.timeout)
	defer cancel()
	resp, err := sh.cli.Get(ctx, sh.prefix+"reconcile-leader/", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// status reports the shared state for GET /v1/status.
func (sh *shared) status(ctx context.Context) *admin.ReplicationStatus {
	return &admin.ReplicationStatus{Backend: "etcd", Endpoints: sh.endpoints, Revision: sh.state.Applied(),
		Replica: sh.name, Leader: sh.leader(ctx), Unreachable: sh.unreachable(ctx)}
}

// memberWait bounds how long status waits for one member's answer.
const memberWait = time.Second

// unreachable lists, as status shows them, the endpoints whose member does
// not answer: the cluster may go on without it, but one loss more can take
// its quorum, and nothing else says so while every write still succeeds.
func (sh *shared) unreachable(ctx context.Context) []string {
	down := make([]bool, len(sh.raw))
	var wg sync.WaitGroup
	for i, ep := range sh.raw {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, memberWait)
			defer cancel()
			_, err := sh.cli.Status(ctx, ep)
			down[i] = err != nil
		})
	}
	wg.Wait()
	var out []string
	for i, d := range down {
		if d {
			out = append(out, sh.endpoints[i])
		}
	}
	return out
}

// Migrate copies the state in a stopped daemon's data dir into etcd (an
// empty prefix), for daemons started with the same EtcdConfig.
func Migrate(ctx context.Context, dataDir string, ec *EtcdConfig) (etcdstate.Stats, error) {
	db, err := durable.Open(durable.Path(dataDir), durable.Options{})
	if err != nil {
		return etcdstate.Stats{}, fmt.Errorf("open %s: %w", dataDir, err)
	}
	defer db.Close()
	st, err := store.New(store.Options{})
	if err != nil {
		return etcdstate.Stats{}, err
	}
	defer st.Close()
	if _, err := db.LoadInto(st); err != nil {
		return etcdstate.Stats{}, fmt.Errorf("load %s: %w", dataDir, err)
	}
	cli, err := etcdClient(ec)
	if err != nil {
		return etcdstate.Stats{}, err
	}
	defer cli.Close()
	state, err := etcdstate.New(etcdstate.Options{Client: cli, Prefix: ec.Prefix, Timeout: ec.Timeout})
	if err != nil {
		return etcdstate.Stats{}, err
	}
	return state.Import(ctx, st.Read())
}

// RestoreToEtcd writes a backup (of a daemon in either mode: GET
// /v1/backup) into etcd under ec's prefix, which must be empty, for daemons
// started with --etcd: the backup is restored into a scratch data dir and
// migrated from there.
func RestoreToEtcd(ctx context.Context, backup io.Reader, ec *EtcdConfig) (etcdstate.Stats, error) {
	dir, err := os.MkdirTemp("", "idrecon-restore-")
	if err != nil {
		return etcdstate.Stats{}, err
	}
	defer os.RemoveAll(dir)
	if err := durable.Restore(backup, durable.Path(dir)); err != nil {
		return etcdstate.Stats{}, err
	}
	return Migrate(ctx, dir, ec)
}

// frozenAuthorizer refuses to decide while the mirror is stuck or stale
// (see untrusted): every session check then fails (the SAML pages send the
// user to sign in, which frozen answers).
type frozenAuthorizer struct {
	saml.Authorizer
	sh *shared
}

func (a frozenAuthorizer) Authorize(ctx context.Context, userName string) (saml.Decision, error) {
	if err := a.sh.untrusted(); err != nil {
		return saml.Decision{}, err
	}
	return a.Authorizer.Authorize(ctx, userName)
}

// frozenDecider refuses Gateway decisions while the mirror is stuck or
// stale: the Gateway answers "try again later" (503) rather than let in a
// user whose access changed since.
type frozenDecider struct {
	gateway.Decider
	sh *shared
}

func (d frozenDecider) Access(ctx context.Context, userName string) (gateway.Access, error) {
	if err := d.sh.untrusted(); err != nil {
		return gateway.Access{}, err
	}
	return d.Decider.Access(ctx, userName)
}

// signingIn reports whether p, with home the SAML base URL's path, starts
// or completes a sign-in (the console's handoff included).
func signingIn(p, home string) bool {
	switch p {
	case home + spec.SAMLPath + "/login", home + spec.SAMLPath + "/acs", home + console.HandoffPath:
		return true
	}
	return false
}

// frozen answers a sign-in while the mirror is stuck or stale: with 503 and
// Retry-After, so that a load balancer may try another daemon, and a page
// that says to try again rather than a failure that looks final.
func frozen(w http.ResponseWriter, log *slog.Logger, why error) {
	// Debug: watchMirror logged the cause once, and this comes per request.
	log.Debug("sign-in refused: the mirror is not to be trusted", "err", why)
	w.Header().Set("Retry-After", "30")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, "<!doctype html><title>Sign-in unavailable</title><h1>Sign-in is unavailable on this server</h1>"+
		"<p>This server cannot read the current access rules, so it lets no one in. Try again in a minute; the administrator can see why in idrecon status.</p>\n")
}
