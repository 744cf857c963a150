package saml

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// FuzzACS feeds arbitrary bytes as the decoded SAMLResponse: nothing may
// panic, and nothing but the one genuinely signed identity may come out.
func FuzzACS(f *testing.F) {
	e := newEnv(f, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	c, err := e.srv.current(f.Context())
	if err != nil {
		f.Fatal(err)
	}
	seed := func(s string) {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	o := e.good("")
	seed(encode(f, o))
	o.SignResponse = true
	seed(encode(f, o))
	o.EncryptTo = keySP.Cert
	seed(encode(f, o))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))
	f.Add([]byte(strings.Repeat("<a>", 100)))
	f.Add([]byte{0x78, 0x9c, 0x00})
	now := e.clock.Now()
	f.Fuzz(func(t *testing.T, raw []byte) {
		ch, err := checkResponse(c, base64.StdEncoding.EncodeToString(raw), now)
		if err != nil {
			var code string
			if re, ok := err.(*ResponseError); ok {
				code = re.Code
			}
			if code == "" {
				t.Fatalf("rejection without a code: %v", err)
			}
			return
		}
		if ch.nameID != "alice@contoso.example" || ch.issuer != "https://sts.windows.net/"+tenant+"/" {
			t.Fatalf("accepted a response for %q from %q", ch.nameID, ch.issuer)
		}
	})
}

// FuzzSessionID feeds arbitrary cookie values to the session id check:
// nothing may panic, and only the one spelling of an id minted under the
// key is valid (a forged tag, or another spelling of a real one, would
// cost a read of the session store).
func FuzzSessionID(f *testing.F) {
	ids := newSessionIDs([]byte(strings.Repeat("k", 32)))
	f.Add(ids.mint())
	f.Add(randomToken())
	f.Add(".")
	f.Add(strings.Repeat("A", 43) + "." + strings.Repeat("A", 22))
	f.Fuzz(func(t *testing.T, v string) {
		if !ids.valid(v) {
			return
		}
		random, err := base64.RawURLEncoding.DecodeString(v[:43])
		if err != nil {
			t.Fatalf("%q is valid: %v", v, err)
		}
		if want := v[:43] + "." + base64.RawURLEncoding.EncodeToString(ids.tag(random)); v != want || base64.RawURLEncoding.EncodeToString(random) != v[:43] {
			t.Fatalf("%q is valid, and is not how mint spells its id", v)
		}
	})
}
