// Package reconcile turns a desired spec.Set into the runtime store's
// spec-owned resources: it plans creates, updates and deletes field by field,
// applies exactly that plan in one store transaction, tells changes made in
// git from drift made outside it, and runs the convergence loop that fetches,
// loads, plans and applies a Source on an interval or when triggered.
//
// Only store.TableResources is spec-owned. Users, groups and memberships
// belong to Entra (through the SCIM server) and are never read or written
// here.
package reconcile
