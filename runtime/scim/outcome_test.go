package scim

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/idrecon/idrecon/runtime/audit"
	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/store/etcdstate"
)

// etcdFault is how the intercepted etcd answers the transactions that
// commit SCIM writes (and read their markers); the mirror's watch and the
// barrier's reads are not transactions and go through.
type etcdFault int32

const (
	etcdHealthy etcdFault = iota
	// etcdQuorumLost: no transaction is answered before its deadline.
	etcdQuorumLost
	// etcdLandsLate: the next write commits, but its answer, and every
	// later transaction's, times out (quorum lost as it committed).
	etcdLandsLate
	// etcdNoSpace: writes are refused (NOSPACE); nothing is written.
	etcdNoSpace
)

// faultyEtcd returns a client of c whose transactions are answered as
// fault says.
func faultyEtcd(t *testing.T, c *etcdtest.Cluster, fault *atomic.Int32) *clientv3.Client {
	t.Helper()
	timeOut := func(ctx context.Context) error {
		<-ctx.Done()
		return status.Error(codes.DeadlineExceeded, ctx.Err().Error())
	}
	intercept := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		r, ok := req.(*pb.TxnRequest)
		if !ok {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		switch etcdFault(fault.Load()) {
		case etcdQuorumLost:
			return timeOut(ctx)
		case etcdLandsLate:
			if puts(r) && fault.CompareAndSwap(int32(etcdLandsLate), int32(etcdQuorumLost)) {
				if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
					return err
				}
			}
			return timeOut(ctx)
		case etcdNoSpace:
			if puts(r) {
				return rpctypes.ErrGRPCNoSpace
			}
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	return etcdtest.NewClient(t, c.Endpoints, intercept)
}

// puts reports whether a transaction writes (the markers' read only gets).
func puts(r *pb.TxnRequest) bool {
	for _, op := range r.GetSuccess() {
		if op.GetRequestPut() != nil || op.GetRequestDeleteRange() != nil || puts(op.GetRequestTxn()) {
			return true
		}
	}
	return false
}

// TestAuditOfAWriteWithUnknownOutcome: a SCIM write whose etcd
// transaction times out is answered 503, yet etcd may commit it when
// quorum returns. The audit trail records the attempt, marked so, with the
// token's name and the resource's id: a user that then appears (and the
// retried create's 409) is explained. A write etcd refused outright wrote
// nothing and is not recorded.
func TestAuditOfAWriteWithUnknownOutcome(t *testing.T) {
	c := etcdtest.Start(t, 1)
	user := func(name string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + q(name) + `,"active":true}`
	}
	group := `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Team"}`
	for i, tc := range []struct {
		name  string
		fault etcdFault
		// write sets its case up, calls fail and makes the request that
		// etcd fails; it returns the op and resource type the audit
		// record names, and the id ("" when the server chooses it).
		write   func(e *env, fail func()) (op, resourceType, id string, r resp)
		unknown bool
	}{
		{"create user, quorum lost", etcdQuorumLost, func(e *env, fail func()) (string, string, string, resp) {
			fail()
			return "create", "User", "", e.do("POST", "/Users", user("new@contoso.com"))
		}, true},
		{"create group, quorum lost", etcdQuorumLost, func(e *env, fail func()) (string, string, string, resp) {
			fail()
			return "create", "Group", "", e.do("POST", "/Groups", group)
		}, true},
		{"patch user, quorum lost", etcdQuorumLost, func(e *env, fail func()) (string, string, string, resp) {
			id := e.createUser("old@contoso.com", "old", "old@contoso.com")
			fail()
			return "patch", "User", id, e.do("PATCH", "/Users/"+id, ops(`{"op":"replace","path":"active","value":false}`))
		}, true},
		{"delete user, quorum lost", etcdQuorumLost, func(e *env, fail func()) (string, string, string, resp) {
			id := e.createUser("old@contoso.com", "old", "old@contoso.com")
			fail()
			return "delete", "User", id, e.do("DELETE", "/Users/"+id, "")
		}, true},
		{"create user, committed as quorum was lost", etcdLandsLate, func(e *env, fail func()) (string, string, string, resp) {
			fail()
			return "create", "User", "", e.do("POST", "/Users", user("new@contoso.com"))
		}, true},
		{"create user, refused: out of space", etcdNoSpace, func(e *env, fail func()) (string, string, string, resp) {
			fail()
			return "create", "User", "", e.do("POST", "/Users", user("new@contoso.com"))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fault atomic.Int32
			// A short timeout, since each call that times out takes all of it,
			// yet long enough for the set-up's own calls on busy cores.
			state, err := etcdstate.New(etcdstate.Options{Client: faultyEtcd(t, c, &fault),
				Prefix: fmt.Sprintf("/outcome/%d/", i), Timeout: time.Second, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			e := etcdReplica(t, state, defaultConfig())
			var before int
			op, resourceType, id, r := tc.write(e, func() {
				before = len(e.audit.Events())
				fault.Store(int32(tc.fault))
			})
			// Quorum is back.
			fault.Store(int32(etcdHealthy))
			if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
				t.Fatalf("status %d, Retry-After %q, body %s; want 503 with Retry-After", r.status, r.header.Get("Retry-After"), r.body)
			}
			events := e.audit.Events()[before:]
			if !tc.unknown {
				if len(events) != 0 {
					t.Errorf("audit records %v of a write refused with nothing written; want none", events)
				}
				return
			}
			if len(events) != 1 {
				t.Fatalf("audit records %v; want one, of the attempt", events)
			}
			w, ok := events[0].(audit.SCIMWrite)
			if !ok || w.Actor != "entra" || w.ResourceType != resourceType || w.ID == "" || id != "" && w.ID != id ||
				w.Op != op || w.Outcome != "unknown" || !strings.Contains(w.Error, "outcome is unknown") {
				t.Errorf("audit record %#v; want entra's %s of %s %s, its outcome unknown", events[0], op, resourceType, id)
			}
			if s := fmt.Sprintf("%#v", events[0]); strings.Contains(s, testToken) {
				t.Errorf("audit record holds the token: %s", s)
			}
			if tc.fault != etcdLandsLate {
				return
			}
			// Entra's retry finds the user the 503 create
			// made, whose id the record names.
			e.must(http.StatusConflict, "POST", "/Users", user("new@contoso.com"))
			list := e.must(http.StatusOK, "GET", "/Users?filter="+url.QueryEscape(`userName eq "new@contoso.com"`), "").json(t)
			if got := dig(list, "Resources", 0, "id"); got != w.ID {
				t.Errorf("the user that appeared is %v; the audit record names %s", got, w.ID)
			}
		})
	}
}
