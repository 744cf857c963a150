package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store"
)

// create is a main transaction that creates key with val: it holds only
// while key does not exist, as a new userName's index key.
func create(key, val string) *mainTxn {
	return &mainTxn{
		cmps: []clientv3.Cmp{clientv3.Compare(clientv3.Version(key), "=", 0)},
		ops:  []clientv3.Op{clientv3.OpPut(key, val)},
	}
}

// TestTakeGroup: a group holds the batches that fit together, oldest
// first; the others stay queued, in order.
func TestTakeGroup(t *testing.T) {
	wide := func(key string, n int) *mainTxn {
		m := &mainTxn{}
		for i := range n {
			m.ops = append(m.ops, clientv3.OpPut(fmt.Sprintf("%s/%d", key, i), ""))
		}
		return m
	}
	requires := func(m *mainTxn, key string) *mainTxn {
		m.cmps = append(m.cmps, clientv3.Compare(clientv3.CreateRevision(key), ">", 0))
		return m
	}
	requiresRange := func(m *mainTxn, prefix string) *mainTxn {
		m.cmps = append(m.cmps, clientv3.Compare(clientv3.ModRevision(prefix), "<", 5).WithPrefix())
		return m
	}
	big := strings.Repeat("x", groupBytes/2)
	for _, tc := range []struct {
		name        string
		queue       []*mainTxn
		group, left []int // positions in queue
	}{
		{"independent batches go together", []*mainTxn{create("a", ""), create("b", ""), create("c", "")}, []int{0, 1, 2}, nil},
		{"one batch goes alone", []*mainTxn{create("a", "")}, []int{0}, nil},
		{"a batch comparing a key another writes waits", []*mainTxn{create("a", ""), requires(create("b", ""), "a"), create("c", "")}, []int{0, 2}, []int{1}},
		{"a batch writing a key another compares waits", []*mainTxn{requires(create("b", ""), "a"), create("a", ""), create("c", "")}, []int{0, 2}, []int{1}},
		// A member's delete compares its range (see batch.deleted); its
		// adds to different groups write different keys in it.
		{"a batch comparing a range another writes into waits", []*mainTxn{create("r/u/g", ""), requiresRange(create("b", ""), "r/u/"), create("r/u/h", "")}, []int{0, 2}, []int{1}},
		{"a batch writing into a range another compares waits", []*mainTxn{requiresRange(create("b", ""), "r/u/"), create("r/u/g", ""), create("r/u1/g", "")}, []int{0, 2}, []int{1}},
		{"the nested transactions and the widest fit MaxTxnOps", []*mainTxn{wide("w", DefaultMaxTxnOps-3), create("a", ""), create("b", "")}, []int{0, 1}, []int{2}},
		{"the oldest goes however wide", []*mainTxn{wide("w", DefaultMaxTxnOps-1), create("a", "")}, []int{0}, []int{1}},
		{"about groupBytes of keys and values", []*mainTxn{create("a", big), create("b", big), create("c", "")}, []int{0, 2}, []int{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &State{maxOps: DefaultMaxTxnOps, queue: append([]*mainTxn(nil), tc.queue...)}
			g := s.takeGroup()
			if got := positions(tc.queue, g); fmt.Sprint(got) != fmt.Sprint(tc.group) {
				t.Errorf("group %v, want %v", got, tc.group)
			}
			if got := positions(tc.queue, s.queue); fmt.Sprint(got) != fmt.Sprint(tc.left) {
				t.Errorf("left %v, want %v", got, tc.left)
			}
		})
	}
}

func positions(queue, of []*mainTxn) []int {
	var out []int
	for _, m := range of {
		for i, q := range queue {
			if q == m {
				out = append(out, i)
			}
		}
	}
	return out
}

// TestGroupDecidesEachBatch: in one etcd transaction, a batch whose compare
// fails fails alone; the others commit, at one revision.
func TestGroupDecidesEachBatch(t *testing.T) {
	cli := etcdtest.Start(t, 1).Client(t)
	s := newState(t, cli)
	if _, err := cli.Put(context.Background(), "/t/taken", "first"); err != nil {
		t.Fatal(err)
	}
	ts := []*mainTxn{create("/t/a", "1"), create("/t/taken", "second"), create("/t/c", "3")}
	s.commitTxns(ts)
	if ts[0].err != nil || ts[2].err != nil || ts[0].rev == 0 || ts[0].rev != ts[2].rev {
		t.Fatalf("the batches that hold: revisions %d, %d, errors %v, %v; want one revision, no error", ts[0].rev, ts[2].rev, ts[0].err, ts[2].err)
	}
	if !errors.Is(ts[1].err, store.ErrStale) {
		t.Errorf("the batch whose compare fails: %v; want store.ErrStale", ts[1].err)
	}
	want := map[string]string{"/t/a": "1", "/t/taken": "first", "/t/c": "3"}
	for k, v := range want {
		resp, err := cli.Get(context.Background(), k)
		if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != v {
			t.Errorf("%s: %v %v, want %q", k, resp, err, v)
		}
	}
}

// TestLostAnswer: an answer lost after etcd committed (the member died as
// it answered) is found committed by the markers, so nothing is applied
// twice nor reported failed; a transaction lost before it reached etcd is
// sent again. In a group, each batch is decided on its own.
func TestLostAnswer(t *testing.T) {
	c := etcdtest.Start(t, 1)
	for _, tc := range []struct {
		name      string
		committed bool // the lost transaction reached etcd
	}{
		{"after commit", true},
		{"before commit", false},
	} {
		for _, n := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s, %d batches", tc.name, n), func(t *testing.T) {
				var lose atomic.Int32
				lose.Store(1)
				cli := dropOneTxn(t, c.Endpoints, &lose, tc.committed)
				s := newState(t, cli)
				prefix := fmt.Sprintf("/t/%s/%d/", tc.name, n)
				ts := batches(t, cli, prefix, n)
				s.commitTxns(ts)
				if lose.Load() != 0 {
					t.Fatal("no transaction was lost")
				}
				for i, m := range ts {
					stale := i == 1
					if stale != errors.Is(m.err, store.ErrStale) || !stale && (m.err != nil || m.rev == 0) {
						t.Errorf("batch %d: revision %d, error %v; want stale %v", i, m.rev, m.err, stale)
					}
				}
				resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
				if err != nil {
					t.Fatal(err)
				}
				for _, kv := range resp.Kvs {
					if kv.Version != 1 {
						t.Errorf("%s written %d times", kv.Key, kv.Version)
					}
				}
			})
		}
	}
}

// TestLateCommitOfALostTransaction: a transaction whose answer was lost
// may still be on its way (a proposal not yet applied) when the markers
// are read, and commit after that read. Sent again, each batch then fails
// its compares on its own write: it committed, and must be reported so,
// not stale (the store would run it again: a new user told its userName is
// taken, a PATCH applied twice).
func TestLateCommitOfALostTransaction(t *testing.T) {
	c := etcdtest.Start(t, 1)
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprintf("%d batches", n), func(t *testing.T) {
			var lose atomic.Int32
			lose.Store(1)
			cli, landed := commitLate(t, c.Endpoints, &lose)
			s := newState(t, cli)
			prefix := fmt.Sprintf("/t/late/%d/", n)
			ts := batches(t, cli, prefix, n)
			s.commitTxns(ts)
			if !landed() {
				t.Fatal("the lost transaction did not reach etcd late")
			}
			resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix())
			if err != nil {
				t.Fatal(err)
			}
			written := map[string]int64{}
			for _, kv := range resp.Kvs {
				written[string(kv.Key)] = kv.ModRevision
				if kv.Version != 1 {
					t.Errorf("%s written %d times", kv.Key, kv.Version)
				}
			}
			for i, m := range ts {
				if i == 1 {
					if !errors.Is(m.err, store.ErrStale) {
						t.Errorf("batch %d: %v; want store.ErrStale", i, m.err)
					}
					continue
				}
				want := written[string(m.ops[0].KeyBytes())]
				if m.err != nil || m.rev != want {
					t.Errorf("batch %d: revision %d, error %v; want revision %d (it committed), no error", i, m.rev, m.err, want)
				}
			}
		})
	}
}

// TestNoMarkerReuseAfterUnknownOutcome: a batch failed as unavailable
// (its answer lost, its markers unreadable) may still commit later and
// write its nonce into its marker. Handed to the next batch meanwhile,
// the marker would then tell that batch, whose own answer is lost, it did
// not commit: sent again, it would fail on its own write, reported stale.
func TestNoMarkerReuseAfterUnknownOutcome(t *testing.T) {
	c := etcdtest.Start(t, 1)
	lost := status.Error(codes.Unavailable, "connection lost (test)")
	var calls atomic.Int32
	var landed atomic.Bool
	var first func()
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasSuffix(method, "/Txn") {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		switch calls.Add(1) {
		case 1: // the first batch's transaction: on its way when its answer is lost
			first = func() {
				var resp pb.TxnResponse
				err := invoker(context.WithoutCancel(ctx), method, req, &resp, cc, opts...)
				landed.Store(err == nil && resp.Succeeded)
			}
			return lost
		case 2: // its markers' read fails: its outcome stays unknown
			return lost
		case 3: // the second batch commits, the first lands, the answer is lost
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return err
			}
			first()
			return lost
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	cli := etcdtest.NewClient(t, c.Endpoints, intercept)
	s := newState(t, cli)
	a, b := create("/t/reuse/a", "1"), create("/t/reuse/b", "2")
	s.commitTxns([]*mainTxn{a})
	if !errors.Is(a.err, store.ErrUnavailable) {
		t.Fatalf("the first batch: revision %d, error %v; want store.ErrUnavailable", a.rev, a.err)
	}
	s.commitTxns([]*mainTxn{b})
	if !landed.Load() {
		t.Fatal("the first batch's transaction did not commit late")
	}
	resp, err := cli.Get(context.Background(), "/t/reuse/b")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("/t/reuse/b: %v %v", resp, err)
	}
	if b.err != nil || b.rev != resp.Kvs[0].ModRevision {
		t.Errorf("the second batch: revision %d, error %v; want revision %d (it committed), no error", b.rev, b.err, resp.Kvs[0].ModRevision)
	}
}

// TestOutcomeUnknown: a batch etcd may still commit once it answers again
// (quorum lost: its answer and the markers' read time out; or each try
// timed out, and the last may still be on its way after the read that found
// none committed) fails with store.ErrOutcomeUnknown as well as
// store.ErrUnavailable, so the SCIM server can record the attempt; a batch
// etcd refused outright (out of space) fails without it.
func TestOutcomeUnknown(t *testing.T) {
	c := etcdtest.Start(t, 1)
	// timeOut answers as etcd without quorum does: not at all, until the
	// call's deadline.
	timeOut := func(ctx context.Context) error {
		<-ctx.Done()
		return status.Error(codes.DeadlineExceeded, ctx.Err().Error())
	}
	for i, tc := range []struct {
		name string
		// answer answers a transaction (write: it puts something) in
		// etcd's place, or returns nil to send it.
		answer  func(ctx context.Context, write bool) error
		unknown bool
	}{
		{"quorum lost: the write and the markers' read time out", func(ctx context.Context, _ bool) error { return timeOut(ctx) }, true},
		{"each try times out, the markers show none committed yet", func(ctx context.Context, write bool) error {
			if write {
				return timeOut(ctx)
			}
			return nil
		}, true},
		{"refused: out of space", func(_ context.Context, write bool) error {
			if write {
				return rpctypes.ErrGRPCNoSpace
			}
			return nil
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				if strings.HasSuffix(method, "/Txn") {
					if err := tc.answer(ctx, writes(req)); err != nil {
						return err
					}
				}
				return invoker(ctx, method, req, reply, cc, opts...)
			}
			// A short timeout: every call that times out takes all of it.
			s, err := New(Options{Client: etcdtest.NewClient(t, c.Endpoints, intercept), Prefix: "/t/",
				Timeout: 500 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			b := create(fmt.Sprintf("/t/unknown/%d", i), "1")
			s.commitTxns([]*mainTxn{b})
			if !errors.Is(b.err, store.ErrUnavailable) {
				t.Fatalf("revision %d, error %v; want store.ErrUnavailable", b.rev, b.err)
			}
			if got := errors.Is(b.err, store.ErrOutcomeUnknown); got != tc.unknown {
				t.Errorf("error %v: outcome unknown %v, want %v", b.err, got, tc.unknown)
			}
		})
	}
}

// commitLate returns a client whose first write transaction while lose is
// 1 is answered with an error at once and reaches etcd just after the next
// read transaction (the markers' read) was answered; landed reports
// whether it then committed.
func commitLate(t *testing.T, endpoints []string, lose *atomic.Int32) (cli *clientv3.Client, landed func() bool) {
	t.Helper()
	var mu sync.Mutex
	var late func()
	var done atomic.Bool
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasSuffix(method, "/Txn") {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		if writes(req) && lose.CompareAndSwap(1, 0) {
			mu.Lock()
			late = func() {
				var resp pb.TxnResponse
				err := invoker(context.WithoutCancel(ctx), method, req, &resp, cc, opts...)
				done.Store(err == nil && resp.Succeeded)
			}
			mu.Unlock()
			return status.Error(codes.Unavailable, "connection lost (test)")
		}
		err := invoker(ctx, method, req, reply, cc, opts...)
		if !writes(req) {
			mu.Lock()
			f := late
			late = nil
			mu.Unlock()
			if f != nil {
				f()
			}
		}
		return err
	}
	return etcdtest.NewClient(t, endpoints, intercept), done.Load
}

// batches returns n creates under prefix: one alone; with three, the
// second's key is taken already, so it fails its compare.
func batches(t *testing.T, cli *clientv3.Client, prefix string, n int) []*mainTxn {
	t.Helper()
	if _, err := cli.Put(context.Background(), prefix+"taken", "first"); err != nil {
		t.Fatal(err)
	}
	ts := []*mainTxn{create(prefix+"a", "1")}
	if n > 1 {
		ts = append(ts, create(prefix+"taken", "second"), create(prefix+"c", "3"))
	}
	return ts
}

func newState(t *testing.T, cli *clientv3.Client) *State {
	t.Helper()
	s, err := New(Options{Client: cli, Prefix: "/t/", Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dropOneTxn returns a client whose first write transaction while lose is
// 1 is answered with an error, as when the member dies: after etcd
// committed it (committed) or before it was sent.
func dropOneTxn(t *testing.T, endpoints []string, lose *atomic.Int32, committed bool) *clientv3.Client {
	t.Helper()
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if !strings.HasSuffix(method, "/Txn") || !writes(req) || !lose.CompareAndSwap(1, 0) {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		if committed {
			if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
				return err
			}
		}
		return status.Error(codes.Unavailable, "connection lost (test)")
	}
	return etcdtest.NewClient(t, endpoints, intercept)
}

// writes reports whether a transaction request puts anything (the markers'
// read is a transaction of gets).
func writes(req any) bool {
	r, ok := req.(*pb.TxnRequest)
	if !ok || r == nil {
		return false
	}
	for _, op := range r.Success {
		if op.GetRequestPut() != nil || writes(op.GetRequestTxn()) {
			return true
		}
	}
	return false
}

// TestLostAnswerOfAGroupAsWideAsEtcdTakes: a group whose widest batch
// compares as many keys as etcd's --max-txn-ops leaves beside the nested
// transactions. Its answer lost, the group is sent again with each batch
// also comparing its marker (see commitMarked): that must still fit, or
// etcd refuses it for its size, the batches go again one by one with
// markers of their own, and those the lost attempt committed late fail
// their compares on their own writes: reported stale, the store would run
// them again (a new user told its userName is taken).
func TestLostAnswerOfAGroupAsWideAsEtcdTakes(t *testing.T) {
	c := etcdtest.Start(t, 1)
	var lose atomic.Int32
	lose.Store(1)
	cli, landed := commitLate(t, c.Endpoints, &lose)
	s := newState(t, cli)
	// Two batches, each a create comparing absent keys besides its own:
	// together exactly as wide as etcd takes.
	var ts []*mainTxn
	for i := range 2 {
		m := create(fmt.Sprintf("/t/wide/%d", i), "1")
		for j := len(m.cmps); j < DefaultMaxTxnOps-2; j++ {
			m.cmps = append(m.cmps, clientv3.Compare(clientv3.Version(fmt.Sprintf("/t/absent/%d/%d", i, j)), "=", 0))
		}
		ts = append(ts, m)
	}
	s.queue = slices.Clone(ts)
	for g := s.takeGroup(); len(g) > 0; g = s.takeGroup() {
		s.commitTxns(g)
	}
	if !landed() {
		t.Fatal("the lost transaction did not reach etcd late")
	}
	for i, m := range ts {
		resp, err := cli.Get(context.Background(), string(m.ops[0].KeyBytes()))
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("batch %d: %v %v", i, resp, err)
		}
		if m.err != nil || m.rev != resp.Kvs[0].ModRevision {
			t.Errorf("batch %d: revision %d, error %v; want revision %d (it committed), no error", i, m.rev, m.err, resp.Kvs[0].ModRevision)
		}
	}
}

// laterMix is a batch's memberships of several kinds, as a transaction
// after its first carries them: adds of members the mirror holds, adds of
// members the batch created, and removals, over several groups, in an
// order that starts a new group often.
func laterMix(s *State, n int) []memberOp {
	var ms []memberOp
	for i := range n {
		gid, id := fmt.Sprintf("g%d", i%5), fmt.Sprintf("u%03d", i)
		m := memberOp{key: s.memberKey(gid, id), of: s.memberOfKey(id, gid), member: id}
		switch i % 3 {
		case 0:
			m.group, m.header = s.objectKey(store.TableGroups, gid), s.objectKey(store.TableMembers, gid)
			m.must = s.objectKey(store.TableUsers, id)
		case 1:
			m.group, m.header = s.objectKey(store.TableGroups, gid), s.objectKey(store.TableMembers, gid)
			m.made = s.objectKey(store.TableUsers, id)
		default:
			m.del = true
		}
		ms = append(ms, m)
	}
	return ms
}

// TestLaterTransactionsFitMaxTxnOps: each transaction after a batch's
// first, with its marker's put and, when it is sent again, its marker's
// compare, holds at most MaxTxnOps operations and compares (etcd refuses
// one more), and as many memberships as fit.
func TestLaterTransactionsFitMaxTxnOps(t *testing.T) {
	for _, maxOps := range []int{minTxnOps, minTxnOps + 1, 16, DefaultMaxTxnOps, 1000} {
		s := &State{maxOps: maxOps, prefix: "/t/"}
		b := &batch{s: s, members: laterMix(s, 400)}
		chunks := b.chunks()
		if got := slices.Concat(chunks...); !slices.EqualFunc(got, b.members, func(x, y memberOp) bool { return x.key == y.key }) {
			t.Fatalf("maxOps %d: the chunks hold %d memberships, want the batch's %d in order", maxOps, len(got), len(b.members))
		}
		fits := func(chunk []memberOp) bool {
			txn := laterTxn(chunk, 7)
			return len(txn.ops)+1 <= maxOps && len(txn.cmps)+1 <= maxOps
		}
		rest := b.members[len(chunks[0]):]
		for i, chunk := range chunks[1:] {
			rest = rest[len(chunk):]
			if len(chunk) == 0 || !fits(chunk) {
				txn := laterTxn(chunk, 7)
				t.Errorf("maxOps %d: later transaction %d: %d memberships, %d operations and %d compares, with the marker's", maxOps, i, len(chunk), len(txn.ops)+1, len(txn.cmps)+1)
			}
			if len(rest) > 0 && fits(append(slices.Clone(chunk), rest[0])) {
				t.Errorf("maxOps %d: later transaction %d: %d memberships, and the next would fit too", maxOps, i, len(chunk))
			}
		}
	}
}

// TestLaterTransactionsAsWideAsEtcdTakes: on a cluster whose --max-txn-ops
// is the least a State takes, a batch's later transactions, each as wide
// as fits, commit, also when one is sent again after a lost answer with
// its marker's compare.
func TestLaterTransactionsAsWideAsEtcdTakes(t *testing.T) {
	c := etcdtest.StartWith(t, 1, func(cfg *embed.Config) { cfg.MaxTxnOps = minTxnOps })
	plain := c.Client(t)
	var lose atomic.Int32
	s, err := New(Options{Client: dropOneTxn(t, c.Endpoints, &lose, false), Prefix: "/t/", MaxTxnOps: minTxnOps, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ms := laterMix(s, 30)
	// The objects the adds compare, and the headers the first transaction
	// wrote, at revision first.
	var puts []clientv3.Op
	for _, m := range ms {
		for _, k := range []string{m.must, m.made, m.group, m.header} {
			if k != "" && !slices.ContainsFunc(puts, func(op clientv3.Op) bool { return string(op.KeyBytes()) == k }) {
				puts = append(puts, clientv3.OpPut(k, ""))
			}
		}
	}
	for page := range slices.Chunk(puts, minTxnOps) {
		if _, err := plain.Txn(context.Background()).Then(page...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// The headers at first, as the batch's first transaction leaves them.
	var headers []clientv3.Op
	for _, op := range puts {
		if strings.Contains(string(op.KeyBytes()), "/"+store.TableMembers+"/") {
			headers = append(headers, op)
		}
	}
	resp, err := plain.Txn(context.Background()).Then(headers...).Commit()
	if err != nil {
		t.Fatal(err)
	}
	first := resp.Header.Revision
	chunks := (&batch{s: s, members: ms}).chunks()
	if len(chunks) < 3 {
		t.Fatalf("%d transactions; the test proves little", len(chunks))
	}
	for i, chunk := range chunks {
		lose.Store(int32(i % 2))
		if _, gone, err := s.sendLater(chunk, first); err != nil || gone {
			t.Fatalf("transaction %d of %d memberships: %v (dropped some: %v)", i, len(chunk), err, gone)
		}
	}
	for _, m := range ms {
		resp, err := plain.Get(context.Background(), m.key, clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if (resp.Count == 1) == m.del {
			t.Errorf("%s: in etcd %v, want %v", m.key, resp.Count == 1, !m.del)
		}
	}
}
