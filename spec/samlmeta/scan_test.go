package samlmeta

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestScanXML(t *testing.T) {
	const sig = `<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:SignedInfo><ds:SignatureMethod Algorithm="%s"/><ds:Reference URI="#a"><ds:DigestMethod Algorithm='%s'/></ds:Reference></ds:SignedInfo></ds:Signature>`
	sigWith := func(sm, dm string) string {
		return strings.Replace(strings.Replace(sig, "%s", sm, 1), "%s", dm, 1)
	}
	strong := sigWith("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2001/04/xmlenc#sha256")
	tests := []struct {
		name       string
		doc        string
		allowSHA1  bool
		assertions int
		err        error
	}{
		{"one assertion", `<p:Response xmlns:p="x"><Assertion>` + strong + `</Assertion></p:Response>`, false, 1, nil},
		{"assertion hidden in a comment", `<R><!-- <Assertion> --><Assertion/></R>`, false, 1, nil},
		{"assertion hidden in CDATA", `<R><![CDATA[<Assertion>]]><Assertion/></R>`, false, 1, nil},
		{"quoted '>' does not end the tag", `<R a="x>y"><Assertion/><s:Assertion/></R>`, false, 2, nil},
		{"processing instruction", `<?xml version="1.0"?><R><?pi <Assertion>?><Assertion/></R>`, false, 1, nil},
		{"encrypted", `<R><EncryptedAssertion/></R>`, false, 1, nil},
		{"DOCTYPE", `<!DOCTYPE r><R/>`, false, 0, ErrDoctype},
		{"ENTITY after root start", `<R><!ENTITY x "y"></R>`, false, 0, ErrDoctype},
		{"SHA-1 signature method", `<R>` + sigWith("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2001/04/xmlenc#sha256") + `</R>`, false, 0, ErrAlgorithm},
		{"SHA-1 digest", `<R>` + sigWith("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256", "http://www.w3.org/2000/09/xmldsig#sha1") + `</R>`, false, 0, ErrAlgorithm},
		{"SHA-1 allowed", `<R>` + sigWith("http://www.w3.org/2000/09/xmldsig#rsa-sha1", "http://www.w3.org/2000/09/xmldsig#sha1") + `</R>`, true, 0, nil},
		{"OAEP SHA-1 digest is not a signature", `<R><EncryptionMethod Algorithm="rsa-oaep"><DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></EncryptionMethod></R>`, false, 0, nil},
		{"MD5", `<R>` + sigWith("http://www.w3.org/2001/04/xmldsig-more#rsa-md5", "http://www.w3.org/2001/04/xmlenc#sha256") + `</R>`, false, 0, ErrAlgorithm},
		{"missing algorithm", `<R><SignedInfo><SignatureMethod/></SignedInfo></R>`, false, 0, ErrAlgorithm},
		{"spaced attribute", `<R><SignedInfo><SignatureMethod Algorithm = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" /></SignedInfo></R>`, false, 0, nil},
		{"look-alike attribute name", `<R><SignedInfo><SignatureMethod XAlgorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/></SignedInfo></R>`, false, 0, ErrAlgorithm},
		{"too deep", strings.Repeat("<a>", maxDepth+1), false, 0, ErrTooDeep},
		{"deep but allowed", strings.Repeat("<a>", maxDepth) + strings.Repeat("</a>", maxDepth), false, 0, nil},
		{"too many elements", "<r>" + strings.Repeat("<a/>", maxMarkup) + "</r>", false, 0, ErrTooMany},
		{"deflated", "\x78\x9c\xcb", false, 0, ErrNotXML},
		{"unterminated comment", "<r><!-- ", false, 0, ErrNotXML},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Scan([]byte(tc.doc), tc.allowSHA1)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if err == nil && res.Assertions != tc.assertions {
				t.Fatalf("%d assertions, want %d", res.Assertions, tc.assertions)
			}
		})
	}
}

// FuzzScanXML checks the hand-rolled scan against encoding/xml: on any
// document the parser accepts, the scan sees at least the assertions the
// parser sees, so nothing can be hidden from the count. (It may see more:
// "<:Assertion/>" is one to the scan and a local name ":Assertion" to
// encoding/xml; counting it only makes the check stricter.)
func FuzzScanXML(f *testing.F) {
	for _, s := range []string{
		`<R><Assertion/></R>`,
		`<R a="x>y"><!-- <Assertion> --><![CDATA[<Assertion>]]><s:Assertion xmlns:s="u"/></R>`,
		`<?xml version="1.0"?><R><?p <Assertion>?><EncryptedAssertion/></R>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		want, ok := countAssertions(doc)
		res, err := Scan(doc, true)
		if !ok || err != nil {
			return
		}
		if res.Assertions < want {
			t.Fatalf("scan counts %d assertions, encoding/xml %d", res.Assertions, want)
		}
	})
}

func countAssertions(doc []byte) (int, bool) {
	d := xml.NewDecoder(bytes.NewReader(doc))
	n, depth := 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return n, depth == 0
		}
		if err != nil {
			return 0, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if t.Name.Local == "Assertion" || t.Name.Local == "EncryptedAssertion" {
				n++
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return 0, false
		}
	}
}
