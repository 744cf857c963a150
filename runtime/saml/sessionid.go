package saml

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// sessionIDs mints and checks the values of session cookies: 256 random
// bits and a tag of them under a key every daemon sharing the session store
// shares. A cookie this cluster did not mint is refused before the store is
// asked: with the sessions in etcd, a cookie not cached is a quorum read,
// and any client may send cookies, so without the tag a stream of made-up
// ones would load the state every daemon depends on.
type sessionIDs struct {
	key []byte
}

var strictBase64 = base64.RawURLEncoding.Strict()

// sessionTagSize is the tag's length in bytes: forging one is a 2^-128 guess.
const sessionTagSize = 16

// newSessionIDs derives the tag key from shared, the key daemons on one
// session store share (Options.PendingKey), so the derived key never
// serves two purposes.
func newSessionIDs(shared []byte) sessionIDs {
	key, err := hkdf.Key(sha256.New, shared, nil, "idrecon saml session ids v1", 32)
	if err != nil {
		panic(err) // only for a length sha256 cannot give
	}
	return sessionIDs{key: key}
}

func (k sessionIDs) tag(random []byte) []byte {
	m := hmac.New(sha256.New, k.key)
	m.Write(random)
	return m.Sum(nil)[:sessionTagSize]
}

// mint returns a new session id.
func (k sessionIDs) mint() string {
	random := make([]byte, 32)
	rand.Read(random) // never fails (crypto/rand, Go 1.24 and later)
	return base64.RawURLEncoding.EncodeToString(random) + "." + base64.RawURLEncoding.EncodeToString(k.tag(random))
}

// valid reports whether id is one that mint made with this key.
func (k sessionIDs) valid(id string) bool {
	r, t, ok := strings.Cut(id, ".")
	if !ok || len(r) != 43 || len(t) != 22 {
		return false
	}
	// Strict: one spelling per id, as the store keys sessions by it.
	random, err := strictBase64.DecodeString(r)
	if err != nil {
		return false
	}
	tag, err := strictBase64.DecodeString(t)
	if err != nil {
		return false
	}
	return hmac.Equal(tag, k.tag(random))
}

// untagged reports whether id has the form of the session ids minted
// before they carried a tag: 256 random bits alone.
func untagged(id string) bool {
	if len(id) != 43 {
		return false
	}
	_, err := strictBase64.DecodeString(id)
	return err == nil
}
