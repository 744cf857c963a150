package filter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	scimfilter "github.com/scim2/filter-parser/v2"

	"github.com/idrecon/idrecon/runtime/scim/internal/nesting"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
)

// MaxLen bounds the filter text accepted.
const MaxLen = 4096

// MaxNesting bounds how deeply parentheses and brackets nest in a filter or
// path. The third-party parser's time grows with the square of the depth:
// a 4 KiB filter of "(" cost it half a second and 1.4 million allocations,
// so one client could keep every core busy. Real filters nest a few levels.
const MaxNesting = 32

// Filter is a parsed filter, resolved against a resource type.
type Filter struct {
	root node
}

// Term is one equality comparison that the whole filter requires (a
// conjunct): Key is the canonical attribute ("userName", "externalId", "id",
// "displayName", "members", "manager", or "emails.work" for a work email's
// value) and Value the string compared with.
type Term struct {
	Key   string
	Value string
}

// Parse parses and resolves a filter. Errors are *scimerr.Error with scimType
// invalidFilter.
func Parse(text string, rt *schema.ResourceType) (*Filter, error) {
	if len(text) > MaxLen {
		return nil, scimerr.New(scimerr.InvalidFilter, "filter is longer than %d bytes", MaxLen)
	}
	if nesting.Depth(text, "([", ")]") > MaxNesting {
		return nil, scimerr.New(scimerr.InvalidFilter, "filter nests deeper than %d levels", MaxNesting)
	}
	if n, ok := parseSimple(text, rt); ok {
		return &Filter{root: n}, nil
	}
	if q := singleQuoted(text); q != "" {
		return nil, errSingleQuoted(q)
	}
	expr, err := parse(lenient(text))
	if err != nil {
		return nil, scimerr.New(scimerr.InvalidFilter, "cannot parse filter: %v", err)
	}
	n, err := compile(expr, rt, nil)
	if err != nil {
		return nil, err
	}
	return &Filter{root: n}, nil
}

func errSingleQuoted(q string) error {
	return scimerr.New(scimerr.InvalidFilter, "filter value %s is in single quotes: strings are JSON strings, in double quotes", q)
}

// parse guards against panics in the third-party parser: a filter is
// untrusted input.
func parse(text string) (expr scimfilter.Expression, err error) {
	defer func() {
		if p := recover(); p != nil {
			expr, err = nil, fmt.Errorf("malformed filter")
		}
	}()
	outer, inner, err := cutValueFilters(text)
	if err != nil {
		return nil, err
	}
	if expr, err = scimfilter.ParseFilter([]byte(outer)); err != nil {
		return nil, err
	}
	if err := putValueFilters(expr, &inner); err != nil {
		return nil, err
	}
	return expr, nil
}

// valuePathStub stands in for the filter between a value path's brackets
// while the third-party parser reads the rest. Its value-filter grammar
// takes one comparison, two joined by and/or, or not(…); RFC 7644 §3.4.2.2
// allows any filter there (valFilter = attrExp / logExp / "not" "("
// valFilter ")"), and lenient makes three terms and parentheses itself.
// So each value filter is parsed on its own with the whole filter grammar.
const valuePathStub = "[x pr]"

// cutValueFilters returns text with each bracketed value filter (outside
// quoted strings) replaced by valuePathStub, and those filters, parsed, in
// order. Brackets that do not pair up are left for the parser to report.
func cutValueFilters(text string) (string, []scimfilter.Expression, error) {
	if strings.IndexByte(text, '[') < 0 {
		return text, nil, nil
	}
	var spans [][2]int
	depth, start := 0, 0
	for i, c := range nesting.Unquoted(text) {
		switch c {
		case '[':
			if depth == 0 {
				start = i
			}
			depth++
		case ']':
			if depth--; depth == 0 {
				spans = append(spans, [2]int{start, i})
			} else if depth < 0 {
				return text, nil, nil
			}
		}
	}
	if depth != 0 {
		return text, nil, nil
	}
	var b strings.Builder
	var inner []scimfilter.Expression
	last := 0
	for _, s := range spans {
		// Nested brackets parse to a nested value path, which compile refuses.
		e, err := parse(strings.TrimSpace(text[s[0]+1 : s[1]]))
		if err != nil {
			return "", nil, err
		}
		inner = append(inner, e)
		b.WriteString(text[last:s[0]])
		b.WriteString(valuePathStub)
		last = s[1] + 1
	}
	b.WriteString(text[last:])
	return b.String(), inner, nil
}

// putValueFilters sets the value filters cutValueFilters took out back into
// the value paths of expr, in textual order (left before right).
func putValueFilters(expr scimfilter.Expression, inner *[]scimfilter.Expression) error {
	switch e := expr.(type) {
	case *scimfilter.LogicalExpression:
		if err := putValueFilters(e.Left, inner); err != nil {
			return err
		}
		return putValueFilters(e.Right, inner)
	case *scimfilter.NotExpression:
		return putValueFilters(e.Expression, inner)
	case *scimfilter.ValuePath:
		if len(*inner) == 0 {
			return fmt.Errorf("misplaced brackets")
		}
		e.ValueFilter, *inner = (*inner)[0], (*inner)[1:]
	}
	return nil
}

// Match reports whether the document matches.
func (f *Filter) Match(doc map[string]any) bool { return f.root.match(doc) }

// Terms returns the equality conjuncts the filter requires, and whether the
// filter is exactly one such term.
func (f *Filter) Terms() (terms []Term, single bool) {
	collect(f.root, &terms)
	c, ok := f.root.(*cmpNode)
	return terms, ok && c.sub == nil && len(terms) == 1
}

func collect(n node, out *[]Term) {
	switch x := n.(type) {
	case *logicNode:
		if x.and {
			collect(x.l, out)
			collect(x.r, out)
		}
	case *cmpNode:
		if x.op == scimfilter.EQ {
			if s, ok := x.val.(string); ok && x.key != "" {
				*out = append(*out, Term{Key: x.key, Value: s})
			}
		}
	case *valuePathNode:
		// emails[type eq "work" and value eq "x"] is the work-email index.
		if x.r.Attr.Name != "emails" || x.r.Ext != "" {
			return
		}
		var inner []*cmpNode
		flatAnd(x.inner, &inner)
		var typ, val string
		for _, c := range inner {
			s, ok := c.val.(string)
			if !ok || c.op != scimfilter.EQ {
				continue
			}
			switch c.attr.Name {
			case "type":
				typ = s
			case "value":
				val = s
			}
		}
		if strings.EqualFold(typ, "work") && val != "" {
			*out = append(*out, Term{Key: "emails.work", Value: val})
		}
	}
}

func flatAnd(n node, out *[]*cmpNode) {
	switch x := n.(type) {
	case *logicNode:
		if x.and {
			flatAnd(x.l, out)
			flatAnd(x.r, out)
		}
	case *cmpNode:
		*out = append(*out, x)
	}
}

type node interface {
	match(m map[string]any) bool
}

type logicNode struct {
	and  bool
	l, r node
}

func (n *logicNode) match(m map[string]any) bool {
	if n.and {
		return n.l.match(m) && n.r.match(m)
	}
	return n.l.match(m) || n.r.match(m)
}

type notNode struct{ n node }

func (n *notNode) match(m map[string]any) bool { return !n.n.match(m) }

// cmpNode compares an attribute. ext/top/sub locate it in a document; when
// parent is set the node is evaluated on an element of a multi-valued
// attribute and top is the element's sub-attribute.
type cmpNode struct {
	key  string // canonical key for Terms ("" inside value paths)
	ext  string
	top  *schema.Attribute
	sub  *schema.Attribute
	attr *schema.Attribute // the attribute whose type governs the comparison
	op   scimfilter.CompareOperator
	val  any
}

func (n *cmpNode) match(m map[string]any) bool {
	container := m
	if n.ext != "" {
		container, _ = m[n.ext].(map[string]any)
	}
	v, ok := container[n.top.Name]
	if !ok || v == nil {
		return n.op == scimfilter.NE
	}
	if n.op == scimfilter.PR && n.sub == nil && n.top.Type == schema.Complex {
		// A complex attribute is present when it holds a non-empty node
		// (RFC 7644 §3.4.2.2), whether or not it has a "value"
		// sub-attribute: name and addresses have none.
		return present(v)
	}
	var vals []any
	appendVal := func(x any) {
		obj, isObj := x.(map[string]any)
		switch {
		case n.sub != nil:
			if isObj {
				if sv, ok := obj[n.sub.Name]; ok && sv != nil {
					vals = append(vals, sv)
				}
			}
		case isObj:
			// A complex attribute compares through its value (manager eq, members eq).
			if sv, ok := obj["value"]; ok && sv != nil {
				vals = append(vals, sv)
			}
		default:
			vals = append(vals, x)
		}
	}
	if list, ok := v.([]any); ok {
		for _, x := range list {
			appendVal(x)
		}
	} else {
		appendVal(v)
	}
	switch n.op {
	case scimfilter.PR:
		for _, x := range vals {
			if s, ok := x.(string); !ok || s != "" {
				return true
			}
		}
		return false
	case scimfilter.NE:
		// Absent, the attribute equals nothing. Multi-valued, it matches
		// when any of its values does (RFC 7644 §3.4.2.2): when one
		// differs, not when none is equal.
		if len(vals) == 0 {
			return true
		}
		for _, x := range vals {
			if !compare(n.attr, scimfilter.EQ, x, n.val) {
				return true
			}
		}
		return false
	}
	for _, x := range vals {
		if compare(n.attr, n.op, x, n.val) {
			return true
		}
	}
	return false
}

// present reports whether v holds a value: a non-empty string, any
// other scalar, or a list or object with such a value somewhere inside.
func present(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case string:
		return x != ""
	case []any:
		return slices.ContainsFunc(x, present)
	case map[string]any:
		for _, e := range x {
			if present(e) {
				return true
			}
		}
		return false
	}
	return true
}

type valuePathNode struct {
	r     schema.Resolved
	inner node
}

func (n *valuePathNode) match(m map[string]any) bool {
	container := m
	if n.r.Ext != "" {
		container, _ = m[n.r.Ext].(map[string]any)
	}
	switch v := container[n.r.Attr.Name].(type) {
	case []any:
		for _, e := range v {
			if obj, ok := e.(map[string]any); ok && n.inner.match(obj) {
				return true
			}
		}
	case map[string]any:
		return n.inner.match(v)
	}
	return false
}

// MatchElement reports whether an element of a multi-valued complex
// attribute matches a value filter compiled with CompileValueFilter.
func (f *Filter) MatchElement(elem map[string]any) bool { return f.root.match(elem) }

// CompileValueFilter resolves the filter inside a value path
// (emails[<filter>]) against the sub-attributes of parent, for PATCH paths.
func CompileValueFilter(expr scimfilter.Expression, rt *schema.ResourceType, parent *schema.Attribute) (*Filter, error) {
	n, err := compile(expr, rt, parent)
	if err != nil {
		return nil, err
	}
	return &Filter{root: n}, nil
}

func compile(expr scimfilter.Expression, rt *schema.ResourceType, parent *schema.Attribute) (node, error) {
	switch e := expr.(type) {
	case *scimfilter.LogicalExpression:
		l, err := compile(e.Left, rt, parent)
		if err != nil {
			return nil, err
		}
		r, err := compile(e.Right, rt, parent)
		if err != nil {
			return nil, err
		}
		return &logicNode{and: strings.EqualFold(string(e.Operator), "and"), l: l, r: r}, nil
	case *scimfilter.NotExpression:
		n, err := compile(e.Expression, rt, parent)
		if err != nil {
			return nil, err
		}
		return &notNode{n}, nil
	case *scimfilter.ValuePath:
		if parent != nil {
			return nil, scimerr.New(scimerr.InvalidFilter, "nested value filters are not allowed")
		}
		r, ok := rt.Resolve(e.AttributePath.URI(), e.AttributePath.AttributeName, e.AttributePath.SubAttributeName())
		if !ok || r.Sub != nil || r.Attr.Type != schema.Complex {
			return nil, scimerr.New(scimerr.InvalidFilter, "%q is not a complex attribute", e.AttributePath.String())
		}
		inner, err := compile(e.ValueFilter, rt, r.Attr)
		if err != nil {
			return nil, err
		}
		return &valuePathNode{r: r, inner: inner}, nil
	case *scimfilter.AttributeExpression:
		return compileCmp(e, rt, parent)
	}
	return nil, scimerr.New(scimerr.InvalidFilter, "unsupported filter expression")
}

func compileCmp(e *scimfilter.AttributeExpression, rt *schema.ResourceType, parent *schema.Attribute) (node, error) {
	p := e.AttributePath
	n := &cmpNode{op: scimfilter.CompareOperator(strings.ToLower(string(e.Operator))), val: e.CompareValue}
	if parent != nil {
		if p.URIPrefix != nil {
			return nil, scimerr.New(scimerr.InvalidFilter, "unknown attribute %q in value filter", p.String())
		}
		n.top = parent.Sub(p.AttributeName)
		if n.top == nil || p.SubAttribute != nil {
			return nil, scimerr.New(scimerr.InvalidFilter, "unknown attribute %q in value filter of %q", p.String(), parent.Name)
		}
		n.attr = n.top
	} else {
		r, ok := rt.Resolve(p.URI(), p.AttributeName, p.SubAttributeName())
		if !ok {
			return nil, scimerr.New(scimerr.InvalidFilter, "unknown attribute %q", p.String())
		}
		n.ext, n.top, n.sub, n.attr = r.Ext, r.Attr, r.Sub, r.Attr
		n.key = r.Attr.Name
		if r.Sub != nil {
			n.attr = r.Sub
			n.key += "." + r.Sub.Name
		} else if r.Attr.Type == schema.Complex {
			if v := r.Attr.Sub("value"); v != nil {
				n.attr = v
			} else if n.op != scimfilter.PR {
				return nil, scimerr.New(scimerr.InvalidFilter, "complex attribute %q needs a sub-attribute", p.String())
			}
		}
	}
	if s, ok := n.val.(string); ok && strings.IndexByte(s, '\\') >= 0 {
		var u string
		if err := json.Unmarshal([]byte(`"`+s+`"`), &u); err != nil {
			return nil, scimerr.New(scimerr.InvalidFilter, "bad escape in value for %q", p.String())
		}
		n.val = u
	}
	switch n.op {
	case scimfilter.PR:
	case scimfilter.EQ, scimfilter.NE:
	case scimfilter.CO, scimfilter.SW, scimfilter.EW:
		if _, ok := n.val.(string); !ok || n.attr.Type == schema.Boolean {
			return nil, scimerr.New(scimerr.InvalidFilter, "operator %q needs a string attribute and value", n.op)
		}
	case scimfilter.GT, scimfilter.GE, scimfilter.LT, scimfilter.LE:
		if n.attr.Type == schema.Boolean || n.attr.Type == schema.Complex {
			return nil, scimerr.New(scimerr.InvalidFilter, "operator %q is not defined for %s attribute %q", n.op, n.attr.Type, p.String())
		}
		if n.val == nil {
			return nil, scimerr.New(scimerr.InvalidFilter, "operator %q needs a value", n.op)
		}
	default:
		return nil, scimerr.New(scimerr.InvalidFilter, "unknown operator %q", e.Operator)
	}
	if n.op != scimfilter.PR && !literalFits(n.attr, n.val) {
		// A literal of another type never compares equal, so a filter
		// holding one would match nothing where the client meant
		// something, and a PATCH path's eq would create an element
		// holding it (primary "True"): RFC 7644 §3.12 calls such a
		// comparison invalidFilter.
		return nil, scimerr.New(scimerr.InvalidFilter, "attribute %q is of type %s and cannot be compared with %s", p.String(), n.attr.Type, literal(n.val))
	}
	if n.attr.Type == schema.DateTime && n.op != scimfilter.CO && n.op != scimfilter.SW && n.op != scimfilter.EW {
		// co, sw and ew look at the text (a date-time starts with its
		// year); the others compare instants.
		if s, ok := n.val.(string); ok {
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return nil, scimerr.New(scimerr.InvalidFilter, "%q is not an RFC 3339 date-time", s)
			}
			n.val = t
		}
	}
	return n, nil
}

// literalFits reports whether a filter literal has the JSON type of a's
// values. null fits any attribute: it compares with nothing.
func literalFits(a *schema.Attribute, v any) bool {
	switch v.(type) {
	case nil:
		return true
	case bool:
		return a.Type == schema.Boolean
	case string:
		return a.Type != schema.Boolean && a.Type != schema.Integer && a.Type != schema.Decimal && a.Type != schema.Complex
	case int, float64:
		return a.Type == schema.Integer || a.Type == schema.Decimal
	}
	return false
}

// literal renders a filter literal as the client wrote it.
func literal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func compare(a *schema.Attribute, op scimfilter.CompareOperator, have, want any) bool {
	switch w := want.(type) {
	case nil:
		return false
	case time.Time:
		s, ok := have.(string)
		if !ok {
			return false
		}
		h, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return false
		}
		return order(op, h.Compare(w))
	case string:
		h, ok := have.(string)
		if !ok {
			return false
		}
		if !a.CaseExact {
			if op == scimfilter.EQ {
				return strings.EqualFold(h, w) // as store.Fold, without allocating
			}
			// The project's one folding, so that co, sw, ew and the orderings
			// agree with eq and the store's indexes on which names are alike.
			h, w = store.Fold(h), store.Fold(w)
		}
		switch op {
		case scimfilter.EQ:
			return h == w
		case scimfilter.CO:
			return strings.Contains(h, w)
		case scimfilter.SW:
			return strings.HasPrefix(h, w)
		case scimfilter.EW:
			return strings.HasSuffix(h, w)
		}
		return order(op, strings.Compare(h, w))
	case bool:
		h, ok := have.(bool)
		return ok && op == scimfilter.EQ && h == w
	case int:
		return compareNumber(op, have, float64(w))
	case float64:
		return compareNumber(op, have, w)
	}
	return false
}

func compareNumber(op scimfilter.CompareOperator, have any, w float64) bool {
	n, ok := have.(json.Number)
	if !ok {
		return false
	}
	h, err := n.Float64()
	if err != nil {
		return false
	}
	switch {
	case h < w:
		return order(op, -1)
	case h > w:
		return order(op, 1)
	}
	return order(op, 0)
}

func order(op scimfilter.CompareOperator, c int) bool {
	switch op {
	case scimfilter.EQ:
		return c == 0
	case scimfilter.GT:
		return c > 0
	case scimfilter.GE:
		return c >= 0
	case scimfilter.LT:
		return c < 0
	case scimfilter.LE:
		return c <= 0
	}
	return false
}
