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

// growth is what a write adds to the store's counts; negative when it
// takes away.
type growth struct{ users, groups, memberships int }

// room returns an error when the write, adding g, would take the store
// past a bound. A write that does not grow a count is never refused, so
// that a client can always delete, and remove members, even past bounds
// lowered since.
func (l Limits) room(txn *store.Txn, g growth) error {
	for _, c := range []struct {
		what  string
		flag  string
		bound int
		grows int
		count func() (int, error)
	}{
		{"users", "--max-users", l.Users, g.users, txn.UserCount},
		{"groups", "--max-groups", l.Groups, g.groups, txn.GroupCount},
		{"group memberships", "--max-memberships", l.Memberships, g.memberships, txn.MembershipCount},
	} {
		if c.bound <= 0 || c.grows <= 0 {
			continue
		}
		n, err := c.count()
		if err != nil {
			return err
		}
		if n+c.grows > c.bound {
			return &fullError{what: c.what, flag: c.flag, bound: c.bound}
		}
	}
	return nil
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

// Provisioned returns the counts of the state now: each is kept by the
// store, so this costs no walk of the users.
func (s *Server) Provisioned() (Provisioned, error) {
	txn := s.st.Read()
	p := Provisioned{Limits: s.opts.Limits}
	var err error
	if p.Users, err = txn.UserCount(); err != nil {
		return p, err
	}
	if p.Groups, err = txn.GroupCount(); err != nil {
		return p, err
	}
	p.Memberships, err = txn.MembershipCount()
	return p, err
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
	for _, k := range []struct {
		kind     string
		n, bound int
	}{{"users", p.Users, p.Limits.Users}, {"groups", p.Groups, p.Limits.Groups}, {"memberships", p.Memberships, p.Limits.Memberships}} {
		ch <- prometheus.MustNewConstMetric(provisionedDesc, prometheus.GaugeValue, float64(k.n), k.kind)
		if k.bound > 0 {
			ch <- prometheus.MustNewConstMetric(provisionedLimitDesc, prometheus.GaugeValue, float64(k.bound), k.kind)
		}
	}
}

var _ prometheus.Collector = (*Server)(nil)
