package scim

import (
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// emailUser is a POST/PUT body for userName with emails, each "type:value"
// (the first is primary).
func emailUser(userName string, emails ...string) string {
	var list []string
	for i, e := range emails {
		typ, value, _ := strings.Cut(e, ":")
		primary := "false"
		if i == 0 {
			primary = "true"
		}
		list = append(list, `{"primary":`+primary+`,"type":`+q(typ)+`,"value":`+q(value)+`}`)
	}
	return `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":` + q(userName) +
		`,"active":true,"emails":[` + strings.Join(list, ",") + `]}`
}

// workEmailFilters are the filters that ask for the users with a work email
// equal to addr (case-insensitively), in the forms Entra and other clients
// send; the first three are the work email index's.
func workEmailFilters(addr string) []string {
	return []string{
		`emails[type eq "work"].value eq ` + q(addr),
		`emails[type eq "work" and value eq ` + q(addr) + `]`,
		`emails[value eq ` + q(strings.ToUpper(addr)) + ` and type eq "Work"]`,
		`emails[type eq "work"].value eq ` + q(addr) + ` and active eq true`,
	}
}

// findByWorkEmail checks that every filter of workEmailFilters(addr) lists
// exactly the users want (labels of ids).
func findByWorkEmail(t *testing.T, e *env, ids map[string]string, addr string, want []string) {
	t.Helper()
	var wantIDs []string
	for _, label := range want {
		id, ok := ids[label]
		if !ok {
			t.Fatalf("no user %q", label)
		}
		wantIDs = append(wantIDs, id)
	}
	for _, f := range workEmailFilters(addr) {
		got := e.must(200, "GET", "/Users?filter="+url.QueryEscape(f), "").json(t)
		gotIDs := resourceIDs(got)
		if !sameIDs(gotIDs, wantIDs) || got["totalResults"] != float64(len(wantIDs)) {
			t.Errorf("filter %s: got %v (totalResults %v), want %v %v", f, labelsOf(ids, gotIDs), got["totalResults"], want, wantIDs)
		}
	}
}

// labelsOf names ids by their labels, for messages.
func labelsOf(ids map[string]string, list []string) []string {
	var out []string
	for _, id := range list {
		name := id
		for label, x := range ids {
			if x == id {
				name = label
			}
		}
		out = append(out, name)
	}
	return out
}

// workEmailCase is a sequence of requests and the users each work email
// then finds.
type workEmailCase struct {
	name string
	// keepAll stores every email, not only the work ones, so a type
	// change keeps the address.
	keepAll bool
	// steps run in order; each creates a user (POST: the label names it)
	// or changes one (PUT, PATCH, DELETE of the labelled user).
	steps []workEmailStep
	// want maps a work email to the labels of the users it must find.
	want map[string][]string
}

type workEmailStep struct {
	method, label, body string
}

func post(label, body string) workEmailStep { return workEmailStep{"POST", label, body} }
func put(label, body string) workEmailStep  { return workEmailStep{"PUT", label, body} }
func patchOps(label string, list ...string) workEmailStep {
	return workEmailStep{"PATCH", label, ops(list...)}
}
func del(label string) workEmailStep { return workEmailStep{"DELETE", label, ""} }

var workEmailCases = []workEmailCase{
	{
		name:  "two work emails, both found",
		steps: []workEmailStep{post("ann", emailUser("ann@contoso.com", "work:ann@contoso.com", "work:ann.alias@contoso.com"))},
		want:  map[string][]string{"ann@contoso.com": {"ann"}, "ann.alias@contoso.com": {"ann"}, "ANN.Alias@Contoso.com": {"ann"}, "nobody@contoso.com": nil},
	},
	{
		name: "three work emails, none of them the userName",
		steps: []workEmailStep{post("ann", emailUser("ann@contoso.com",
			"work:a1@contoso.com", "work:a2@contoso.com", "work:a3@contoso.com"))},
		want: map[string][]string{"a1@contoso.com": {"ann"}, "a2@contoso.com": {"ann"}, "a3@contoso.com": {"ann"}, "ann@contoso.com": nil},
	},
	{
		name: "the second work email is another user's first",
		steps: []workEmailStep{
			post("cat", emailUser("cat@contoso.com", "work:shared@contoso.com")),
			post("bob", emailUser("bob@contoso.com", "work:bob@contoso.com", "work:Shared@contoso.com")),
		},
		want: map[string][]string{"shared@contoso.com": {"bob", "cat"}, "bob@contoso.com": {"bob"}},
	},
	{
		name: "the second work email is another user's userName and work email",
		steps: []workEmailStep{
			post("dan", emailUser("dan@contoso.com", "work:dan@contoso.com")),
			post("eve", emailUser("eve@contoso.com", "work:eve@contoso.com", "work:DAN@contoso.com")),
		},
		want: map[string][]string{"dan@contoso.com": {"dan", "eve"}, "eve@contoso.com": {"eve"}},
	},
	{
		name: "the second work email is another user's userName only",
		steps: []workEmailStep{
			post("dan", emailUser("dan@contoso.com", "work:d@fabrikam.com")),
			post("eve", emailUser("eve@contoso.com", "work:eve@contoso.com", "work:dan@contoso.com")),
		},
		want: map[string][]string{"dan@contoso.com": {"eve"}, "d@fabrikam.com": {"dan"}},
	},
	{
		name:  "the second work email is the user's own userName",
		steps: []workEmailStep{post("fay", emailUser("fay@contoso.com", "work:f@fabrikam.com", "work:FAY@contoso.com"))},
		want:  map[string][]string{"fay@contoso.com": {"fay"}, "f@fabrikam.com": {"fay"}},
	},
	{
		name:  "one address twice",
		steps: []workEmailStep{post("gil", emailUser("gil@contoso.com", "work:g@fabrikam.com", "work:G@fabrikam.com"))},
		want:  map[string][]string{"g@fabrikam.com": {"gil"}},
	},
	{
		name: "one address twice, then both removed",
		steps: []workEmailStep{
			post("gil", emailUser("gil@contoso.com", "work:g@fabrikam.com", "work:G@fabrikam.com", "work:gil@fabrikam.com")),
			patchOps("gil", `{"op":"remove","path":"emails[value eq \"g@fabrikam.com\"]"}`),
		},
		want: map[string][]string{"g@fabrikam.com": nil, "gil@fabrikam.com": {"gil"}},
	},
	{
		name: "PATCH adds a work email",
		steps: []workEmailStep{
			post("gus", emailUser("gus@contoso.com", "work:gus@contoso.com")),
			patchOps("gus", `{"op":"add","path":"emails","value":[{"type":"work","value":"gus2@contoso.com"}]}`),
		},
		want: map[string][]string{"gus@contoso.com": {"gus"}, "gus2@contoso.com": {"gus"}},
	},
	{
		name: "PATCH adds a second work email another user holds",
		steps: []workEmailStep{
			post("cat", emailUser("cat@contoso.com", "work:shared@contoso.com")),
			post("gus", emailUser("gus@contoso.com", "work:gus@fabrikam.com")),
			patchOps("gus", `{"op":"add","path":"emails","value":[{"type":"work","value":"shared@contoso.com"}]}`),
		},
		want: map[string][]string{"shared@contoso.com": {"cat", "gus"}, "gus@fabrikam.com": {"gus"}},
	},
	{
		name: "PATCH replaces the email list",
		steps: []workEmailStep{
			post("hal", emailUser("hal@contoso.com", "work:h1@contoso.com", "work:h2@contoso.com")),
			patchOps("hal", `{"op":"replace","path":"emails","value":[{"type":"work","value":"h3@contoso.com"},{"type":"work","value":"h4@contoso.com"}]}`),
		},
		want: map[string][]string{"h1@contoso.com": nil, "h2@contoso.com": nil, "h3@contoso.com": {"hal"}, "h4@contoso.com": {"hal"}},
	},
	{
		name: "PATCH replaces every work email's value",
		steps: []workEmailStep{
			post("hal", emailUser("hal@contoso.com", "work:h1@contoso.com", "work:h2@contoso.com")),
			patchOps("hal", `{"op":"replace","path":"emails[type eq \"work\"].value","value":"h5@contoso.com"}`),
		},
		want: map[string][]string{"h1@contoso.com": nil, "h2@contoso.com": nil, "h5@contoso.com": {"hal"}},
	},
	{
		name: "PATCH removes the second work email",
		steps: []workEmailStep{
			post("ida", emailUser("ida@contoso.com", "work:i1@contoso.com", "work:i2@contoso.com")),
			patchOps("ida", `{"op":"remove","path":"emails[value eq \"i2@contoso.com\"]"}`),
		},
		want: map[string][]string{"i1@contoso.com": {"ida"}, "i2@contoso.com": nil},
	},
	{
		name: "PATCH removes the first work email",
		steps: []workEmailStep{
			post("ida", emailUser("ida@contoso.com", "work:i1@contoso.com", "work:i2@contoso.com")),
			patchOps("ida", `{"op":"remove","path":"emails[value eq \"i1@contoso.com\"]"}`),
		},
		want: map[string][]string{"i1@contoso.com": nil, "i2@contoso.com": {"ida"}},
	},
	{
		name: "PATCH removes every work email",
		steps: []workEmailStep{
			post("ida", emailUser("ida@contoso.com", "work:i1@contoso.com", "work:i2@contoso.com")),
			patchOps("ida", `{"op":"remove","path":"emails[type eq \"work\"]"}`),
		},
		want: map[string][]string{"i1@contoso.com": nil, "i2@contoso.com": nil},
	},
	{
		name:    "PATCH changes emails' types",
		keepAll: true,
		steps: []workEmailStep{
			post("jo", emailUser("jo@contoso.com", "work:j1@contoso.com", "home:j2@contoso.com", "work:j3@contoso.com")),
			patchOps("jo", `{"op":"replace","path":"emails[value eq \"j2@contoso.com\"].type","value":"work"}`,
				`{"op":"replace","path":"emails[value eq \"j3@contoso.com\"].type","value":"other"}`),
		},
		want: map[string][]string{"j1@contoso.com": {"jo"}, "j2@contoso.com": {"jo"}, "j3@contoso.com": nil},
	},
	{
		name: "PATCH renames the user whose second work email was its userName",
		steps: []workEmailStep{
			post("kim", emailUser("kim@contoso.com", "work:k@fabrikam.com", "work:kim@contoso.com")),
			patchOps("kim", `{"op":"replace","path":"userName","value":"kim.new@contoso.com"}`),
		},
		want: map[string][]string{"kim@contoso.com": {"kim"}, "k@fabrikam.com": {"kim"}, "kim.new@contoso.com": nil},
	},
	{
		name: "PATCH renames the user to its second work email",
		steps: []workEmailStep{
			post("kim", emailUser("kim@contoso.com", "work:kim@contoso.com", "work:k@fabrikam.com")),
			patchOps("kim", `{"op":"replace","path":"userName","value":"K@fabrikam.com"}`),
		},
		want: map[string][]string{"kim@contoso.com": {"kim"}, "k@fabrikam.com": {"kim"}},
	},
	{
		name: "PUT with two work emails, then with one",
		steps: []workEmailStep{
			post("lee", emailUser("lee@contoso.com", "work:l1@contoso.com")),
			put("lee", emailUser("lee@contoso.com", "work:l2@contoso.com", "work:l3@contoso.com")),
		},
		want: map[string][]string{"l1@contoso.com": nil, "l2@contoso.com": {"lee"}, "l3@contoso.com": {"lee"}},
	},
	{
		name: "PUT with two work emails, then with one again",
		steps: []workEmailStep{
			post("lee", emailUser("lee@contoso.com", "work:l2@contoso.com", "work:l3@contoso.com")),
			put("lee", emailUser("lee@contoso.com", "work:l3@contoso.com")),
		},
		want: map[string][]string{"l2@contoso.com": nil, "l3@contoso.com": {"lee"}},
	},
	{
		name: "DELETE of a user sharing its second work email",
		steps: []workEmailStep{
			post("cat", emailUser("cat@contoso.com", "work:shared@contoso.com")),
			post("bob", emailUser("bob@contoso.com", "work:bob@fabrikam.com", "work:shared@contoso.com")),
			post("max", emailUser("max@contoso.com", "work:max@fabrikam.com", "work:shared@contoso.com")),
			del("bob"),
		},
		want: map[string][]string{"shared@contoso.com": {"cat", "max"}, "bob@fabrikam.com": nil, "max@fabrikam.com": {"max"}},
	},
	{
		name: "DELETE of the user holding the first work email",
		steps: []workEmailStep{
			post("cat", emailUser("cat@contoso.com", "work:shared@contoso.com")),
			post("bob", emailUser("bob@contoso.com", "work:bob@fabrikam.com", "work:shared@contoso.com")),
			del("cat"),
		},
		want: map[string][]string{"shared@contoso.com": {"bob"}, "bob@fabrikam.com": {"bob"}},
	},
}

// run sends the case's requests to e and returns the users' ids by label.
func (c workEmailCase) run(t *testing.T, e *env) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, s := range c.steps {
		switch s.method {
		case "POST":
			ids[s.label] = e.must(201, "POST", "/Users", s.body).json(t)["id"].(string)
		case "PUT", "PATCH":
			e.must(200, s.method, "/Users/"+ids[s.label], s.body)
		case "DELETE":
			e.must(204, "DELETE", "/Users/"+ids[s.label], "")
		}
	}
	return ids
}

func (c workEmailCase) config() *spec.ScimProvisioning {
	cfg := defaultConfig()
	if c.keepAll {
		cfg.UserAttributes = append(slices.Clone(spec.DefaultUserAttributes), "emails")
	}
	return cfg
}

// check runs every filter of the case against e.
func (c workEmailCase) check(t *testing.T, e *env, ids map[string]string) {
	t.Helper()
	for _, addr := range slices.Sorted(maps.Keys(c.want)) {
		findByWorkEmail(t, e, ids, addr, c.want[addr])
	}
}

// TestEveryWorkEmailFindsItsUser: a user may have several work emails
// (RFC 7643 allows it and Entra sends them); a filter on any of them finds
// the user, through creates, PATCH, PUT and DELETE, also when another user
// has the same address.
func TestEveryWorkEmailFindsItsUser(t *testing.T) {
	for _, m := range modes {
		for _, c := range workEmailCases {
			t.Run(m.name+"/"+c.name, func(t *testing.T) {
				e := newEnv(t, m.flag, c.config())
				ids := c.run(t, e)
				c.check(t, e, ids)
			})
		}
	}
}
