package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

func build(t testing.TB, o testidp.ResponseOptions) *etree.Document {
	t.Helper()
	doc, err := testidp.Response(o)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func enc(t testing.TB, doc *etree.Document) string {
	t.Helper()
	s, err := testidp.Encode(doc)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func must(t testing.TB, el *etree.Element, what string) *etree.Element {
	t.Helper()
	if el == nil {
		t.Fatalf("fixture has no %s", what)
	}
	return el
}

// assertionOf returns the response's (first) Assertion element.
func assertionOf(t testing.TB, doc *etree.Document) *etree.Element {
	return must(t, doc.Root().FindElement("./Assertion"), "Assertion")
}

func deflate(b []byte) []byte {
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

// TestACSRejects covers the negative cases of entra-saml.md section 3.2:
// each must be refused with its reason and without a session.
func TestACSRejects(t *testing.T) {
	type c struct {
		name string
		mods []func(*spec.SamlServiceProvider)
		// make returns the SAMLResponse form value for a response to irt.
		make func(t *testing.T, e *env, irt string) string
		// want is the accepted rejection codes (several where layers overlap).
		want   []string
		status int
	}
	mut := func(f func(o *testidp.ResponseOptions)) func(*testing.T, *env, string) string {
		return func(t *testing.T, e *env, irt string) string {
			o := e.good(irt)
			f(&o)
			return enc(t, build(t, o))
		}
	}
	tamper := func(f func(t *testing.T, doc *etree.Document), of func(o *testidp.ResponseOptions)) func(*testing.T, *env, string) string {
		return func(t *testing.T, e *env, irt string) string {
			o := e.good(irt)
			if of != nil {
				of(&o)
			}
			doc := build(t, o)
			f(t, doc)
			return enc(t, doc)
		}
	}
	respSigned := func(o *testidp.ResponseOptions) { o.SignResponse, o.SignAssertion = true, false }
	forged := func(t *testing.T, e *env, irt, nameID string) *etree.Element {
		o := e.good(irt)
		o.NameID, o.SignAssertion = nameID, false
		a, err := testidp.Assertion(o)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	raw := func(s string) func(*testing.T, *env, string) string {
		return func(*testing.T, *env, string) string { return s }
	}

	cases := []c{
		// Signature and trust.
		{name: "1 attribute changed after signing", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//AttributeValue"), "AttributeValue").SetText("admin")
		}, nil), want: []string{CodeSignature}},
		{name: "2 NameID changed after signing", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//NameID"), "NameID").SetText("dave@contoso.example")
		}, nil), want: []string{CodeSignature}},
		{name: "3 signed by a key not in the keystore", make: mut(func(o *testidp.ResponseOptions) { o.Key = keyEvil }), want: []string{CodeSignature}},
		{name: "4 trusted cert in KeyInfo, signed by another key", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//X509Certificate"), "X509Certificate").SetText(keyA.CertBase64())
		}, func(o *testidp.ResponseOptions) { o.Key = keyEvil }), want: []string{CodeSignature}},
		{name: "5 trusted cert expired", mods: []func(*spec.SamlServiceProvider){func(sp *spec.SamlServiceProvider) {
			sp.IDP.SigningCertificates = []string{"entra-a", "entra-old"}
		}}, make: mut(func(o *testidp.ResponseOptions) { o.Key = keyOld }), want: []string{CodeSignature}},
		{name: "6 nothing signed", make: mut(func(o *testidp.ResponseOptions) { o.SignAssertion = false }), want: []string{CodeSignature}},
		{name: "7 assertion signature stripped", make: tamper(func(t *testing.T, d *etree.Document) {
			a := assertionOf(t, d)
			a.RemoveChild(must(t, a.FindElement("./Signature"), "Signature"))
		}, nil), want: []string{CodeSignature}},
		{name: "8 SignatureValue corrupted", make: tamper(func(t *testing.T, d *etree.Document) {
			sv := must(t, d.Root().FindElement("//SignatureValue"), "SignatureValue")
			v := []byte(sv.Text())
			v[10] ^= 1
			sv.SetText(string(v))
		}, nil), want: []string{CodeSignature}},
		{name: "8 DigestValue truncated", make: tamper(func(t *testing.T, d *etree.Document) {
			dv := must(t, d.Root().FindElement("//DigestValue"), "DigestValue")
			dv.SetText(dv.Text()[:10])
		}, nil), want: []string{CodeSignature}},
		{name: "9 Reference URI to another ID", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//Reference"), "Reference").CreateAttr("URI", "#_other")
		}, nil), want: []string{CodeSignature}},
		{name: "9 second Reference", make: tamper(func(t *testing.T, d *etree.Document) {
			ref := must(t, d.Root().FindElement("//Reference"), "Reference")
			cp := ref.Copy()
			cp.CreateAttr("URI", "#"+d.Root().SelectAttrValue("ID", ""))
			ref.Parent().AddChild(cp)
		}, nil), want: []string{CodeSignature}},
		// XML signature wrapping: the extra assertion is what our count refuses
		// before gosaml2 even looks.
		{name: "10 XSW1 signed response copied into its Signature", make: tamper(func(t *testing.T, d *etree.Document) {
			root := d.Root()
			orig := root.Copy()
			root.CreateAttr("ID", "_evil")
			assertionOf(t, d).FindElement("./Subject/NameID").SetText("dave@contoso.example")
			must(t, root.FindElement("./Signature"), "Signature").AddChild(orig)
		}, respSigned), want: []string{CodeAssertionCount}},
		{name: "10 XSW3 forged assertion before the signed one", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			d.Root().InsertChildAt(assertionOf(t, d).Index(), forged(t, e, irt, "dave@contoso.example"))
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "10 XSW4 signed assertion inside the forged one", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			a := assertionOf(t, d)
			f := forged(t, e, irt, "dave@contoso.example")
			d.Root().RemoveChild(a)
			f.AddChild(a)
			d.Root().AddChild(f)
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "10 XSW5 altered signed assertion, original appended", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			a := assertionOf(t, d)
			orig := a.Copy()
			a.FindElement("./Subject/NameID").SetText("dave@contoso.example")
			d.Root().AddChild(orig)
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "10 XSW7 forged assertion in Extensions", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(forged(t, e, irt, "dave@contoso.example"))
			d.Root().InsertChildAt(1, ext)
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "10 XSW8 original inside ds:Object, outer altered", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			a := assertionOf(t, d)
			orig := a.Copy()
			sig := must(t, a.FindElement("./Signature"), "Signature")
			obj := sig.CreateElement("ds:Object")
			obj.AddChild(orig)
			a.FindElement("./Subject/NameID").SetText("dave@contoso.example")
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "11 two signed assertions", make: func(t *testing.T, e *env, irt string) string {
			d := build(t, e.good(irt))
			o := e.good(irt)
			a2, err := testidp.Assertion(o)
			if err != nil {
				t.Fatal(err)
			}
			d.Root().AddChild(a2)
			return enc(t, d)
		}, want: []string{CodeAssertionCount}},
		{name: "12 only assertion sits in StatusDetail", make: tamper(func(t *testing.T, d *etree.Document) {
			a := assertionOf(t, d)
			d.Root().RemoveChild(a)
			must(t, d.Root().FindElement("./Status"), "Status").CreateElement("samlp:StatusDetail").AddChild(a)
		}, nil), want: []string{CodeSignature}},
		{name: "13 SHA-1 signature", make: mut(func(o *testidp.ResponseOptions) { o.SHA1 = true }), want: []string{CodeAlgorithm}},
		// Refused for what only its decryption shows, so told apart from no
		// other such refusal (TestEncryptedAssertionFailuresLookAlike).
		{name: "13 SHA-1 inside an encrypted assertion", make: mut(func(o *testidp.ResponseOptions) { o.SHA1, o.EncryptTo = true, keySP.Cert }), want: []string{CodeDecrypt}},
		{name: "14 MD5 signature method", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//SignatureMethod"), "SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5")
		}, nil), want: []string{CodeAlgorithm}},
		{name: "14 XSLT transform", make: tamper(func(t *testing.T, d *etree.Document) {
			must(t, d.Root().FindElement("//Transforms"), "Transforms").CreateElement("ds:Transform").CreateAttr("Algorithm", "http://www.w3.org/TR/1999/REC-xslt-19991116")
		}, nil), want: []string{CodeSignature}},
		{name: "15 duplicate SignatureValue", make: tamper(func(t *testing.T, d *etree.Document) {
			sv := must(t, d.Root().FindElement("//SignatureValue"), "SignatureValue")
			sv.Parent().AddChild(sv.Copy())
		}, nil), want: []string{CodeSignature}},
		{name: "16 encrypted unsigned assertion, unsigned response", make: mut(func(o *testidp.ResponseOptions) {
			o.SignAssertion, o.EncryptTo = false, keySP.Cert
		}), want: []string{CodeDecrypt}}, // as 13
		{name: "16 encrypted unsigned assertion, response signed by another key", make: mut(func(o *testidp.ResponseOptions) {
			o.SignAssertion, o.SignResponse, o.Key, o.EncryptTo = false, true, keyEvil, keySP.Cert
		}), want: []string{CodeSignature}},
		{name: "17 encrypted for another key", make: mut(func(o *testidp.ResponseOptions) { o.EncryptTo = keyEvil.Cert }), want: []string{CodeDecrypt}},
		{name: "17 truncated ciphertext", make: tamper(func(t *testing.T, d *etree.Document) {
			cvs := d.Root().FindElements("//CipherValue")
			cv := cvs[len(cvs)-1]
			cv.SetText(cv.Text()[:len(cv.Text())/2-3] + "==")
		}, func(o *testidp.ResponseOptions) { o.EncryptTo = keySP.Cert }), want: []string{CodeDecrypt}},
		{name: "17 bad padding", make: tamper(func(t *testing.T, d *etree.Document) {
			cvs := d.Root().FindElements("//CipherValue")
			cv := cvs[len(cvs)-1]
			b, _ := base64.StdEncoding.DecodeString(cv.Text())
			b[len(b)-1] ^= 0x5a
			cv.SetText(base64.StdEncoding.EncodeToString(b))
		}, func(o *testidp.ResponseOptions) { o.EncryptTo = keySP.Cert }), want: []string{CodeDecrypt}},

		// Conditions and binding.
		{name: "18 SubjectConfirmationData expired", make: mut(func(o *testidp.ResponseOptions) {
			o.SCDNotOnOrAfter = o.Now.Add(-3 * time.Minute)
		}), want: []string{CodeExpired}},
		{name: "19 Conditions expired beyond skew", make: mut(func(o *testidp.ResponseOptions) {
			o.NotBefore, o.NotOnOrAfter = o.Now.Add(-time.Hour), o.Now.Add(-3*time.Minute)
		}), want: []string{CodeExpired}},
		{name: "20 NotBefore beyond skew in the future", make: mut(func(o *testidp.ResponseOptions) {
			o.NotBefore = o.Now.Add(3 * time.Minute)
		}), want: []string{CodeNotYetValid}},
		{name: "21 wrong audience", make: mut(func(o *testidp.ResponseOptions) { o.Audiences = []string{"https://other.example/"} }), want: []string{CodeAudience}},
		{name: "21 no AudienceRestriction", make: mut(func(o *testidp.ResponseOptions) { o.NoAudience = true }), want: []string{CodeAudience}},
		{name: "21 empty AudienceRestriction", make: mut(func(o *testidp.ResponseOptions) { o.Audiences = nil }), want: []string{CodeAudience}},
		{name: "21 spn: audience for a URI entity ID", make: mut(func(o *testidp.ResponseOptions) { o.Audiences = []string{"spn:" + entityID} }), want: []string{CodeAudience}},
		{name: "22 wrong Recipient", make: mut(func(o *testidp.ResponseOptions) {
			o.Destination = o.Recipient
			o.Recipient = "https://evil.example/acs"
		}), want: []string{CodeRecipient}},
		{name: "22 missing Recipient", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateAssertion = func(a *etree.Element) { a.FindElement("//SubjectConfirmationData").RemoveAttr("Recipient") }
		}), want: []string{CodeRecipient}},
		{name: "23 wrong Destination", make: mut(func(o *testidp.ResponseOptions) { o.Destination = "https://evil.example/acs" }), want: []string{CodeDestination}},
		{name: "23 missing Destination", make: mut(func(o *testidp.ResponseOptions) { o.Destination = "-" }), want: []string{CodeDestination}},
		{name: "24 wrong issuer", make: mut(func(o *testidp.ResponseOptions) { o.Issuer = testidp.EntityID("00000000-0000-0000-0000-000000000000") }), want: []string{CodeIssuer}},
		{name: "24 response and assertion issuers differ", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateResponse = func(r *etree.Element) { r.FindElement("./Issuer").SetText("https://evil.example/") }
		}), want: []string{CodeIssuer}},
		{name: "25 SubjectConfirmation not bearer", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateAssertion = func(a *etree.Element) {
				a.FindElement("//SubjectConfirmation").CreateAttr("Method", "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key")
			}
		}), want: []string{CodeMissingElement}},
		{name: "25 no SubjectConfirmationData", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateAssertion = func(a *etree.Element) {
				sc := a.FindElement("//SubjectConfirmation")
				sc.RemoveChild(sc.FindElement("./SubjectConfirmationData"))
			}
		}), want: []string{CodeMissingElement}},
		{name: "26 unknown InResponseTo", make: func(t *testing.T, e *env, _ string) string {
			return enc(t, build(t, e.good("_never-sent")))
		}, want: []string{CodeUnknownRequest}},
		{name: "26 Response and assertion InResponseTo differ", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateResponse = func(r *etree.Element) { r.CreateAttr("InResponseTo", "_other") }
		}), want: []string{CodeInResponseTo}},
		{name: "27 unsolicited while IdP-initiated is off", make: func(t *testing.T, e *env, _ string) string {
			return enc(t, build(t, e.good("")))
		}, want: []string{CodeUnsolicited}},
		{name: "29 Requester status with AADSTS message", make: mut(func(o *testidp.ResponseOptions) { o.Status = testidp.StatusRequester }),
			want: []string{CodeStatus, CodeAssertionCount}},
		{name: "30 Version 1.1", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateResponse = func(r *etree.Element) { r.CreateAttr("Version", "1.1") }
		}), want: []string{CodeVersion}},
		{name: "31 no NameID", make: mut(func(o *testidp.ResponseOptions) {
			o.MutateAssertion = func(a *etree.Element) { s := a.FindElement("./Subject"); s.RemoveChild(s.FindElement("./NameID")) }
		}), want: []string{CodeNoUsername}},

		// Parser and DoS.
		{name: "33 DOCTYPE with internal entities", make: func(t *testing.T, e *env, irt string) string {
			x, _ := build(t, e.good(irt)).WriteToString()
			return b64(`<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>` + x)
		}, want: []string{CodeDoctype}},
		{name: "34 external entity", make: func(t *testing.T, e *env, irt string) string {
			x, _ := build(t, e.good(irt)).WriteToString()
			return b64(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + x)
		}, want: []string{CodeDoctype}},
		{name: "35 5000-deep nesting", make: raw(b64(strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000))), want: []string{CodeTooDeep}},
		{name: "35 100000-deep nesting", make: raw(b64(strings.Repeat("<a>", 100000) + strings.Repeat("</a>", 100000))), want: []string{CodeTooLarge}, status: http.StatusRequestEntityTooLarge},
		{name: "36 huge body", make: raw(strings.Repeat("A", maxBody+10)), want: []string{CodeTooLarge}, status: http.StatusRequestEntityTooLarge},
		{name: "36 many attributes", make: mut(func(o *testidp.ResponseOptions) {
			for i := range 5000 {
				o.Attributes = append(o.Attributes, testidp.Attr{Name: "a", Values: []string{string(rune('a' + i%26))}})
			}
		}), want: []string{CodeTooLarge}, status: http.StatusRequestEntityTooLarge},
		{name: "37 deflate bomb", make: raw(base64.StdEncoding.EncodeToString(deflate(bytes.Repeat([]byte("<a>"), 10<<20)))), want: []string{CodeMalformed}},
		{name: "37 deflated valid response", make: func(t *testing.T, e *env, irt string) string {
			x, _ := build(t, e.good(irt)).WriteToBytes()
			return base64.StdEncoding.EncodeToString(deflate(x))
		}, want: []string{CodeMalformed}},
		{name: "38 invalid base64", make: raw("PHNhbWxwOlJlc3BvbnNl!!!"), want: []string{CodeMalformed}},
		{name: "38 embedded NULs", make: raw(b64("<samlp:Response\x00\x00/>")), want: []string{CodeMalformed, CodeAssertionCount}},
		{name: "38 non-UTF-8", make: raw(b64("<r>\xff\xfe</r>")), want: []string{CodeMalformed, CodeAssertionCount}},
		{name: "38 empty", make: raw(""), want: []string{CodeMalformed}},
		{name: "39 colon-in-name round-trip trick", make: func(t *testing.T, e *env, irt string) string {
			x, _ := build(t, e.good(irt)).WriteToString()
			i := strings.Index(x, "<samlp:Status>")
			return b64(x[:i] + `<x:a:Assertion xmlns:x="urn:oasis:names:tc:SAML:2.0:assertion"/>` + x[i:])
		}, want: []string{CodeMalformed, CodeSignature, CodeAssertionCount}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, tc.mods...)
			irt, relay := e.login("/")
			resp := e.post(tc.make(t, e, irt), relay)
			page := body(t, resp)
			got := e.lastResult()
			want := tc.status
			if want == 0 {
				want = http.StatusForbidden
				switch got {
				case CodeMalformed, CodeDoctype, CodeTooDeep:
					want = http.StatusBadRequest
				}
			}
			ok := false
			for _, w := range tc.want {
				ok = ok || got == w
			}
			if !ok {
				t.Fatalf("rejected as %q, want one of %v (status %d)", got, tc.want, resp.StatusCode)
			}
			if resp.StatusCode != want {
				t.Errorf("status %d, want %d", resp.StatusCode, want)
			}
			if !strings.Contains(page, "("+got+")") {
				t.Errorf("page does not name the reason %q: %s", got, page)
			}
			if r, _ := e.get("/me"); r.StatusCode != http.StatusFound {
				t.Fatalf("a session exists after a rejected response")
			}
		})
	}
}

// TestACSStateful covers the checks that need server state: the request a
// response answers, the browser it belongs to, and replay.
func TestACSStateful(t *testing.T) {
	allowIDP := func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true }
	t.Run("26 request expired", func(t *testing.T) {
		e := newEnv(t)
		irt, relay := e.login("/")
		e.clock.Add(pendingTTL + time.Second)
		resp := e.post(encode(t, e.good(irt)), relay)
		expectRejected(t, e, resp, CodeRequestExpired)
	})
	t.Run("26 request of another browser", func(t *testing.T) {
		e := newEnv(t)
		irt, relay := e.login("/")
		jar, _ := cookiejar.New(nil)
		e.client.Jar = jar // the attacker's browser, without the victim's binding cookie
		resp := e.post(encode(t, e.good(irt)), relay)
		expectRejected(t, e, resp, CodeWrongBrowser)
	})
	t.Run("26 RelayState of another request", func(t *testing.T) {
		e := newEnv(t)
		irt, _ := e.login("/")
		_, relay2 := e.login("/")
		resp := e.post(encode(t, e.good(irt)), relay2)
		expectRejected(t, e, resp, CodeWrongBrowser)
	})
	t.Run("26 request already consumed", func(t *testing.T) {
		e := newEnv(t)
		irt, relay := e.login("/")
		other, _ := e.login("/") // keeps the pending cookie alive
		if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		resp := e.post(encode(t, e.good(irt)), relay)
		expectRejected(t, e, resp, CodeUnknownRequest)
		if other == irt {
			t.Fatal("two sign-ins got one request ID")
		}
	})
	t.Run("26 last request consumed", func(t *testing.T) {
		e := newEnv(t)
		irt, relay := e.login("/")
		if resp := e.post(encode(t, e.good(irt)), relay); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		// The browser holds no pending sign-in any more.
		resp := e.post(encode(t, e.good(irt)), relay)
		expectRejected(t, e, resp, CodeWrongBrowser)
	})
	t.Run("28 same POST twice", func(t *testing.T) {
		e := newEnv(t, allowIDP)
		r := encode(t, e.good(""))
		if resp := e.post(r, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		expectRejected(t, e, e.post(r, ""), CodeReplay)
	})
	t.Run("28 same assertion in a re-signed response", func(t *testing.T) {
		e := newEnv(t, allowIDP)
		o := e.good("")
		o.AssertionID, o.SignResponse = "_fixed-assertion", true
		if resp := e.post(encode(t, o), ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		o.ResponseID = "_another-response"
		expectRejected(t, e, e.post(encode(t, o), ""), CodeReplay)
	})
	t.Run("28 replay allowed again only after expiry is irrelevant: expired", func(t *testing.T) {
		e := newEnv(t, allowIDP)
		r := encode(t, e.good(""))
		if resp := e.post(r, ""); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("first use: %d", resp.StatusCode)
		}
		e.clock.Add(2 * time.Hour)
		expectRejected(t, e, e.post(r, ""), CodeExpired)
	})
	t.Run("32 comment injection reads the whole NameID", func(t *testing.T) {
		e := newEnv(t)
		irt, relay := e.login("/")
		o := e.good(irt)
		o.NameID = "alice@contoso.example.evil.example"
		d := build(t, o)
		x, _ := d.WriteToString()
		x = strings.Replace(x, "alice@contoso.example.evil.example", "alice@contoso.example<!---->.evil.example", 1)
		resp := e.post(b64(x), relay)
		page := body(t, resp)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(page, "alice@contoso.example.evil.example") || !strings.Contains(page, "unknown user") {
			t.Fatalf("status %d page %s; want the full NameID refused as unknown", resp.StatusCode, page)
		}
	})
	t.Run("SHA-1 accepted when allowed", func(t *testing.T) {
		e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.AllowSHA1 = true })
		irt, relay := e.login("/")
		o := e.good(irt)
		o.SHA1 = true
		if resp := e.post(encode(t, o), relay); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d: %s", resp.StatusCode, e.lastResult())
		}
	})
}

// TestACSReplayCacheDown: while the replay cache cannot say whether an
// assertion is new (etcd lost quorum), the sign-in is not taken, and the
// browser is told to try again (503), as for a LogoutRequest: not that its
// response was malformed, nor counted as one. Its pending sign-in is kept,
// so the same response signs in once the cache answers again.
func TestACSReplayCacheDown(t *testing.T) {
	e := newEnv(t)
	irt, relay := e.login("/")
	response := encode(t, e.good(irt))
	working := e.srv.replay
	e.srv.replay = downReplay{}
	resp := e.post(response, relay)
	page := body(t, resp)
	if resp.StatusCode != http.StatusServiceUnavailable || e.lastResult() != "" {
		t.Fatalf("status %d, result %q; want 503 and nothing counted: %s", resp.StatusCode, e.lastResult(), page)
	}
	if r, _ := e.get("/me"); r.StatusCode != http.StatusFound {
		t.Fatal("signed in without the replay check")
	}
	e.srv.replay = working
	expectOutcome(t, e, e.post(response, relay), true, "")
}

func expectRejected(t *testing.T, e *env, resp *http.Response, code string) {
	t.Helper()
	page := body(t, resp)
	if got := e.lastResult(); got != code || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %q status %d, want %q 403: %s", got, resp.StatusCode, code, page)
	}
}

// expectOutcome expects a sign-in (303) when ok, else a refusal for code.
func expectOutcome(t *testing.T, e *env, resp *http.Response, ok bool, code string) {
	t.Helper()
	if !ok {
		expectRejected(t, e, resp, code)
		return
	}
	if b := body(t, resp); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d (%s), want 303: %s", resp.StatusCode, e.lastResult(), b)
	}
}

func TestLocalReturnTo(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/me", "/me"},
		{"/apps?x=1#f", "/apps?x=1#f"},
		{"", "/"},
		{"//evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"https://evil.example/", "/"},
		{"javascript:alert(1)", "/"},
		{"/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"},
		{"/\r\nLocation: x", "/"},
		{"me", "/"},
		{"/\t/evil.example", "/"},
	}
	for _, tc := range tests {
		if got := localReturnTo(tc.in, ""); got != tc.want {
			t.Errorf("localReturnTo(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got := localReturnTo("//evil", "/ssc"); got != "/ssc/" {
		t.Errorf("with base path: %q", got)
	}
}

func TestLoginForeignReturnTo(t *testing.T) {
	e := newEnv(t)
	for _, rt := range []string{"https://evil.example/", "//evil.example/x", "/\\evil.example"} {
		irt, relay := e.login(rt)
		resp := e.post(encode(t, e.good(irt)), relay)
		resp.Body.Close()
		if got := resp.Header.Get("Location"); got != "/" {
			t.Errorf("returnTo %q landed on %q", rt, got)
		}
	}
}

// TestUnsignedRefusedInPrescan: a large response without any Signature
// element is refused by the pre-scan, before gosaml2 parses it whole (the
// detail is the pre-scan's, not gosaml2's "missing signature").
func TestUnsignedRefusedInPrescan(t *testing.T) {
	e := newEnv(t)
	c, err := e.srv.current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	o := e.good("")
	o.SignAssertion = false
	o.Attributes = append(o.Attributes, testidp.Attr{Name: "padding", Values: []string{strings.Repeat("x", 600<<10)}})
	_, err = checkResponse(c, encode(t, o), e.clock.Now())
	var re *ResponseError
	if !errors.As(err, &re) || re.Code != CodeSignature || !strings.Contains(re.Err.Error(), "no Signature element") {
		t.Fatalf("err = %v, want the pre-scan's refusal of a response with no Signature element", err)
	}
}

// TestSubjectConfirmationNotOnOrAfterIsExclusive: a bearer
// SubjectConfirmationData is valid until NotOnOrAfter, not at it (SAML core
// 2.4.1.2), with the clock skew on top as for Conditions. gosaml2 refuses
// only after the instant, so the ACS must refuse at it.
func TestSubjectConfirmationNotOnOrAfterIsExclusive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration // past the SCD NotOnOrAfter plus skew
		ok    bool
	}{
		{name: "just before", after: -time.Millisecond, ok: true},
		{name: "at the instant", after: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			irt, relay := e.login("/")
			o := e.good(irt)
			// Conditions last an hour: only the SubjectConfirmationData
			// decides.
			o.SCDNotOnOrAfter = o.Now.Add(5 * time.Minute)
			e.clock.Add(5*time.Minute + spec.DefaultClockSkew + tc.after)
			resp := e.post(encode(t, o), relay)
			expectOutcome(t, e, resp, tc.ok, CodeExpired)
		})
	}
}

// TestSPNAudienceForNonURIEntityID: Entra answers an AuthnRequest whose
// Issuer is not a URI with Audience "spn:<Issuer>" (entra-saml.md 1.4), so
// an SP whose entity ID is, say, an application ID must accept that form;
// for a URI entity ID it stays refused (TestACSRejects, case 21).
func TestSPNAudienceForNonURIEntityID(t *testing.T) {
	const id = "2f0c6a1e-7d4b-4e2a-9c61-0a1b2c3d4e5f"
	for _, tc := range []struct {
		name, audience string
		ok             bool
	}{
		{name: "spn form", audience: "spn:" + id, ok: true},
		{name: "entity ID as sent", audience: id, ok: true},
		{name: "spn form of another SP", audience: "spn:" + id + "0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(sp *spec.SamlServiceProvider) { sp.EntityID = id })
			irt, relay := e.login("/")
			o := e.good(irt)
			o.Audiences = []string{tc.audience}
			resp := e.post(encode(t, o), relay)
			expectOutcome(t, e, resp, tc.ok, CodeAudience)
		})
	}
}

// TestSigningCertificateValidityWithSkew: the IdP's signing certificate is
// judged with the same clock skew as the messages it signs, on both sides.
// A certificate just imported (NotBefore at the IdP's clock, which may run
// ahead of ours by up to the skew) must verify at once, and one outside its
// validity by more than the skew must not. The response and its metadata
// are signed by that certificate.
func TestSigningCertificateValidityWithSkew(t *testing.T) {
	const skew = spec.DefaultClockSkew
	for _, tc := range []struct {
		name string
		// notBefore and notAfter are relative to the SP's clock.
		notBefore, notAfter time.Duration
		ok                  bool
	}{
		{name: "valid from now", notBefore: 0, notAfter: 24 * time.Hour, ok: true},
		{name: "valid from within the skew ahead", notBefore: skew, notAfter: 24 * time.Hour, ok: true},
		{name: "valid from beyond the skew ahead", notBefore: skew + time.Second, notAfter: 24 * time.Hour},
		{name: "expired within the skew", notBefore: -24 * time.Hour, notAfter: -skew, ok: true},
		{name: "expired beyond the skew", notBefore: -24 * time.Hour, notAfter: -skew - time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			now := e.clock.Now()
			// keyB's RSA key with a certificate of the validity under test
			// (key generation is what is slow).
			k, err := testidp.NewKeyFrom(keyB.Private, now.Add(tc.notBefore), now.Add(tc.notAfter))
			if err != nil {
				t.Fatal(err)
			}
			e.update(func(tx *store.Txn) error {
				return tx.Insert(store.TableResources, certRes("entra-new", spec.UsageSamlIDPSigning, k, false))
			})
			for _, signMetadata := range []*testidp.Key{keyA, k} {
				md, err := testidp.Metadata(testidp.MetadataOptions{Tenant: tenant, Keys: []*testidp.Key{keyA, k}, SignWith: signMetadata})
				if err != nil {
					t.Fatal(err)
				}
				raw, err := md.WriteToBytes()
				if err != nil {
					t.Fatal(err)
				}
				e.setSpec(func(sp *spec.SamlServiceProvider) {
					sp.IDP.MetadataXML = raw
					sp.IDP.SigningCertificates = []string{"entra-a", "entra-new"}
				})
				_, err = e.srv.current(context.Background())
				if signMetadata == k {
					if (err == nil) != tc.ok {
						t.Fatalf("metadata signed by the certificate: err = %v, want ok=%v", err, tc.ok)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				irt, relay := e.login("/")
				o := e.good(irt)
				o.Key = k
				expectOutcome(t, e, e.post(encode(t, o), relay), tc.ok, CodeSignature)
			}
		})
	}
}
