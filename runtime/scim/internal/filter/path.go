package filter

import (
	"fmt"
	"strings"

	scimfilter "github.com/scim2/filter-parser/v2"

	"github.com/idrecon/idrecon/runtime/scim/internal/nesting"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// Path is a resolved PATCH path: attr[filter].sub, each part optional but
// the attribute.
type Path struct {
	Attr   schema.Resolved // Attr.Sub is the sub-attribute, from "a.b" or "a[…].b"
	Filter *Filter         // nil without brackets
	// Creates holds the sub-attribute values the filter pins with eq
	// (emails[type eq "work"] → type=work), so an add or replace that
	// matches nothing can create the element. nil when the filter is not
	// such a conjunction.
	Creates map[string]any
	// Text is the path as the client wrote it, for errors.
	Text string
}

// ParsePath parses and resolves a PATCH path. Errors are *scimerr.Error with
// scimType invalidPath, or invalidFilter for what is wrong with the filter
// between the brackets.
func ParsePath(text string, rt *schema.ResourceType) (*Path, error) {
	if len(text) > MaxLen {
		return nil, scimerr.New(scimerr.InvalidPath, "path is longer than %d bytes", MaxLen)
	}
	if nesting.Depth(text, "([", ")]") > MaxNesting {
		// As in Parse: deep nesting costs the parser quadratic time.
		return nil, scimerr.New(scimerr.InvalidPath, "path nests deeper than %d levels", MaxNesting)
	}
	if p := cachedPath(text, rt); p != nil {
		return p, nil
	}
	out, err := parsePathUncached(text, rt)
	if err == nil {
		cachePath(text, rt, out)
	}
	return out, err
}

func parsePathUncached(text string, rt *schema.ResourceType) (*Path, error) {
	if q := singleQuoted(text); q != "" {
		return nil, errSingleQuoted(q)
	}
	p, err := parsePath(lenientPath(text))
	if err != nil {
		return nil, scimerr.New(scimerr.InvalidPath, "cannot parse path %q: %v", text, err)
	}
	ap := p.AttributePath
	sub := ap.SubAttributeName()
	if p.SubAttribute != nil {
		if sub != "" {
			return nil, scimerr.New(scimerr.InvalidPath, "path %q has two sub-attributes", text)
		}
		sub = *p.SubAttribute
	}
	r, ok := rt.Resolve(ap.URI(), ap.AttributeName, sub)
	if !ok {
		return nil, scimerr.New(scimerr.InvalidPath, "unknown attribute in path %q", text)
	}
	out := &Path{Attr: r, Text: text}
	if p.ValueExpression != nil {
		if r.Attr.Type != schema.Complex {
			return nil, scimerr.New(scimerr.InvalidPath, "path %q filters a non-complex attribute", text)
		}
		f, err := CompileValueFilter(p.ValueExpression, rt, r.Attr)
		if err != nil {
			// RFC 7644 §3.12 applies invalidFilter to a PATCH path's filter
			// too, so a filter is refused alike in a GET and a PATCH.
			return nil, scimerr.New(scimerr.InvalidFilter, "path %q: %s", text, err.(*scimerr.Error).Detail)
		}
		out.Filter = f
		var eqs []*cmpNode
		if allEq(f.root, &eqs) {
			out.Creates = map[string]any{}
			for _, c := range eqs {
				out.Creates[c.top.Name] = c.val
			}
		}
	}
	return out, nil
}

func allEq(n node, out *[]*cmpNode) bool {
	switch x := n.(type) {
	case *logicNode:
		return x.and && allEq(x.l, out) && allEq(x.r, out)
	case *cmpNode:
		if x.op != scimfilter.EQ || x.val == nil {
			return false
		}
		*out = append(*out, x)
		return true
	}
	return false
}

func parsePath(text string) (p scimfilter.Path, err error) {
	defer func() {
		if r := recover(); r != nil {
			p, err = scimfilter.Path{}, fmt.Errorf("malformed path")
		}
	}()
	if strings.TrimSpace(text) == "" {
		return p, fmt.Errorf("empty path")
	}
	// As in parse: the filter between the brackets may be any filter.
	outer, inner, err := cutValueFilters(text)
	if err != nil {
		return p, err
	}
	if p, err = scimfilter.ParsePath([]byte(outer)); err != nil {
		return p, err
	}
	if p.ValueExpression != nil {
		if len(inner) != 1 {
			return scimfilter.Path{}, fmt.Errorf("misplaced brackets")
		}
		p.ValueExpression = inner[0]
	}
	return p, nil
}
