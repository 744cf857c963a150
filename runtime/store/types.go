package store

import (
	"encoding/json"
	"time"

	"github.com/idrecon/idrecon/runtime/store/idset"
	"github.com/idrecon/idrecon/spec"
)

// Table names.
const (
	TableResources = "resources"
	// TableUsers is not a memdb table but persistent maps in rows of
	// TableUserIndexes (see users.go); Txn takes it as a table.
	TableUsers    = "users"
	TableGroups   = "groups"
	TableMembers  = "members"
	TableMemberOf = "memberOf"
	// TableUserIndexes holds the users and their userName, externalId and
	// work email indexes.
	TableUserIndexes = "userIndexes"
	TableMeta        = "meta"
)

// Resource is one spec-owned resource as the runtime holds it. Spec is a
// pointer to the spec package's type for Kind (*spec.Role, …). Stored values
// are immutable: copy, change the copy, insert the copy.
type Resource struct {
	Kind string
	Name string
	Spec any
	// Revision is the spec revision that last wrote the resource, or "" when
	// it was last written out of band (the admin API: drift).
	Revision string
	// ModifiedBy says who wrote it last ("reconcile", "admin").
	ModifiedBy string
	Modified   time.Time
}

// Ref returns the resource's identity.
func (r *Resource) Ref() spec.Ref { return spec.Ref{Kind: r.Kind, Name: r.Name} }

// User is a SCIM user provisioned by Entra. Stored values are immutable.
type User struct {
	ID         string
	UserName   string // unique, case-insensitively
	ExternalID string // case-exact, not unique
	Active     bool
	// WorkEmail is emails[type eq "work"].value, kept for indexed lookups:
	// the address, or for a user with several work emails (RFC 7643
	// allows it, Entra sends them) all of them, as JoinWorkEmails makes
	// it; read it with WorkEmails.
	WorkEmail string
	// Attributes holds the stored SCIM attributes (those that
	// ScimProvisioning.userAttributes keeps) as a JSON object, exactly as sent,
	// without id and meta.
	Attributes json.RawMessage
	Created    time.Time
	Modified   time.Time
	Version    uint64 // bumped on every change; meta.version is derived from it
}

// Group is a SCIM group provisioned by Entra. Its members live in the members
// table, so a membership change leaves the group row (and everything keyed
// on the groups table, such as access's group lookups) alone. Stored values
// are immutable.
type Group struct {
	ID          string
	DisplayName string // unique, case-insensitively
	ExternalID  string // Entra's object id, case-exact
	Created     time.Time
	Modified    time.Time
	Version     uint64
}

// Members is the set of a group's direct members (users or nested groups).
// A group's membership lives in one row rather than one row per member:
// Entra adds members a hundred at a time, and a row per member cost two
// radix-tree inserts each (see BenchmarkIndexEntryBytes). Write it through
// Txn.ChangeMembers, which keeps the reverse index in step. Stored values
// are immutable.
type Members struct {
	GroupID string
	IDs     idset.Set
	// Version counts membership changes and Modified is the last one; with
	// the group row's they make the group's meta.version and lastModified.
	Version  uint64
	Modified time.Time
}

// Membership says that user (or nested group) MemberID is a member of
// GroupID. It is the unit memberships are journaled, backed up and loaded
// in, not a table.
type Membership struct {
	GroupID  string
	MemberID string
}

// Meta is a small key/value record for runtime bookkeeping (the applied
// revision, schema version).
type Meta struct {
	Key   string
	Value string
}

// Meta keys.
const (
	MetaAppliedRevision = "applied-revision"
	// MetaAppliedBaseline is what the apply of the applied revision wrote,
	// one hash per resource (the reconcile package's encoding): written in
	// the same transaction, so that a restarted daemon still tells drift
	// from a spec change.
	MetaAppliedBaseline = "applied-baseline"
	// MetaSuspended is present ("true") while reconciliation is suspended:
	// in the state, so it survives a restart and reaches every daemon
	// sharing the state, the leader among them.
	MetaSuspended = "suspended"
	// MetaReconcileStatus is the reconcile status (JSON) of the daemon that
	// reconciles a state several daemons share, so the others report it.
	MetaReconcileStatus = "reconcile-status"
)
