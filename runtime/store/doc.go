// Package store holds idrecon's runtime state: an in-memory go-memdb database
// with one table per spec kind (owned by the reconciler) and the SCIM users,
// groups and memberships (owned by Entra through the SCIM server).
//
// Readers take a consistent snapshot with Read. Every change goes through
// Update, which funnels writers into one committer goroutine: it runs a batch
// of writes in a single memdb transaction, makes the batch durable through the
// Journal (when one is configured) and only then commits it, so readers never
// see a change that is not yet durable and one fsync serves many writers.
//
// Groups and resources are memdb rows. What would cost a radix-tree entry
// per user or per membership is persistent maps instead
// (BenchmarkIndexEntryBytes measures the difference), each held in one row
// and replaced once per batch: the users themselves, ordered by id, and
// their userName, externalId and work email indexes (TableUserIndexes), and
// the groups each user or group is a member of (TableMemberOf). A group's
// members are one sorted row (TableMembers). Txn keeps all of them in step
// with what it writes and takes TableUsers as if it were a memdb table, so
// callers insert, delete and look up users as rows, the journals see their
// changes as rows', and memberships change with ChangeMembers.
package store
