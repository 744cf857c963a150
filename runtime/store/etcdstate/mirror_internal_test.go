package etcdstate

import (
	"context"
	"slices"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
)

// TestMemberRunFoldsEachMembersLastEvent: the membership events of one
// watch response, applied as runs per group, leave the members an event
// at a time would: a member's last event wins, and a run of another group
// or another kind of event ends the run before it.
func TestMemberRunFoldsEachMembersLastEvent(t *testing.T) {
	type event struct {
		group, member string
		put           bool
	}
	events := []event{
		{"g1", "u1", true}, {"g1", "u2", true}, {"g1", "u1", false}, // u1 added then removed
		{"g2", "u1", true},
		{"g1", "u3", true}, {"g1", "u3", false}, {"g1", "u3", true}, // u3 ends added
		{"g1", "u2", false}, {"g1", "u4", false}, // u4 was never there
	}
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Update(context.Background(), func(tx *store.Txn) error {
		for _, g := range []string{"g1", "g2"} {
			if err := tx.Insert(store.TableGroups, &store.Group{ID: g, DisplayName: g}); err != nil {
				return err
			}
		}
		return tx.ChangeMembers("g1", []string{"u5"}, nil, time.Unix(1, 0))
	}); err != nil {
		t.Fatal(err)
	}
	if err := st.Mirror(context.Background(), func(tx *store.Txn) error {
		var run memberRun
		for _, e := range events {
			if err := run.add(tx, e.group, e.member, e.put, "", 0); err != nil {
				return err
			}
		}
		return run.flush(tx)
	}); err != nil {
		t.Fatal(err)
	}
	tx := st.Read()
	for group, want := range map[string][]string{"g1": {"u3", "u5"}, "g2": {"u1"}} {
		got, err := tx.MemberIDsOf(group)
		if err != nil || !slices.Equal(got.Slice(), want) {
			t.Errorf("members of %s = %v, %v; want %v", group, got, err, want)
		}
	}
	if groups, _ := tx.GroupIDsOf("u1"); !slices.Equal(groups, []string{"g2"}) {
		t.Errorf("groups of u1 = %v, want [g2]", groups)
	}
}

// TestOwnMembershipWritesHoldAgainstOlderEvents: memberships this daemon
// committed and applied itself are not undone by an older event the watch
// brings after them, and the mirror keeps no revision per membership key.
func TestOwnMembershipWritesHoldAgainstOlderEvents(t *testing.T) {
	s, st := offlineMirror(t)
	ctx := context.Background()
	if err := st.Update(ctx, func(tx *store.Txn) error {
		if err := tx.Insert(store.TableGroups, &store.Group{ID: "g", DisplayName: "g"}); err != nil {
			return err
		}
		// u2 as this daemon's Commit wrote it, at revision 10.
		return tx.ChangeMembers("g", []string{"u1", "u2"}, nil, time.Unix(1, 0))
	}); err != nil {
		t.Fatal(err)
	}
	s.wroteMembers([]memberOp{{key: s.memberKey("g", "u2")}}, 10)
	event := func(typ mvccpb.Event_EventType, member string, rev int64) *clientv3.Event {
		return &clientv3.Event{Type: typ, Kv: &mvccpb.KeyValue{Key: []byte(s.memberKey("g", member)), ModRevision: rev}}
	}
	// Another daemon's earlier delete of u2, and its add of u3.
	events := []*clientv3.Event{event(mvccpb.DELETE, "u2", 8), event(mvccpb.PUT, "u3", 9)}
	if err := st.Mirror(ctx, func(tx *store.Txn) error { return s.apply(tx, events) }); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Read().MemberIDsOf("g"); !slices.Equal(got.Slice(), []string{"u1", "u2", "u3"}) {
		t.Errorf("members of g = %v, want [u1 u2 u3]", got)
	}
	for k := range s.revs {
		if p, ok := s.parse(k); ok && p.group != "" {
			t.Errorf("the mirror keeps a revision for membership key %s", k)
		}
	}
	s.forget(10)
	if len(s.floor) != 0 {
		t.Errorf("floors left after the watch passed them: %v", s.floor)
	}
}

// TestFailedApplyLeavesRevisionsAlone: a watch response the store does not
// take (an event in it cannot be applied) must leave the revisions the
// mirror compares as they were. Recorded for the events applied before
// the failing one, which the store then discarded, they would let a write
// computed on the older record pass etcd's compare and overwrite the
// newer one; and the watch, opened again at the same revision, would pass
// those events over as already held.
func TestFailedApplyLeavesRevisionsAlone(t *testing.T) {
	s, st := offlineMirror(t)
	ctx := context.Background()
	old := &store.User{ID: "u1", UserName: "ann@contoso.com", Active: true}
	if err := st.Update(ctx, func(tx *store.Txn) error { return tx.Insert(store.TableUsers, old) }); err != nil {
		t.Fatal(err)
	}
	user, meta, gone := s.objectKey(store.TableUsers, "u1"), s.objectKey(store.TableMeta, "x"), s.objectKey(store.TableMeta, "gone")
	s.committed([]string{user, gone}, nil, 5)
	renamed := *old
	renamed.UserName = "ann.smith@contoso.com"
	val, err := record.Encode(store.TableUsers, &renamed)
	if err != nil {
		t.Fatal(err)
	}
	events := []*clientv3.Event{
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(user), Value: val, ModRevision: 10}},
		{Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte(gone), ModRevision: 10}},
		{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte(meta), Value: []byte("not a record"), ModRevision: 10}},
	}
	if err := st.Mirror(ctx, func(tx *store.Txn) error { return s.apply(tx, events) }); err == nil {
		t.Fatal("the malformed record was applied")
	}
	if u, _ := st.Read().UserByID("u1"); u.UserName != old.UserName {
		t.Fatalf("the store holds %q; the failed response was applied", u.UserName)
	}
	for _, k := range []string{user, gone} {
		if got := s.compareRev(k); got != 5 {
			t.Errorf("%s: the mirror compares revision %d, want 5 (the store holds that one)", k, got)
		}
		if !s.newer(k, 10) {
			t.Errorf("%s: the event at revision 10 counts as held", k)
		}
	}
}

// TestBackoff: a mirror that keeps failing reloads at once the first time,
// then less and less often, never less often than retryMax; after a quiet
// while, at once again.
func TestBackoff(t *testing.T) {
	start := time.Unix(1000, 0)
	for _, tc := range []struct {
		name  string
		after []time.Duration // between one failure and the next
		want  []time.Duration
	}{
		{"one failure", []time.Duration{0}, []time.Duration{0}},
		{"failures in a row", []time.Duration{0, time.Second, time.Second, time.Second, time.Second},
			[]time.Duration{0, retryMin, 2 * retryMin, 4 * retryMin, 8 * retryMin}},
		{"up to retryMax", []time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
			[]time.Duration{0, retryMin, 2 * retryMin, 4 * retryMin, 8 * retryMin, 16 * retryMin, 32 * retryMin, 64 * retryMin,
				min(128*retryMin, retryMax), retryMax, retryMax, retryMax}},
		{"at once after a quiet while", []time.Duration{0, time.Second, 3 * retryMax, time.Second},
			[]time.Duration{0, retryMin, 0, retryMin}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b backoff
			now := start
			for i, d := range tc.after {
				now = now.Add(d)
				if got := b.next(now); got != tc.want[i] {
					t.Errorf("failure %d: wait %v, want %v", i, got, tc.want[i])
				}
			}
		})
	}
}

// offlineMirror returns a State that talks to no etcd and an empty store
// for it to apply events to.
func offlineMirror(t *testing.T) (*State, *store.Store) {
	t.Helper()
	s, err := New(Options{Client: &clientv3.Client{}, Prefix: "/t/"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return s, st
}
