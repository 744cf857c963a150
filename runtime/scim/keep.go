package scim

import (
	"fmt"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

// keepSet is the set of user attributes ScimProvisioning.userAttributes
// keeps. Paths may name a whole attribute ("emails"), a sub-attribute
// ("name.givenName") or the matching elements of a multi-valued attribute
// (`emails[type eq "work"].value`, which keeps type and value).
type keepSet struct {
	groups []*keepGroup
}

// keepGroup gathers the rules on one attribute.
type keepGroup struct {
	ext   string
	attr  *schema.Attribute
	rules []keepRule
}

type keepRule struct {
	sub    string         // "" keeps whole elements / the whole attribute
	filter *filter.Filter // nil selects every element
	pinned []string       // sub-attributes the filter pins (type), kept too
}

func newKeepSet(paths []string) (*keepSet, error) {
	k := &keepSet{}
	paths = append([]string{"userName"}, paths...)
	for _, p := range paths {
		fp, err := filter.ParsePath(p, schema.UserType)
		if err != nil {
			return nil, fmt.Errorf("user attribute %q: %w", p, err)
		}
		var g *keepGroup
		for _, x := range k.groups {
			if x.ext == fp.Attr.Ext && x.attr == fp.Attr.Attr {
				g = x
			}
		}
		if g == nil {
			g = &keepGroup{ext: fp.Attr.Ext, attr: fp.Attr.Attr}
			k.groups = append(k.groups, g)
		}
		rule := keepRule{filter: fp.Filter}
		if fp.Attr.Sub != nil {
			rule.sub = fp.Attr.Sub.Name
		}
		for name := range fp.Creates {
			rule.pinned = append(rule.pinned, name)
		}
		g.rules = append(g.rules, rule)
	}
	return k, nil
}

// apply returns the part of doc that is kept. doc is not changed; the result
// shares leaf values with it.
func (k *keepSet) apply(doc map[string]any) map[string]any {
	out := make(map[string]any, len(doc))
	for _, g := range k.groups {
		src, dst := doc, out
		if g.ext != "" {
			src, _ = doc[g.ext].(map[string]any)
			d, _ := out[g.ext].(map[string]any)
			if d == nil {
				d = map[string]any{}
			}
			dst = d
		}
		v, ok := src[g.attr.Name]
		if !ok {
			continue
		}
		if kept := g.keep(v); kept != nil {
			dst[g.attr.Name] = kept
			if g.ext != "" {
				out[g.ext] = dst
			}
		}
	}
	return out
}

func (g *keepGroup) keep(v any) any {
	for _, r := range g.rules {
		if r.sub == "" && r.filter == nil {
			return v
		}
	}
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			m, ok := e.(map[string]any)
			if !ok {
				continue
			}
			if kept := g.keepElem(m); kept != nil {
				out = append(out, kept)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case map[string]any:
		if kept := g.keepElem(x); kept != nil {
			return kept
		}
		return nil
	}
	return nil
}

func (g *keepGroup) keepElem(m map[string]any) map[string]any {
	var out map[string]any
	set := func(k string) {
		if v, ok := m[k]; ok {
			if out == nil {
				out = map[string]any{}
			}
			out[k] = v
		}
	}
	for _, r := range g.rules {
		if r.filter != nil && !r.filter.MatchElement(m) {
			continue
		}
		if r.sub == "" {
			for k := range m {
				set(k)
			}
			continue
		}
		if _, ok := m[r.sub]; !ok {
			continue
		}
		set(r.sub)
		for _, p := range r.pinned {
			set(p)
		}
	}
	if out != nil && g.attr.Sub("primary") != nil {
		// primary belongs to the element, not to one sub-attribute: Entra
		// sends it with the work email and reads it back.
		set("primary")
	}
	return out
}
