package etcdstate

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/store"
)

// mainTxn is the main transaction of one batch on its way to etcd: its
// compares and operations, and, once sent, the revision it committed at or
// why it did not.
type mainTxn struct {
	cmps []clientv3.Cmp
	ops  []clientv3.Op
	rev  int64
	err  error
	done chan struct{} // closed when rev or err is set (grouped sends)
}

func (t *mainTxn) fail(err error) { t.rev, t.err = 0, err }

// Grouped sends. Each etcd transaction costs every member a raft entry, a
// gRPC call and an apply, whatever it holds, and most of a SCIM write's
// cost in etcd is that toll. So the main transactions of batches in flight
// at once (SCIM writes the store pipelines, from concurrent clients) go to
// etcd as one transaction in which each is a nested transaction with its
// own compares: etcd decides each on its own, so one batch's stale compare
// fails that batch alone. At most maxSenders such transactions are in
// flight; batches arriving meanwhile wait and go together in the next one,
// so under load the groups grow and alone a batch waits for nothing.
//
// etcd evaluates every nested compare against the state before the
// transaction, so two batches where one compares a key the other writes
// could both pass where no order of the two would: such a batch waits for
// a later group. Batches in flight never write the same key (see busy).
const (
	maxSenders = 1
	// groupBytes bounds the keys and values of a group, well within etcd's
	// default --max-request-bytes (1.5 MiB); a larger batch goes alone.
	groupBytes = 256 << 10
)

// commitGrouped sends t with whatever other batches are waiting and
// returns when t committed or failed.
func (s *State) commitGrouped(t *mainTxn) {
	t.done = make(chan struct{})
	s.groupMu.Lock()
	s.queue = append(s.queue, t)
	if s.senders < maxSenders {
		s.senders++
		go s.sendLoop()
	}
	s.groupMu.Unlock()
	<-t.done
}

// sendLoop sends groups of waiting batches until none waits. Each send is
// bounded by commitTxns' timeouts, so the loop ends soon after the last
// batch; it owns nothing else.
func (s *State) sendLoop() {
	for {
		s.groupMu.Lock()
		g := s.takeGroup()
		if len(g) == 0 {
			s.senders--
			s.groupMu.Unlock()
			return
		}
		s.groupMu.Unlock()
		s.commitTxns(g)
		for _, t := range g {
			close(t.done)
		}
	}
}

// takeGroup removes from the queue, oldest first, the batches that can go
// in one transaction: within etcd's limits (the nested transactions and the
// widest one's operations or compares, together at most maxOps; about
// groupBytes of keys and values), and none comparing a key another writes.
// The oldest batch always goes.
func (s *State) takeGroup() []*mainTxn {
	var g []*mainTxn
	var taken footprints
	widest, size := 0, 0
	rest := s.queue[:0]
	for _, t := range s.queue {
		w, r, n := footprint(t)
		// +1: the marker's put, and its compare when the group is sent
		// again after a lost answer (see commitMarked), which etcd would
		// otherwise refuse for its size.
		width := max(len(t.cmps), len(t.ops)) + 1
		if len(g) > 0 && (len(g)+1+max(widest, width) > s.maxOps || size+n > groupBytes || taken.conflicts(w, r)) {
			rest = append(rest, t)
			continue
		}
		g = append(g, t)
		widest, size = max(widest, width), size+n
		taken.add(w, r)
	}
	clear(s.queue[len(rest):])
	s.queue = rest
	return g
}

// keyRange is a key a transaction compares, or with end the range [key,
// end) (a member's range, see batch.deleted).
type keyRange struct{ key, end string }

func (r keyRange) holds(k string) bool {
	if r.end == "" {
		return k == r.key
	}
	return r.key <= k && k < r.end
}

// footprint returns the keys t writes and compares, and the bytes of its
// operations.
func footprint(t *mainTxn) (writes []string, reads []keyRange, size int) {
	for _, op := range t.ops {
		writes = append(writes, string(op.KeyBytes()))
		size += len(op.KeyBytes()) + len(op.ValueBytes())
	}
	for i := range t.cmps {
		c := t.cmps[i].GetCompare()
		reads = append(reads, keyRange{string(c.Key), string(c.RangeEnd)})
	}
	return writes, reads, size
}

// footprints are the keys the batches of a group write and compare.
type footprints struct {
	writes, reads map[string]bool
	ranges        []keyRange // the compared ranges
}

func (f *footprints) add(w []string, r []keyRange) {
	if f.writes == nil {
		f.writes, f.reads = map[string]bool{}, map[string]bool{}
	}
	for _, k := range w {
		f.writes[k] = true
	}
	for _, kr := range r {
		if kr.end == "" {
			f.reads[kr.key] = true
		} else {
			f.ranges = append(f.ranges, kr)
		}
	}
}

// conflicts reports whether a batch writing w and comparing r must not
// share a transaction with the batches of f.
func (f *footprints) conflicts(w []string, r []keyRange) bool {
	for _, k := range w {
		if f.writes[k] || f.reads[k] {
			return true
		}
		for _, kr := range f.ranges {
			if kr.holds(k) {
				return true
			}
		}
	}
	for _, kr := range r {
		if kr.end == "" {
			if f.writes[kr.key] {
				return true
			}
			continue
		}
		for k := range f.writes {
			if kr.holds(k) {
				return true
			}
		}
	}
	return false
}

// commitTries bounds how often commitTxns sends a transaction that, as a
// read afterwards showed, did not commit.
const commitTries = 3

// commitTxns commits ts in one etcd transaction (nested when there are
// several) and sets each one's revision or error. A transaction whose
// answer is lost (its etcd member died, the leader changed) may or may not
// have committed: each batch also puts a nonce under a marker key of this
// daemon's, and a read of those keys tells which committed. Those that did
// not are sent again, so losing one member of three costs a client
// nothing.
func (s *State) commitTxns(ts []*mainTxn) {
	s.metrics.grouped.Observe(float64(len(ts)))
	s.commitMarked(ts)
}

// commitMarked is commitTxns without the metric, for a batch's later
// transactions too (see sendLater).
//
// A transaction sent again compares its marker's revision with the one the
// read that found it uncommitted saw: an earlier attempt that commits after
// that read (a proposal still on its way) fails it, and is then found by
// its nonce. A main transaction's own compares would fail it anyway; a
// later transaction's, which only ask that its objects exist, would not,
// and it would put its memberships again, undoing a removal another daemon
// made in between.
func (s *State) commitMarked(ts []*mainTxn) {
	markers := make([]string, len(ts))
	for i := range ts {
		markers[i] = s.marker()
	}
	// A batch whose outcome is unknown may still commit later, writing its
	// nonce into its marker: reused meanwhile, the marker would tell the
	// next batch it did not commit. Such a marker is not reused (Close
	// deletes it).
	defer func(ts []*mainTxn, markers []string) {
		for i, t := range ts {
			if !errors.Is(t.err, store.ErrOutcomeUnknown) {
				s.releaseMarker(markers[i])
			}
		}
	}(ts, markers)
	var err error
	// nonces are those of every attempt so far: a lost one may still be on
	// its way (a proposal not yet applied) when the markers are read, and
	// commit after that read, so a marker holding any of them tells its
	// batch committed.
	var nonces []string
	var guards []clientv3.Cmp // by position in ts, once sent again
	for range commitTries {
		nonce := randomNonce()
		nonces = append(nonces, nonce)
		var resp *clientv3.TxnResponse
		resp, err = s.sendTxn(ts, markers, nonce, guards)
		if err == nil {
			stale := fmt.Errorf("%w: etcd revision %d", store.ErrStale, resp.Header.Revision)
			var late map[int]int64
			if len(nonces) > 1 && !allSucceeded(resp, len(ts)) {
				// A batch an earlier attempt committed late fails its
				// compares now on its own write: reported stale, the
				// store would run it again.
				var rerr error
				if late, _, rerr = s.readMarkers(markers, nonces[:len(nonces)-1]); rerr != nil {
					stale = outcomeUnknown(rerr) // cannot tell: the client retries
				}
			}
			for i, t := range ts {
				if succeeded(resp, len(ts), i) {
					t.rev = resp.Header.Revision
				} else if rev, ok := late[i]; ok {
					t.rev = rev
				} else {
					t.fail(stale)
				}
			}
			return
		}
		if errors.Is(rpctypes.Error(err), rpctypes.ErrNoSpace) {
			s.log.Error("etcd refuses writes: out of space", "err", err)
			failAll(ts, fmt.Errorf("%w: %w", store.ErrUnavailable, ErrNoSpace))
			return
		}
		// Refused for its size, before it was proposed: sending it again
		// (or a client's retry after a 503) can never succeed, while the
		// store commits a batch refused as too large one write at a time.
		// A group is sent again one batch at a time.
		if tooLarge(err) {
			if len(ts) == 1 {
				ts[0].fail(fmt.Errorf("etcdstate: %w (etcd's --max-request-bytes or --max-txn-ops): %w", store.ErrTooLarge, err))
				return
			}
			for _, t := range ts {
				s.commitTxns([]*mainTxn{t})
			}
			return
		}
		committed, markRevs, rerr := s.readMarkers(markers, nonces)
		if rerr != nil {
			failAll(ts, outcomeUnknown(err)) // cannot tell: the client retries
			return
		}
		var left []*mainTxn
		var leftMarkers []string
		guards = nil
		for i, t := range ts {
			if rev, ok := committed[i]; ok {
				t.rev = rev
				continue
			}
			left, leftMarkers = append(left, t), append(leftMarkers, markers[i])
			guards = append(guards, clientv3.Compare(clientv3.ModRevision(markers[i]), "=", markRevs[i]))
		}
		if len(left) == 0 {
			return
		}
		ts, markers = left, leftMarkers
		s.log.Warn("etcd transaction not committed; sending it again", "err", err, "batches", len(ts))
	}
	// The read found none of these committed, but the last attempt may
	// still be on its way to etcd and commit after it.
	failAll(ts, outcomeUnknown(err))
}

// sendTxn sends ts as one transaction, each with its marker set to nonce
// and, when guards is not nil, comparing guards[i] too (see commitMarked;
// prepare and chunks leave room for it): a single one as a plain
// transaction, several nested.
func (s *State) sendTxn(ts []*mainTxn, markers []string, nonce string, guards []clientv3.Cmp) (*clientv3.TxnResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	txn := s.cli.Txn(clientv3.WithRequireLeader(ctx))
	then := func(i int) []clientv3.Op {
		return append(ts[i].ops[:len(ts[i].ops):len(ts[i].ops)], clientv3.OpPut(markers[i], nonce))
	}
	cmps := func(i int) []clientv3.Cmp {
		if guards == nil {
			return ts[i].cmps
		}
		return append(ts[i].cmps[:len(ts[i].cmps):len(ts[i].cmps)], guards[i])
	}
	if len(ts) == 1 {
		return txn.If(cmps(0)...).Then(then(0)...).Commit()
	}
	nested := make([]clientv3.Op, len(ts))
	for i := range ts {
		nested[i] = clientv3.OpTxn(cmps(i), then(i), nil)
	}
	return txn.Then(nested...).Commit()
}

// succeeded reports whether the i-th of n transactions sent by sendTxn
// passed its compares.
func succeeded(resp *clientv3.TxnResponse, n, i int) bool {
	if n == 1 {
		return resp.Succeeded
	}
	return resp.Responses[i].GetResponseTxn().GetSucceeded()
}

// allSucceeded reports whether each of the n transactions sent by sendTxn
// passed its compares.
func allSucceeded(resp *clientv3.TxnResponse, n int) bool {
	for i := range n {
		if !succeeded(resp, n, i) {
			return false
		}
	}
	return true
}

// readMarkers returns, by position, the revisions at which the markers
// that hold one of nonces were written: those transactions committed; and
// the revision of every marker (0: it does not exist).
func (s *State) readMarkers(markers []string, nonces []string) (map[int]int64, []int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	gets := make([]clientv3.Op, len(markers))
	for i, k := range markers {
		gets[i] = clientv3.OpGet(k)
	}
	resp, err := s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, nil, err
	}
	out, revs := map[int]int64{}, make([]int64, len(markers))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		if len(kvs) == 1 {
			revs[i] = kvs[0].ModRevision
			if slices.Contains(nonces, string(kvs[0].Value)) {
				out[i] = kvs[0].ModRevision
			}
		}
	}
	return out, revs, nil
}

func failAll(ts []*mainTxn, err error) {
	for _, t := range ts {
		t.fail(err)
	}
}
