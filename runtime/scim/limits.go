package scim

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
)

// Limits bound how much SCIM clients may make the server hold. A client
// provisioning far more than the machine was sized for (a provisioning
// scope of "all users" in a large tenant, a loop in a script) would
// otherwise grow the state until the daemon runs out of memory and stops
// answering sign-ins too; past a bound it gets an error for each write
// that would add more, and every other request is served as before. A
// zero field is no bound.
type Limits struct {
	Users       int `json:"users,omitempty"`
	Groups      int `json:"groups,omitempty"`
	Memberships int `json:"memberships,omitempty"` // direct memberships: a member in a group
}

// kinds are what Limits bound, each with the daemon flag that sets its
// bound, in the order of Limits' fields (see bound) and of Counts.
var kinds = [...]struct{ name, flag string }{
	{"users", "--max-users"}, {"groups", "--max-groups"}, {"memberships", "--max-memberships"},
}

// bound returns the bound of kinds[i].
func (l Limits) bound(i int) int { return [...]int{l.Users, l.Groups, l.Memberships}[i] }

// growth is what a write adds to the store's counts, by kinds' index;
// negative when it takes away.
type growth [len(kinds)]int

func grows(users, groups, memberships int) growth { return growth{users, groups, memberships} }

// room returns an error when the write, adding g, would take the store
// past a bound. A write that does not grow a count is never refused, so
// that a client can always delete, and remove members, even past bounds
// lowered since.
func (l Limits) room(txn *store.Txn, g growth) error {
	counts := counters(txn)
	for i, k := range kinds {
		bound := l.bound(i)
		if bound <= 0 || g[i] <= 0 {
			continue
		}
		n, err := counts[i]()
		if err != nil {
			return err
		}
		if n+g[i] > bound {
			return &fullError{what: k.name, flag: k.flag, bound: bound}
		}
	}
	return nil
}

// counters returns the store's count of each of kinds, as txn sees it.
func counters(txn *store.Txn) [len(kinds)]func() (int, error) {
	return [...]func() (int, error){txn.UserCount, txn.GroupCount, txn.MembershipCount}
}

// fullError is a write refused by a bound: 507 Insufficient Storage, which
// Entra reports against the object and retries in a later cycle.
type fullError struct {
	what, flag string
	bound      int
}

func (e *fullError) Error() string {
	return fmt.Sprintf("this server holds at most %d %s; narrow the provisioning scope, or raise the daemon's %s", e.bound, e.what, e.flag)
}

func (e *fullError) scim() *scimerr.Error {
	return errStatus(http.StatusInsufficientStorage, "%s", e.Error())
}

// warnFull logs a refusal by a bound, at most once a minute: the operator
// must hear of it, but a client retrying every refused write must not
// flood the log.
func (s *Server) warnFull(ctx context.Context, e *fullError) {
	now := time.Now().UnixNano()
	last := s.warnedFull.Load()
	if now-last < int64(time.Minute) || !s.warnedFull.CompareAndSwap(last, now) {
		return
	}
	s.log.WarnContext(ctx, "scim write refused: a bound is reached", "bound", e.what, "max", e.bound, "flag", e.flag)
}

// Provisioned is what SCIM clients made the server hold, with the bounds
// on it.
type Provisioned struct {
	Users       int    `json:"users"`
	Groups      int    `json:"groups"`
	Memberships int    `json:"memberships"`
	Limits      Limits `json:"limits"`
}

// Count is one kind's count against its bound.
type Count struct {
	Kind  string // users, groups or memberships
	Flag  string // the daemon flag that sets Bound
	N     int
	Bound int // 0: none
}

// Near reports whether the count has reached nine tenths of its bound:
// past the bound Entra's writes fail, and the operator should hear of it
// first.
func (c Count) Near() bool { return c.Bound > 0 && c.N*10 >= c.Bound*9 }

// Counts lists p's counts, users first, each with its bound.
func (p Provisioned) Counts() []Count {
	n := [len(kinds)]int{p.Users, p.Groups, p.Memberships}
	out := make([]Count, len(kinds))
	for i, k := range kinds {
		out[i] = Count{Kind: k.name, Flag: k.flag, N: n[i], Bound: p.Limits.bound(i)}
	}
	return out
}

// Provisioned returns the counts of the state now: each is kept by the
// store, so this costs no walk of the users.
func (s *Server) Provisioned() (Provisioned, error) {
	var n [len(kinds)]int
	for i, count := range counters(s.st.Read()) {
		var err error
		if n[i], err = count(); err != nil {
			return Provisioned{}, err
		}
	}
	return Provisioned{Users: n[0], Groups: n[1], Memberships: n[2], Limits: s.opts.Limits}, nil
}

var (
	provisionedDesc = prometheus.NewDesc("idrecon_scim_provisioned",
		"Users, groups and memberships SCIM clients made the daemon hold, by kind.", []string{"kind"}, nil)
	provisionedLimitDesc = prometheus.NewDesc("idrecon_scim_provisioned_limit",
		"The bound on each kind (--max-users, --max-groups, --max-memberships); past it a write that adds is refused.", []string{"kind"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Server) Describe(ch chan<- *prometheus.Desc) {
	ch <- provisionedDesc
	ch <- provisionedLimitDesc
}

// Collect implements prometheus.Collector: the counts at scrape time, and
// the bounds that are set.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	p, err := s.Provisioned()
	if err != nil {
		s.log.Warn("scim metrics: count the state", "err", err)
		return
	}
	for _, c := range p.Counts() {
		ch <- prometheus.MustNewConstMetric(provisionedDesc, prometheus.GaugeValue, float64(c.N), c.Kind)
		if c.Bound > 0 {
			ch <- prometheus.MustNewConstMetric(provisionedLimitDesc, prometheus.GaugeValue, float64(c.Bound), c.Kind)
		}
	}
}

var _ prometheus.Collector = (*Server)(nil)
