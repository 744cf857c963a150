// Package store holds idrecon's runtime state: an in-memory go-memdb database
// with one table per spec kind (owned by the reconciler) and the SCIM users,
// groups and memberships (owned by Entra through the SCIM server).
//
// Readers take a consistent snapshot with Read. Every change goes through
// Update, which funnels writers into one committer goroutine: it runs a batch
// of writes in a single memdb transaction, makes the batch durable through the
// Journal (when one is configured) and only then commits it, so readers never
// see a change that is not yet durable and one fsync serves many writers.
package store
