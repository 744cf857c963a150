// Package access answers who may do what in Application Security: which roles
// and application versions the externally managed (SCIM) users and groups
// have, through which AccessAssignment, and which assignments wait for their
// subject.
//
// The rules:
//
//   - A user has no access unless a role reaches them, directly or through a
//     group they are a direct member of. Effective access is the union of the
//     user's direct assignments and those of their groups.
//   - "app/*" grants every version of the application, including versions
//     added later; "app/v" grants one version. Grants of roles, applications
//     or versions that do not exist (any more) are ignored.
//   - A disabled (active false) user keeps their grants but has no access
//     until re-enabled.
//   - Users are matched by userName and groups by displayName, both
//     case-insensitively. An assignment whose subject does not exist is
//     pending, not an error, and takes effect the moment the subject arrives:
//     everything is computed from the store at query time.
//
// Group renames. Entra renames a group over SCIM while the spec still names
// the old displayName. So that access follows the group's identity rather
// than its name, the Binder records, for every group assignment that matched
// a group, a binding to that group's id and externalId (a Meta record, so it
// survives restarts with the store's journal). An assignment is bound to its
// recorded group while that group exists, whatever it is called now, and the
// rename is reported as drift with the spec change that resolves it. A new
// group taking the old name does not take the access over. When the bound
// group is deleted, the assignment falls back to matching by name and is
// reported pending with reason "deleted" until a group of that name exists.
// Bindings are captured asynchronously after the commit that made the
// assignment match; a group created and renamed before the Binder ran is
// matched by name only. Users are not bound: a user assignment follows the
// userName, and one whose user is gone is reported "not provisioned".
//
// Cost. The spec side (assignments by subject name and by application, with
// "app/*" expanded), the bindings (assignments by bound group) and what each
// group gives its members are memoised per store snapshot, keyed by the
// identity of the snapshot's immutable radix nodes: the first is rebuilt
// only after assignments, roles or applications changed, the second after
// the Binder wrote, the third after the first or after a group was created,
// changed or deleted (the Binder's bindings move no assignment to another
// group), at a cost in proportion to the assignments. Memberships are not
// part of any: a query reads the user's groups from the snapshot, so the
// constant stream of membership changes costs nothing extra and is visible
// at once. A query's answer shares each group's grants with that memo
// instead of copying them (Effective.Roles flattens them for display), so
// a user in 200 groups costs a lookup per group and a sort
// (BenchmarkForUser).
package access
