package samletcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/internal/etcdtest"
	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/saml/samletcd"
)

// countKeys returns how many keys etcd holds under prefix.
func countKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestListingsEndWithTheirSessions: a session's listings (under its user
// and under its nameID) go when the session is ended, by the per-user
// bound, a sign-out or an IdP logout, not only when its lease does. Left
// behind, one account signing in over and over fills etcd with nameID
// listings for as long as sessions live, the very growth the per-user
// bound is there to stop, and an IdP logout of that user reads them all.
func TestListingsEndWithTheirSessions(t *testing.T) {
	ctx := context.Background()
	const n = 3 * saml.MaxSessionsPerUser
	tests := []struct {
		name string
		// end ends the sessions ann-0..ann-(n-1) (or leaves them to the
		// per-user bound) after they were added.
		end        func(t *testing.T, s *samletcd.Store, i int)
		after      func(t *testing.T, s *samletcd.Store)
		wantListed int64
	}{
		{
			name:       "per-user bound",
			end:        func(*testing.T, *samletcd.Store, int) {},
			wantListed: saml.MaxSessionsPerUser,
		},
		{
			name: "sign-out",
			end: func(t *testing.T, s *samletcd.Store, i int) {
				if err := s.Delete(ctx, fmt.Sprintf("ann-%d", i)); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "IdP logout",
			end:  func(*testing.T, *samletcd.Store, int) {},
			after: func(t *testing.T, s *samletcd.Store) {
				if got, err := s.DeleteNameID(ctx, "ANN@contoso.com"); err != nil || got != saml.MaxSessionsPerUser {
					t.Fatalf("DeleteNameID = %d, %v; want the %d sessions kept", got, err, saml.MaxSessionsPerUser)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := etcdtest.Start(t, 1)
			cli := c.Client(t)
			s := daemonStore(t, cli, 5*time.Second)
			now := time.Now()
			for i := range n {
				se := saml.Session{UserName: "ann@contoso.com", UserID: "u1", NameID: []string{"ann@contoso.com", "Ann@Contoso.com"}[i%2]}
				if err := s.Add(ctx, fmt.Sprintf("ann-%d", i), se, now.Add(time.Hour+time.Duration(i)*time.Second)); err != nil {
					t.Fatal(err)
				}
				tc.end(t, s, i)
			}
			if tc.after != nil {
				tc.after(t, s)
			}
			for _, under := range []string{"nameid", "user", "session"} {
				if got := countKeys(t, cli, "/t/saml/"+under+"/"); got != tc.wantListed {
					t.Errorf("%d keys under %s/ after %d sign-ins; want %d", got, under, n, tc.wantListed)
				}
			}
		})
	}
}

// TestPerUserBoundEndsTheOldestOfATie: sessions of one user expiring in
// the same second (signed in together; the lifetime is fixed) end oldest
// first, as in a daemon's own table: a session just made on one daemon is
// not the one another daemon's next sign-in ends, whatever its key.
func TestPerUserBoundEndsTheOldestOfATie(t *testing.T) {
	ctx := context.Background()
	c := etcdtest.Start(t, 1)
	cli := c.Client(t)
	a, b := daemonStore(t, cli, 5*time.Second), daemonStore(t, cli, 5*time.Second)
	exp := time.Now().Add(time.Hour)
	se := saml.Session{UserName: "ann@contoso.com", UserID: "u1", NameID: "ann@contoso.com"}
	var lowest string
	for i := range saml.MaxSessionsPerUser {
		id := fmt.Sprintf("ann-%d", i)
		if err := a.Add(ctx, id, se, exp); err != nil {
			t.Fatal(err)
		}
		if k := sessionKey(id); lowest == "" || k < lowest {
			lowest = k
		}
	}
	// The newest session's key sorts first among the user's.
	newest := ""
	for i := 0; newest == ""; i++ {
		if id := fmt.Sprintf("new-%d", i); sessionKey(id) < lowest {
			newest = id
		}
	}
	if err := b.Add(ctx, newest, se, exp); err != nil {
		t.Fatal(err)
	}
	if err := a.Add(ctx, "next", se, exp); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{newest, "next"} {
		if _, ok, err := a.Get(ctx, id); !ok || err != nil {
			t.Errorf("%s after the next sign-in: signed in %v, %v; want signed in", id, ok, err)
		}
	}
	if got := countKeys(t, cli, "/t/saml/session/"); got != saml.MaxSessionsPerUser {
		t.Errorf("%d sessions; want %d", got, saml.MaxSessionsPerUser)
	}
}
