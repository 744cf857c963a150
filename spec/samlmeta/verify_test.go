package samlmeta

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const (
	testEntityID = "https://sts.windows.net/00000000-1111-2222-3333-444444444444/"
	testSSOURL   = "https://login.microsoftonline.com/00000000-1111-2222-3333-444444444444/saml2"
)

type testKey struct {
	priv *rsa.PrivateKey
	cert *x509.Certificate
}

var (
	keysOnce                    sync.Once
	keyA, keyB, keyEvil, keyOld *testKey
	keyNotYet                   *testKey
	keysNow                     time.Time
)

// keys makes the test's keys, their validity relative to the clock, so
// that no test depends on the date.
func keys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		keysNow = time.Now()
		mk := func(nb, na time.Time) *testKey {
			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			tmpl := &x509.Certificate{
				SerialNumber: big.NewInt(time.Now().UnixNano()),
				Subject:      pkix.Name{CommonName: "test IdP signing"},
				NotBefore:    nb,
				NotAfter:     na,
				KeyUsage:     x509.KeyUsageDigitalSignature,
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
			if err != nil {
				panic(err)
			}
			cert, err := x509.ParseCertificate(der)
			if err != nil {
				panic(err)
			}
			return &testKey{priv: priv, cert: cert}
		}
		now := keysNow
		keyA = mk(now.Add(-24*time.Hour), now.Add(3*365*24*time.Hour))
		keyB = mk(now.Add(-time.Hour), now.Add(3*365*24*time.Hour))
		keyEvil = mk(now.Add(-24*time.Hour), now.Add(365*24*time.Hour))
		keyOld = mk(now.Add(-400*24*time.Hour), now.Add(-24*time.Hour))
		keyNotYet = mk(now.Add(time.Hour), now.Add(365*24*time.Hour))
	})
}

type mdOptions struct {
	announce   []*testKey
	signWith   *testKey
	sha1       bool
	validUntil time.Time
}

// metadata builds Entra-shaped federation metadata, signed enveloped with
// exclusive c14n when o.signWith is set; edit, if any, changes the result
// after signing.
func metadata(t testing.TB, o mdOptions, edit func(*etree.Document)) []byte {
	t.Helper()
	ed := etree.NewElement("EntityDescriptor")
	ed.CreateAttr("xmlns", nsMetadata)
	ed.CreateAttr("ID", "_d1e2f3")
	ed.CreateAttr("entityID", testEntityID)
	if !o.validUntil.IsZero() {
		ed.CreateAttr("validUntil", o.validUntil.UTC().Format(time.RFC3339))
	}
	idp := ed.CreateElement("IDPSSODescriptor")
	idp.CreateAttr("protocolSupportEnumeration", nsProtocol)
	for _, k := range o.announce {
		kd := idp.CreateElement("KeyDescriptor")
		kd.CreateAttr("use", "signing")
		ki := kd.CreateElement("KeyInfo")
		ki.CreateAttr("xmlns", nsDSig)
		ki.CreateElement("X509Data").CreateElement("X509Certificate").SetText(base64.StdEncoding.EncodeToString(k.cert.Raw))
	}
	slo := idp.CreateElement("SingleLogoutService")
	slo.CreateAttr("Binding", bindingRedirect)
	slo.CreateAttr("Location", testSSOURL)
	sso := idp.CreateElement("SingleSignOnService")
	sso.CreateAttr("Binding", bindingRedirect)
	sso.CreateAttr("Location", testSSOURL)
	if o.signWith != nil {
		ctx, err := dsig.NewSigningContext(o.signWith.priv, [][]byte{o.signWith.cert.Raw})
		if err != nil {
			t.Fatal(err)
		}
		ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		if o.sha1 {
			ctx.Hash = crypto.SHA1
		}
		if ed, err = ctx.SignEnveloped(ed); err != nil {
			t.Fatal(err)
		}
	}
	doc := etree.NewDocument()
	doc.CreateProcInst("xml", `version="1.0" encoding="utf-8"`)
	doc.SetRoot(ed)
	if edit != nil {
		edit(doc)
	}
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerify(t *testing.T) {
	keys(t)
	now := keysNow
	signedA := mdOptions{announce: []*testKey{keyA}, signWith: keyA}
	tests := []struct {
		name     string
		raw      []byte
		trusted  []*x509.Certificate
		optional bool // signature not required
		skew     time.Duration
		want     string
	}{
		{name: "Entra-shaped, signed", raw: metadata(t, signedA, nil)},
		{name: "with BOM", raw: append([]byte("\xEF\xBB\xBF"), metadata(t, signedA, nil)...)},
		{name: "rollover: signed by the new key", raw: metadata(t, mdOptions{announce: []*testKey{keyA, keyB}, signWith: keyB}, nil),
			trusted: []*x509.Certificate{keyA.cert, keyB.cert}},
		{name: "validUntil in the future", raw: metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyA, validUntil: now.Add(time.Hour)}, nil)},
		{name: "unsigned, signature optional", raw: metadata(t, mdOptions{announce: []*testKey{keyA}}, nil), optional: true},
		{name: "certificate valid within the skew", raw: metadata(t, mdOptions{announce: []*testKey{keyNotYet}, signWith: keyNotYet}, nil),
			trusted: []*x509.Certificate{keyNotYet.cert}, skew: 2 * time.Hour},

		{name: "tampered entityID", raw: metadata(t, signedA, func(d *etree.Document) {
			d.Root().CreateAttr("entityID", "https://sts.windows.net/evil/")
		}), want: "signature does not verify"},
		{name: "tampered endpoint", raw: metadata(t, signedA, func(d *etree.Document) {
			d.Root().FindElement("//SingleSignOnService").CreateAttr("Location", "https://evil.example/saml2")
		}), want: "signature does not verify"},
		{name: "tampered KeyDescriptor", raw: metadata(t, signedA, func(d *etree.Document) {
			d.Root().FindElement("//KeyDescriptor//X509Certificate").SetText(base64.StdEncoding.EncodeToString(keyEvil.cert.Raw))
		}), want: "signature does not verify"},
		{name: "unsigned", raw: metadata(t, mdOptions{announce: []*testKey{keyA}}, nil), want: "not signed"},
		{name: "signed by an unknown certificate", raw: metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyEvil}, nil), want: "signature does not verify"},
		{name: "signed by an expired keystore certificate", raw: metadata(t, mdOptions{announce: []*testKey{keyOld}, signWith: keyOld}, nil),
			trusted: []*x509.Certificate{keyOld.cert}, want: "signature does not verify"},
		{name: "certificate not yet valid beyond the skew", raw: metadata(t, mdOptions{announce: []*testKey{keyNotYet}, signWith: keyNotYet}, nil),
			trusted: []*x509.Certificate{keyNotYet.cert}, skew: time.Minute, want: "signature does not verify"},
		{name: "signed but no certificate configured", raw: metadata(t, signedA, nil), trusted: []*x509.Certificate{}, optional: true, want: "no IdP signing certificate"},
		{name: "bad signature even when optional", raw: metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyEvil}, nil), optional: true, want: "signature does not verify"},
		{name: "validUntil in the past", raw: metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyA, validUntil: now.Add(-time.Minute)}, nil), want: "expired"},
		{name: "SHA-1 signature", raw: metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyA, sha1: true}, nil), want: "algorithm"},
		{name: "wrong root element", raw: []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"/>`), want: "root element"},
		{name: "wrong namespace", raw: []byte(`<EntityDescriptor xmlns="urn:example" entityID="x"/>`), want: "root element"},
		{name: "DOCTYPE", raw: append([]byte(`<!DOCTYPE x [<!ENTITY a "b">]>`), metadata(t, signedA, nil)...), want: "DOCTYPE"},
		{name: "reference to another element", raw: metadata(t, signedA, func(d *etree.Document) {
			d.Root().FindElement("//Reference").CreateAttr("URI", "")
		}), want: "exactly one reference"},
		{name: "empty", raw: nil, want: "empty"},
		{name: "not XML", raw: []byte("hello"), want: "not an XML"},
		{name: "too large", raw: bytes.Repeat([]byte(" "), MaxSize+1), want: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trusted := tc.trusted
			if trusted == nil {
				trusted = []*x509.Certificate{keyA.cert}
			}
			md, err := Verify(tc.raw, Options{Trusted: trusted, RequireSigned: !tc.optional, Now: now, Skew: tc.skew})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if md.EntityID != testEntityID || md.SSOURL != testSSOURL || md.SLOURL != testSSOURL {
					t.Fatalf("read %+v", md)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRejected mentioning %q", err, tc.want)
			}
		})
	}
}

// TestDemoMetadata checks the committed demo files of examples/entra/idp:
// the metadata verifies against the certificate shipped next to it.
func TestDemoMetadata(t *testing.T) {
	keys(t)
	dir := filepath.Join("..", "..", "examples", "entra", "idp")
	cer, err := os.ReadFile(filepath.Join(dir, "entra-signing.cer"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(cer)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatal("entra-signing.cer is not a Base64 certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "federationmetadata.xml"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := Verify(raw, Options{Trusted: []*x509.Certificate{cert}, RequireSigned: true, Now: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(md.EntityID, "https://sts.windows.net/") || !strings.HasPrefix(md.SSOURL, "https://login.microsoftonline.com/") {
		t.Fatalf("demo metadata is not Entra-shaped: %+v", md)
	}
	if _, err := Verify(raw, Options{Trusted: []*x509.Certificate{keyEvil.cert}, RequireSigned: true, Now: time.Now()}); err == nil {
		t.Fatal("demo metadata verifies against an unrelated certificate")
	}
}

// FuzzVerify: metadata files come from spec repos, and the loader verifies
// every one: no input may panic, the verdict is the same twice, and what
// is accepted while a signature is required was signed and names an IdP.
func FuzzVerify(f *testing.F) {
	keys(f)
	f.Add(metadata(f, mdOptions{announce: []*testKey{keyA}, signWith: keyA}, nil))
	f.Add(metadata(f, mdOptions{announce: []*testKey{keyA, keyB}, signWith: keyB}, nil))
	f.Add(metadata(f, mdOptions{announce: []*testKey{keyA}}, nil))
	f.Add([]byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>`))
	o := Options{Trusted: []*x509.Certificate{keyA.cert, keyB.cert}, RequireSigned: true, Now: keysNow, Skew: time.Minute}
	f.Fuzz(func(t *testing.T, raw []byte) {
		md, err := Verify(raw, o)
		md2, err2 := Verify(raw, o)
		if (err == nil) != (err2 == nil) {
			t.Fatalf("two verdicts: %v, then %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("a rejection that is not ErrRejected: %v", err)
			}
			return
		}
		if !md.Signed || md.EntityID == "" || md.EntityID != md2.EntityID {
			t.Fatalf("accepted unsigned or nameless metadata: %+v", md)
		}
	})
}

// TestVerifyReview: wrapping, rollover, expiry and parser cases, and what
// the operator reads when metadata is refused.
func TestVerifyReview(t *testing.T) {
	keys(t)
	now := keysNow
	const decl = `<?xml version="1.0" encoding="utf-8"?>`
	signedA := mdOptions{announce: []*testKey{keyA}, signWith: keyA}
	good := metadata(t, signedA, nil)
	body := func(b []byte) string { return strings.TrimPrefix(string(b), decl) }
	evil := body(metadata(t, mdOptions{announce: []*testKey{keyEvil}}, func(d *etree.Document) {
		d.Root().CreateAttr("entityID", "https://evil.example/")
	}))
	thumb := func(k *testKey) string { return fmt.Sprintf("%X", sha1.Sum(k.cert.Raw)) }
	noKeyInfo := func(d *etree.Document) {
		ki := d.Root().FindElement("./Signature/KeyInfo")
		ki.Parent().RemoveChild(ki)
	}
	withValidUntil := func(v string) func(*etree.Document) {
		return func(d *etree.Document) { d.Root().CreateAttr("validUntil", v) }
	}
	tests := []struct {
		name     string
		raw      []byte
		trusted  []*x509.Certificate
		optional bool
		want     string   // "" accepted
		wantAll  []string // further words the error must hold
		certs    int      // announced certificates read, when accepted
	}{
		{name: "signed EntityDescriptor wrapped in an unsigned EntitiesDescriptor",
			raw:  []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + body(good) + `</EntitiesDescriptor>`),
			want: "root element", wantAll: []string{"EntitiesDescriptor"}},
		{name: "a second EntityDescriptor after the signed one", raw: []byte(decl + body(good) + evil), want: "more than one root element"},
		{name: "a second EntityDescriptor before the signed one", raw: []byte(decl + evil + body(good)), optional: true, want: "more than one root element"},
		{name: "text after the root element", raw: append(bytes.Clone(good), "trailing"...), want: "after the root element"},
		{name: "comment and whitespace after the root element", raw: append(bytes.Clone(good), "\n<!-- exported -->\n"...)},
		{name: "a Signature nested, not on the EntityDescriptor", raw: metadata(t, signedA, func(d *etree.Document) {
			// goxmldsig's signed copy keeps stale parent links: re-read it.
			b, _ := d.WriteToBytes()
			fresh := etree.NewDocument()
			fresh.ReadFromBytes(b)
			d.SetRoot(fresh.Root())
			sig := d.Root().FindElement("./Signature")
			d.Root().RemoveChild(sig)
			d.Root().FindElement("./IDPSSODescriptor").AddChild(sig)
		}), want: "not signed"},
		{name: "external entity", raw: []byte(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + body(good)), want: "DOCTYPE"},
		{name: "billion laughs", raw: []byte(`<!DOCTYPE r [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>` + body(good)), want: "DOCTYPE"},
		{name: "nesting bomb", raw: []byte(strings.Repeat("<a>", 10000)), want: "too deeply"},
		{name: "element bomb", raw: []byte(`<EntityDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata">` + strings.Repeat("<a/>", 100000)), want: "too many"},

		{name: "rollover: an expired and a new certificate announced, signed by the current one",
			raw: metadata(t, mdOptions{announce: []*testKey{keyOld, keyA, keyB}, signWith: keyA}, nil), certs: 3},
		{name: "rollover: old and new in the keystore, the old one expired, signed by the new one",
			raw:     metadata(t, mdOptions{announce: []*testKey{keyOld, keyB}, signWith: keyB}, nil),
			trusted: []*x509.Certificate{keyOld.cert, keyB.cert}, certs: 2},
		{name: "rollover: no KeyInfo, two certificates configured",
			raw:     metadata(t, mdOptions{announce: []*testKey{keyA, keyB}, signWith: keyB}, noKeyInfo),
			trusted: []*x509.Certificate{keyA.cert, keyB.cert}, certs: 2},
		{name: "no KeyInfo, signed by an unknown key",
			raw:     metadata(t, mdOptions{announce: []*testKey{keyA}, signWith: keyEvil}, noKeyInfo),
			trusted: []*x509.Certificate{keyA.cert, keyB.cert}, want: "signature does not verify"},
		{name: "signed by a certificate not in the keystore names it",
			raw:  metadata(t, mdOptions{announce: []*testKey{keyA, keyB}, signWith: keyB}, nil),
			want: "which is not among them", wantAll: []string{thumb(keyB), "test IdP signing"}},
		{name: "signed by an expired keystore certificate says so",
			raw:     metadata(t, mdOptions{announce: []*testKey{keyOld}, signWith: keyOld}, nil),
			trusted: []*x509.Certificate{keyOld.cert}, want: "expired", wantAll: []string{thumb(keyOld), keyOld.cert.NotAfter.UTC().Format(time.RFC3339)}},
		{name: "signed by a keystore certificate not yet valid says so",
			raw:     metadata(t, mdOptions{announce: []*testKey{keyNotYet}, signWith: keyNotYet}, nil),
			trusted: []*x509.Certificate{keyNotYet.cert}, want: "not valid before", wantAll: []string{thumb(keyNotYet)}},

		{name: "validUntil without a time zone, past", raw: metadata(t, mdOptions{announce: []*testKey{keyA}},
			withValidUntil(now.Add(-time.Hour).UTC().Format("2006-01-02T15:04:05"))), optional: true, want: "expired"},
		{name: "validUntil without a time zone, future", raw: metadata(t, mdOptions{announce: []*testKey{keyA}},
			withValidUntil(now.Add(time.Hour).UTC().Format("2006-01-02T15:04:05.000"))), optional: true, certs: 1},
		{name: "IDPSSODescriptor validUntil in the past", raw: metadata(t, mdOptions{announce: []*testKey{keyA}}, func(d *etree.Document) {
			d.Root().FindElement("./IDPSSODescriptor").CreateAttr("validUntil", now.Add(-time.Minute).UTC().Format(time.RFC3339))
		}), optional: true, want: "expired", wantAll: []string{"IDPSSODescriptor"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			trusted := tc.trusted
			if trusted == nil {
				trusted = []*x509.Certificate{keyA.cert}
			}
			md, err := Verify(tc.raw, Options{Trusted: trusted, RequireSigned: !tc.optional, Now: now, Skew: time.Minute})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if md.EntityID != testEntityID || md.SSOURL != testSSOURL || (tc.certs != 0 && len(md.Certs) != tc.certs) {
					t.Fatalf("read %s, %s, %d certificates", md.EntityID, md.SSOURL, len(md.Certs))
				}
				return
			}
			if err == nil || !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
			for _, w := range append([]string{tc.want}, tc.wantAll...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to say %q", err, w)
				}
			}
		})
	}
}
