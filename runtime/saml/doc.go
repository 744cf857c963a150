// Package saml is idrecon's SAML 2.0 service provider for single sign-on
// with Microsoft Entra ID.
//
// The configuration (the SamlServiceProvider resource and the keystore's
// Certificate resources) is read from the runtime store on each request;
// a change is initialised once, keyed by the resource pointers, which the
// store never mutates.
//
// Trust: the IdP's metadata is verified against the keystore's
// saml-idp-signing certificates before anything in it is used (by
// spec/samlmeta, the check the spec loader makes of a metadataFile), and only
// those keystore certificates (several at once during a rollover) are
// trusted to sign responses; a certificate the metadata announces but the
// keystore lacks is logged, never trusted. A metadataURL is fetched over
// https from public addresses only (the spec may allow http and private
// hosts), judged on the address dialled and on every redirect; why sign-on
// is unavailable is told to the administrator (log, Ready, and
// ServeAdminMetadata on the admin API), never on a public page.
//
// Logout: the sign-out form is taken from the SP's own pages only; the
// IdP's logout messages act only when their redirect signature verifies
// and their Destination (required, as on every signed message) is this
// SP's logout URL, a LogoutResponse only as the answer to this browser's
// LogoutRequest, and a LogoutRequest only while fresh (its IssueInstant
// within logoutRequestLifetime, its NotOnOrAfter if any, with the skew
// allowed for assertions) and once: its ID goes into the replay cache,
// keyed apart from assertion IDs. A LogoutRequest ends every session of the user it
// names, whatever SessionIndex it gives (see serveSLO); the session of the
// browser bringing it only if it is that user's. An assertion for that
// user the IdP issued before the LogoutRequest is refused when it arrives
// after it, on the daemon that took the request (see logoutMemory).
// The requests the SP sends carry the real time; the skew is allowed only
// in checking what the IdP sends.
//
// Validation of a response: gosaml2 checks signatures, issuer, recipient,
// destination (when present), status and subject confirmation; this
// package adds what gosaml2 leaves out: no DOCTYPE, no SHA-1 unless
// allowSHA1, exactly one assertion, a required Destination, the Conditions
// window with the configured skew, a required audience equal to the entity
// ID, InResponseTo bound to a pending sign-in of this browser (see
// serveLogin for how the binding survives Entra's cross-site POST),
// IdP-initiated sign-in only when allowed, and a replay cache of assertion
// IDs until they expire (bounded per user, see below). An
// EncryptedAssertion is taken only as Entra sends it (AES-256, its key by
// RSA-OAEP), is decrypted and its signature verified before gosaml2 sees
// it, and every refusal from its decryption on is told apart from no other
// outside the debug log, or the ACS would be a decryption oracle (see
// openEncrypted).
//
// Cookies: every cookie's name ends with the baseURL's port, because
// browsers share cookies across the ports of one host and two daemons
// there must not sign each other's browsers out (see cookieNamesOf).
//
// Sessions: a session is its user's, not its userName's. It records the
// SCIM id of the user it was issued to, and every check of it (the SP's
// pages, Session, SessionUser for the front door and the console) ends it
// once the userName belongs to another SCIM user (deleted and created
// again, or a UPN reused); see Server.liveSession, which also says how a
// session stored without the id by an older daemon is bound.
//
// No client can deny sign-in to others by filling a table: pending sign-ins
// live in the browser, in a sealed cookie holding its newest few; the replay
// cache records only verified assertions, each until it lapses, and each as
// its user's (the name the SP finds users by, as sessions are grouped): a
// user holding MaxSignInsPerUser unexpired records is refused another
// sign-in, and only that user, with 429 and a Retry-After of when their
// soonest record lapses, nothing recorded (a record dropped instead would
// let an assertion be replayed); the IdP's LogoutRequests are bounded
// likewise per NameID, apart from sign-ins; a user keeps at most
// MaxSessionsPerUser sessions, the oldest ending first (in etcd too,
// package samletcd, which applies both bounds); and a full table drops what
// expires soonest instead of refusing. By default sessions and the replay
// cache are in memory: a restart signs users out, and since the new process
// cannot know which assertions the old one accepted, it refuses those
// issued before it started (with an IdP clock behind ours, sign-in may be
// refused for that long after a start). Daemons sharing etcd keep both
// there (samletcd).
package saml
