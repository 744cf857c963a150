// Package source fetches the spec tree that idrecon reconciles: a plain local
// folder (Dir), a git repository (Git) kept in a shallow on-disk cache, or
// the last spec pushed with `idrecon apply` (Push), kept in the data dir. It
// provides the two ways of learning early that a new revision exists: Watch
// (fsnotify on a folder) and Webhook (an authenticated push hook).
//
// Watch and Webhook only nudge the caller into an early Fetch; neither
// carries data that is trusted. Every Fetch returns a Revision whose Dir stays
// unchanged on disk while the caller reads it.
//
// A failure that retrying cannot fix (rejected credentials, an untrusted host
// key or commit signature) has a StallReason method: the reconcile loop then
// stops backing off and waits for the next interval or trigger.
package source
