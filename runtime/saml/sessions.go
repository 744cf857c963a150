package saml

import (
	"context"
	"strings"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// Session is a signed-in browser.
type Session struct {
	UserName string
	// UserID is the SCIM id (store.User.ID) of the user the session was
	// issued to: the session is that user's, not whoever holds UserName
	// later (see Server.liveSession). "" in a session stored by a daemon
	// that predates it (in etcd, package samletcd); such a session is bound
	// to its user when first checked (SessionStore.Bind).
	UserID       string
	NameID       string
	SessionIndex string
}

// SessionStore keeps the signed-in sessions under their (secret) ids. The
// default keeps them in this process; several daemons behind one load
// balancer share them through etcd (package samletcd), so a browser signed
// in on one is signed in on all, and a restart signs nobody out.
type SessionStore interface {
	Add(ctx context.Context, id string, se Session, expires time.Time) error
	Get(ctx context.Context, id string) (Session, bool, error)
	Delete(ctx context.Context, id string) error
	// DeleteNameID ends every session of the IdP's nameID (IdP-initiated
	// logout) and returns how many there were.
	DeleteNameID(ctx context.Context, nameID string) (int, error)
	// Bind sets the UserID of the session id to userID unless it has one
	// already, and returns the session as stored afterwards: of two binds
	// the first wins, and a session ended meanwhile stays ended (ok false).
	Bind(ctx context.Context, id, userID string) (se Session, ok bool, err error)
}

// ReplayCache remembers the assertions and IdP LogoutRequests consumed
// until they expire, so each signs in, or out, once.
type ReplayCache interface {
	// FirstUse records key until expires and reports whether it was new.
	FirstUse(ctx context.Context, key string, expires time.Time) (bool, error)
}

// memSessions is the in-process SessionStore: a bounded table that drops
// the sessions expiring soonest when full, never refusing a sign-in, and
// keeps at most maxSessionsPerUser per user.
type memSessions struct {
	m   *ttlMap[Session]
	now func() time.Time
}

func newMemSessions(now func() time.Time) *memSessions {
	return &memSessions{now: now, m: newTTLMap[Session](maxSessions).grouped(maxSessionsPerUser,
		func(se Session) string { return store.Fold(se.UserName) })}
}

func (s *memSessions) Add(_ context.Context, id string, se Session, expires time.Time) error {
	s.m.add(id, se, expires, s.now())
	return nil
}

func (s *memSessions) Get(_ context.Context, id string) (Session, bool, error) {
	se, ok := s.m.get(id, s.now())
	return se, ok, nil
}

func (s *memSessions) Delete(_ context.Context, id string) error {
	s.m.del(id)
	return nil
}

func (s *memSessions) Bind(_ context.Context, id, userID string) (Session, bool, error) {
	se, ok := s.m.update(id, s.now(), func(se *Session) {
		if se.UserID == "" {
			se.UserID = userID
		}
	})
	return se, ok, nil
}

func (s *memSessions) DeleteNameID(_ context.Context, nameID string) (int, error) {
	return s.m.deleteWhere(func(se Session) bool { return strings.EqualFold(se.NameID, nameID) }), nil
}

// memReplay is the in-process ReplayCache, bounded like memSessions. The
// IdP's LogoutRequests are kept apart from assertions: a full table
// refuses what expires no later than what it dropped (refuseDropped),
// which only refuses nothing fresh while its entries share one lifetime.
// A LogoutRequest's lasts minutes, an assertion's an hour: in one table,
// sign-ins enough to overflow it would have every IdP logout of the next
// hour refused as a replay.
type memReplay struct {
	m       *ttlMap[struct{}] // assertions
	logouts *ttlMap[struct{}] // IdP LogoutRequests
	now     func() time.Time
}

func newMemReplay(now func() time.Time) *memReplay {
	return &memReplay{
		m:       newTTLMap[struct{}](maxReplay).rememberingDropped(),
		logouts: newTTLMap[struct{}](maxReplay).rememberingDropped(),
		now:     now,
	}
}

func (r *memReplay) FirstUse(_ context.Context, key string, expires time.Time) (bool, error) {
	t := r.m
	if strings.HasPrefix(key, logoutRequestKeyPrefix) {
		t = r.logouts
	}
	return t.add(key, struct{}{}, expires, r.now()), nil
}
