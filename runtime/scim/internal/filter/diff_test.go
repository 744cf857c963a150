package filter

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

// This file checks Parse and Match against a reference evaluator written
// straight from RFC 7644 §3.4.2.2, on random filters over random users.
// The filters are printed with the fewest parentheses the precedence of
// not, and and or allows, with JSON escapes chosen at random and keywords
// in random case, so the parser's precedence, its string reading and the
// lenient rewrites are checked along with the evaluation.

// refAttr is an attribute the reference evaluator knows.
type refAttr struct {
	path      string // as written in a filter
	key, sub  string // document key and sub-attribute ("" for none)
	ext       bool   // under the enterprise extension
	kind      string // schema.String, schema.Boolean or schema.DateTime
	caseExact bool
}

var refAttrs = []refAttr{
	{path: "userName", key: "userName", kind: schema.String},
	{path: "externalId", key: "externalId", kind: schema.String, caseExact: true},
	{path: "title", key: "title", kind: schema.String},
	{path: "active", key: "active", kind: schema.Boolean},
	{path: "name.givenName", key: "name", sub: "givenName", kind: schema.String},
	{path: "urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", key: "name", sub: "familyName", kind: schema.String},
	{path: "emails.value", key: "emails", sub: "value", kind: schema.String},
	{path: "emails.type", key: "emails", sub: "type", kind: schema.String},
	{path: "emails.primary", key: "emails", sub: "primary", kind: schema.Boolean},
	{path: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", key: "employeeNumber", ext: true, kind: schema.String},
	{path: "meta.created", key: "meta", sub: "created", kind: schema.DateTime},
}

// The sub-attributes of emails a value filter may name.
var refEmailSubs = []refAttr{
	{path: "value", key: "value", kind: schema.String},
	{path: "type", key: "type", kind: schema.String},
	{path: "primary", key: "primary", kind: schema.Boolean},
}

var refDates = []string{"2024-03-01T10:00:00Z", "2024-03-01T11:00:00+01:00", "2023-12-31T23:59:59.5Z", "2025-01-01T00:00:00Z"}

type refExpr interface {
	eval(doc map[string]any) bool
	// text prints the expression; prec is the binding of the context:
	// 0 top, 1 an operand of or, 2 an operand of and.
	text(r *rand.Rand, prec int) string
}

type refCmp struct {
	a   refAttr
	op  string
	val any // string, bool or nil for pr
}

type refLogic struct {
	and  bool
	l, r refExpr
}

type refNot struct{ e refExpr }

// refValuePath is emails[inner], or emails[inner].sub op val when cmp is
// set (the form Entra sends for the work email).
type refValuePath struct {
	inner refExpr
	cmp   *refCmp
}

// values returns the values of a in doc: one for a singular attribute, one
// per element for a sub-attribute of a multi-valued one.
func (c *refCmp) values(doc map[string]any) []any {
	v := doc[c.a.key]
	if c.a.ext {
		m, _ := doc[schema.URIEnterprise].(map[string]any)
		v = m[c.a.key]
	}
	var out []any
	add := func(x any) {
		if c.a.sub != "" {
			m, _ := x.(map[string]any)
			x = m[c.a.sub]
		}
		if x != nil {
			out = append(out, x)
		}
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			add(e)
		}
	} else if v != nil {
		add(v)
	}
	return out
}

func (c *refCmp) eval(doc map[string]any) bool {
	vals := c.values(doc)
	if c.op == "ne" {
		if len(vals) == 0 {
			return true
		}
		for _, v := range vals {
			if !c.holds("eq", v) {
				return true
			}
		}
		return false
	}
	for _, v := range vals {
		if c.holds(c.op, v) {
			return true
		}
	}
	return false
}

func (c *refCmp) holds(op string, v any) bool {
	if op == "pr" {
		s, isStr := v.(string)
		return !isStr || s != ""
	}
	if b, ok := c.val.(bool); ok {
		return v == b
	}
	have, want := v.(string), c.val.(string)
	if c.a.kind == schema.DateTime && op != "co" && op != "sw" && op != "ew" {
		h, _ := time.Parse(time.RFC3339Nano, have)
		w, _ := time.Parse(time.RFC3339Nano, want)
		return ordered(op, h.Compare(w))
	}
	if !c.a.caseExact {
		have, want = strings.ToLower(have), strings.ToLower(want)
	}
	switch op {
	case "co":
		return strings.Contains(have, want)
	case "sw":
		return strings.HasPrefix(have, want)
	case "ew":
		return strings.HasSuffix(have, want)
	}
	return ordered(op, strings.Compare(have, want))
}

func ordered(op string, c int) bool {
	switch op {
	case "eq":
		return c == 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	case "le":
		return c <= 0
	}
	panic(op)
}

func (l *refLogic) eval(doc map[string]any) bool {
	if l.and {
		return l.l.eval(doc) && l.r.eval(doc)
	}
	return l.l.eval(doc) || l.r.eval(doc)
}

func (n *refNot) eval(doc map[string]any) bool { return !n.e.eval(doc) }

func (vp *refValuePath) eval(doc map[string]any) bool {
	list, _ := doc["emails"].([]any)
	for _, e := range list {
		m, ok := e.(map[string]any)
		if ok && vp.inner.eval(m) && (vp.cmp == nil || vp.cmp.eval(m)) {
			return true
		}
	}
	return false
}

func randCase(r *rand.Rand, s string) string {
	if r.IntN(4) != 0 {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if r.IntN(2) == 0 && 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// quote prints s as a JSON string, escaping at random what may be
// escaped, with hex digits in either case.
func quote(r *rand.Rand, s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		esc := r.IntN(3) == 0
		switch {
		case esc && r.IntN(2) == 0:
			fmt.Fprintf(&b, `\u%04x`, c)
		case esc:
			fmt.Fprintf(&b, `\u%04X`, c)
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == '/' && r.IntN(2) == 0:
			b.WriteString(`\/`)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func (c *refCmp) text(r *rand.Rand, _ int) string {
	p := randCase(r, c.a.path) + " " + randCase(r, c.op)
	switch v := c.val.(type) {
	case nil:
		return p
	case bool:
		return fmt.Sprintf("%s %v", p, v)
	}
	return p + " " + quote(r, c.val.(string))
}

func (l *refLogic) text(r *rand.Rand, prec int) string {
	kw, mine := "or", 1
	if l.and {
		kw, mine = "and", 2
	}
	s := l.l.text(r, mine) + " " + randCase(r, kw) + " " + l.r.text(r, mine)
	if prec > mine || r.IntN(6) == 0 {
		return "(" + s + ")"
	}
	return s
}

func (n *refNot) text(r *rand.Rand, _ int) string {
	return randCase(r, "not") + " (" + n.e.text(r, 0) + ")"
}

func (vp *refValuePath) text(r *rand.Rand, _ int) string {
	s := randCase(r, "emails") + "[" + vp.inner.text(r, 0) + "]"
	if vp.cmp != nil {
		c := *vp.cmp
		c.a.path = "." + c.a.path
		s += c.text(r, 0)
	}
	return s
}

var refAlphabet = []string{"a", "A", "b", "é", "É", `"`, `\`, " ", "]", "(", "/", "@"}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for range r.IntN(4) {
		b.WriteString(refAlphabet[r.IntN(len(refAlphabet))])
	}
	return b.String()
}

func randCmp(r *rand.Rand, attrs []refAttr) *refCmp {
	a := attrs[r.IntN(len(attrs))]
	c := &refCmp{a: a}
	switch a.kind {
	case schema.Boolean:
		c.op = []string{"eq", "ne", "pr"}[r.IntN(3)]
		if c.op != "pr" {
			c.val = r.IntN(2) == 0
		}
		return c
	case schema.DateTime:
		c.op = []string{"eq", "ne", "gt", "ge", "lt", "le", "pr", "sw", "co", "ew"}[r.IntN(10)]
		d := refDates[r.IntN(len(refDates))]
		switch c.op {
		case "pr":
		case "sw":
			c.val = d[:r.IntN(len(d))]
		case "co", "ew":
			c.val = d[r.IntN(len(d)):]
		default:
			c.val = d
		}
		return c
	}
	c.op = []string{"eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"}[r.IntN(10)]
	if c.op != "pr" {
		c.val = randString(r)
	}
	return c
}

func randExpr(r *rand.Rand, depth int, attrs []refAttr, valuePaths bool) refExpr {
	if depth <= 0 {
		return randCmp(r, attrs)
	}
	switch r.IntN(6) {
	case 0, 1:
		return &refLogic{and: r.IntN(2) == 0, l: randExpr(r, depth-1, attrs, valuePaths), r: randExpr(r, depth-1, attrs, valuePaths)}
	case 2:
		return &refNot{randExpr(r, depth-1, attrs, valuePaths)}
	case 3:
		if valuePaths {
			vp := &refValuePath{inner: randExpr(r, min(depth-1, 2), refEmailSubs, false)}
			if r.IntN(2) == 0 {
				vp.cmp = randCmp(r, refEmailSubs)
			}
			return vp
		}
	}
	return randCmp(r, attrs)
}

func randUser(r *rand.Rand) map[string]any {
	doc := map[string]any{"userName": randString(r), "active": r.IntN(2) == 0,
		"meta": map[string]any{"created": refDates[r.IntN(len(refDates))]}}
	maybe := func(key string, v any) {
		if r.IntN(3) != 0 {
			doc[key] = v
		}
	}
	maybe("externalId", randString(r))
	maybe("title", randString(r))
	maybe("name", map[string]any{"givenName": randString(r), "familyName": randString(r)})
	maybe(schema.URIEnterprise, map[string]any{"employeeNumber": randString(r)})
	var emails []any
	for range r.IntN(4) {
		e := map[string]any{"value": randString(r), "type": []string{"work", "Work", "home", "é"}[r.IntN(4)]}
		if r.IntN(2) == 0 {
			e["primary"] = r.IntN(2) == 0
		}
		emails = append(emails, e)
	}
	if emails != nil {
		doc["emails"] = emails
	}
	return doc
}

// TestMatchAgreesWithReference is the differential check.
func TestMatchAgreesWithReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 2025))
	users := make([]map[string]any, 24)
	for i := range users {
		users[i] = randUser(r)
	}
	failures := 0
	for range 3000 {
		e := randExpr(r, r.IntN(4), refAttrs, true)
		text := e.text(r, 0)
		f, err := Parse(text, schema.UserType)
		if err != nil {
			t.Errorf("Parse(%s): %v", text, err)
			failures++
		} else {
			for _, u := range users {
				if got, want := f.Match(u), e.eval(u); got != want {
					t.Errorf("%s on %v: matched %v, reference %v", text, u, got, want)
					failures++
					break
				}
			}
		}
		if failures >= 10 {
			t.Fatal("too many failures")
		}
	}
}
