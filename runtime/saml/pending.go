package saml

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// pendingLogin is a sign-in this browser started: the AuthnRequest ID it
// answers, the opaque RelayState sent with it, where to land, and when it
// lapses.
type pendingLogin struct {
	ID       string `json:"i"`
	Relay    string `json:"r"`
	ReturnTo string `json:"t"`
	Expires  int64  `json:"e"` // Unix seconds
}

// Pending sign-ins live in the browser, in one encrypted and authenticated
// cookie, not in a server table: a server table is one that any client can
// fill (a GET /saml/login costs nothing), and a full table denies sign-in
// to everyone. The cookie holds at most maxPendingPerBrowser sign-ins, so a
// browser that starts many drops its own oldest, and nobody else's.
const maxPendingPerBrowser = 4

// maxPendingCookie bounds the pending cookie's name and value: browsers
// ignore a Set-Cookie beyond 4096 bytes and keep the previous cookie,
// which lacks the sign-in just started. A cookie that would not fit drops
// its oldest sign-ins, and the newest, alone, its returnTo (it lands on
// the home page) if that still does not fit.
const maxPendingCookie = 4000

// errNoPending is a missing, forged or undecipherable pending cookie.
var errNoPending = errors.New("no valid sign-in cookie")

// sealer encrypts and authenticates cookie values (AES-256-GCM).
type sealer struct{ aead cipher.AEAD }

// pendingKey returns the key of the pending cookie. It is derived from the
// SP signing key when there is one, so that every daemon configured alike
// (several behind a load balancer) opens the others' cookies; otherwise it
// is Options.PendingKey (daemons on one etcd share one), or a random key,
// and a sign-in must end on the daemon that started it.
func pendingKey(c *config, fallback []byte) ([]byte, error) {
	if c.spSign == nil || c.spSign.PrivateKey == nil {
		return fallback, nil
	}
	der, err := x509.MarshalPKCS8PrivateKey(c.spSign.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("sp signing key: %w", err)
	}
	return hkdf.Key(sha256.New, der, nil, "idrecon saml pending sign-ins v1", 32)
}

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal returns plain encrypted, bound to name (so a value cannot be moved
// to another cookie), as URL-safe base64.
func (s *sealer) seal(name string, plain []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name)))
}

func (s *sealer) open(name, value string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errNoPending
	}
	plain, err := s.aead.Open(nil, b[:s.aead.NonceSize()], b[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return nil, errNoPending
	}
	return plain, nil
}

// readPending returns the sign-ins in r's pending cookie, lapsed ones
// included (the ACS says "expired" rather than "unknown"); errNoPending when
// there is no cookie or it does not open.
func readPending(c *config, r *http.Request) ([]pendingLogin, error) {
	ck, err := r.Cookie(c.cookies.pending)
	if err != nil {
		return nil, errNoPending
	}
	plain, err := c.pending.open(c.cookies.pending, ck.Value)
	if err != nil {
		return nil, err
	}
	var list []pendingLogin
	if err := json.Unmarshal(plain, &list); err != nil || len(list) > maxPendingPerBrowser {
		return nil, errNoPending
	}
	return list, nil
}

// writePending sets the pending cookie to list, or removes it when list is
// empty. It is SameSite=None (with Secure, which browsers require for it)
// because the IdP returns the browser with a cross-site POST, on which Lax
// and Strict cookies are not sent; it carries no authority by itself.
func (s *Server) writePending(w http.ResponseWriter, c *config, r *http.Request, list []pendingLogin) {
	ck := &http.Cookie{Name: c.cookies.pending, MaxAge: -1}
	for len(list) > 0 {
		plain, _ := json.Marshal(list) // strings and an int: cannot fail
		ck.Value, ck.MaxAge = c.pending.seal(ck.Name, plain), int(pendingTTL.Seconds())
		home := c.basePath + "/"
		switch {
		case len(ck.Name)+1+len(ck.Value) <= maxPendingCookie:
		case len(list) > 1:
			list = list[1:]
			continue
		case list[0].ReturnTo != home:
			// JSON escapes some characters to six bytes: a returnTo
			// within maxReturnTo may still not fit. The sign-in lands home.
			list = []pendingLogin{list[0]}
			list[0].ReturnTo = home
			continue
		}
		break
	}
	if secureRequest(c, r) {
		ck.SameSite = http.SameSiteNoneMode
	}
	s.setCookie(w, c, r, ck)
}

// addPending returns list without its lapsed sign-ins, plus p, keeping the
// newest maxPendingPerBrowser.
func addPending(list []pendingLogin, p pendingLogin, now time.Time) []pendingLogin {
	kept := make([]pendingLogin, 0, maxPendingPerBrowser)
	for _, q := range list {
		if now.Unix() < q.Expires {
			kept = append(kept, q)
		}
	}
	kept = append(kept, p)
	return kept[max(0, len(kept)-maxPendingPerBrowser):]
}
