package store

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// Index names, for Txn.First/Get on the tables.
const (
	IndexID         = "id"          // every table
	IndexKind       = "kind"        // resources: Kind
	IndexExternalID = "externalId"  // groups: ExternalID, exact
	IndexName       = "displayName" // groups: Fold(DisplayName)
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
		TableGroups: {
			Name: TableGroups,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID:         {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "ID"}},
				IndexName:       {Name: IndexName, Unique: true, Indexer: groupNameIndex{}},
				IndexExternalID: {Name: IndexExternalID, AllowMissing: true, Indexer: &memdb.StringFieldIndex{Field: "ExternalID"}},
			},
		},
		TableMembers: {
			Name: TableMembers,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "GroupID"}},
			},
		},
		TableUserIndexes: {
			Name: TableUserIndexes,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
		TableMemberOf: {
			Name: TableMemberOf,
			Indexes: map[string]*memdb.IndexSchema{
				IndexID: {Name: IndexID, Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
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

// groupNameIndex indexes a group's displayName, folded. memdb does not
// enforce a unique index (an insert takes the entry over); Txn.Insert
// checks before it inserts a group.
type groupNameIndex struct{}

func (groupNameIndex) FromObject(obj any) (bool, []byte, error) {
	g, ok := obj.(*Group)
	if !ok {
		return false, nil, fmt.Errorf("displayName index: %T is not a group", obj)
	}
	return true, foldedKey(g.DisplayName), nil
}

func (groupNameIndex) FromArgs(args ...any) ([]byte, error) { return foldedArg("displayName", args) }

// foldedKey is an index key of s: folded and, as memdb's string indexes
// end theirs, NUL-terminated.
func foldedKey(s string) []byte {
	return append(AppendFold(make([]byte, 0, len(s)+1), s), 0)
}

// foldedArg is the index key of a lookup's single string argument.
func foldedArg(index string, args []any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("%s index: want one argument, got %d", index, len(args))
	}
	s, ok := args[0].(string)
	if !ok {
		return nil, fmt.Errorf("%s index: argument is %T, not a string", index, args[0])
	}
	return foldedKey(s), nil
}
