package saml

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/russellhaering/gosaml2/types"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// TestSLOEncodedParameterName: the redirect signature covers the raw
// "SAMLRequest=…" pair, but url.Query() also decodes parameter names, so a
// forged "SAML%52equest=…" placed first would be the message acted on
// while a genuine, Entra-signed LogoutRequest (here the attacker's own)
// supplies the signature. The forged request must not end alice's session.
func TestSLOEncodedParameterName(t *testing.T) {
	e := newEnv(t)
	e.signIn() // alice, in e.client's browser

	// Entra's signed LogoutRequest for the attacker's own account.
	signed, err := testidp.RedirectQuery("SAMLRequest",
		testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "carol@contoso.example", e.clock.Now()), "", keyA, false)
	if err != nil {
		t.Fatal(err)
	}
	// An unsigned LogoutRequest naming the victim.
	forged, err := testidp.RedirectQuery("SAMLRequest",
		testidp.LogoutRequest(tenant, e.ts.URL+"/saml/slo", "alice@contoso.example", e.clock.Now()), "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	fv, _ := url.ParseQuery(forged)
	query := "SAML%52equest=" + url.QueryEscape(fv.Get("SAMLRequest")) + "&" + signed

	attacker := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := attacker.Get(e.ts.URL + "/saml/slo?" + query)
	if err != nil {
		t.Fatal(err)
	}
	page := body(t, resp)
	if resp.StatusCode != http.StatusForbidden || e.lastResult() != CodeLogoutSignature {
		t.Errorf("forged LogoutRequest: status %d result %q, want 403 %q: %s", resp.StatusCode, e.lastResult(), CodeLogoutSignature, page)
	}
	if r, _ := e.get("/"); r.StatusCode != http.StatusOK {
		t.Fatal("a LogoutRequest nobody signed ended alice's session")
	}
}

// TestReplayAfterEviction: the replay cache is bounded and, when full,
// drops the entry that expires soonest. An assertion whose entry was
// dropped that way must still be refused, or whoever can make the table
// overflow (valid sign-ins of their own) can then replay a captured one.
// The bound is lowered to 2 so the test needs three sign-ins, not 200001.
func TestReplayAfterEviction(t *testing.T) {
	e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	m := e.replayTable()
	m.mu.Lock()
	m.max = 2
	m.mu.Unlock()

	victim := encode(t, e.good(""))
	if resp := e.post(victim, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("victim sign-in: %d (%s)", resp.StatusCode, e.lastResult())
	}
	resp := e.post(victim, "")
	expectRejected(t, e, resp, CodeReplay)

	// The attacker's own sign-ins, issued a little later, fill the table.
	e.clock.Add(time.Second)
	for range 2 {
		if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("flood sign-in: %d (%s)", resp.StatusCode, e.lastResult())
		}
	}
	expectRejected(t, e, e.post(victim, ""), CodeReplay)

	// A fresh sign-in still works.
	e.clock.Add(time.Second)
	if resp := e.post(encode(t, e.good("")), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("fresh sign-in after the flood: %d (%s)", resp.StatusCode, e.lastResult())
	}
}

// TestEncryptedKeyRSA15Refused: an EncryptedAssertion whose key is
// transported with RSA PKCS#1 v1.5 (xmlenc#rsa-1_5) makes the SP run
// PKCS#1 v1.5 decryption with its private key on anyone's ciphertext,
// before any signature is checked: Bleichenbacher's oracle (Jager et al.,
// "Bleichenbacher's Attack Strikes Again: Breaking PKCS#1 v1.5 in XML
// Encryption", 2012). Entra only uses RSA-OAEP, so rsa-1_5 is refused.
func TestEncryptedKeyRSA15Refused(t *testing.T) {
	e := newEnv(t)
	irt, relay := e.login("/")
	o := e.good(irt)
	o.EncryptTo = keySP.Cert
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	ek := doc.Root().FindElement("//EncryptedKey")
	if ek == nil {
		t.Fatal("no EncryptedKey")
	}
	em := ek.FindElement("./EncryptionMethod")
	cv := ek.FindElement("./CipherData/CipherValue")
	wrapped, err := base64.StdEncoding.DecodeString(cv.Text())
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, keySP.Private, wrapped, nil)
	if err != nil {
		t.Fatal(err)
	}
	//lint:ignore SA1019 the attack under test uses the deprecated key transport
	rewrapped, err := rsa.EncryptPKCS1v15(rand.Reader, &keySP.Private.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cv.SetText(base64.StdEncoding.EncodeToString(rewrapped))
	em.CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmlenc#rsa-1_5")
	for _, c := range em.ChildElements() {
		em.RemoveChild(c)
	}
	s, err := testidp.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	expectRejected(t, e, e.post(s, relay), CodeAlgorithm)
}

// TestPostBindingNeverInflated: gosaml2 inflates a SAMLResponse that does
// not parse as XML. The package's pre-checks (DOCTYPE, SHA-1, assertion
// count, the key transport of an EncryptedAssertion) read the posted bytes
// only, so a body that is not XML yet inflates to a response would reach
// gosaml2 unchecked. The ACS's gosaml2 must never inflate (Entra never
// deflates the POST binding).
func TestPostBindingNeverInflated(t *testing.T) {
	e := newEnv(t)
	c, err := e.srv.current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	o := e.good("")
	o.EncryptTo = keySP.Cert
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.saml.ValidateEncodedResponse(base64.StdEncoding.EncodeToString(deflate(raw))); err == nil {
		t.Fatal("a deflated POST-binding response was inflated and accepted")
	}
	// The plain response is still accepted.
	if _, err := c.saml.ValidateEncodedResponse(base64.StdEncoding.EncodeToString(raw)); err != nil {
		t.Fatalf("plain response: %v", err)
	}
}

// TestReplayAcrossRestart: the replay cache in this process starts empty,
// so it cannot know what the process before it accepted. A response
// captured with the victim's pending cookie (sealed with a key derived from
// the SP signing key, so it opens after a restart too), or an IdP-initiated
// one alone, must not sign in again once the daemon has restarted within
// the assertion's lifetime; a response issued after the restart must.
func TestReplayAcrossRestart(t *testing.T) {
	for _, tc := range []struct {
		name      string
		solicited bool
	}{
		{"SP-initiated with the captured cookie", true},
		{"IdP-initiated", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
			irt, relay := "", ""
			if tc.solicited {
				irt, relay = e.login("/")
			}
			captured := encode(t, e.good(irt))
			acs, _ := url.Parse(e.acsURL())
			cookies := e.client.Jar.Cookies(acs)
			if resp := e.post(captured, relay); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in: %d (%s)", resp.StatusCode, e.lastResult())
			}

			// The daemon restarts a minute later, on the same store.
			e.clock.Add(time.Minute)
			var result string
			restarted := NewServer(e.st, Options{Authorizer: AccessAuthorizer{Store: e.st}, Now: e.clock.Now, Observer: func(r string) { result = r }})
			post := func(samlResponse, relay string, cookies []*http.Cookie) int {
				t.Helper()
				req := httptest.NewRequest(http.MethodPost, e.acsURL(), strings.NewReader(url.Values{"SAMLResponse": {samlResponse}, "RelayState": {relay}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				for _, c := range cookies {
					req.AddCookie(c)
				}
				rec := httptest.NewRecorder()
				restarted.ServeHTTP(rec, req)
				return rec.Code
			}
			if code := post(captured, relay, cookies); code != http.StatusForbidden || result != CodeReplay {
				t.Fatalf("replay after the restart: status %d result %q, want 403 %q", code, result, CodeReplay)
			}
			if code := post(encode(t, e.good("")), "", nil); code != http.StatusSeeOther {
				t.Fatalf("sign-in issued after the restart: status %d result %q, want 303", code, result)
			}
		})
	}
}

// encrypted returns a response to irt for alice whose assertion is
// encrypted to the SP (as Entra sends it), with o changed by mods.
func (e *env) encrypted(irt string, mods ...func(o *testidp.ResponseOptions)) *etree.Document {
	e.t.Helper()
	o := e.good(irt)
	o.EncryptTo = keySP.Cert
	for _, m := range mods {
		m(&o)
	}
	return build(e.t, o)
}

// cipherValues returns the EncryptedKey's and the EncryptedData's
// CipherValue elements of doc's EncryptedAssertion.
func cipherValues(t testing.TB, doc *etree.Document) (key, data *etree.Element) {
	t.Helper()
	ea := must(t, doc.Root().FindElement("//EncryptedAssertion"), "EncryptedAssertion")
	return must(t, ea.FindElement("//EncryptedKey/CipherData/CipherValue"), "EncryptedKey CipherValue"),
		must(t, ea.FindElement("./EncryptedData/CipherData/CipherValue"), "EncryptedData CipherValue")
}

// reencrypt encrypts doc's assertion again, the way an attacker who holds
// only the SP's public key can: edit (if not nil) changes the plaintext,
// alg is the content encryption announced and used, with a fresh key of
// keyLen bytes, transported with RSA-OAEP as Entra does. Every CBC
// algorithm is run as AES-CBC, which is what gosaml2 does with any of them
// (tripledes-cbc included) whatever the key length.
func reencrypt(t testing.TB, doc *etree.Document, alg string, keyLen int, edit func(plain []byte) []byte) {
	t.Helper()
	kcv, dcv := cipherValues(t, doc)
	wrapped, err := base64.StdEncoding.DecodeString(kcv.Text())
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.DecryptOAEP(sha1.New(), nil, keySP.Private, wrapped, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := base64.StdEncoding.DecodeString(dcv.Text())
	if err != nil {
		t.Fatal(err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(data)-aes.BlockSize)
	cipher.NewCBCDecrypter(block, data[:aes.BlockSize]).CryptBlocks(plain, data[aes.BlockSize:])
	plain = plain[:len(plain)-int(plain[len(plain)-1])]
	if edit != nil {
		plain = edit(plain)
	}

	key = make([]byte, keyLen)
	rand.Read(key)
	if block, err = aes.NewCipher(key); err != nil {
		t.Fatal(err)
	}
	var out []byte
	switch alg {
	case types.MethodAES128GCM, types.MethodAES192GCM, types.MethodAES256GCM:
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			t.Fatal(err)
		}
		nonce := make([]byte, gcm.NonceSize())
		rand.Read(nonce)
		out = gcm.Seal(nonce, nonce, plain, nil)
	default:
		pad := aes.BlockSize - len(plain)%aes.BlockSize
		plain = append(plain, bytes.Repeat([]byte{byte(pad)}, pad)...)
		out = make([]byte, aes.BlockSize+len(plain))
		rand.Read(out[:aes.BlockSize])
		cipher.NewCBCEncrypter(block, out[:aes.BlockSize]).CryptBlocks(out[aes.BlockSize:], plain)
	}
	if wrapped, err = rsa.EncryptOAEP(sha1.New(), rand.Reader, &keySP.Private.PublicKey, key, nil); err != nil {
		t.Fatal(err)
	}
	kcv.SetText(base64.StdEncoding.EncodeToString(wrapped))
	dcv.SetText(base64.StdEncoding.EncodeToString(out))
	em := must(t, doc.Root().FindElement("//EncryptedData/EncryptionMethod"), "EncryptionMethod")
	if alg == "" {
		em.Parent().RemoveChild(em)
	} else {
		em.CreateAttr("Algorithm", alg)
	}
}

// editCipher changes the EncryptedData's ciphertext bytes.
func editCipher(t testing.TB, doc *etree.Document, edit func([]byte) []byte) {
	t.Helper()
	_, dcv := cipherValues(t, doc)
	b, err := base64.StdEncoding.DecodeString(dcv.Text())
	if err != nil {
		t.Fatal(err)
	}
	dcv.SetText(base64.StdEncoding.EncodeToString(edit(b)))
}

// logLines collects a Server's log as JSON lines.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// take returns the records logged since the last take, without their
// time, split at level: those at Info and above, and the Debug ones.
func (l *logLines) take(t testing.TB) (visible, debug []map[string]any) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for line := range strings.Lines(l.buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		delete(rec, slog.TimeKey)
		if rec[slog.LevelKey] == slog.LevelDebug.String() {
			debug = append(debug, rec)
		} else {
			visible = append(visible, rec)
		}
	}
	l.buf.Reset()
	return visible, debug
}

// TestEncryptedAssertionFailuresLookAlike: whoever can tell why an
// EncryptedAssertion was refused once its decryption started (the CBC
// padding, the plaintext that is not XML or not well-formed, a DOCTYPE, a
// SHA-1 or missing signature inside) holds a decryption oracle: with
// AES-CBC, which Entra uses, that decrypts a captured assertion a block at
// a time without the key (Jager and Somorovsky, "How to Break XML
// Encryption", 2011). Every such refusal must look the same from outside:
// status, page and the code the metrics count; the reason goes to the
// debug log only. Each ciphertext here is one an attacker can make: they
// tamper with a captured one, or encrypt their own plaintext to the SP's
// public key.
func TestEncryptedAssertionFailuresLookAlike(t *testing.T) {
	cbc := func(edit func([]byte) []byte) func(t *testing.T, e *env, irt string) *etree.Document {
		return func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			reencrypt(t, doc, types.MethodAES256CBC, 32, edit)
			return doc
		}
	}
	cases := []struct {
		name string
		make func(t *testing.T, e *env, irt string) *etree.Document
	}{
		{"padding byte wrong", func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			editCipher(t, doc, func(b []byte) []byte { b[len(b)-1] ^= 0x5a; return b })
			return doc
		}},
		{"IV changed", func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			editCipher(t, doc, func(b []byte) []byte { b[0] ^= 0x01; return b })
			return doc
		}},
		{"two blocks of a captured ciphertext", func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			editCipher(t, doc, func(b []byte) []byte { return b[2*aes.BlockSize : 4*aes.BlockSize] })
			return doc
		}},
		{"ciphertext not whole blocks", func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			editCipher(t, doc, func(b []byte) []byte { return b[:len(b)-5] })
			return doc
		}},
		{"content key encrypted for another certificate", func(t *testing.T, e *env, irt string) *etree.Document {
			return e.encrypted(irt, func(o *testidp.ResponseOptions) { o.EncryptTo = keyEvil.Cert })
		}},
		{"content key transport tampered", func(t *testing.T, e *env, irt string) *etree.Document {
			doc := e.encrypted(irt)
			kcv, _ := cipherValues(t, doc)
			b, _ := base64.StdEncoding.DecodeString(kcv.Text())
			b[7] ^= 1
			kcv.SetText(base64.StdEncoding.EncodeToString(b))
			return doc
		}},
		{"plaintext not XML", cbc(func([]byte) []byte { return []byte("not XML at all") })},
		{"plaintext not well-formed", cbc(func(p []byte) []byte { return append([]byte("<a>"), p...) })},
		{"plaintext cut short", cbc(func(p []byte) []byte { return p[:len(p)/2] })},
		{"plaintext with a DOCTYPE", cbc(func(p []byte) []byte { return append([]byte(`<!DOCTYPE a [<!ENTITY b "c">]>`), p...) })},
		{"plaintext nested too deep", cbc(func([]byte) []byte {
			return []byte(strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100))
		})},
		{"plaintext not an assertion", cbc(func([]byte) []byte { return []byte(`<a xmlns="urn:x"/>`) })},
		{"two assertions in the plaintext", cbc(func(p []byte) []byte {
			return append(append([]byte(`<Assertion xmlns="`+nsAssertion+`">`), p...), "</Assertion>"...)
		})},
		{"assertion changed after signing", cbc(func(p []byte) []byte {
			return bytes.Replace(p, []byte("alice@contoso.example"), []byte("dave@contoso.example"), 1)
		})},
		{"assertion unsigned", func(t *testing.T, e *env, irt string) *etree.Document {
			return e.encrypted(irt, func(o *testidp.ResponseOptions) { o.SignAssertion = false })
		}},
		{"assertion signed by another key", func(t *testing.T, e *env, irt string) *etree.Document {
			return e.encrypted(irt, func(o *testidp.ResponseOptions) { o.Key = keyEvil })
		}},
		{"assertion signed with SHA-1", func(t *testing.T, e *env, irt string) *etree.Document {
			return e.encrypted(irt, func(o *testidp.ResponseOptions) { o.SHA1 = true })
		}},
	}
	e := newEnv(t)
	logs := &logLines{}
	e.srv.log = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	irt, relay := e.login("/")
	logs.take(t) // the initialisation
	type outcome struct {
		status      int
		contentType string
		page        string
		result      string
		visible     []map[string]any
	}
	var first *outcome
	firstName := ""
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.post(enc(t, tc.make(t, e, irt)), relay)
			got := &outcome{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), page: body(t, resp), result: e.lastResult()}
			var debug []map[string]any
			got.visible, debug = logs.take(t)
			if got.result != CodeDecrypt || got.status != http.StatusForbidden {
				t.Errorf("refused as %q with status %d, want %q 403 like every failure after decryption started", got.result, got.status, CodeDecrypt)
			}
			if len(debug) == 0 {
				t.Error("the reason is not in the debug log")
			}
			if first == nil {
				first, firstName = got, tc.name
				return
			}
			if got.status != first.status || got.contentType != first.contentType || got.page != first.page || got.result != first.result {
				t.Errorf("answered unlike %q:\n%d %s %q %s\nvs\n%d %s %q %s", firstName,
					got.status, got.contentType, got.result, got.page, first.status, first.contentType, first.result, first.page)
			}
			if g, f := mustJSON(t, got.visible), mustJSON(t, first.visible); g != f {
				t.Errorf("logged above debug level unlike %q:\n%s\nvs\n%s", firstName, g, f)
			}
		})
	}
	// Nothing above consumed the sign-in: the genuine response still signs in.
	expectOutcome(t, e, e.post(enc(t, e.encrypted(irt)), relay), true, "")
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestContentEncryptionAlgorithms: Entra encrypts assertions with AES-256
// (Microsoft's documentation on SAML token encryption), in CBC mode, and
// transports the key with RSA-OAEP. gosaml2 also decrypts AES-128-CBC, the
// AES-GCM variants and "tripledes-cbc" (run as AES with whatever key comes
// out of the key transport), and takes any AES key length under any of
// them. Only AES-256, in CBC or GCM mode, is accepted; any other algorithm
// is refused before anything is decrypted. (The key's length is the
// signer's choice: one who could sign needs no weak key to forge.)
func TestContentEncryptionAlgorithms(t *testing.T) {
	cases := []struct {
		alg    string
		keyLen int
		code   string // "" signs in
	}{
		{types.MethodAES256CBC, 32, ""},
		{types.MethodAES256GCM, 32, ""},
		{types.MethodAES128CBC, 16, CodeAlgorithm},
		{types.MethodAES128GCM, 16, CodeAlgorithm},
		{types.MethodAES192GCM, 24, CodeAlgorithm},
		{types.MethodTripleDESCBC, 24, CodeAlgorithm},
		{types.MethodTripleDESCBC, 32, CodeAlgorithm},
		{"", 32, CodeAlgorithm},
	}
	for _, tc := range cases {
		name := tc.alg
		if name == "" {
			name = "no EncryptionMethod"
		}
		t.Run(name+"/"+strconv.Itoa(tc.keyLen*8), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			irt, relay := e.login("/")
			doc := e.encrypted(irt)
			reencrypt(t, doc, tc.alg, tc.keyLen, nil)
			expectOutcome(t, e, e.post(enc(t, doc), relay), tc.code == "", tc.code)
		})
	}
}
