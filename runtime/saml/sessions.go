package saml

import (
	"context"
	"fmt"
	"strings"
	"sync"
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
// until they expire, so each signs in, or out, once. Each record is one
// user's, and a user holds at most MaxSignInsPerUser unexpired records:
// the cache is shared by everyone, and a user's records are only bounded
// by how fast they can have the IdP sign assertions.
type ReplayCache interface {
	// FirstUse records key, a record of user, until expires and reports
	// whether it was new. Users equal under store.Fold are one; a key is
	// always presented with the same user (the IdP signed both). A new
	// key of a user who holds MaxSignInsPerUser unexpired records already
	// is not recorded: the error is then a *TooManyError, and any other
	// error means whether the key is new is unknown.
	FirstUse(ctx context.Context, user, key string, expires time.Time) (bool, error)
}

// TooManyError is a ReplayCache's refusal of a record for a user who holds
// MaxSignInsPerUser unexpired records already.
type TooManyError struct {
	// Until is when the user's soonest-expiring record lapses, making room
	// for another.
	Until time.Time
}

func (e *TooManyError) Error() string {
	return fmt.Sprintf("the user holds %d unexpired records, the soonest until %s", MaxSignInsPerUser, e.Until.UTC().Format(time.RFC3339))
}

// LogoutLog remembers when the IdP last logged each user out: the
// IssueInstant of its latest accepted LogoutRequest for the user, under the
// user's folded NameID (store.Fold). An assertion issued before it is
// refused (SAML core §3.7.3.2; see logoutMemory). Daemons that share their
// sessions share this too, or one would take an assertion that another's
// logout applies to.
type LogoutLog interface {
	// RecordLogout records at for key until expires, keeping the later of
	// at and an instant recorded before.
	RecordLogout(ctx context.Context, key string, at, expires time.Time) error
	// LoggedOut returns the instant recorded for key; ok false if none.
	LoggedOut(ctx context.Context, key string) (at time.Time, ok bool, err error)
}

// memLogouts is the in-process LogoutLog, a table of at most maxLoggedOut
// users: only LogoutRequests whose signature verified add to it, so no
// client fills it. It starts empty at every start, which the in-process
// replay cache covers: it refuses every assertion issued before the start.
type memLogouts struct {
	mu  sync.Mutex // makes RecordLogout's read and write one step
	m   *ttlMap[time.Time]
	now func() time.Time
}

func newMemLogouts(now func() time.Time) *memLogouts {
	return &memLogouts{m: newTTLMap[time.Time](maxLoggedOut), now: now}
}

func (l *memLogouts) RecordLogout(_ context.Context, key string, at, expires time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if prev, ok := l.m.get(key, now); ok && prev.After(at) {
		at = prev
	}
	l.m.del(key)
	l.m.add(key, at, expires, now)
	return nil
}

func (l *memLogouts) LoggedOut(_ context.Context, key string) (time.Time, bool, error) {
	at, ok := l.m.get(key, l.now())
	return at, ok, nil
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

// memReplay is the in-process ReplayCache, bounded like memSessions but
// for the bound per user (MaxSignInsPerUser), past which it refuses. The
// IdP's LogoutRequests are kept apart from assertions: a full table
// refuses what expires no later than what it dropped (refuseDropped),
// which only refuses nothing fresh while its entries share one lifetime.
// A LogoutRequest's lasts minutes, an assertion's an hour: in one table,
// sign-ins enough to overflow it would have every IdP logout of the next
// hour refused as a replay.
type memReplay struct {
	m       *ttlMap[string] // assertions, valued by their user
	logouts *ttlMap[string] // IdP LogoutRequests, valued by their user
	now     func() time.Time
}

func newMemReplay(now func() time.Time) *memReplay {
	table := func() *ttlMap[string] {
		return newTTLMap[string](maxReplay).rememberingDropped().capped(MaxSignInsPerUser, store.Fold)
	}
	return &memReplay{m: table(), logouts: table(), now: now}
}

func (r *memReplay) FirstUse(_ context.Context, user, key string, expires time.Time) (bool, error) {
	t := r.m
	if strings.HasPrefix(key, logoutRequestKeyPrefix) {
		t = r.logouts
	}
	added, full := t.addOrFull(key, user, expires, r.now())
	if !full.IsZero() {
		return false, &TooManyError{Until: full}
	}
	return added, nil
}
