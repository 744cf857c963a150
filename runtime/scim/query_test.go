package scim

import (
	"net/http"
	"strings"
	"testing"
)

// A query string the server cannot decode must be refused: dropped, a
// lookup's filter would leave an unfiltered list, and Entra's matching
// lookup would get back every user instead of none or one.
func TestMalformedQueryIsRefused(t *testing.T) { forModes(t, testMalformedQueryIsRefused) }

func testMalformedQueryIsRefused(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
	e.createUser("bob@contoso.com", "bob", "bob@contoso.com")
	gid := e.createGroup("Developers", "g1")
	for _, c := range []struct{ path, scimType string }{
		{"/Users?filter=userName+eq+%22alice%ZZ%22", "invalidFilter"},
		{"/Users?filter=userName+eq+%22alice%40contoso.com%2", "invalidFilter"},
		{"/Groups?excludedAttributes=members&filter=displayName+eq+%22Dev%G0%22", "invalidFilter"},
		{"/Users?startIndex=%ZZ&count=1", "invalidValue"},
		{"/Groups/" + gid + "?excludedAttributes=mem%ZZbers", "invalidValue"},
	} {
		r := e.do("GET", c.path, "")
		if r.status != http.StatusBadRequest || r.json(t)["scimType"] != c.scimType {
			t.Errorf("GET %s: status %d %s, want 400 %s", c.path, r.status, r.body, c.scimType)
		}
	}
}

// A semicolon is an ordinary character of a query (RFC 3986 §3.4, and
// application/x-www-form-urlencoded splits on "&" only), so a group name
// holding one is looked up as written, not dropped with its filter.
func TestSemicolonInQueryIsLiteral(t *testing.T) { forModes(t, testSemicolonInQueryIsLiteral) }

func testSemicolonInQueryIsLiteral(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	id := e.createGroup("R&D; Berlin", "g1")
	e.createGroup("Sales", "g2")
	r := e.must(http.StatusOK, "GET", `/Groups?excludedAttributes=members&filter=displayName+eq+"R%26D;+Berlin"`, "")
	m := r.json(t)
	if m["totalResults"] != float64(1) || dig(m, "Resources", 0, "id") != id {
		t.Fatalf("filter with a semicolon: %s, want only group %s", r.body, id)
	}
}

// A filter is text: one whose bytes are not UTF-8, or that escapes half a
// UTF-16 surrogate pair, names no string a resource can hold. Decoded with
// replacement characters it would match a value the client never sent.
func TestFilterThatIsNotUnicodeIsRefused(t *testing.T) {
	forModes(t, func(t *testing.T, flag bool) {
		e := newEnv(t, flag, defaultConfig())
		e.createUser("a\ufffd@contoso.com", "a", "a@contoso.com")
		for _, p := range []string{
			"/Users?filter=userName+eq+%22a%FF%40contoso.com%22",
			"/Users?filter=userName+eq+%22a%5Cud800%40contoso.com%22",
			"/Users?filter=userName+eq+%22a%5CuDC00%40contoso.com%22+or+userName+pr",
		} {
			r := e.do("GET", p, "")
			if r.status != http.StatusBadRequest || r.json(t)["scimType"] != "invalidFilter" {
				t.Errorf("GET %s: status %d %s, want 400 invalidFilter", p, r.status, r.body)
			}
		}
	})
}

// JSON may escape a character outside the BMP as a surrogate pair; half a
// pair is no character at all, and the decoder would store U+FFFD in its
// place: a value other than the one sent, answered 201.
func TestUnpairedSurrogateEscapeIsRefused(t *testing.T) {
	forModes(t, testUnpairedSurrogateEscapeIsRefused)
}

func testUnpairedSurrogateEscapeIsRefused(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	uid := e.createUser("alice@contoso.com", "alice", "alice@contoso.com")
	gid := e.createGroup("Developers", "g1")
	user := func(name string) string {
		return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"` + name + `"}`
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/Users", user(`bob\ud800@contoso.com`)},
		{"POST", "/Users", user(`bob\uDC00@contoso.com`)},
		{"POST", "/Users", user(`bob\ud83d\u0041@contoso.com`)},
		{"POST", "/Users", user(`bob\ud83d`)},
		{"PUT", "/Users/" + uid, user(`alice\udfff@contoso.com`)},
		{"PATCH", "/Users/" + uid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"A\ud800"}]}`},
		{"POST", "/Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Ops\udbff"}`},
		{"PATCH", "/Groups/" + gid, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Replace","path":"displayName","value":"Dev\ud800"}]}`},
	} {
		r := e.do(c.method, c.path, c.body)
		if r.status != http.StatusBadRequest || r.json(t)["scimType"] != "invalidValue" {
			t.Errorf("%s %s %s: status %d %s, want 400 invalidValue", c.method, c.path, c.body, r.status, r.body)
		}
	}
	// A whole pair is a character, and an escaped backslash before "u" is
	// no escape of a surrogate.
	r := e.must(http.StatusCreated, "POST", "/Users", user(`bob\ud83d\ude00@contoso.com`))
	if got := r.json(t)["userName"]; got != "bob\U0001F600@contoso.com" {
		t.Errorf("userName %q", got)
	}
	r = e.must(http.StatusCreated, "POST", "/Users", user(`carol\\ud800@contoso.com`))
	if got := r.json(t)["userName"]; got != `carol\ud800@contoso.com` {
		t.Errorf("userName %q", got)
	}
}

func TestUnpairedSurrogateScan(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`"plain"`, ""},
		{`"\ud83d\ude00"`, ""},
		{`"\uD83D\uDE00\u00e9"`, ""},
		{`"\\ud800"`, ""},
		{`"\\\ud800"`, `\ud800`},
		{`"\ud800"`, `\ud800`},
		{`"\ud800\\udc00"`, `\ud800`},
		{`"\ud800\u0041"`, `\ud800`},
		{`"\udc00\ud800"`, `\udc00`},
		{`"\ud83d\ude00\udbff"`, `\udbff`},
		{`"\ud8`, ""},
		{`"\u12G4\ud800"`, ""},
	} {
		if got := unpairedSurrogate(c.in); got != c.want {
			t.Errorf("unpairedSurrogate(%s) = %q, want %q", c.in, got, c.want)
		}
		if got := unpairedSurrogate([]byte(c.in)); got != c.want {
			t.Errorf("unpairedSurrogate([]byte(%s)) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseQuery(t *testing.T) {
	q, err := parseQuery("aadOptscim062020&filter=userName+eq+%22a%3Bb%22;x&&count=2&count=3&=v&k=")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"aadOptscim062020": {""}, "filter": {`userName eq "a;b";x`}, "count": {"2", "3"}, "": {"v"}, "k": {""}}
	if len(q) != len(want) {
		t.Fatalf("parseQuery: %q", q)
	}
	for k, v := range want {
		if strings.Join(q[k], "|") != strings.Join(v, "|") {
			t.Errorf("%q: %q, want %q", k, q[k], v)
		}
	}
}
