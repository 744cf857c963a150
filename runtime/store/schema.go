package store

import memdb "github.com/hashicorp/go-memdb"

// Index names, for Txn.First/Get on the tables.
const (
	IndexID         = "id"          // every table
	IndexKind       = "kind"        // resources: Kind
	IndexUserName   = "userName"    // users: UserName, lower-cased
	IndexExternalID = "externalId"  // users, groups: ExternalID, exact
	IndexWorkEmail  = "workEmail"   // users: WorkEmail, lower-cased
	IndexName       = "displayName" // groups: DisplayName, lower-cased
	// IndexGroup finds a group's memberships by a prefix of the id index
	// (GroupID, MemberID): a separate GroupID index would cost every
	// membership insert a third tree update for the same lookups.
	IndexGroup  = IndexID + "_prefix" // memberships: GroupID
	IndexMember = "member"            // memberships: MemberID
)

// Schema is the database schema. Lookups that SCIM filters, the reconciler and
// access checks make all have an index, so none of them scans.
func Schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		TableResources: {
			Name: TableResources,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "Kind"},
					&memdb.StringFieldIndex{Field: "Name"},
				}}},
				IndexKind: {Name: IndexKind, Indexer: &memdb.StringFieldIndex{Field: "Kind"}},
			},
		},
		TableUsers: {
			Name: TableUsers,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID:         {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				IndexUserName:   {Name: IndexUserName, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "UserName", Lowercase: true}},
				IndexExternalID: {Name: IndexExternalID, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ExternalID"}},
				IndexWorkEmail:  {Name: IndexWorkEmail, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "WorkEmail", Lowercase: true}},
			},
		},
		TableGroups: {
			Name: TableGroups,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID:         {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				IndexName:       {Name: IndexName, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "DisplayName", Lowercase: true}},
				IndexExternalID: {Name: IndexExternalID, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ExternalID"}},
			},
		},
		TableMemberships: {
			Name: TableMemberships,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
					&memdb.StringFieldIndex{Field: "GroupID"},
					&memdb.StringFieldIndex{Field: "MemberID"},
				}}},
				IndexMember: {Name: IndexMember, Indexer: &memdb.StringFieldIndex{Field: "MemberID"}},
			},
		},
		TableMeta: {
			Name: TableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	}}
}
