// Package record encodes the runtime store's objects into the versioned,
// checksummed records that package durable keeps on disk and in backups.
//
// A record is an envelope: one version byte, a CRC-32C (Castagnoli, big
// endian) of the version byte and the body, then the body. The body of a v1
// record is a compact binary encoding of the object: fields in a fixed order,
// strings and byte slices length-prefixed with uvarints, lists of strings a
// uvarint count and then the strings, so decoding needs no reflection. A newer idrecon keeps the decoder of every older version, so a
// data dir written by an older release stays readable; Decode dispatches on
// the version byte.
package record

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"
	"reflect"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// Version is the version of the records Encode writes.
const Version = 1

const headerLen = 5 // version byte + CRC-32C

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors Decode returns, wrapped with context.
var (
	ErrChecksum    = errors.New("record: checksum mismatch")
	ErrVersion     = errors.New("record: unsupported version")
	ErrMalformed   = errors.New("record: malformed")
	ErrUnknownKind = errors.New("record: unknown resource kind")
)

// The store keeps a group's members in one row (store.TableMembers); on
// disk the row is its header record (store.TableMembers: the group id, the
// membership version and time) and its member list, and the store derives
// store.TableMemberOf from the rows.
const (
	// Memberships is the table of *store.Membership records, one per
	// direct membership: the member lists of state format 1 and 2 and of
	// their backups. Only migrations and restores of those read it.
	Memberships = "memberships"
	// MemberLists is the table of *MemberChunk records: a group's sorted
	// member ids cut into chunks of a few hundred, each stored under
	// ChunkKey(group, its first id), so a change to a big group rewrites
	// the chunks it touches, not the whole list.
	MemberLists = "memberLists"
	// MemberDeltas is the kind of *MemberDelta records, which the
	// write-ahead log holds for a members row change: the ids added and
	// removed, not the whole list. It is not a table of the state file.
	MemberDeltas = "memberDeltas"
)

// Tables lists the tables that are persisted, in the order a load inserts
// them: what others refer to comes first.
var Tables = []string{
	store.TableMeta,
	store.TableResources,
	store.TableGroups,
	store.TableUsers,
	store.TableMembers,
	MemberLists,
}

// MemberChunk is a run of a group's member ids: sorted, distinct, at least
// one. The chunks of a group do not overlap; together they are its members.
type MemberChunk struct {
	GroupID string
	IDs     []string
}

// MemberDelta is one change of a group's members row: its new header and
// the ids it adds and removes (each sorted, distinct, and disjoint from the
// other).
type MemberDelta struct {
	GroupID  string
	Version  uint64
	Modified time.Time
	Add      []string
	Remove   []string
}

// ChunkPrefix returns the prefix shared by the keys of group's member
// chunks, and by no other group's.
func ChunkPrefix(group string) []byte {
	return pairKey(group, "")
}

// ChunkKey returns the key of group's member chunk whose first id is first.
func ChunkKey(group, first string) []byte {
	return pairKey(group, first)
}

// specType returns the pointer type a resource of kind holds as its Spec.
func specType(kind string) (reflect.Type, bool) {
	v, ok := spec.NewSpec(kind)
	return reflect.TypeOf(v), ok
}

// Key returns the key obj is stored under in table's bucket: its primary key
// in the runtime store.
func Key(table string, obj any) ([]byte, error) {
	switch o := obj.(type) {
	case *store.User:
		return []byte(o.ID), nil
	case *store.Group:
		return []byte(o.ID), nil
	case *store.Meta:
		return []byte(o.Key), nil
	case *store.Members:
		return []byte(o.GroupID), nil
	case *store.Membership:
		return pairKey(o.GroupID, o.MemberID), nil
	case *MemberChunk:
		if len(o.IDs) == 0 {
			return nil, fmt.Errorf("key for table %s: chunk of group %s has no ids", table, o.GroupID)
		}
		return pairKey(o.GroupID, o.IDs[0]), nil
	case *MemberDelta:
		return []byte(o.GroupID), nil
	case *store.Resource:
		return pairKey(o.Kind, o.Name), nil
	}
	return nil, fmt.Errorf("key for table %s: unsupported object %T", table, obj)
}

// pairKey length-prefixes the first part so no value of either part can make
// two pairs collide.
func pairKey(a, b string) []byte {
	k := binary.AppendUvarint(make([]byte, 0, 2+len(a)+len(b)), uint64(len(a)))
	k = append(k, a...)
	return append(k, b...)
}

// Encode returns the current-version record of obj, which must be the type
// table holds.
func Encode(table string, obj any) ([]byte, error) {
	w := make([]byte, headerLen, 128+listsLen(obj))
	w[0] = Version
	var err error
	switch o := obj.(type) {
	case *store.User:
		err = expectTable(table, store.TableUsers)
		w = putString(w, o.ID)
		w = putString(w, o.UserName)
		w = putString(w, o.ExternalID)
		w = putBool(w, o.Active)
		w = putString(w, o.WorkEmail)
		w = putOptBytes(w, o.Attributes)
		w = putTime(w, o.Created)
		w = putTime(w, o.Modified)
		w = binary.AppendUvarint(w, o.Version)
	case *store.Group:
		err = expectTable(table, store.TableGroups)
		w = putString(w, o.ID)
		w = putString(w, o.DisplayName)
		w = putString(w, o.ExternalID)
		w = putTime(w, o.Created)
		w = putTime(w, o.Modified)
		w = binary.AppendUvarint(w, o.Version)
	case *store.Members:
		// The header only: the member ids are in the group's member
		// chunks (MemberLists), or Membership records before format 3.
		err = expectTable(table, store.TableMembers)
		w = putString(w, o.GroupID)
		w = binary.AppendUvarint(w, o.Version)
		w = putTime(w, o.Modified)
	case *store.Membership:
		err = expectTable(table, Memberships)
		w = putString(w, o.GroupID)
		w = putString(w, o.MemberID)
	case *MemberChunk:
		err = expectTable(table, MemberLists)
		if err == nil {
			err = checkChunk(o.IDs)
		}
		w = putString(w, o.GroupID)
		w = putStrings(w, o.IDs)
	case *MemberDelta:
		err = expectTable(table, MemberDeltas)
		w = putString(w, o.GroupID)
		w = binary.AppendUvarint(w, o.Version)
		w = putTime(w, o.Modified)
		w = putStrings(w, o.Add)
		w = putStrings(w, o.Remove)
	case *store.Meta:
		err = expectTable(table, store.TableMeta)
		w = putString(w, o.Key)
		w = putString(w, o.Value)
	case *store.Resource:
		err = expectTable(table, store.TableResources)
		if err != nil {
			break
		}
		var specJSON []byte
		specJSON, err = encodeSpec(o)
		w = putString(w, o.Kind)
		w = putString(w, o.Name)
		w = putString(w, o.Revision)
		w = putString(w, o.ModifiedBy)
		w = putTime(w, o.Modified)
		w = putOptBytes(w, specJSON)
	default:
		err = fmt.Errorf("encode for table %s: unsupported object %T", table, obj)
	}
	if err != nil {
		return nil, err
	}
	binary.BigEndian.PutUint32(w[1:headerLen], checksum(w[0], w[headerLen:]))
	return w, nil
}

func expectTable(got, want string) error {
	if got != want {
		return fmt.Errorf("encode: object of table %s given for table %s", want, got)
	}
	return nil
}

// encodeSpec writes the resource's Spec as JSON. A spec.Certificate's
// PrivateKey is json:"-" and so never reaches the disk. A kind Decode does
// not know is refused with a spec or without one: Decode would refuse it.
func encodeSpec(r *store.Resource) ([]byte, error) {
	want, ok := specType(r.Kind)
	if !ok {
		return nil, fmt.Errorf("encode resource %s/%s: %w", r.Kind, r.Name, ErrUnknownKind)
	}
	if r.Spec == nil {
		return nil, nil
	}
	if got := reflect.TypeOf(r.Spec); got != want {
		return nil, fmt.Errorf("encode resource %s/%s: spec is %v, want %v", r.Kind, r.Name, got, want)
	}
	b, err := json.Marshal(r.Spec)
	if err != nil {
		return nil, fmt.Errorf("encode resource %s/%s: %w", r.Kind, r.Name, err)
	}
	return b, nil
}

func checksum(version byte, body []byte) uint32 {
	c := crc32.Update(0, castagnoli, []byte{version})
	return crc32.Update(c, castagnoli, body)
}

// Decode verifies rec's checksum and decodes it, whatever version wrote it,
// into a new object of the type table holds. The object shares no memory
// with rec.
func Decode(table string, rec []byte) (any, error) {
	if len(rec) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(rec))
	}
	body := rec[headerLen:]
	if got, want := checksum(rec[0], body), binary.BigEndian.Uint32(rec[1:headerLen]); got != want {
		return nil, ErrChecksum
	}
	switch rec[0] {
	case 1:
		return decodeV1(table, body)
	}
	return nil, fmt.Errorf("%w %d (this idrecon reads up to %d)", ErrVersion, rec[0], Version)
}

func decodeV1(table string, body []byte) (any, error) {
	r := &reader{b: body}
	var obj any
	switch table {
	case store.TableUsers:
		obj = &store.User{
			ID:         r.string(),
			UserName:   r.string(),
			ExternalID: r.string(),
			Active:     r.bool(),
			WorkEmail:  r.string(),
			Attributes: r.optBytes(),
			Created:    r.time(),
			Modified:   r.time(),
			Version:    r.uvarint(),
		}
	case store.TableGroups:
		obj = &store.Group{
			ID:          r.string(),
			DisplayName: r.string(),
			ExternalID:  r.string(),
			Created:     r.time(),
			Modified:    r.time(),
			Version:     r.uvarint(),
		}
	case store.TableMembers:
		obj = &store.Members{GroupID: r.string(), Version: r.uvarint(), Modified: r.time()}
	case Memberships:
		obj = &store.Membership{GroupID: r.string(), MemberID: r.string()}
	case MemberLists:
		c := &MemberChunk{GroupID: r.string(), IDs: r.strings()}
		if r.err == nil {
			r.err = checkChunk(c.IDs)
		}
		obj = c
	case MemberDeltas:
		obj = &MemberDelta{
			GroupID:  r.string(),
			Version:  r.uvarint(),
			Modified: r.time(),
			Add:      r.strings(),
			Remove:   r.strings(),
		}
	case store.TableMeta:
		obj = &store.Meta{Key: r.string(), Value: r.string()}
	case store.TableResources:
		res := &store.Resource{
			Kind:       r.string(),
			Name:       r.string(),
			Revision:   r.string(),
			ModifiedBy: r.string(),
			Modified:   r.time(),
		}
		specJSON := r.optBytes()
		if r.err == nil {
			var err error
			if res.Spec, err = decodeSpec(res.Kind, specJSON); err != nil {
				return nil, fmt.Errorf("resource %s/%s: %w", res.Kind, res.Name, err)
			}
		}
		obj = res
	default:
		return nil, fmt.Errorf("%w: unknown table %q", ErrMalformed, table)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return obj, nil
}

// decodeSpec turns the stored JSON back into the kind's typed spec. A
// certificate comes back without its PrivateKey: the reconciler resolves it
// again from PrivateKeyFrom on its next run.
func decodeSpec(kind string, b []byte) (any, error) {
	typ, ok := specType(kind)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, kind)
	}
	if b == nil {
		return nil, nil
	}
	v := reflect.New(typ.Elem()).Interface()
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("%w: spec: %w", ErrMalformed, err)
	}
	return v, nil
}

// listsLen is the room the id lists of a member chunk or delta take, so
// Encode allocates their record once rather than growing it.
func listsLen(obj any) int {
	switch o := obj.(type) {
	case *MemberChunk:
		return stringsLen(o.IDs)
	case *MemberDelta:
		return stringsLen(o.Add) + stringsLen(o.Remove)
	}
	return 0
}

func stringsLen(ss []string) int {
	n := binary.MaxVarintLen64
	for _, s := range ss {
		n += uvarintLen(uint64(len(s))) + len(s)
	}
	return n
}

func uvarintLen(v uint64) int {
	return (bits.Len64(v|1) + 6) / 7
}

// checkChunk refuses a chunk that is empty or not strictly sorted: the
// checkpointer finds the chunk an id belongs in by the chunks' first ids.
func checkChunk(ids []string) error {
	if len(ids) == 0 {
		return fmt.Errorf("%w: member chunk without ids", ErrMalformed)
	}
	for i := 1; i < len(ids); i++ {
		if ids[i-1] >= ids[i] {
			return fmt.Errorf("%w: member chunk ids out of order at %d", ErrMalformed, i)
		}
	}
	return nil
}

// putStrings writes a count, then each string length-prefixed.
func putStrings(w []byte, ss []string) []byte {
	w = binary.AppendUvarint(w, uint64(len(ss)))
	for _, s := range ss {
		w = putString(w, s)
	}
	return w
}

func putString(w []byte, s string) []byte {
	w = binary.AppendUvarint(w, uint64(len(s)))
	return append(w, s...)
}

// putOptBytes keeps nil and empty apart: the length is written plus one, and
// 0 means nil.
func putOptBytes(w, b []byte) []byte {
	if b == nil {
		return binary.AppendUvarint(w, 0)
	}
	w = binary.AppendUvarint(w, uint64(len(b))+1)
	return append(w, b...)
}

func putBool(w []byte, v bool) []byte {
	if v {
		return append(w, 1)
	}
	return append(w, 0)
}

// putTime keeps the instant (seconds since the Unix epoch and nanoseconds);
// the location is not kept, times decode as UTC.
func putTime(w []byte, t time.Time) []byte {
	w = binary.AppendVarint(w, t.Unix())
	return binary.AppendUvarint(w, uint64(t.Nanosecond()))
}

// reader decodes fields in order; the first error sticks and later reads
// return zero values, so decoders read straight through and check once.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrMalformed, what)
	}
	r.b = nil
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("integer")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(n uint64) []byte {
	if n > uint64(len(r.b)) {
		r.fail("bytes")
		return nil
	}
	b := r.b[:n]
	r.b = r.b[n:]
	return b
}

func (r *reader) string() string {
	n := r.uvarint()
	return string(r.bytes(n))
}

// strings reads what putStrings wrote. The strings share one allocation: a
// chunk of a hundred ids costs one, not a hundred. Nil for none.
func (r *reader) strings() []string {
	n := r.uvarint()
	if r.err != nil || n == 0 {
		return nil
	}
	// Every string takes at least its length byte: a count beyond the
	// bytes left is damage, and must not size an allocation.
	if n > uint64(len(r.b)) {
		r.fail("list")
		return nil
	}
	// A first pass finds where the strings end, so one copy holds them all.
	scan := reader{b: r.b}
	for range n {
		scan.bytes(scan.uvarint())
	}
	if scan.err != nil {
		r.fail("list")
		return nil
	}
	raw := r.b[:len(r.b)-len(scan.b)]
	all := string(raw)
	ss := make([]string, n)
	off := 0
	for i := range ss {
		l, k := binary.Uvarint(raw[off:]) // checked by the first pass
		off += k
		ss[i] = all[off : off+int(l)]
		off += int(l)
	}
	r.b = scan.b
	return ss
}

func (r *reader) optBytes() []byte {
	n := r.uvarint()
	if n == 0 || r.err != nil {
		return nil
	}
	b := r.bytes(n - 1)
	if r.err != nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

func (r *reader) bool() bool {
	if len(r.b) == 0 {
		r.fail("bool")
		return false
	}
	v := r.b[0]
	r.b = r.b[1:]
	if v > 1 {
		r.err = fmt.Errorf("%w: bool %d", ErrMalformed, v)
	}
	return v == 1
}

func (r *reader) time() time.Time {
	sec := r.varint()
	nsec := r.uvarint()
	if r.err != nil {
		return time.Time{}
	}
	if nsec >= uint64(time.Second) {
		r.err = fmt.Errorf("%w: nanoseconds %d", ErrMalformed, nsec)
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}
