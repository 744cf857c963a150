package record

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

var update = flag.Bool("update", false, "rewrite the v1 golden records in testdata")

var (
	created  = time.Date(2026, 3, 1, 9, 30, 0, 123456789, time.UTC)
	modified = time.Date(2026, 4, 2, 17, 0, 5, 0, time.UTC)
	notAfter = time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)
	no       = false
)

// fixtures are one object of every stored type; their v1 records are pinned
// in testdata, so a change that would make an existing data dir unreadable
// fails here.
func fixtures() []struct {
	name, table string
	obj         any
} {
	return []struct {
		name, table string
		obj         any
	}{
		{"user", store.TableUsers, &store.User{
			ID: "2819c223-7f76-453a-919d-413861904646", UserName: "Ada.Lovelace@example.com",
			ExternalID: "0a1b2c3d", Active: true, WorkEmail: "ada@example.com",
			Attributes: json.RawMessage(`{"userName":"Ada.Lovelace@example.com","name":{"givenName":"Ada"}}`),
			Created:    created, Modified: modified, Version: 7,
		}},
		{"user-minimal", store.TableUsers, &store.User{ID: "u2", UserName: "bob"}},
		{"group", store.TableGroups, &store.Group{
			ID: "g1", DisplayName: "Security Leads", ExternalID: "f00d", Created: created, Modified: modified, Version: 2,
		}},
		{"members", store.TableMembers, &store.Members{GroupID: "g1", Version: 3, Modified: modified}},
		{"membership", Memberships, &store.Membership{GroupID: "g1", MemberID: "2819c223-7f76-453a-919d-413861904646"}},
		{"member-chunk", MemberLists, &MemberChunk{GroupID: "g1", IDs: []string{"", "2819c223-7f76-453a-919d-413861904646", "g2", "u2"}}},
		{"member-delta", MemberDeltas, &MemberDelta{GroupID: "g1", Version: 4, Modified: modified,
			Add: []string{"g2", "u2"}, Remove: []string{"2819c223-7f76-453a-919d-413861904646"}}},
		{"member-delta-header-only", MemberDeltas, &MemberDelta{GroupID: "g1", Version: 5}},
		{"meta", store.TableMeta, &store.Meta{Key: store.MetaAppliedRevision, Value: "sha256:abc"}},
		{"scim", store.TableResources, &store.Resource{
			Kind: spec.KindScimProvisioning, Name: "entra", Revision: "r1", ModifiedBy: "reconcile", Modified: modified,
			Spec: &spec.ScimProvisioning{Enabled: true, BasePath: "/scim/v2",
				Tokens:         []spec.ScimToken{{Name: "entra", SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
				UserAttributes: []string{"userName", "active"}},
		}},
		{"certificate", store.TableResources, &store.Resource{
			Kind: spec.KindCertificate, Name: "sp-signing", Revision: "r1", ModifiedBy: "reconcile", Modified: modified,
			Spec: &spec.Certificate{Usage: spec.UsageSamlSPSigning, File: "certs/sp.pem",
				PrivateKeyFrom: &spec.ValueFrom{Env: "SP_KEY"}, Fingerprint: "ab12", Subject: "CN=sp",
				NotBefore: created, NotAfter: notAfter, DER: []byte{0x30, 0x82, 0x01}, KeyFingerprint: "cd34"},
		}},
		{"saml", store.TableResources, &store.Resource{
			Kind: spec.KindSamlServiceProvider, Name: "sso", Revision: "r1", ModifiedBy: "reconcile", Modified: modified,
			Spec: &spec.SamlServiceProvider{Enabled: true, EntityID: "https://app.example.com/sp", BaseURL: "https://app.example.com",
				IDP:                  spec.SamlIDP{MetadataFile: "idp.xml", RequireSignedMetadata: &no, MetadataRefresh: spec.Duration(time.Hour), SigningCertificates: []string{"entra"}},
				SPSigningCertificate: "sp-signing", AllowedClockSkew: spec.Duration(2 * time.Minute)},
		}},
		{"application", store.TableResources, &store.Resource{
			Kind: spec.KindApplication, Name: "webshop", Revision: "r1", ModifiedBy: "reconcile", Modified: modified,
			Spec: &spec.Application{Versions: []string{"1.0", "2.0"}},
		}},
		{"role", store.TableResources, &store.Resource{
			Kind: spec.KindRole, Name: "Auditor", ModifiedBy: "admin", Modified: modified,
			Spec: &spec.Role{Description: "Audits", Permissions: []string{"issue.audit"}},
		}},
		{"assignment", store.TableResources, &store.Resource{
			Kind: spec.KindAccessAssignment, Name: "leads", Revision: "r1", ModifiedBy: "reconcile", Modified: modified,
			Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Security Leads"}, Roles: []string{"Security Lead"}, ApplicationVersions: []string{"webshop/2.0"}},
		}},
		{"resource-nil-spec", store.TableResources, &store.Resource{Kind: spec.KindRole, Name: "empty"}},
	}
}

func TestGoldenV1(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			path := filepath.Join("testdata", "v1", f.name+".bin")
			enc, err := Encode(f.table, f.obj)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, enc, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			golden, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			// Reading what an older release wrote is what matters for
			// upgrades, so decode the golden bytes, not the fresh ones.
			got, err := Decode(f.table, golden)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, f.obj) {
				t.Errorf("decoded golden record:\n got %#v\nwant %#v", got, f.obj)
			}
			if golden[0] == Version && !bytes.Equal(enc, golden) {
				t.Errorf("encoding of a v%d record changed; bump Version and keep a decoder for v%d", Version, Version)
			}
		})
	}
}

func TestPrivateKeyIsNotPersisted(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := key.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	in := &store.Resource{Kind: spec.KindCertificate, Name: "c", Spec: &spec.Certificate{
		Usage: spec.UsageSamlSPSigning, PrivateKeyFrom: &spec.ValueFrom{File: "k.pem"}, PrivateKey: key,
	}}
	rec, err := Encode(store.TableResources, in)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	// The scalar without its padding: found in either encoding.
	secret = bytes.TrimLeft(secret, "\x00")
	for _, probe := range [][]byte{secret, der} {
		if bytes.Contains(rec, probe) {
			t.Fatal("record contains key material")
		}
	}
	out, err := Decode(store.TableResources, rec)
	if err != nil {
		t.Fatal(err)
	}
	c := out.(*store.Resource).Spec.(*spec.Certificate)
	if c.PrivateKey != nil || c.PrivateKeyFrom == nil || c.PrivateKeyFrom.File != "k.pem" {
		t.Fatalf("decoded certificate: key=%v ref=%+v, want no key and the reference", c.PrivateKey, c.PrivateKeyFrom)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(store.TableUsers, &store.User{ID: "u1", UserName: "a", Created: created})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	reseal := func(b []byte) []byte {
		b[1], b[2], b[3], b[4] = 0, 0, 0, 0
		c := checksum(b[0], b[headerLen:])
		b[1], b[2], b[3], b[4] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
		return b
	}
	tests := []struct {
		name  string
		table string
		rec   []byte
		want  error
	}{
		{"empty", store.TableUsers, nil, ErrMalformed},
		{"flipped body bit", store.TableUsers, edit(func(b []byte) []byte { b[len(b)-3] ^= 0x10; return b }), ErrChecksum},
		{"flipped checksum", store.TableUsers, edit(func(b []byte) []byte { b[2] ^= 1; return b }), ErrChecksum},
		{"truncated", store.TableUsers, good[:len(good)-2], ErrChecksum},
		{"newer version", store.TableUsers, edit(func(b []byte) []byte { b[0] = Version + 1; return reseal(b) }), ErrVersion},
		{"resealed truncation", store.TableUsers, edit(func(b []byte) []byte { return reseal(b[:len(b)-2]) }), ErrMalformed},
		{"trailing bytes", store.TableUsers, edit(func(b []byte) []byte { return reseal(append(b, 0)) }), ErrMalformed},
		{"wrong table", store.TableGroups, good, ErrMalformed},
		{"chunk without ids", MemberLists, seal(putStrings(putString(nil, "g1"), nil)), ErrMalformed},
		{"chunk out of order", MemberLists, seal(putStrings(putString(nil, "g1"), []string{"b", "a"})), ErrMalformed},
		{"chunk with a duplicate", MemberLists, seal(putStrings(putString(nil, "g1"), []string{"a", "a"})), ErrMalformed},
		{"chunk count beyond the record", MemberLists, seal(append(putString(nil, "g1"), 0xff, 0xff, 0x03, 1, 'a')), ErrMalformed},
		{"chunk id cut", MemberLists, seal(append(putString(nil, "g1"), 2, 1, 'a', 5, 'b')), ErrMalformed},
		{"unknown table", "sessions", good, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Decode(tt.table, tt.rec); !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
		})
	}
}

// seal wraps body in a current-version envelope.
func seal(body []byte) []byte {
	rec := binary.BigEndian.AppendUint32([]byte{Version}, checksum(Version, body))
	return append(rec, body...)
}

func TestDecodedStringsShareNoMemory(t *testing.T) {
	rec, err := Encode(MemberLists, &MemberChunk{GroupID: "g1", IDs: []string{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := Decode(MemberLists, rec)
	if err != nil {
		t.Fatal(err)
	}
	clear(rec)
	if c := obj.(*MemberChunk); c.GroupID != "g1" || c.IDs[0] != "a" || c.IDs[1] != "b" {
		t.Fatalf("decoded chunk changed with its record: %+v", c)
	}
}

func TestChunkKeys(t *testing.T) {
	// A group's chunk keys share its prefix, and no other group's do, even
	// when one group id is a prefix of the other.
	for _, tt := range []struct{ group, first, other string }{
		{"g1", "u1", "g12"}, {"g12", "", "g1"}, {"", "x", "g"},
	} {
		k := ChunkKey(tt.group, tt.first)
		if !bytes.HasPrefix(k, ChunkPrefix(tt.group)) {
			t.Errorf("ChunkKey(%q, %q) = %q lacks its group's prefix", tt.group, tt.first, k)
		}
		if bytes.HasPrefix(k, ChunkPrefix(tt.other)) {
			t.Errorf("ChunkKey(%q, %q) = %q has group %q's prefix", tt.group, tt.first, k, tt.other)
		}
		key, err := Key(MemberLists, &MemberChunk{GroupID: tt.group, IDs: []string{tt.first}})
		if err != nil || !bytes.Equal(key, k) {
			t.Errorf("Key of the chunk = %q, %v; want %q", key, err, k)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name  string
		table string
		obj   any
	}{
		{"spec type does not match kind", store.TableResources, &store.Resource{Kind: spec.KindRole, Name: "r", Spec: &spec.Application{}}},
		{"spec is not a pointer", store.TableResources, &store.Resource{Kind: spec.KindRole, Name: "r", Spec: spec.Role{}}},
		{"unknown kind", store.TableResources, &store.Resource{Kind: "Widget", Name: "w", Spec: &spec.Role{}}},
		{"object of another table", store.TableGroups, &store.User{ID: "u"}},
		{"chunk without ids", MemberLists, &MemberChunk{GroupID: "g"}},
		{"chunk out of order", MemberLists, &MemberChunk{GroupID: "g", IDs: []string{"b", "a"}}},
		{"delta as a chunk", MemberLists, &MemberDelta{GroupID: "g"}},
		{"unsupported object", store.TableUsers, "u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if rec, err := Encode(tt.table, tt.obj); err == nil {
				t.Fatalf("Encode = %x, want an error", rec)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures() {
		rec, err := Encode(fx.table, fx.obj)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fx.table, rec[headerLen:])
	}
	// The fuzzer gets the body and the target seals it, so inputs reach the
	// decoder instead of stopping at the checksum.
	f.Fuzz(func(t *testing.T, table string, body []byte) {
		rec := binary.BigEndian.AppendUint32([]byte{Version}, checksum(Version, body))
		obj, err := Decode(table, append(rec, body...))
		if err != nil {
			return
		}
		again, err := Encode(table, obj)
		if err != nil {
			t.Fatalf("decoded object does not encode: %v", err)
		}
		obj2, err := Decode(table, again)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v", err)
		}
		if !reflect.DeepEqual(obj, obj2) {
			t.Fatalf("round trip changed the object:\n%#v\n%#v", obj, obj2)
		}
	})
}

// TestEveryKindIsPersisted: a resource of every kind in spec's registry
// round-trips through a record with its spec type.
func TestEveryKindIsPersisted(t *testing.T) {
	for _, kind := range spec.Kinds {
		v, _ := spec.NewSpec(kind)
		in := &store.Resource{Kind: kind, Name: "x", Spec: v}
		b, err := Encode(store.TableResources, in)
		if err != nil {
			t.Errorf("encode %s: %v", kind, err)
			continue
		}
		out, err := Decode(store.TableResources, b)
		if err != nil {
			t.Errorf("decode %s: %v", kind, err)
			continue
		}
		if got := out.(*store.Resource).Spec; reflect.TypeOf(got) != reflect.TypeOf(v) {
			t.Errorf("kind %s comes back as %T, want %T", kind, got, v)
		}
	}
}

func TestUvarintLen(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 16383, 16384, 1 << 35, 1<<64 - 1} {
		if got, want := uvarintLen(v), len(binary.AppendUvarint(nil, v)); got != want {
			t.Errorf("uvarintLen(%d) = %d, want %d", v, got, want)
		}
	}
}
