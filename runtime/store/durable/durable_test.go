package durable

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
	bolt "go.etcd.io/bbolt"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/internal/record"
	"github.com/idrecon/idrecon/spec"
)

func openDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newStore(t *testing.T, j store.Journal) *store.Store {
	t.Helper()
	opts := store.Options{}
	if j != nil {
		opts.Journal = j
	}
	st, err := store.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// reopen closes st and db and loads the file into a fresh store.
func reopen(t *testing.T, st *store.Store, db *DB) (*store.Store, *DB) {
	t.Helper()
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openDB(t, db.path)
	st2 := newStore(t, db2)
	if _, err := db2.LoadInto(st2); err != nil {
		t.Fatal(err)
	}
	return st2, db2
}

func update(t *testing.T, st *store.Store, fn func(*store.Txn) error) {
	t.Helper()
	if err := st.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// tables names the store's tables: memdb's and the users.
func tables() []string {
	return append(slices.Collect(maps.Keys(store.Schema().Tables)), store.TableUsers)
}

// dump returns every persisted table of txn in primary-key order.
func dump(t *testing.T, txn *store.Txn) map[string][]any {
	t.Helper()
	out := rows(t, txn)
	for i, obj := range out[store.TableMembers] {
		m := obj.(*store.Members)
		out[store.TableMembers][i] = &memberRow{GroupID: m.GroupID, IDs: m.IDs.Slice(), Version: m.Version, Modified: m.Modified}
	}
	return out
}

// rows returns the rows of every table but the derived ones, as stored.
func rows(t *testing.T, txn *store.Txn) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for _, table := range tables() {
		if table == store.TableMemberOf || table == store.TableUserIndexes {
			continue // derived from the members and users rows; compared through them
		}
		it, err := txn.Get(table, store.IndexID)
		if err != nil {
			t.Fatal(err)
		}
		for obj := it.Next(); obj != nil; obj = it.Next() {
			out[table] = append(out[table], obj)
		}
	}
	return out
}

// memberRow is a members row as dump shows it: its ids as a list, since
// two equal sets may be cut into chunks differently.
type memberRow struct {
	GroupID  string
	IDs      []string
	Version  uint64
	Modified time.Time
}

// withoutPrivateKeys returns d with certificates' private keys cleared: they
// are not persisted and come back from their reference on the next reconcile.
// asFormat returns dump d as a file of format version format holds it:
// before format 2, members rows kept no version or modification time.
func asFormat(format int, d map[string][]any) map[string][]any {
	if format >= 2 {
		return d
	}
	for i, raw := range d[store.TableMembers] {
		m := *raw.(*memberRow)
		m.Version, m.Modified = 0, time.Time{}
		d[store.TableMembers][i] = &m
	}
	return d
}

func withoutPrivateKeys(d map[string][]any) map[string][]any {
	out := map[string][]any{}
	for table, objs := range d {
		for _, obj := range objs {
			if r, ok := obj.(*store.Resource); ok {
				if c, ok := r.Spec.(*spec.Certificate); ok && c.PrivateKey != nil {
					r2, c2 := *r, *c
					c2.PrivateKey = nil
					r2.Spec = &c2
					obj = &r2
				}
			}
			out[table] = append(out[table], obj)
		}
	}
	return out
}

func assertSameState(t *testing.T, got, want *store.Store) {
	t.Helper()
	assertSameDump(t, dump(t, got.Read()), withoutPrivateKeys(dump(t, want.Read())))
}

func assertSameDump(t *testing.T, g, w map[string][]any) {
	t.Helper()
	if !reflect.DeepEqual(g, w) {
		for _, table := range tables() {
			if !reflect.DeepEqual(g[table], w[table]) {
				t.Errorf("table %s differs:\n got %s\nwant %s", table, js(g[table]), js(w[table]))
			}
		}
	}
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

var t0 = time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)

func user(id, name string) *store.User {
	return &store.User{ID: id, UserName: name, Active: true, WorkEmail: name,
		Attributes: json.RawMessage(fmt.Sprintf(`{"userName":%q}`, name)), Created: t0, Modified: t0, Version: 1}
}

// populate writes one object of every kind through st.
func populate(t *testing.T, st *store.Store) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	update(t, st, func(tx *store.Txn) error {
		for _, obj := range []struct {
			table string
			obj   any
		}{
			{store.TableUsers, user("u1", "Ada@example.com")},
			{store.TableUsers, user("u2", "bob@example.com")},
			{store.TableGroups, &store.Group{ID: "g1", DisplayName: "Leads", ExternalID: "e1", Created: t0, Modified: t0, Version: 1}},
			{store.TableGroups, &store.Group{ID: "g2", DisplayName: "All", Created: t0, Modified: t0, Version: 1}},
			{store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: "rev-1"}},
			{store.TableResources, &store.Resource{Kind: spec.KindRole, Name: "Auditor", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.Role{Permissions: []string{"issue.audit"}}}},
			{store.TableResources, &store.Resource{Kind: spec.KindCertificate, Name: "sp", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.Certificate{Usage: spec.UsageSamlSPSigning, PrivateKeyFrom: &spec.ValueFrom{Env: "SP_KEY"}, PrivateKey: key, KeyFingerprint: "ab"}}},
			{store.TableResources, &store.Resource{Kind: spec.KindScimProvisioning, Name: "entra", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.ScimProvisioning{Enabled: true, Tokens: []spec.ScimToken{{Name: "t", SHA256: "00ff"}}}}},
			{store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: "shop", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.Application{Versions: []string{"1"}}}},
			{store.TableResources, &store.Resource{Kind: spec.KindSamlServiceProvider, Name: "sso", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.SamlServiceProvider{Enabled: true, EntityID: "urn:sp", AllowedClockSkew: spec.Duration(time.Minute)}}},
			{store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: "leads", Revision: "rev-1", ModifiedBy: "reconcile", Modified: t0,
				Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Leads"}, Roles: []string{"Auditor"}}}},
		} {
			if err := tx.Insert(obj.table, obj.obj); err != nil {
				return err
			}
		}
		if err := tx.ChangeMembers("g1", []string{"u1"}, nil, t0); err != nil {
			return err
		}
		return tx.ChangeMembers("g2", []string{"g1"}, nil, t0)
	})
}

func TestCommitSurvivesReopen(t *testing.T) {
	tests := []struct {
		name   string
		change func(*store.Txn) error
	}{
		{"nothing more", func(*store.Txn) error { return nil }},
		{"update user", func(tx *store.Txn) error {
			u, _ := tx.UserByID("u2")
			u2 := *u
			u2.Active, u2.Version = false, 2
			return tx.Insert(store.TableUsers, &u2)
		}},
		{"delete user and its memberships", func(tx *store.Txn) error {
			if err := tx.DeleteMemberships("u1", t0); err != nil {
				return err
			}
			_, err := tx.DeleteAll(store.TableUsers, store.IndexID, "u1")
			return err
		}},
		{"delete resource", func(tx *store.Txn) error {
			r, _ := tx.Resource(spec.KindRole, "Auditor")
			return tx.Delete(store.TableResources, r)
		}},
		{"insert then delete in one batch", func(tx *store.Txn) error {
			u := user("u9", "tmp")
			if err := tx.Insert(store.TableUsers, u); err != nil {
				return err
			}
			return tx.Delete(store.TableUsers, u)
		}},
		{"update meta", func(tx *store.Txn) error {
			return tx.Insert(store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: "rev-2"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openDB(t, filepath.Join(t.TempDir(), FileName))
			st := newStore(t, db)
			populate(t, st)
			update(t, st, tt.change)
			want := st.Snapshot()
			st2, _ := reopen(t, st, db)
			wantStore := newStore(t, nil)
			loadFrom(t, wantStore, want)
			assertSameState(t, st2, wantStore)
		})
	}
}

func TestFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", FileName)
	openDB(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSecondOpenFailsWithErrLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	openDB(t, path)
	_, err := Open(path, Options{Timeout: 50 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
}

func TestNewerFormatIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketInfo).Put(keyFormat, []byte(fmt.Sprint(FormatVersion+1)))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{}); !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("Open = %v, want ErrNewerFormat", err)
	}
}

// writeState writes a populated state file and returns its path.
func writeState(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := newStore(t, db)
	populate(t, st)
	// Enough users that the file spans many pages, so truncation cuts data.
	for i := range 20 {
		update(t, st, func(tx *store.Txn) error {
			for j := range 100 {
				if err := tx.Insert(store.TableUsers, user(fmt.Sprintf("bulk-%d-%d", i, j), fmt.Sprintf("bulk-%d-%d@example.com", i, j))); err != nil {
					return err
				}
			}
			return nil
		})
	}
	st.Close()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

var errLoadedNothing = errors.New("loaded no users")

func openAndLoad(t *testing.T, path string) error {
	t.Helper()
	db, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := store.New(store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	_, err = db.LoadInto(st)
	if err == nil && len(dump(t, st.Read())[store.TableUsers]) == 0 {
		return errLoadedNothing
	}
	return err
}

// rewriteRecord replaces one stored record's value, bypassing the codec.
func rewriteRecord(t *testing.T, path, table string, key []byte, val func([]byte) []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(table))
		return b.Put(key, val(bytes.Clone(b.Get(key))))
	}); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedStateStopsStartUp(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"truncated to half its pages", func(t *testing.T, path string) {
			// The file may be longer than its pages (bbolt grows it ahead).
			db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var size int64
			err = db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
			db.Close()
			if err != nil {
				t.Fatal(err)
			}
			truncate(t, path, size/2)
		}},
		{"truncated below two pages", func(t *testing.T, path string) { truncate(t, path, 100) }},
		{"not a bbolt file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, bytes.Repeat([]byte("idrecon "), 4096), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"flipped bit in a user record on disk", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			i := bytes.Index(b, []byte("bob@example.com"))
			if i < 0 {
				t.Fatal("record not found in file")
			}
			b[i] ^= 0x01
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"record under the wrong key", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error {
				b := tx.Bucket([]byte(store.TableUsers))
				return b.Put([]byte("u3"), bytes.Clone(b.Get([]byte("u2"))))
			}); err != nil {
				t.Fatal(err)
			}
		}},
		{"membership of a missing group", func(t *testing.T, path string) {
			deleteKey(t, path, store.TableGroups, []byte("g1"))
		}},
		{"membership of a missing user", func(t *testing.T, path string) {
			deleteKey(t, path, store.TableUsers, []byte("u1"))
		}},
		{"member chunk without its header", func(t *testing.T, path string) {
			deleteKey(t, path, store.TableMembers, []byte("g1"))
		}},
		{"member chunk under the wrong key", func(t *testing.T, path string) {
			rewriteRecord(t, path, record.MemberLists, record.ChunkKey("g1", "u0"), func([]byte) []byte {
				rec, err := record.Encode(record.MemberLists, &record.MemberChunk{GroupID: "g1", IDs: []string{"u1"}})
				if err != nil {
					t.Fatal(err)
				}
				return rec
			})
		}},
		{"member chunks overlap", func(t *testing.T, path string) {
			rewriteRecord(t, path, record.MemberLists, record.ChunkKey("g2", "bulk-0-0"), func([]byte) []byte {
				rec, err := record.Encode(record.MemberLists, &record.MemberChunk{GroupID: "g2", IDs: []string{"bulk-0-0", "g1"}})
				if err != nil {
					t.Fatal(err)
				}
				return rec
			})
		}},
		{"missing bucket", func(t *testing.T, path string) {
			db, err := bolt.Open(path, 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(store.TableGroups)) }); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeState(t)
			if err := openAndLoad(t, path); err != nil {
				t.Fatalf("undamaged file: %v", err)
			}
			tt.damage(t, path)
			err := openAndLoad(t, path)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("start-up on a damaged file = %v, want ErrCorrupt", err)
			}
			t.Log(err)
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func deleteKey(t *testing.T, path, table string, key []byte) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(table)).Delete(key) }); err != nil {
		t.Fatal(err)
	}
}

func TestLoadIntoFailureLeavesStoreEmpty(t *testing.T) {
	path := writeState(t)
	deleteKey(t, path, store.TableGroups, []byte("g1"))
	db := openDB(t, path)
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("LoadInto = %v, want ErrCorrupt", err)
	}
	if d := dump(t, st.Read()); len(d) != 0 {
		t.Fatalf("store holds %d tables after a failed load, want none", len(d))
	}
}

// Short names for the test tables.
type Txn = store.Txn

const tableUsers = store.TableUsers

// loadFrom fills st with everything in snap.
func loadFrom(t *testing.T, st *store.Store, snap interface{ Txn(bool) *memdb.Txn }) {
	t.Helper()
	if err := st.Load(func(tx *store.Txn) error {
		for table, objs := range rows(t, &store.Txn{Txn: snap.Txn(false)}) {
			for _, o := range objs {
				if err := tx.Insert(table, o); err != nil {
					return err
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestCommitSkipsUnknownTables(t *testing.T) {
	path := filepath.Join(t.TempDir(), FileName)
	db := openDB(t, path)
	err := db.Commit(memdb.Changes{
		{Table: "sessions", After: &struct{ ID string }{"s1"}},
		{Table: store.TableUsers, After: user("u1", "ada@example.com")},
	})
	if err != nil {
		t.Fatalf("Commit = %v, want the known table written and the unknown one skipped", err)
	}
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Read().UserByID("u1"); u == nil {
		t.Fatal("user written next to an unknown table was lost")
	}
}

func TestCommitRejectsUnencodable(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), FileName))
	err := db.Commit(memdb.Changes{
		{Table: store.TableUsers, After: user("u1", "ada@example.com")},
		{Table: store.TableResources, After: &store.Resource{Kind: spec.KindRole, Name: "r", Spec: &spec.Application{}}},
	})
	if err == nil {
		t.Fatal("Commit accepted a resource whose spec does not match its kind")
	}
	st := newStore(t, nil)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatal(err)
	}
	if u, _ := st.Read().UserByID("u1"); u != nil {
		t.Fatal("a failed Commit wrote part of its batch")
	}
}

// TestOpensFormat1StateFile turns a state file back into format 1 (no
// members bucket: membership records only) and checks this idrecon migrates and
// loads it: the memberships come back, with membership version 0.
func TestOpensFormat1StateFile(t *testing.T) {
	path := writeState(t)
	downgrade(t, path, 1)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("open a format 1 file: %v", err)
	}
	st := newStore(t, db)
	if _, err := db.LoadInto(st); err != nil {
		t.Fatalf("load a format 1 file: %v", err)
	}
	m, err := st.Read().MembersOf("g1")
	if err != nil || m == nil || !slices.Equal(m.IDs.Slice(), []string{"u1"}) || m.Version != 0 {
		t.Fatalf("members of g1 after migration = %+v, %v; want [u1] at version 0", m, err)
	}
	if groups, _ := st.Read().GroupIDsOf("g1"); !slices.Equal(groups, []string{"g2"}) {
		t.Fatalf("groups of g1 after migration = %v, want [g2]", groups)
	}
	var format []byte
	if err := db.bolt.View(func(tx *bolt.Tx) error {
		format = slices.Clone(tx.Bucket(bucketInfo).Get(keyFormat))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if string(format) != strconv.Itoa(FormatVersion) {
		t.Fatalf("format after migration = %s, want %d", format, FormatVersion)
	}
}

// TestLoadIndexesEveryWorkEmailOfOlderRecords: a state file written by an
// idrecon older than the work email list holds users whose WorkEmail is
// their first work email alone; once loaded, every work email in their
// attributes finds them (see store's withAllWorkEmails), from the state
// file and from the log alike.
func TestLoadIndexesEveryWorkEmailOfOlderRecords(t *testing.T) {
	older := func(id, name, first, second string) *store.User {
		return &store.User{ID: id, UserName: name, Active: true, WorkEmail: first, Created: t0, Modified: t0, Version: 1,
			Attributes: json.RawMessage(fmt.Sprintf(`{"emails":[{"type":"work","value":%q},{"type":"work","value":%q}],"userName":%q}`, first, second, name))}
	}
	path := filepath.Join(t.TempDir(), FileName)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// u1 is checkpointed into the state file by Close; u2 stays in the log.
	if err := db.Commit(memdb.Changes{{Table: store.TableUsers, After: older("u1", "ann@x", "a1@x", "a2@x")}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path)
	if err := db.Commit(memdb.Changes{{Table: store.TableUsers, After: older("u2", "bob@x", "b1@x", "b2@x")}}); err != nil {
		t.Fatal(err)
	}
	crash(t, db)
	st, _ := loadImage(t, path)
	for email, want := range map[string]string{"a1@x": "u1", "a2@x": "u1", "b1@x": "u2", "b2@x": "u2"} {
		us, err := st.Read().UsersByWorkEmail(email)
		if err != nil {
			t.Fatal(err)
		}
		if len(us) != 1 || us[0].ID != want {
			t.Errorf("UsersByWorkEmail(%s) = %d users, want %s", email, len(us), want)
		}
	}
}
