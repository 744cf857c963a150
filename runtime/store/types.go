package store

import (
	"encoding/json"
	"time"

	"github.com/idrecon/idrecon/spec"
)

// Table names.
const (
	TableResources   = "resources"
	TableUsers       = "users"
	TableGroups      = "groups"
	TableMemberships = "memberships"
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
	// WorkEmail is emails[type eq "work"].value, kept for indexed lookups.
	WorkEmail string
	// Attributes holds the stored SCIM attributes (those that
	// ScimProvisioning.userAttributes keeps) as a JSON object, exactly as sent,
	// without id and meta.
	Attributes json.RawMessage
	Created    time.Time
	Modified   time.Time
	Version    uint64 // bumped on every change; meta.version is derived from it
}

// Group is a SCIM group provisioned by Entra. Members live in the memberships
// table. Stored values are immutable.
type Group struct {
	ID          string
	DisplayName string // unique, case-insensitively
	ExternalID  string // Entra's object id, case-exact
	Created     time.Time
	Modified    time.Time
	Version     uint64
}

// Membership says that user (or nested group) MemberID is a member of GroupID.
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
)
