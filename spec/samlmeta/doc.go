// Package samlmeta verifies SAML IdP metadata, for both the spec loader and
// the SAML server: the loader refuses a spec whose metadataFile the server
// would refuse, and the server checks every metadata it uses (a
// metadataFile's, and each fetch of a metadataURL, which the loader cannot
// see) with the same code, so the two cannot disagree.
//
// Verify checks the signature against the keystore's IdP signing
// certificates before reading anything from the document, and reads only
// the bytes the signature covers. Scan is the token-level pass that comes
// first, shared with the SAML server's checks of responses and logout
// messages: it refuses DTDs, weak signature algorithms and documents too
// deep or too large before any XML parser or signature code sees them.
package samlmeta
