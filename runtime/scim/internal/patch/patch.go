// Package patch applies SCIM PATCH requests (RFC 7644 §3.5.2) to resource
// documents, with the shapes Microsoft Entra ID sends in both of its modes:
// ops in any case, "True"/"False" strings, path-less values with dotted and
// URN-qualified keys, filtered paths that create the element they miss,
// manager as a bare id, and member removal by value list.
package patch

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// URIPatchOp is the PatchOp message schema.
const URIPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// MaxOperations bounds the operations of one request, counting each key
// of a path-less value as one: each is applied as a path of its own.
const MaxOperations = 1000

// Operation is one PATCH operation, already checked for shape.
type Operation struct {
	Op       string // add, replace or remove
	Path     string
	Value    any
	HasValue bool
}

// Parse reads the operations of a decoded PatchOp body. Keys match
// case-insensitively ("Operations", "op", "Path").
func Parse(body map[string]any) ([]Operation, error) {
	var rawOps any
	found, schemas := false, false
	for k, v := range body {
		switch strings.ToLower(k) {
		case "operations":
			rawOps, found = v, true
		case "schemas":
			list, ok := v.([]any)
			if !ok {
				return nil, scimerr.New(scimerr.InvalidSyntax, "schemas must be a list")
			}
			has := false
			for _, s := range list {
				if str, ok := s.(string); ok && strings.EqualFold(str, URIPatchOp) {
					has = true
				}
			}
			if !has {
				return nil, scimerr.New(scimerr.InvalidSyntax, "schemas must contain %s", URIPatchOp)
			}
			schemas = true
		}
	}
	if !schemas {
		// RFC 7644 §3.5.2 requires it, and Entra always sends it.
		return nil, scimerr.New(scimerr.InvalidSyntax, "schemas is required and must contain %s", URIPatchOp)
	}
	list, ok := rawOps.([]any)
	if !found || !ok || len(list) == 0 {
		return nil, scimerr.New(scimerr.InvalidSyntax, "a PatchOp needs a non-empty Operations list")
	}
	if len(list) > MaxOperations {
		return nil, scimerr.New(scimerr.TooMany, "at most %d operations per request", MaxOperations)
	}
	ops := make([]Operation, 0, len(list))
	for i, raw := range list {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, scimerr.New(scimerr.InvalidSyntax, "operation %d is not an object", i+1)
		}
		var op Operation
		for k, v := range m {
			switch strings.ToLower(k) {
			case "op":
				s, _ := v.(string)
				op.Op = strings.ToLower(s)
			case "path":
				s, ok := v.(string)
				if !ok && v != nil {
					return nil, scimerr.New(scimerr.InvalidPath, "operation %d: path must be a string", i+1)
				}
				op.Path = strings.TrimSpace(s)
			case "value":
				op.Value, op.HasValue = v, v != nil
			}
		}
		switch op.Op {
		case "add", "replace":
			if !op.HasValue {
				// RFC 7644 §3.5.2.1 and §3.5.2.3: an add or a replace MUST
				// carry the value to add or to replace with, and §3.12 names a
				// missing required value invalidValue (the body's structure
				// is sound, so not invalidSyntax). Without one an add would
				// answer 200 having changed nothing, and a replace would clear
				// the attribute: dropping one is what remove is for.
				return nil, scimerr.New(scimerr.InvalidValue, "operation %d: %s needs a value (to drop an attribute, remove it)", i+1, op.Op)
			}
			if op.Path == "" {
				if _, ok := op.Value.(map[string]any); !ok {
					return nil, scimerr.New(scimerr.InvalidValue, "operation %d: %s without a path needs an object value", i+1, op.Op)
				}
			}
		case "remove":
			if op.Path == "" {
				return nil, scimerr.New(scimerr.NoTarget, "operation %d: remove needs a path", i+1)
			}
		default:
			return nil, scimerr.New(scimerr.InvalidSyntax, "operation %d: op must be add, replace or remove", i+1)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// Apply applies ops to doc in order, changing doc in place. On error doc is
// partly changed: callers apply to a copy and discard it, so a PATCH is all
// or nothing.
func Apply(doc map[string]any, ops []Operation, rt *schema.ResourceType) error {
	paths := 0
	for i, op := range ops {
		var err error
		if op.Path == "" {
			err = applyPathless(doc, op, rt, &paths)
		} else {
			paths++
			err = applyPath(doc, op, op.Path, op.Value, rt, &paths)
		}
		if err != nil {
			if se, ok := err.(*scimerr.Error); ok {
				se.Detail = "operation " + strconv.Itoa(i+1) + ": " + se.Detail
			}
			return err
		}
	}
	return nil
}

// applyPathless handles {"op":"replace","value":{…}}. Each key is a path of
// its own: "name.givenName" and "urn:…:User:employeeNumber" set the nested
// attribute, an extension URI key holds that extension's attributes.
//
// paths counts the paths applied so far in the request, against
// MaxOperations: a path-less value may hold as many keys as the body has
// room for, and their cost grows with the square of their number.
func applyPathless(doc map[string]any, op Operation, rt *schema.ResourceType, paths *int) error {
	var buf [8]pathValue // Entra's path-less values have a handful of keys
	entries, err := flatten(op.Value.(map[string]any), rt, buf[:0])
	if err != nil {
		return err
	}
	if *paths += len(entries); *paths > MaxOperations {
		return scimerr.New(scimerr.TooMany, "at most %d operations per request, counting each attribute of a value without a path as one", MaxOperations)
	}
	if err := overlaps(entries, rt); err != nil {
		return err
	}
	for _, e := range entries {
		if err := applyPath(doc, op, e.path, e.value, rt, paths); err != nil {
			return err
		}
	}
	return nil
}

// pathValue is one key of a path-less value as a path, and its value;
// parsed is set by overlaps.
type pathValue struct {
	path   string
	value  any
	parsed *filter.Path
}

// flatten appends the keys of a path-less value to out as paths: the core
// schema's object and an extension's object give theirs, qualified.
func flatten(value map[string]any, rt *schema.ResourceType, out []pathValue) ([]pathValue, error) {
	for k, v := range value {
		switch {
		case strings.EqualFold(k, "schemas") || strings.EqualFold(k, "meta") || strings.EqualFold(k, "id"):
			// What a client echoes from a GET (Okta's group rename sends
			// the id): the URL names the resource, and a PUT ignores them
			// too (RFC 7644 §3.5.1).
			continue
		case strings.EqualFold(k, rt.Core.ID):
			m, ok := v.(map[string]any)
			if !ok {
				return nil, scimerr.New(scimerr.InvalidValue, "%s must be an object", k)
			}
			var err error
			if out, err = flatten(m, rt, out); err != nil {
				return nil, err
			}
		case rt.Extension(k) != nil:
			ext := rt.Extension(k)
			m, ok := v.(map[string]any)
			if !ok {
				return nil, scimerr.New(scimerr.InvalidValue, "%s must be an object", ext.ID)
			}
			for sk, sv := range m {
				out = append(out, pathValue{path: ext.ID + ":" + sk, value: sv})
			}
		default:
			out = append(out, pathValue{path: k, value: v})
		}
	}
	return out, nil
}

// overlaps refuses a path-less value two of whose keys reach the same
// attribute value ("name.givenName" and "name", "active" and
// "urn:…:User:active", "emails" and `emails[type eq "work"].value`): they
// are applied in map order, so which one won would be random. Parts that
// do not overlap (two sub-attributes, two filtered elements) are fine.
// Paths that do not parse are left for applyPath to report.
func overlaps(entries []pathValue, rt *schema.ResourceType) error {
	if len(entries) < 2 {
		return nil
	}
	for i := range entries {
		e := &entries[i]
		if uri, _ := schema.SplitURN(e.path); uri != "" && !strings.EqualFold(uri, rt.Core.ID) && rt.Extension(uri) == nil {
			continue // an extension nobody stores: dropped
		}
		e.parsed, _ = filter.ParsePath(e.path, rt)
	}
	for i := range entries {
		a := entries[i].parsed
		for j := i + 1; a != nil && j < len(entries); j++ {
			b := entries[j].parsed
			if b == nil || a.Attr.Ext != b.Attr.Ext || a.Attr.Attr != b.Attr.Attr {
				continue
			}
			apart := (a.Filter != nil && b.Filter != nil) ||
				(a.Attr.Sub != nil && b.Attr.Sub != nil && a.Attr.Sub != b.Attr.Sub)
			if whole(a) || whole(b) || !apart {
				k1, k2 := min(entries[i].path, entries[j].path), max(entries[i].path, entries[j].path)
				return scimerr.New(scimerr.InvalidSyntax, "%q and %q both set attribute %q: send it once", k1, k2, a.Attr.Attr.Name)
			}
		}
	}
	return nil
}

func applyPath(doc map[string]any, op Operation, pathText string, value any, rt *schema.ResourceType, paths *int) error {
	if ext := rt.Extension(pathText); ext != nil {
		if op.Op == "remove" {
			delete(doc, ext.ID)
			return nil
		}
		// The path was counted: its value's keys count in its place.
		*paths--
		return applyPathless(doc, Operation{Op: op.Op, Value: map[string]any{ext.ID: value}, HasValue: true}, rt, paths)
	}
	if uri, _ := schema.SplitURN(pathText); uri != "" && !strings.EqualFold(uri, rt.Core.ID) && rt.Extension(uri) == nil {
		// An extension nobody stores (a custom Entra extension): accepted
		// and dropped like any unconfigured attribute.
		return nil
	}
	p, err := filter.ParsePath(pathText, rt)
	if err != nil {
		return err
	}
	a := p.Attr.Attr
	if a.ReadOnly() || (p.Attr.Sub != nil && p.Attr.Sub.ReadOnly()) {
		return scimerr.New(scimerr.Mutability, "attribute %q is read-only", pathText)
	}
	if op.Op != "remove" && p.Attr.Sub != nil && p.Attr.Sub.Immutable() {
		// members.value is which user or group a membership is: setting
		// it through a path would turn one membership into another (or
		// every membership into one). Such a value is written only with
		// its element, by adding or replacing the element whole.
		return errImmutable(a, p.Attr.Sub)
	}
	container := doc
	if p.Attr.Ext != "" {
		c, _ := doc[p.Attr.Ext].(map[string]any)
		if c == nil {
			if op.Op == "remove" {
				return nil
			}
			c = map[string]any{}
			doc[p.Attr.Ext] = c
		}
		container = c
		defer func() {
			if len(c) == 0 {
				delete(doc, p.Attr.Ext)
			}
		}()
	}
	switch {
	case p.Filter != nil:
		return applyFiltered(container, op, p, value)
	case p.Attr.Sub != nil:
		return applySub(container, op, a, p.Attr.Sub, value)
	}
	return applyWhole(container, op, a, value)
}

func applyWhole(c map[string]any, op Operation, a *schema.Attribute, value any) error {
	if op.Op == "remove" {
		if !op.HasValue || value == nil || !a.MultiValued {
			delete(c, a.Name)
			return nil
		}
		// Entra without the flag removes members as path "members" plus a
		// value list: remove only the listed values, never all.
		nv, err := schema.Value(a, value)
		if err != nil {
			return err
		}
		values, _ := nv.([]any)
		if len(values) == 0 {
			// A value that names nothing ("" or [{}]) must not read as
			// "remove all", nor succeed while removing nothing.
			return scimerr.New(scimerr.InvalidValue, "remove of %q with a value needs the values to remove", a.Name)
		}
		gone := newElemSet(a, true)
		for _, e := range values {
			gone.add(e)
		}
		list, _ := c[a.Name].([]any)
		kept := list[:0:0]
		for _, e := range list {
			if !gone.has(e) {
				kept = append(kept, e)
			}
		}
		setOrDelete(c, a.Name, kept)
		return nil
	}
	nv, err := schema.Value(a, value)
	if err != nil {
		return err
	}
	if nv == nil {
		if op.Op == "replace" {
			// "Replace with empty" is how Entra clears the manager.
			delete(c, a.Name)
		}
		return nil
	}
	switch {
	case a.MultiValued && op.Op == "add":
		list, _ := c[a.Name].([]any)
		merged := append([]any(nil), list...)
		seen := newElemSet(a, false)
		for _, e := range list {
			seen.add(e)
		}
		values, ok := nv.([]any)
		if !ok {
			return scimerr.New(scimerr.InvalidValue, "attribute %q needs a list of values", a.Name)
		}
		primaries := newElemSet(a, false)
		for _, e := range values {
			if isPrimary(e) {
				primaries.add(e)
			}
			if !seen.has(e) {
				seen.add(e)
				merged = append(merged, e)
			}
		}
		if len(primaries.keys) > 0 || len(primaries.other) > 0 {
			// A value added as primary takes it from the others (RFC 7644
			// §3.5.2), unless it is one of them added again.
			for i, e := range list {
				if isPrimary(e) && !primaries.has(e) {
					merged[i] = withSub(e.(map[string]any), "primary", false)
				}
			}
		}
		c[a.Name] = merged
	case a.Type == schema.Complex && !a.MultiValued:
		cur, _ := c[a.Name].(map[string]any)
		if cur == nil || a.Name == "manager" {
			// A new manager is a new reference, not a merge into the old one.
			c[a.Name] = nv
			return nil
		}
		merged := make(map[string]any, len(cur))
		for k, v := range cur {
			merged[k] = v
		}
		for k, v := range nv.(map[string]any) {
			merged[k] = v
		}
		c[a.Name] = merged
	default:
		c[a.Name] = nv
	}
	return nil
}

func applySub(c map[string]any, op Operation, a, sub *schema.Attribute, value any) error {
	var nv any
	if op.Op != "remove" {
		v, err := schema.SubValue(a, sub, value)
		if err != nil {
			return err
		}
		nv = v
	}
	if a.MultiValued {
		list, _ := c[a.Name].([]any)
		if len(list) == 0 {
			if op.Op == "remove" {
				return nil
			}
			return scimerr.New(scimerr.NoTarget, "%q has no values to set %q on", a.Name, sub.Name)
		}
		out := make([]any, 0, len(list))
		for _, e := range list {
			m, _ := e.(map[string]any)
			out = append(out, withSub(m, sub.Name, nv))
		}
		c[a.Name] = out
		return nil
	}
	cur, _ := c[a.Name].(map[string]any)
	if cur == nil && nv == nil {
		return nil
	}
	if m := withSub(cur, sub.Name, nv); len(m) > 0 {
		c[a.Name] = m
	} else {
		delete(c, a.Name)
	}
	return nil
}

// withSub returns a copy of m with key set to v (deleted when v is nil).
func withSub(m map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, x := range m {
		out[k] = x
	}
	if v == nil {
		delete(out, key)
	} else {
		out[key] = v
	}
	return out
}

func applyFiltered(c map[string]any, op Operation, p *filter.Path, value any) error {
	a := p.Attr.Attr
	var list []any
	single := false
	switch x := c[a.Name].(type) {
	case []any:
		list = x
	case map[string]any:
		list, single = []any{x}, true
	}
	if !a.MultiValued {
		single = true
	}
	var nv any
	if op.Op != "remove" {
		var v any
		var err error
		if p.Attr.Sub != nil {
			v, err = schema.SubValue(a, p.Attr.Sub, value)
		} else {
			v, err = schema.Value(a, value)
		}
		if err != nil {
			return err
		}
		if a.MultiValued && p.Attr.Sub == nil {
			// value for a filtered multi-valued path is one element.
			if l, ok := v.([]any); ok {
				if len(l) != 1 {
					// Merged as none, they would be dropped, and a
					// created element would hold only what the filter pins.
					return scimerr.New(scimerr.InvalidValue, "a filtered path of %q takes one element, not %d", a.Name, len(l))
				}
				v = l[0]
			}
		}
		nv = v
	}
	out := make([]any, 0, len(list)+1)
	matched := false
	var touched []int // indexes in out of the elements this op set
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok || !p.Filter.MatchElement(m) {
			out = append(out, e)
			continue
		}
		matched = true
		switch {
		case op.Op == "remove" && p.Attr.Sub == nil:
			// dropped
		case p.Attr.Sub != nil:
			nm := withSub(m, p.Attr.Sub.Name, nv)
			if op.Op == "add" && !p.Filter.MatchElement(nm) {
				return errOutsideFilter(op, p)
			}
			if len(nm) > 0 {
				touched = append(touched, len(out))
				out = append(out, nm)
			}
		default:
			merged := withSub(m, "", nil)
			if nm, ok := nv.(map[string]any); ok {
				if sub := changesImmutable(a, m, nm); sub != nil {
					return errImmutable(a, sub)
				}
				for k, v := range nm {
					merged[k] = v
				}
			}
			if op.Op == "add" && !p.Filter.MatchElement(merged) {
				return errOutsideFilter(op, p)
			}
			touched = append(touched, len(out))
			out = append(out, merged)
		}
	}
	if !matched {
		if op.Op == "remove" {
			// Removing what is not there leaves the state Entra wants.
			return nil
		}
		if p.Creates == nil || nv == nil {
			return scimerr.New(scimerr.NoTarget, "no value of %q matches the filter", a.Name)
		}
		elem := make(map[string]any, len(p.Creates)+1)
		for k, v := range p.Creates {
			elem[k] = v
		}
		if p.Attr.Sub != nil {
			elem[p.Attr.Sub.Name] = nv
		} else if nm, ok := nv.(map[string]any); ok {
			for k, v := range nm {
				elem[k] = v
			}
		}
		if single && len(list) > 0 {
			return scimerr.New(scimerr.NoTarget, "no value of %q matches the filter", a.Name)
		}
		if !p.Filter.MatchElement(elem) {
			// members[value eq "x"] with {"value":"y"} would make y.
			return errOutsideFilter(op, p)
		}
		touched = append(touched, len(out))
		out = append(out, elem)
	}
	if !single && op.Op != "remove" && slices.ContainsFunc(touched, func(i int) bool { return isPrimary(out[i]) }) {
		// The elements this op made primary take it from the others (RFC
		// 7644 §3.5.2).
		for i, e := range out {
			if isPrimary(e) && !slices.Contains(touched, i) {
				out[i] = withSub(e.(map[string]any), "primary", false)
			}
		}
	}
	if single {
		if len(out) == 0 {
			delete(c, a.Name)
		} else {
			c[a.Name] = out[0]
		}
		return nil
	}
	setOrDelete(c, a.Name, out)
	return nil
}

// whole reports whether p names a whole attribute: no sub-attribute, no
// filter.
func whole(p *filter.Path) bool { return p.Attr.Sub == nil && p.Filter == nil }

// errOutsideFilter refuses an operation whose value contradicts the filter
// of its own path: an add to emails[type eq "work"] of a home email, or an
// add or replace that would create members[value eq "x"] as y. RFC 7644
// §3.5.2.1 has an add's value hold the sub-attributes of its target
// location, and the elements the filter selects (or the one it creates when
// none matches) are that location: an element outside the filter is not
// there. The path is sound and the value is what does not fit it, so it is
// invalidValue ("not compatible with the operation", §3.12), not
// invalidPath.
func errOutsideFilter(op Operation, p *filter.Path) error {
	return scimerr.New(scimerr.InvalidValue, "the value of this %s would not match the filter of its path %q: the value must keep what the filter selects", op.Op, p.Text)
}

func errImmutable(a, sub *schema.Attribute) error {
	return scimerr.New(scimerr.Mutability, "%s.%s is immutable: add or remove the whole %s element instead", a.Name, sub.Name, a.Name)
}

// changesImmutable returns the immutable sub-attribute of a that next
// would change in cur, or nil.
func changesImmutable(a *schema.Attribute, cur, next map[string]any) *schema.Attribute {
	for _, sub := range a.SubAttributes {
		if !sub.Immutable() {
			continue
		}
		was, ok := cur[sub.Name]
		if v, set := next[sub.Name]; set && ok && !reflect.DeepEqual(v, was) {
			return sub
		}
	}
	return nil
}

// isPrimary reports whether e is an element whose primary sub-attribute is
// true.
func isPrimary(e any) bool {
	m, ok := e.(map[string]any)
	return ok && m["primary"] == true
}

func setOrDelete(c map[string]any, key string, list []any) {
	if len(list) == 0 {
		delete(c, key)
		return
	}
	c[key] = list
}

// elemSet holds elements of a multi-valued attribute. Elements with a
// string value sub-attribute (members, emails) are keyed by it (and by type,
// unless byValue: removal by value list ignores the type); others compare
// deeply.
type elemSet struct {
	byValue bool
	keys    map[string]bool
	other   []any
}

func newElemSet(a *schema.Attribute, byValue bool) *elemSet {
	return &elemSet{byValue: byValue || a.Name == "members", keys: map[string]bool{}}
}

func (s *elemSet) key(e any) (string, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return "", false
	}
	v, ok := m["value"].(string)
	if !ok {
		return "", false
	}
	if s.byValue {
		return v, true
	}
	t, _ := m["type"].(string)
	return t + "\x00" + v, true
}

func (s *elemSet) add(e any) {
	if k, ok := s.key(e); ok {
		s.keys[k] = true
		return
	}
	s.other = append(s.other, e)
}

func (s *elemSet) has(e any) bool {
	if k, ok := s.key(e); ok {
		return s.keys[k]
	}
	for _, x := range s.other {
		if reflect.DeepEqual(x, e) {
			return true
		}
	}
	return false
}
