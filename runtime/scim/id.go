package scim

import (
	"crypto/rand"
	"encoding/base32"
)

// idEncoding is lower-case base32 without padding: ids are case-sensitive
// but often compared by eye, and they appear in URLs unescaped.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID returns a new resource id: 128 random bits in 26 characters. SCIM
// ids are opaque to clients; a UUID's 36 characters would cost every stored
// user 32 bytes more (the id and its index key each fall into the next
// allocation size), and ids are copied into every membership.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
