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
// Users, groups and resources are memdb rows. The indexes that would cost a
// radix-tree entry per user or per membership are persistent maps instead
// (BenchmarkIndexEntryBytes measures the difference), each held in one row and replaced
// once per batch: a user's userName and externalId (TableUserIndexes), and
// the groups each user or group is a member of (TableMemberOf). A group's
// members are one sorted row (TableMembers). Txn keeps all of them in step
// with the rows it writes, so callers insert and delete users as rows and
// change memberships with ChangeMembers.
package store
