// Package samletcd keeps the SAML sign-in state in etcd, shared by every
// daemon on one cluster: the signed-in sessions (saml.SessionStore), the
// assertions and IdP LogoutRequests consumed (saml.ReplayCache) and the
// instant of each user's latest IdP logout (saml.LogoutLog). A browser
// signed in on one daemon is signed in on all, a session survives the
// restart of the daemon that made it, an assertion or LogoutRequest
// consumed on one daemon is refused on every other, decided by an etcd
// transaction, and so is an assertion issued before an IdP logout that
// another daemon took.
//
// Keys hold a SHA-256 of the session id or assertion, never the value
// itself (a session id is a bearer credential). A user's sessions are also
// listed under the user, so that a user keeps at most
// saml.MaxSessionsPerUser of them, as in a daemon's own table (see Add),
// and under the IdP's nameID, which an IdP-initiated logout names
// (DeleteNameID). The replay records are listed under their user too
// (replay/<user>/<assertion>), so that a user holds at most
// saml.MaxSignInsPerUser of them, counted before each is made and made
// only if no other of the user was meanwhile: one account signing in over
// and over is refused past it, not left to fill etcd up to its quota (see
// FirstUse). The key older daemons made and look for (replay/<assertion>)
// is checked and made too, so that a fleet upgraded one daemon at a time
// refuses every replay. Each key lives on a lease
// that ends about when it expires; leases are shared per minute of expiry,
// since each grant is a write to the cluster. The expiry is also in the
// value, so a key that outlives its lease a little is still not used.
//
// A session's record names the SCIM id of its user (see
// saml.Session.UserID); a record written by an older daemon, without it,
// is bound to its user by the first check of a newer one (Store.Bind), and
// older daemons ignore the id, so both kinds can share one prefix.
//
// Reads go to a cache in the daemon first: a session is read from etcd
// once, then served locally until it expires or a watch reports it deleted
// (signed out, or ended for a user who lost access, on any daemon). While
// etcd is unavailable, the sessions a daemon holds keep working there.
package samletcd

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/idrecon/idrecon/runtime/saml"
	"github.com/idrecon/idrecon/runtime/store"
)

// maxCached bounds the session cache; past it the cache starts over and
// sessions are read from etcd again.
const maxCached = 100_000

// Store is a saml.SessionStore, saml.ReplayCache and saml.LogoutLog on
// etcd. Keep Run going so the cache hears of sessions ended elsewhere.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	now     func() time.Time
	log     *slog.Logger

	mu     sync.Mutex
	cache  map[string]record          // session key → session; guarded by mu
	leases map[int64]clientv3.LeaseID // expiry minute → lease; guarded by mu
	// deleted is the newest revision at which the watch reported a session
	// deleted, or before which it may have missed deletes (a compaction);
	// guarded by mu. A session read at an older revision may be one of
	// them, its delete already heard, so it is not cached (see remember).
	deleted int64
	// watched is the revision after which the watch reports every delete
	// (0: it is not open yet); guarded by mu. A session read before it
	// may have been deleted before the watch opened, unheard, so it is
	// not cached (see remember).
	watched int64
	// untaggedUntil is until when sessions stored by releases that did not
	// list them under their nameID may live (UntaggedSessionsUntil, zero
	// until it is asked); guarded by mu.
	untaggedUntil time.Time
	// replayTurns makes a user's FirstUse calls in this daemon take turns
	// (see FirstUse); guarded by mu.
	replayTurns map[string]*turn
}

// turn is one user's turn at FirstUse: a token, and how many calls hold or
// wait for it (the entry goes when none do).
type turn struct {
	token   chan struct{}
	waiting int
}

var (
	_ saml.SessionStore = (*Store)(nil)
	_ saml.ReplayCache  = (*Store)(nil)
	_ saml.LogoutLog    = (*Store)(nil)
)

// record is a session's value in etcd.
type record struct {
	UserName string `json:"u"`
	// UserID is the SCIM id of the session's user (saml.Session.UserID).
	// Daemons before it wrote no "id" and ignore it when they read one, so
	// daemons of both kinds share the sessions during an upgrade; a record
	// without it is bound by the first check of a newer daemon (Bind).
	UserID       string `json:"id,omitempty"`
	NameID       string `json:"n"`
	SessionIndex string `json:"i,omitempty"`
	Expires      int64  `json:"e"` // Unix seconds
}

func (rec record) session() saml.Session {
	return saml.Session{UserName: rec.UserName, UserID: rec.UserID, NameID: rec.NameID, SessionIndex: rec.SessionIndex}
}

// New returns a Store under prefix (its keys start prefix+"saml/").
func New(cli *clientv3.Client, prefix string, timeout time.Duration, log *slog.Logger) *Store {
	return &Store{cli: cli, prefix: prefix + "saml/", timeout: timeout, now: time.Now, log: log,
		cache: map[string]record{}, leases: map[int64]clientv3.LeaseID{}, replayTurns: map[string]*turn{}}
}

func hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (s *Store) sessionKey(id string) string { return s.prefix + "session/" + hash(id) }

// userPrefix is where the sessions of userName are listed (one key per
// session, see Add), told apart as saml's own table tells users apart.
func (s *Store) userPrefix(userName string) string {
	return s.prefix + "user/" + hash(store.Fold(userName)) + "/"
}

// nameIDPrefix is where the sessions of the IdP's nameID are listed (see
// Add): DeleteNameID reads them rather than every session.
func (s *Store) nameIDPrefix(nameID string) string {
	return s.prefix + "nameid/" + hash(store.Fold(nameID)) + "/"
}

// listedSession is the session key a listing key (userPrefix,
// nameIDPrefix) names: the listing's last segment is the session's hash.
func (s *Store) listedSession(listing string) string {
	return s.prefix + "session/" + listing[strings.LastIndexByte(listing, '/')+1:]
}

// ending returns the operations that end the session stored under key as
// rec: the session and its listings (see Add), in one transaction, so no
// listing outlives its session until its lease ends. Left behind, the
// listings of one account signing in and out over and over would grow
// without the per-user bound (makeRoom) and be read by every IdP logout
// of that user (DeleteNameID).
func (s *Store) ending(key string, rec record) []clientv3.Op {
	h := key[strings.LastIndexByte(key, '/')+1:]
	return []clientv3.Op{
		clientv3.OpDelete(key),
		clientv3.OpDelete(s.userPrefix(rec.UserName) + h),
		clientv3.OpDelete(s.nameIDPrefix(rec.NameID) + h),
	}
}

// replayKey is where daemons before the per-user bound recorded key: FirstUse
// finds their records there, and makes it beside its own for them to find.
func (s *Store) replayKey(key string) string { return s.prefix + "replay/" + hash(key) }

// replayUserPrefix is where the replay records of user are (see FirstUse),
// users told apart as saml's own cache tells them apart. A hash has no
// slash, so no key under it is ever an older daemon's (replayKey).
func (s *Store) replayUserPrefix(user string) string {
	return s.prefix + "replay/" + hash(store.Fold(user)) + "/"
}

// unavailable marks an etcd error as the state being unavailable.
func unavailable(err error) error { return fmt.Errorf("%w: etcd: %w", store.ErrUnavailable, err) }

// lease returns a lease that lasts until at least expires, shared with
// everything expiring in the same minute.
func (s *Store) lease(ctx context.Context, expires time.Time) (clientv3.LeaseID, error) {
	minute := expires.Unix()/60 + 1
	s.mu.Lock()
	id, ok := s.leases[minute]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	ttl := minute*60 - s.now().Unix() + 1
	resp, err := s.cli.Grant(ctx, max(ttl, 5))
	if err != nil {
		return 0, unavailable(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Unix() / 60
	for m := range s.leases {
		if m < now {
			delete(s.leases, m) // expired with its keys
		}
	}
	s.leases[minute] = resp.ID
	return resp.ID, nil
}

// forgetLease drops a lease etcd no longer knows (it expired early, or the
// cluster was restored), so the next call grants a new one.
func (s *Store) forgetLease(id clientv3.LeaseID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for m, l := range s.leases {
		if l == id {
			delete(s.leases, m)
		}
	}
}

// put writes key on a lease until expires, as one transaction whose
// condition is cmp (none: always), and reports whether it held and the
// revision it was decided at.
func (s *Store) put(ctx context.Context, key, val string, expires time.Time, cmps ...clientv3.Cmp) (bool, int64, error) {
	return s.putAll(ctx, []string{key, val}, expires, cmps...)
}

// putAll is put of several keys and values (kvs alternates them), all on
// the one lease, in one transaction.
func (s *Store) putAll(ctx context.Context, kvs []string, expires time.Time, cmps ...clientv3.Cmp) (bool, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for attempt := 0; ; attempt++ {
		id, err := s.lease(ctx, expires)
		if err != nil {
			return false, 0, err
		}
		var ops []clientv3.Op
		for i := 0; i+1 < len(kvs); i += 2 {
			ops = append(ops, clientv3.OpPut(kvs[i], kvs[i+1], clientv3.WithLease(id)))
		}
		resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).If(cmps...).Then(ops...).Commit()
		if errors.Is(err, rpctypes.ErrLeaseNotFound) && attempt == 0 {
			s.forgetLease(id)
			continue
		}
		if err != nil {
			return false, 0, unavailable(err)
		}
		return resp.Succeeded, resp.Header.Revision, nil
	}
}

// Add implements saml.SessionStore. Like saml's own table it keeps at
// most saml.MaxSessionsPerUser sessions of a user, ending the ones that
// expire soonest: nothing else bounds the sessions in etcd, and one
// account signing in over and over would otherwise fill it up to its
// quota, where every write of the cluster fails. A session is listed under
// its user (userPrefix) on the same lease, so the list ends with it;
// daemons adding sessions of one user at the same moment may each leave
// one more.
func (s *Store) Add(ctx context.Context, id string, se saml.Session, expires time.Time) error {
	rec := record{UserName: se.UserName, UserID: se.UserID, NameID: se.NameID, SessionIndex: se.SessionIndex, Expires: expires.Unix()}
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := s.makeRoom(ctx, se.UserName); err != nil {
		return err
	}
	key := s.sessionKey(id)
	_, rev, err := s.putAll(ctx, []string{key, string(val),
		s.userPrefix(se.UserName) + hash(id), strconv.FormatInt(rec.Expires, 10),
		s.nameIDPrefix(se.NameID) + hash(id), ""}, expires)
	if err != nil {
		return err
	}
	s.remember(key, rec, rev)
	return nil
}

// makeRoom ends the sessions of userName that expire soonest until one
// more fits within saml.MaxSessionsPerUser. A listed session already gone
// (a listing left by a failure, say) is only unlisted. The watch takes
// the ended sessions out of every daemon's cache.
func (s *Store) makeRoom(ctx context.Context, userName string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// A user has about MaxSessionsPerUser listed; the limit keeps each
	// transaction below etcd's bound on operations (128 by default) even
	// after many concurrent sign-ins, and whatever it leaves goes next time.
	resp, err := s.cli.Get(ctx, s.userPrefix(userName), clientv3.WithPrefix(), clientv3.WithLimit(4*saml.MaxSessionsPerUser))
	if err != nil {
		return unavailable(err)
	}
	if len(resp.Kvs) < saml.MaxSessionsPerUser {
		return nil
	}
	type listed struct {
		key, session string
		expires      int64
		created      int64 // the listing's create revision
		rec          record
		readable     bool // rec is the session's record
	}
	all := make([]listed, 0, len(resp.Kvs))
	gets := make([]clientv3.Op, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		k := string(kv.Key)
		l := listed{key: k, session: s.listedSession(k), created: kv.CreateRevision}
		l.expires, _ = strconv.ParseInt(string(kv.Value), 10, 64)
		all = append(all, l)
		gets = append(gets, clientv3.OpGet(l.session))
	}
	live, err := s.inTxns(ctx, gets)
	if err != nil {
		return err
	}
	var ends []clientv3.Op
	var kept []listed
	for i, l := range all {
		kvs := live[i].GetResponseRange().Kvs
		if len(kvs) == 0 {
			ends = append(ends, clientv3.OpDelete(l.key))
			continue
		}
		l.readable = json.Unmarshal(kvs[0].Value, &l.rec) == nil
		kept = append(kept, l)
	}
	// Expiries are in seconds and the lifetime is fixed, so sessions made
	// together tie: the oldest of them goes, as in a daemon's own table,
	// not whichever sorts first by key (a session another daemon made a
	// moment ago, say).
	slices.SortFunc(kept, func(a, b listed) int {
		return cmp.Or(cmp.Compare(a.expires, b.expires), cmp.Compare(a.created, b.created))
	})
	for _, l := range kept[:max(0, len(kept)-saml.MaxSessionsPerUser+1)] {
		s.forget(l.session)
		if l.readable {
			ends = append(ends, s.ending(l.session, l.rec)...)
		} else {
			// Its nameID listing, unknown, is left to its lease.
			ends = append(ends, clientv3.OpDelete(l.session), clientv3.OpDelete(l.key))
		}
		s.log.Info("saml: session ended; its user signed in from more browsers than are kept", "user", userName, "sessionsKept", saml.MaxSessionsPerUser)
	}
	_, err = s.inTxns(ctx, ends)
	return err
}

// inTxns runs ops in as many transactions as etcd's bound on operations
// per transaction asks for, and returns their responses in order.
func (s *Store) inTxns(ctx context.Context, ops []clientv3.Op) ([]*etcdserverpb.ResponseOp, error) {
	var out []*etcdserverpb.ResponseOp
	for len(ops) > 0 {
		n := min(len(ops), 4*saml.MaxSessionsPerUser)
		resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).Then(ops[:n]...).Commit()
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, resp.Responses...)
		ops = ops[n:]
	}
	return out, nil
}

// remember caches the session rec under key as etcd held it at rev. The
// watch may have reported the session's delete already (a sign-out on
// another daemon right after the read): then forget ran before remember,
// so a session read before the newest delete heard is not cached. Nor is
// one read before the watch opened: its delete may have come before too.
func (s *Store) remember(key string, rec record, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rev < s.deleted || s.watched == 0 || rev < s.watched {
		return
	}
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[key] = rec
}

func (s *Store) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, key)
}

// Get implements saml.SessionStore: from the cache, else one linearizable
// read (a sign-in that ended on another daemon a moment ago is found).
func (s *Store) Get(ctx context.Context, id string) (saml.Session, bool, error) {
	key := s.sessionKey(id)
	now := s.now().Unix()
	s.mu.Lock()
	rec, ok := s.cache[key]
	s.mu.Unlock()
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return saml.Session{}, false, unavailable(err)
		}
		if len(resp.Kvs) == 0 {
			return saml.Session{}, false, nil
		}
		if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
			return saml.Session{}, false, fmt.Errorf("samletcd: session record: %w", err)
		}
		s.remember(key, rec, resp.Header.Revision)
	}
	if now >= rec.Expires {
		s.forget(key)
		return saml.Session{}, false, nil
	}
	return rec.session(), true, nil
}

// Bind implements saml.SessionStore. It reads the record from etcd, not
// the cache: another daemon may have bound it since this one cached it
// (the watch reports deletes only). An unbound record is rewritten with
// the user id in a transaction that holds only while the record is as
// read, on the lease it has: a session signed out meanwhile is not brought
// back, and of daemons binding at once the first wins and the others read
// its binding.
func (s *Store) Bind(ctx context.Context, id, userID string) (saml.Session, bool, error) {
	key := s.sessionKey(id)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return saml.Session{}, false, unavailable(err)
	}
	kvs, rev := resp.Kvs, resp.Header.Revision
	// Only Bind rewrites a record, so a failed transaction finds it bound
	// or gone; the bound on attempts guards against anything else.
	for range 3 {
		var rec record
		if len(kvs) > 0 {
			if err := json.Unmarshal(kvs[0].Value, &rec); err != nil {
				return saml.Session{}, false, fmt.Errorf("samletcd: session record: %w", err)
			}
		}
		if len(kvs) == 0 || s.now().Unix() >= rec.Expires {
			s.forget(key)
			return saml.Session{}, false, nil
		}
		if rec.UserID == "" {
			rec.UserID = userID
			val, err := json.Marshal(rec)
			if err != nil {
				return saml.Session{}, false, err
			}
			tr, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).
				If(clientv3.Compare(clientv3.ModRevision(key), "=", kvs[0].ModRevision)).
				Then(clientv3.OpPut(key, string(val), clientv3.WithIgnoreLease())).
				Else(clientv3.OpGet(key)).Commit()
			if err != nil {
				return saml.Session{}, false, unavailable(err)
			}
			rev = tr.Header.Revision
			if !tr.Succeeded {
				kvs = tr.Responses[0].GetResponseRange().Kvs
				continue
			}
		}
		s.remember(key, rec, rev)
		return rec.session(), true, nil
	}
	return saml.Session{}, false, errors.New("samletcd: a session record kept changing while it was bound")
}

// Delete implements saml.SessionStore. It ends the session's listings
// with it, named by its record: the cached one, else read from etcd (a
// session's user and nameID never change, so any copy names them).
func (s *Store) Delete(ctx context.Context, id string) error {
	key := s.sessionKey(id)
	s.mu.Lock()
	rec, ok := s.cache[key]
	delete(s.cache, key)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	ops := []clientv3.Op{clientv3.OpDelete(key)}
	if !ok {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return unavailable(err)
		}
		ok = len(resp.Kvs) > 0 && json.Unmarshal(resp.Kvs[0].Value, &rec) == nil
	}
	if ok {
		ops = s.ending(key, rec)
	}
	if _, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).Then(ops...).Commit(); err != nil {
		return unavailable(err)
	}
	return nil
}

// DeleteNameID implements saml.SessionStore. It reads the sessions listed
// under nameID (see Add), and every session while sessions stored by
// releases before the listing may still live (see UntaggedSessionsUntil).
func (s *Store) DeleteNameID(ctx context.Context, nameID string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.mu.Lock()
	unlisted := s.now().Before(s.untaggedUntil)
	s.mu.Unlock()
	var kvs []*mvccpb.KeyValue
	var stale []clientv3.Op // listings whose session is gone
	if unlisted {
		resp, err := s.cli.Get(ctx, s.prefix+"session/", clientv3.WithPrefix())
		if err != nil {
			return 0, unavailable(err)
		}
		kvs = resp.Kvs
	} else {
		listed, err := s.cli.Get(ctx, s.nameIDPrefix(nameID), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return 0, unavailable(err)
		}
		gets := make([]clientv3.Op, 0, len(listed.Kvs))
		for _, kv := range listed.Kvs {
			gets = append(gets, clientv3.OpGet(s.listedSession(string(kv.Key))))
		}
		resps, err := s.inTxns(ctx, gets)
		if err != nil {
			return 0, err
		}
		for i, r := range resps {
			got := r.GetResponseRange().Kvs
			if len(got) == 0 {
				// Its session is gone, the listing left by a failure.
				stale = append(stale, clientv3.OpDelete(string(listed.Kvs[i].Key)))
			}
			kvs = append(kvs, got...)
		}
	}
	n := 0
	for _, kv := range kvs {
		var rec record
		if json.Unmarshal(kv.Value, &rec) != nil || !strings.EqualFold(rec.NameID, nameID) {
			continue
		}
		s.forget(string(kv.Key))
		if _, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).Then(s.ending(string(kv.Key), rec)...).Commit(); err != nil {
			return n, unavailable(err)
		}
		n++
	}
	if _, err := s.inTxns(ctx, stale); err != nil {
		return n, err
	}
	return n, nil
}

// PendingKey returns the key every daemon on the cluster seals pending
// sign-in cookies with (saml.Options.PendingKey): the first daemon to ask
// creates it, in a transaction, and the others read it.
func (s *Store) PendingKey(ctx context.Context) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.prefix + "pending-key"
	fresh := make([]byte, 32)
	rand.Read(fresh)
	resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(fresh))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) != 1 || len(kvs[0].Value) != 32 {
		return nil, errors.New("samletcd: the stored pending-sign-in key is malformed")
	}
	return kvs[0].Value, nil
}

// UntaggedSessionsUntil returns until when a session cookie without a tag,
// as daemons minted them before, may still be signed in
// (saml.Options.UntaggedSessionsUntil): the latest expiry of the sessions
// in etcd when the first daemon minting tagged ones asked. That daemon
// reads every session, once in the cluster's life, and records the answer
// for every later one; daemons of two releases never share a prefix, so
// no untagged session is stored after it.
func (s *Store) UntaggedSessionsUntil(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := s.prefix + "untagged-sessions-until"
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return time.Time{}, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		all, err := s.cli.Get(ctx, s.prefix+"session/", clientv3.WithPrefix())
		if err != nil {
			return time.Time{}, unavailable(err)
		}
		var latest int64
		for _, kv := range all.Kvs {
			var rec record
			if json.Unmarshal(kv.Value, &rec) == nil {
				latest = max(latest, rec.Expires)
			}
		}
		val := strconv.FormatInt(latest, 10)
		tr, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).
			If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
			Then(clientv3.OpPut(key, val)).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			return time.Time{}, unavailable(err)
		}
		if tr.Succeeded {
			return s.setUntagged(time.Unix(latest, 0)), nil
		}
		resp = (*clientv3.GetResponse)(tr.Responses[0].GetResponseRange())
	}
	if len(resp.Kvs) != 1 {
		return time.Time{}, errors.New("samletcd: the untagged sessions' end went missing")
	}
	sec, err := strconv.ParseInt(string(resp.Kvs[0].Value), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("samletcd: the untagged sessions' end is malformed: %q", resp.Kvs[0].Value)
	}
	return s.setUntagged(time.Unix(sec, 0)), nil
}

// setUntagged records until when sessions of older releases may live, for
// DeleteNameID, and returns it.
func (s *Store) setUntagged(t time.Time) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.untaggedUntil = t
	return t
}

// replayTries bounds FirstUse's attempts: each fails only when another
// record of the same user was made in between.
const replayTries = 10

// FirstUse implements saml.ReplayCache. The key, listed under its user, is
// created only if no daemon created it before, nor the key an older daemon
// would have made of it (replayKey), in one transaction; and only while
// the user holds fewer than saml.MaxSignInsPerUser unexpired records,
// counted under the user first. The transaction also holds only if no
// record of the user was made since that count, so the bound is exact
// across daemons; a sign-in that loses that race counts again, and one
// that loses it replayTries times is unavailable (its browser is asked to
// try again). Only the user's own sign-ins on other daemons race it: in a
// daemon they take turns (takeTurn). Records
// past their expiry still count until their lease ends (about a minute
// later) unless the user is at the bound, when their expiries are read.
func (s *Store) FirstUse(ctx context.Context, user, key string, expires time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	prefix := s.replayUserPrefix(user)
	release, err := s.takeTurn(ctx, prefix)
	if err != nil {
		return false, unavailable(err)
	}
	defer release()
	k := prefix + hash(key)
	unused := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(k), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.replayKey(key)), "=", 0),
	}
	for range replayTries {
		resp, err := s.cli.Txn(clientv3.WithRequireLeader(ctx)).If(unused...).
			Then(clientv3.OpGet(prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())).Commit()
		if err != nil {
			return false, unavailable(err)
		}
		if !resp.Succeeded {
			return false, nil
		}
		rev := resp.Header.Revision
		if resp.Responses[0].GetResponseRange().Count >= saml.MaxSignInsPerUser {
			var until time.Time
			if until, rev, err = s.replayFull(ctx, prefix); err != nil {
				return false, err
			}
			if !until.IsZero() {
				return false, &saml.TooManyError{Until: until}
			}
		}
		noneSince := clientv3.Compare(clientv3.ModRevision(prefix), "<", rev+1).WithPrefix()
		// The key an older daemon looks for is made too: while a fleet
		// is upgraded one daemon at a time, an assertion consumed here is
		// a replay there as well.
		first, _, err := s.putAll(ctx, []string{k, strconv.FormatInt(expires.Unix(), 10), s.replayKey(key), ""}, expires, append(unused, noneSince)...)
		if err != nil || first {
			return first, err
		}
	}
	return false, unavailable(fmt.Errorf("the replay records of a user changed %d times while this daemon counted them", replayTries))
}

// takeTurn waits for the turn of the user whose records are under prefix
// at FirstUse, and returns its release. Calls for one user in one daemon
// would only lose the race of FirstUse's transaction to each other, and a
// user's calls wait for the user's own only: others are never held up.
func (s *Store) takeTurn(ctx context.Context, prefix string) (func(), error) {
	s.mu.Lock()
	tu := s.replayTurns[prefix]
	if tu == nil {
		tu = &turn{token: make(chan struct{}, 1)}
		s.replayTurns[prefix] = tu
	}
	tu.waiting++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if tu.waiting--; tu.waiting == 0 {
			delete(s.replayTurns, prefix)
		}
	}
	select {
	case tu.token <- struct{}{}:
		return func() { <-tu.token; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}

// replayFull reads the records under a user's prefix and returns when the
// soonest unexpired one lapses if there are saml.MaxSignInsPerUser of them
// (zero otherwise), and the revision it read at.
func (s *Store) replayFull(ctx context.Context, prefix string) (time.Time, int64, error) {
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return time.Time{}, 0, unavailable(err)
	}
	now := s.now().Unix()
	var live []int64
	for _, kv := range resp.Kvs {
		exp, err := strconv.ParseInt(string(kv.Value), 10, 64)
		if err != nil {
			exp = now + 1 // unreadable: counted, as if just made
		}
		if exp > now {
			live = append(live, exp)
		}
	}
	if len(live) < saml.MaxSignInsPerUser {
		return time.Time{}, resp.Header.Revision, nil
	}
	return time.Unix(slices.Min(live), 0), resp.Header.Revision, nil
}

func (s *Store) logoutKey(key string) string { return s.prefix + "logout/" + hash(key) }

// logoutTries bounds RecordLogout's attempts: each fails only when another
// daemon recorded a logout of the same user in between.
const logoutTries = 5

// RecordLogout implements saml.LogoutLog: the later of at and the instant
// recorded before is written on a lease until expires, in a transaction
// that compares the key with what was read, so that of two daemons taking
// logouts of one user at once, the later instant stays.
func (s *Store) RecordLogout(ctx context.Context, key string, at, expires time.Time) error {
	k := s.logoutKey(key)
	for range logoutTries {
		prev, rev, err := s.loggedOut(ctx, k)
		if err != nil {
			return err
		}
		if prev.After(at) {
			at = prev
		}
		ok, _, err := s.put(ctx, k, at.UTC().Format(time.RFC3339Nano), expires, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		if err != nil || ok {
			return err
		}
	}
	return unavailable(fmt.Errorf("the logout record of a user changed %d times while this daemon wrote it", logoutTries))
}

// LoggedOut implements saml.LogoutLog with one linearizable read: a logout
// taken by another daemon a moment ago is found.
func (s *Store) LoggedOut(ctx context.Context, key string) (time.Time, bool, error) {
	at, rev, err := s.loggedOut(ctx, s.logoutKey(key))
	return at, rev != 0, err
}

// loggedOut reads the logout record at k: its instant and the revision it
// was written at (0: there is none).
func (s *Store) loggedOut(ctx context.Context, k string) (time.Time, int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return time.Time{}, 0, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return time.Time{}, 0, nil
	}
	at, err := time.Parse(time.RFC3339Nano, string(resp.Kvs[0].Value))
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("samletcd: logout record: %w", err)
	}
	return at, resp.Kvs[0].ModRevision, nil
}

// heardDelete drops key, deleted at rev, from the cache (see remember).
func (s *Store) heardDelete(key string, rev int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.cache, key)
	s.deleted = max(s.deleted, rev)
}

// Run drops from the cache the sessions deleted on any daemon, until ctx
// ends. A broken watch (etcd lost quorum, say) is opened again where it
// stopped, so cached sessions keep working meanwhile and no delete is
// missed; only if etcd compacted past that point is the cache emptied.
func (s *Store) Run(ctx context.Context) error {
	var from int64
	for {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		// The created notification tells the revision the first watch
		// starts after: a watch that ends before it brought an event or a
		// progress notification is opened again from there, not from
		// etcd's revision of that later moment, which would skip the
		// sign-outs made meanwhile.
		opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithFilterPut(), clientv3.WithProgressNotify(), clientv3.WithCreatedNotify()}
		if from > 0 {
			opts = append(opts, clientv3.WithRev(from))
		}
		for resp := range s.cli.Watch(wctx, s.prefix+"session/", opts...) {
			if resp.CompactRevision != 0 {
				s.mu.Lock()
				clear(s.cache)
				// Deletes before the compaction may be missed: a read
				// older than it is not cached either.
				s.deleted = max(s.deleted, resp.CompactRevision)
				s.mu.Unlock()
				from = resp.CompactRevision
				break
			}
			if resp.Created {
				if from == 0 {
					from = resp.Header.Revision + 1
					s.mu.Lock()
					s.watched = resp.Header.Revision
					s.mu.Unlock()
				}
				continue
			}
			for _, ev := range resp.Events {
				if ev.Type == mvccpb.DELETE {
					s.heardDelete(string(ev.Kv.Key), ev.Kv.ModRevision)
				}
				from = ev.Kv.ModRevision + 1
			}
			if resp.IsProgressNotify() {
				// Every event up to the header's revision was sent.
				from = resp.Header.Revision + 1
			}
		}
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}
