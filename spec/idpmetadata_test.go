package spec

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

const (
	fixtureIDPEntityID = "https://sts.windows.net/00000000-1111-2222-3333-444444444444/"
	fixtureIDPSSOURL   = "https://login.microsoftonline.com/00000000-1111-2222-3333-444444444444/saml2"
)

// idpMetadata builds Entra-shaped IdP metadata announcing announce and, when
// signer is set, signed by it; edit changes the signed document.
func idpMetadata(t testing.TB, announce *x509.Certificate, signer *keyPair, validUntil time.Time, edit func(*etree.Element)) []byte {
	t.Helper()
	ed := etree.NewElement("EntityDescriptor")
	ed.CreateAttr("xmlns", "urn:oasis:names:tc:SAML:2.0:metadata")
	ed.CreateAttr("ID", "_fixture")
	ed.CreateAttr("entityID", fixtureIDPEntityID)
	if !validUntil.IsZero() {
		ed.CreateAttr("validUntil", validUntil.UTC().Format(time.RFC3339))
	}
	idp := ed.CreateElement("IDPSSODescriptor")
	idp.CreateAttr("protocolSupportEnumeration", "urn:oasis:names:tc:SAML:2.0:protocol")
	kd := idp.CreateElement("KeyDescriptor")
	kd.CreateAttr("use", "signing")
	ki := kd.CreateElement("KeyInfo")
	ki.CreateAttr("xmlns", "http://www.w3.org/2000/09/xmldsig#")
	ki.CreateElement("X509Data").CreateElement("X509Certificate").SetText(base64.StdEncoding.EncodeToString(announce.Raw))
	sso := idp.CreateElement("SingleSignOnService")
	sso.CreateAttr("Binding", "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect")
	sso.CreateAttr("Location", fixtureIDPSSOURL)
	if signer != nil {
		ctx, err := dsig.NewSigningContext(signer.key, [][]byte{signer.cert.Raw})
		if err != nil {
			t.Fatal(err)
		}
		ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		if ed, err = ctx.SignEnveloped(ed); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(ed)
	}
	doc := etree.NewDocument()
	doc.SetRoot(ed)
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// samlWithMetadata is a SamlServiceProvider whose IdP metadata is the file
// idp/md.xml, with lines added to its idp and spec.
func samlWithMetadata(enabled bool, idpExtra, specExtra string) string {
	e := "false"
	if enabled {
		e = "true"
	}
	return "apiVersion: idrecon.io/v1alpha1\nkind: SamlServiceProvider\nmetadata:\n  name: entra\nspec:\n  enabled: " + e +
		"\n  entityID: urn:idrecon\n  baseURL: https://idrecon.example.com\n  idp:\n    metadataFile: idp/md.xml\n" + idpExtra + specExtra
}

// TestLoadVerifiesIDPMetadata: metadata the SAML server would refuse is
// refused by the loader, at the metadataFile field, with the server's
// reason; a revision with it must never be applied.
func TestLoadVerifiesIDPMetadata(t *testing.T) {
	k := fixtures(t)
	idp, other := k["idp"], k["enc"] // both RSA
	signed := func(edit func(*etree.Element)) []byte { return idpMetadata(t, idp.cert, &idp, time.Time{}, edit) }
	const listed = "    signingCertificates: [entra-signing]\n"
	tests := []struct {
		name     string
		md       []byte
		enabled  bool
		idpExtra string
		extra    string
		want     string // "" means it loads
	}{
		{name: "signed by the listed certificate", md: signed(nil), enabled: true, idpExtra: listed},
		{name: "with a validUntil ahead", md: idpMetadata(t, idp.cert, &idp, testNow.Add(time.Hour), nil), enabled: true, idpExtra: listed},
		{name: "unsigned, signature not required", md: idpMetadata(t, idp.cert, nil, time.Time{}, nil), enabled: true,
			idpExtra: listed + "    requireSignedMetadata: false\n"},
		{name: "disabled: not used, not checked", md: []byte("not metadata"), idpExtra: listed},

		{name: "tampered Location", md: signed(func(ed *etree.Element) {
			ed.FindElement("//SingleSignOnService").CreateAttr("Location", "https://login.microsoftonline.com/evil/saml2")
		}), enabled: true, idpExtra: listed, want: "signature does not verify against the configured IdP signing certificates"},
		{name: "signed by a certificate not listed", md: idpMetadata(t, idp.cert, &other, time.Time{}, nil), enabled: true, idpExtra: listed,
			want: "signature does not verify against the configured IdP signing certificates"},
		{name: "bad signature while not required", md: idpMetadata(t, idp.cert, &other, time.Time{}, nil), enabled: true,
			idpExtra: listed + "    requireSignedMetadata: false\n", want: "signature does not verify"},
		{name: "unsigned while required", md: idpMetadata(t, idp.cert, nil, time.Time{}, nil), enabled: true, idpExtra: listed,
			want: "metadata is not signed"},
		{name: "expired validUntil", md: idpMetadata(t, idp.cert, &idp, testNow.Add(-time.Minute), nil), enabled: true, idpExtra: listed,
			want: "expired: validUntil"},
		{name: "not an EntityDescriptor", md: []byte(`<EntitiesDescriptor xmlns="urn:oasis:names:tc:SAML:2.0:metadata"/>`), enabled: true, idpExtra: listed,
			want: "root element is not a SAML metadata EntityDescriptor"},
		{name: "not XML", md: []byte("hello"), enabled: true, idpExtra: listed, want: "not an XML document"},
		{name: "SHA-1 unless allowed", md: func() []byte {
			return idpMetadata(t, idp.cert, &idp, time.Time{}, func(ed *etree.Element) {
				ed.FindElement("//SignatureMethod").CreateAttr("Algorithm", "http://www.w3.org/2000/09/xmldsig#rsa-sha1")
			})
		}(), enabled: true, idpExtra: listed, want: "signature algorithm not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := samlWithMetadata(tc.enabled, tc.idpExtra, tc.extra)
			root := writeTree(t, map[string]string{
				"saml.yaml":  doc,
				"keys.yaml":  certDoc("entra-signing", UsageSamlIDPSigning, "  pem: |\n"+indent(string(certPEM(idp.cert)), "    ")),
				"idp/md.xml": string(tc.md),
			})
			set, err := load(t, root, nil)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if string(set.SAML().IDP.MetadataXML) != string(tc.md) {
					t.Fatal("metadata not kept")
				}
				return
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("err = %v, want one spec error", err)
			}
			e := list[0]
			line := 1 + strings.Count(doc[:strings.Index(doc, "metadataFile:")], "\n")
			if e.Pos.File != "saml.yaml" || e.Pos.Line != line || e.Field != "spec.idp.metadataFile" ||
				!strings.HasPrefix(e.Msg, `file "idp/md.xml": idp metadata rejected: `) || !strings.Contains(e.Msg, tc.want) {
				t.Fatalf("got %v, want saml.yaml:%d: spec.idp.metadataFile: file \"idp/md.xml\": idp metadata rejected: …%s…", e, line, tc.want)
			}
		})
	}
}

// TestValidateVerifiesIDPMetadata: documents validated as the runtime holds
// them (an admin edit) are checked the same way, with the metadata they
// carry: dropping the certificate that signed it is refused.
func TestValidateVerifiesIDPMetadata(t *testing.T) {
	k := fixtures(t)
	idp, other := k["idp"], k["enc"]
	root := writeTree(t, map[string]string{
		"saml.yaml": samlWithMetadata(true, "    signingCertificates: [entra-signing]\n", ""),
		"keys.yaml": certDoc("entra-signing", UsageSamlIDPSigning, "  pem: |\n"+indent(string(certPEM(idp.cert)), "    ")) + "---\n" +
			certDoc("other", UsageSamlIDPSigning, "  pem: |\n"+indent(string(certPEM(other.cert)), "    ")),
		"idp/md.xml": string(idpMetadata(t, idp.cert, &idp, time.Time{}, nil)),
	})
	set, err := load(t, root, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow}
	if _, err := Validate(set.Docs, opts); err != nil {
		t.Fatalf("the loaded set: %v", err)
	}
	docs := make([]*Document, 0, len(set.Docs))
	for _, d := range set.Docs {
		if d.Kind == KindSamlServiceProvider {
			cp := *d
			sp := *d.Spec.(*SamlServiceProvider)
			sp.IDP.SigningCertificates = []string{"other"}
			cp.Spec = &sp
			d = &cp
		}
		docs = append(docs, d)
	}
	_, err = Validate(docs, opts)
	if err == nil || !strings.Contains(err.Error(), `spec.idp.metadataFile: file "idp/md.xml": idp metadata rejected: signature does not verify`) {
		t.Fatalf("err = %v, want the metadata refused", err)
	}
}

// TestCacheRechecksIDPMetadataExpiry: a cached load is not reused past the
// moment its IdP metadata expires, even on the same day.
func TestCacheRechecksIDPMetadataExpiry(t *testing.T) {
	k := fixtures(t)
	idp := k["idp"]
	root := writeTree(t, map[string]string{
		"saml.yaml":  samlWithMetadata(true, "    signingCertificates: [entra-signing]\n", ""),
		"keys.yaml":  certDoc("entra-signing", UsageSamlIDPSigning, "  pem: |\n"+indent(string(certPEM(idp.cert)), "    ")),
		"idp/md.xml": string(idpMetadata(t, idp.cert, &idp, testNow.Add(time.Hour), nil)),
	})
	cache := &Cache{}
	opts := LoadOptions{Getenv: getenvFrom(nil), Now: testNow, Cache: cache}
	if _, err := Load(context.Background(), root, opts); err != nil {
		t.Fatal(err)
	}
	opts.Now = testNow.Add(2 * time.Hour)
	if opts.Now.Truncate(24*time.Hour) != testNow.Truncate(24*time.Hour) {
		t.Fatal("the test needs both loads on one day")
	}
	if _, err := Load(context.Background(), root, opts); err == nil || !strings.Contains(err.Error(), "expired: validUntil") {
		t.Fatalf("err = %v, want the expired metadata refused", err)
	}
}
