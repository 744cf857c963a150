package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// A body naming one JSON member twice, spelt exactly alike, was decoded by
// encoding/json, which keeps the last: what was stored was not clearly what
// the client meant, and DistinctNames, which works on the decoded map,
// never saw the first. Such a body is 400 invalidSyntax naming the member
// and where it is, on every path that decodes a body (the member fast path
// included), and changes nothing.
func TestMemberNamedTwiceIsRefused(t *testing.T) { forModes(t, testMemberNamedTwiceIsRefused) }

func testMemberNamedTwiceIsRefused(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	u := e.createUser("a@contoso.com", "a", "a@contoso.com")
	other := e.createUser("b@contoso.com", "b", "b@contoso.com")
	g := e.createGroup("Developers", "d")
	const user, group = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`, `"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"]`
	for _, tt := range []struct {
		name, method, path, body, member, where string
	}{
		{"POST user", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","userName":"d@contoso.com"}`, "userName", "userName"},
		{"POST user, same value", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","userName":"c@contoso.com"}`, "userName", "userName"},
		{"POST user, escaped spelling", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","user\u004eame":"d@contoso.com"}`, "userName", "userName"},
		{"POST user, schemas", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com",` + user + `}`, "schemas", "schemas"},
		{"POST user, sub-attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","name":{"givenName":"C","givenName":"D"}}`, "givenName", "name.givenName"},
		{"POST user, second email", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","emails":[{"value":"c@contoso.com"},{"type":"work","value":"c@contoso.com","value":"d@contoso.com"}]}`, "value", "emails[1].value"},
		{"POST user, extension attribute", "POST", "/Users", `{` + user + `,"userName":"c@contoso.com","` + schemaEnterprise + `":{"manager":{"value":"x","value":"y"}}}`, "value", schemaEnterprise + ".manager.value"},
		{"PUT user", "PUT", "/Users/" + u, `{` + user + `,"userName":"a@contoso.com","active":false,"active":true}`, "active", "active"},
		{"PATCH user, PatchOp", "PATCH", "/Users/" + u, `{` + patchSchema + `,"Operations":[{"op":"replace","path":"userName","value":"x@contoso.com"}],"Operations":[]}`, "Operations", "Operations"},
		{"PATCH user, operation", "PATCH", "/Users/" + u, ops(`{"op":"replace","path":"active","value":false}`, `{"op":"add","op":"remove","path":"title"}`), "op", "Operations[1].op"},
		{"PATCH user, path-less value", "PATCH", "/Users/" + u, ops(`{"op":"replace","value":{"active":false,"active":true}}`), "active", "Operations[0].value.active"},
		{"POST group", "POST", "/Groups", `{` + group + `,"displayName":"Ops","displayName":"Other"}`, "displayName", "displayName"},
		{"PUT group", "PUT", "/Groups/" + g, `{` + group + `,"displayName":"Developers","members":[{"value":"` + u + `","value":"` + other + `"}]}`, "value", "members[0].value"},
		{"PATCH group, path-less value", "PATCH", "/Groups/" + g, ops(`{"op":"add","value":{"members":[{"value":"` + u + `"}],"members":[{"value":"` + other + `"}]}}`), "members", "Operations[0].value.members"},
		{"PATCH members as Entra sends them", "PATCH", "/Groups/" + g, ops(`{"op":"Add","path":"members","value":[{"$ref":null,"value":"` + u + `"},{"$ref":null,"value":"` + u + `","value":"` + other + `"}]}`), "value", "Operations[0].value[1].value"},
		{"PATCH members, $ref twice", "PATCH", "/Groups/" + g, ops(`{"op":"Add","path":"members","value":[{"$ref":null,"$ref":null,"value":"` + u + `"}]}`), "$ref", "Operations[0].value[0].$ref"},
		{"PATCH members, second operation", "PATCH", "/Groups/" + g, ops(`{"op":"Add","path":"members","value":[{"value":"`+u+`"}]}`, `{"op":"Remove","path":"members","path":"displayName","value":[{"value":"`+u+`"}]}`), "path", "Operations[1].path"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do(tt.method, tt.path, tt.body)
			got := r.json(t)
			detail := fmt.Sprint(got["detail"])
			where := " at " + tt.where + ":"
			if tt.where == tt.member {
				where = q(tt.member) + " twice:" // at the top level
			}
			if r.status != 400 || got["scimType"] != "invalidSyntax" || !strings.Contains(detail, q(tt.member)) || !strings.Contains(detail, where) {
				t.Fatalf("status %d %s, want 400 invalidSyntax naming %q at %s", r.status, r.body, tt.member, tt.where)
			}
		})
	}
	if got := members(t, e, g); len(got) != 0 {
		t.Errorf("members %v after refused writes", got)
	}
	if got := getUser(t, e, u); got["active"] != true || dig(got, "meta", "version") != `W/"1"` {
		t.Errorf("refused writes changed the user: %v", got)
	}
	if list := e.must(200, "GET", "/Users", "").json(t); list["totalResults"] != 2.0 {
		t.Errorf("refused creates made users: %v", list["totalResults"])
	}
	if list := e.must(200, "GET", "/Groups", "").json(t); list["totalResults"] != 1.0 {
		t.Errorf("refused creates made groups: %v", list["totalResults"])
	}
	// One name in sibling objects, in an object and the one inside it, or
	// as a string value, is no member named twice.
	e.must(201, "POST", "/Users", `{`+user+`,"userName":"e@contoso.com","emails":[{"type":"work","value":"e@contoso.com"},{"type":"home","value":"f@contoso.com"}],"manager":{"value":"x"},"title":"\"title\":\"title\"","name":{"givenName":"E"},"displayName":"name"}`)
	e.must(204, "PATCH", "/Groups/"+g, ops(`{"op":"Add","path":"members","value":[{"$ref":null,"value":"`+u+`"},{"$ref":null,"value":"`+other+`"}]}`, `{"op":"Remove","path":"members","value":[{"value":"`+other+`"}]}`))
}

// TestRepeatedMember checks the scan on its own: which bodies it refuses,
// and where it says the member is.
func TestRepeatedMember(t *testing.T) {
	deep := strings.Repeat(`{"a":`, maxDepth+1) + `1` + strings.Repeat(`}`, maxDepth+1)
	var wide, wideDup strings.Builder
	wide.WriteString(`{`)
	for i := range 200 {
		fmt.Fprintf(&wide, `"k%d":%d,`, i, i)
	}
	wideDup.WriteString(wide.String() + `"k7":0}`)
	wide.WriteString(`"last":0}`)
	for _, tt := range []struct {
		name, body, want string // want: the error's detail holds it; "" for none
	}{
		{"distinct", `{"a":1,"b":{"a":2,"b":[{"a":3},{"a":4}]}}`, ""},
		{"case variants are DistinctNames's", `{"a":1,"A":2}`, ""},
		{"names as values", `{"a":"a","b":["a","a"],"c":{"d":"a"}}`, ""},
		{"escaped quotes and colons in values", `{"a":"\",\"a\":","b":"\\","a2":"x\\\"a\":"}`, ""},
		{"top level", `{"a":1,"a":2}`, `"a" twice:`},
		{"null and value", `{"a":null,"b":0,"a":{}}`, `"a" twice:`},
		{"nested", `{"a":{"b":1,"c":2,"b":3}}`, `"b" twice at a.b:`},
		{"after a nested object", `{"a":{"a":1},"a":2}`, `"a" twice:`},
		{"in an array", `{"a":[{"b":1},[],{"c":1,"c":2}]}`, `"c" twice at a[2].c:`},
		{"escaped spelling", `{"ab":1,"\u0061b":2}`, `"ab" twice:`},
		{"both escaped", `{"\u0061b":1,"a\u0062":2}`, `"ab" twice:`},
		{"escaped quote in a name", `{"a\"b":1,"a\"b":2}`, `"a\"b" twice:`},
		{"empty name", `{"":1,"":2}`, `"" twice:`},
		{"whitespace", " {\n \"a\" : 1 ,\t\"a\"\r: 2 } ", `"a" twice:`},
		{"many names", wide.String(), ""},
		{"many names, one twice", wideDup.String(), `"k7" twice:`},
		{"too deep", deep, "nests deeper"},
		{"not an object", `[{"a":1},{"a":1}]`, ""},
		{"array holding a repeat", `[{"a":1,"a":1}]`, `"a" twice at [0].a:`},
		// Broken bodies: the decoder says what is wrong.
		{"unterminated", `{"a":1,"a`, ""},
		{"unterminated escape", `{"a":"\`, ""},
		{"stray closers", `}]{"a":1}`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := scanMembers([]byte(tt.body))
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want one saying %s", err, tt.want)
			}
		})
	}
}

// FuzzRepeatedMember checks scanMembers against a reference built on
// encoding/json's tokens, on every valid JSON text not too deep: it refuses
// exactly those naming a member twice in one object.
func FuzzRepeatedMember(f *testing.F) {
	for _, body := range []string{
		`{"a":1,"a":2}`,
		`{"a":{"a":1},"b":[{"a":1,"b":2},{"c":{"c":1,"c":2}}]}`,
		`{"\u0061":1,"a":2}`,
		`{"a\\":1,"a\\\"":2,"\"":3}`,
		`{"é":1,"\u00e9":2}`,
		`{"\ud83d\ude00":1,"😀":2}`,
		`[{},[],"",{"":0,"":0}]`,
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1","value":"u2"}]}]}`,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		err := scanMembers(body) // never panics, whatever the body
		// decodeObject refuses what is not UTF-8, or escapes half a
		// surrogate pair, before the scan: encoding/json decodes both to
		// U+FFFD, so two different names could decode alike.
		if !json.Valid(body) || !utf8.Valid(body) || unpairedSurrogate(body) != "" || deeper(body) {
			return
		}
		want, where := referenceRepeat(t, body)
		if (err != nil) != want {
			t.Fatalf("scanMembers = %v, reference finds a repeat: %v", err, want)
		}
		// At the top level the name is where it is.
		if err != nil && !strings.Contains(err.Error(), " twice at "+where+":") && !strings.Contains(err.Error(), strconv.Quote(where)+" twice:") {
			t.Fatalf("scanMembers = %v, reference says %s", err, where)
		}
	})
}

func deeper(body []byte) bool {
	d := 0
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if d++; d > maxDepth {
				return true
			}
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

// referenceRepeat walks body's tokens recursively, keeping each object's
// names in a map, and returns where the first repeated one is.
func referenceRepeat(t *testing.T, body []byte) (bool, string) {
	dec := json.NewDecoder(bytes.NewReader(body))
	// As decodeObject reads numbers: 1E1000 is no float64, and no reason
	// for the reference to fail where the code under test does not.
	dec.UseNumber()
	var walk func(path string) (bool, string)
	walk = func(path string) (bool, string) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("reference: %v", err)
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, _ := dec.Token()
				name := k.(string)
				at := name
				if path != "" {
					at = path + "." + name
				}
				if seen[name] {
					return true, at
				}
				seen[name] = true
				if found, where := walk(at); found {
					return true, where
				}
			}
			_, _ = dec.Token()
		case json.Delim('['):
			for i := 0; dec.More(); i++ {
				if found, where := walk(path + "[" + strconv.Itoa(i) + "]"); found {
					return true, where
				}
			}
			_, _ = dec.Token()
		}
		return false, ""
	}
	found, where := walk("")
	if !found {
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("reference: trailing data")
		}
	}
	return found, where
}
