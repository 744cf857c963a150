package gateway_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/gateway"
	"github.com/idrecon/idrecon/runtime/internal/httpload"
	"github.com/idrecon/idrecon/runtime/store"
)

// Run on 2 cores, in-process, over loopback with keep-alive:
//
//	go test -run '^$' -bench . -cpu 2 -benchtime 3s ./runtime/gateway/
//
// BenchmarkProxy compares the gateway with a bare httputil.ReverseProxy to
// the same upstream; both report req/s and the p99 latency a client sees.

func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	bareTransport := http.DefaultTransport.(*http.Transport).Clone()
	bareTransport.MaxIdleConnsPerHost = 128
	bare := &httputil.ReverseProxy{Transport: bareTransport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.SetXForwarded()
	}}
	// MaxRequestsPerUser: every load client is ann, more of them than the
	// default bound on a machine of many cores.
	g, err := gateway.New(gateway.Config{Upstream: up.URL, RolesHeader: "X-Roles", VersionsHeader: "X-Versions", MaxRequestsPerUser: 10000},
		gateway.Deps{Sessions: sessions, Decider: people, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	for _, bc := range []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"gateway", g}} {
		b.Run(bc.name, func(b *testing.B) {
			srv := httptest.NewServer(bc.h)
			defer srv.Close()
			loadLoopback(b, srv.URL+"/app/page?x=1", "tok-ann", http.StatusOK)
		})
	}
}

// BenchmarkVerify asks /auth/verify with the StoreDecider on a store of
// 10,000 users in 50 groups, both as a handler call and over loopback.
func BenchmarkVerify(b *testing.B) {
	st, sess := bigStore(b, 10000, 50)
	g, err := gateway.New(gateway.Config{RolesHeader: "X-Roles", VersionsHeader: "X-Versions"},
		gateway.Deps{Sessions: sess, Decider: gateway.StoreDecider{Store: st}, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	tokens := make([]string, 0, len(sess))
	for tok := range sess {
		tokens = append(tokens, tok)
	}
	slices.Sort(tokens)
	b.Run("handler", func(b *testing.B) {
		var next atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r := httptest.NewRequest("GET", gateway.VerifyPath, nil)
				r.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: tokens[next.Add(1)%int64(len(tokens))]})
				w := httptest.NewRecorder()
				g.ServeHTTP(w, r)
				if w.Code != http.StatusOK {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	})
	b.Run("http", func(b *testing.B) {
		srv := httptest.NewServer(g)
		defer srv.Close()
		loadLoopback(b, srv.URL+gateway.VerifyPath, tokens[0], http.StatusOK)
	})
}

// BenchmarkStoreDecider is the per-request cost of reading access from the
// store (10,000 users, 50 groups).
func BenchmarkStoreDecider(b *testing.B) {
	st, sess := bigStore(b, 10000, 50)
	d := gateway.StoreDecider{Store: st}
	names := make([]string, 0, len(sess))
	for _, n := range sess {
		names = append(names, n)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if a, err := d.Access(ctx, names[i%len(names)]); err != nil || !a.Active {
			b.Fatal(a, err)
		}
	}
}

// loadLoopback sends GETs with the session cookie over keep-alive
// connections and reports req/s, p99 and CPU per request.
func loadLoopback(b *testing.B, target, token string, want int) {
	httpload.Run(b, func() *http.Request {
		req, _ := http.NewRequest("GET", target, nil)
		req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: token})
		return req
	}, want, 0)
}

// bigStore holds users u00000… each in one of groups groups, every group
// assigned a role and a version; sessions map "tok-<name>" to each user.
func bigStore(b *testing.B, users, groups int) (*store.Store, cookieSessions) {
	b.Helper()
	w := newWorld(b)
	sess := cookieSessions{}
	members := make([][]string, groups)
	w.update(func(tx *store.Txn) error {
		for i := range users {
			id, name := fmt.Sprintf("u%05d", i), fmt.Sprintf("user%05d@contoso.com", i)
			if err := tx.Insert(store.TableUsers, &store.User{ID: id, UserName: name, Active: true}); err != nil {
				return err
			}
			members[i%groups] = append(members[i%groups], id)
			sess["tok-"+name] = name
		}
		return nil
	})
	for gi := range groups {
		gid, name := fmt.Sprintf("g%03d", gi), fmt.Sprintf("team-%03d", gi)
		w.update(func(tx *store.Txn) error {
			if err := tx.Insert(store.TableGroups, &store.Group{ID: gid, DisplayName: name, ExternalID: "ext-" + gid}); err != nil {
				return err
			}
			return tx.ChangeMembers(gid, members[gi], nil, time.Time{})
		})
		w.assignGroup("a-"+name, name, []string{"Developer"})
	}
	return w.st, sess
}
