package scim

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/store"
)

const uriListResponse = "urn:ietf:params:scim:api:messages:2.0:ListResponse"

// enterpriseKey is the extension's key in stored attributes (encoded by
// json.Marshal, so without spaces). The colon tells the key from a string
// value spelling the URI: quotes inside a string are escaped, and only a
// key's closing quote is followed by a colon.
var enterpriseKey = []byte(`"` + schema.URIEnterprise + `":`)

func etag(version uint64) string { return `W/"` + strconv.FormatUint(version, 10) + `"` }

func timestamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// appendMeta appends the meta object (without braces around the whole
// resource).
func appendMeta(b []byte, resourceType, location string, created, modified time.Time, version uint64) []byte {
	b = append(b, `"meta":{"resourceType":"`...)
	b = append(b, resourceType...)
	b = append(b, `","created":"`...)
	b = created.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","lastModified":"`...)
	b = modified.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","location":`...)
	b = appendString(b, location)
	b = append(b, `,"version":"W/\"`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `\""}`...)
	return b
}

func appendString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x7f || c == '<' || c == '>' || c == '&' {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// appendUser appends the full user resource. It splices the stored
// attributes into the envelope instead of decoding them: the hot path of
// every create, lookup and patch.
func appendUser(b []byte, base string, u *store.User) []byte {
	b = append(b, `{"schemas":["`+schema.URIUser...)
	if bytes.Contains(u.Attributes, enterpriseKey) {
		b = append(b, `","`+schema.URIEnterprise...)
	}
	b = append(b, `"],"id":`...)
	b = appendString(b, u.ID)
	b = append(b, ',')
	if inner := bytes.TrimSpace(u.Attributes); len(inner) > 2 {
		b = append(b, inner[1:len(inner)-1]...)
		b = append(b, ',')
	}
	b = appendMeta(b, "User", base+"/Users/"+u.ID, u.Created, u.Modified, u.Version)
	return append(b, '}')
}

// userMap returns the user resource as a document, for filters and
// attribute projection.
func userMap(base string, u *store.User) map[string]any {
	doc := map[string]any{}
	dec := json.NewDecoder(bytes.NewReader(u.Attributes))
	dec.UseNumber()
	_ = dec.Decode(&doc) // stored attributes were encoded by this package
	schemas := []any{schema.URIUser}
	if _, ok := doc[schema.URIEnterprise]; ok {
		schemas = append(schemas, schema.URIEnterprise)
	}
	doc["schemas"] = schemas
	doc["id"] = u.ID
	doc["meta"] = metaMap("User", base+"/Users/"+u.ID, u.Created, u.Modified, u.Version)
	return doc
}

func metaMap(resourceType, location string, created, modified time.Time, version uint64) map[string]any {
	return map[string]any{
		"resourceType": resourceType,
		"created":      timestamp(created),
		"lastModified": timestamp(modified),
		"location":     location,
		"version":      etag(version),
	}
}

// groupMap returns the group resource as a document; members is nil when
// they are not wanted.
func groupMap(base string, g *store.Group, members []string, withMembers bool) map[string]any {
	doc := map[string]any{
		"schemas":     []any{schema.URIGroup},
		"id":          g.ID,
		"displayName": g.DisplayName,
		"meta":        metaMap("Group", base+"/Groups/"+g.ID, g.Created, g.Modified, g.Version),
	}
	if g.ExternalID != "" {
		doc["externalId"] = g.ExternalID
	}
	if withMembers {
		list := make([]any, 0, len(members))
		for _, m := range members {
			list = append(list, map[string]any{"value": m})
		}
		doc["members"] = list
	}
	return doc
}

// appendGroup appends the group resource.
func appendGroup(b []byte, base string, g *store.Group, members []string, withMembers bool) []byte {
	b = append(b, `{"schemas":["`+schema.URIGroup+`"],"id":`...)
	b = appendString(b, g.ID)
	b = append(b, `,"displayName":`...)
	b = appendString(b, g.DisplayName)
	if g.ExternalID != "" {
		b = append(b, `,"externalId":`...)
		b = appendString(b, g.ExternalID)
	}
	if withMembers {
		b = append(b, `,"members":[`...)
		for i, m := range members {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"value":`...)
			b = appendString(b, m)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, ',')
	b = appendMeta(b, "Group", base+"/Groups/"+g.ID, g.Created, g.Modified, g.Version)
	return append(b, '}')
}

// projection is a parsed attributes= or excludedAttributes= parameter.
type projection struct {
	include bool
	paths   []schema.Resolved
}

func param(q url.Values, name string) string {
	if v, ok := q[name]; ok && len(v) > 0 {
		return v[0]
	}
	for k, v := range q {
		if strings.EqualFold(k, name) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

// parseProjection returns nil when the request asks for the default set.
// Unknown attribute names are ignored, as RFC 7644 §3.9 allows.
func parseProjection(q url.Values, rt *schema.ResourceType) *projection {
	p := &projection{include: true}
	list := param(q, "attributes")
	if list == "" {
		p.include = false
		list = param(q, "excludedAttributes")
	}
	if list == "" {
		return nil
	}
	for _, item := range strings.Split(list, ",") {
		// "a, b": the space after a comma is not part of the name.
		item = strings.TrimSpace(item)
		uri, name := schema.SplitURN(item)
		if ext := rt.Extension(item); uri != "" && ext != nil {
			// A whole extension: every attribute under it.
			for _, a := range ext.Attributes {
				p.paths = append(p.paths, schema.Resolved{Ext: ext.ID, Attr: a})
			}
			continue
		}
		attr, sub, _ := strings.Cut(name, ".")
		if r, ok := rt.Resolve(uri, attr, sub); ok {
			p.paths = append(p.paths, r)
		}
	}
	return p
}

// wants reports whether the attribute (by canonical name, core only) is
// returned: callers use it to skip expensive attributes (members).
func (p *projection) wants(name string) bool {
	if p == nil {
		return true
	}
	for _, r := range p.paths {
		if r.Ext == "" && r.Attr.Name == name {
			return p.include
		}
	}
	return !p.include
}

func (p *projection) apply(doc map[string]any) map[string]any {
	if p == nil {
		return doc
	}
	if !p.include {
		for _, r := range p.paths {
			if r.Attr.Name == "id" || (r.Ext == "" && r.Attr.Name == "schemas") {
				continue
			}
			c := doc
			if r.Ext != "" {
				c, _ = doc[r.Ext].(map[string]any)
			}
			if c == nil {
				continue
			}
			if r.Sub == nil {
				delete(c, r.Attr.Name)
			} else {
				c[r.Attr.Name] = dropSub(c[r.Attr.Name], r.Sub.Name)
				if c[r.Attr.Name] == nil {
					delete(c, r.Attr.Name)
				}
			}
			if r.Ext != "" && len(c) == 0 {
				delete(doc, r.Ext)
			}
		}
		return withSchemasPresent(doc)
	}
	out := map[string]any{"schemas": doc["schemas"], "id": doc["id"]}
	for _, r := range p.paths {
		src, dst := doc, out
		if r.Ext != "" {
			src, _ = doc[r.Ext].(map[string]any)
			d, _ := out[r.Ext].(map[string]any)
			if d == nil {
				d = map[string]any{}
			}
			dst = d
		}
		v, ok := src[r.Attr.Name]
		if !ok {
			continue
		}
		if r.Sub != nil {
			v = onlySub(v, r.Sub.Name, dst[r.Attr.Name])
			if v == nil {
				continue
			}
		}
		dst[r.Attr.Name] = v
		if r.Ext != "" {
			out[r.Ext] = dst
		}
	}
	return withSchemasPresent(out)
}

// withSchemasPresent drops from doc's schemas each extension whose
// attributes the projection left out: schemas names the schemas of the
// attributes present (RFC 7643 §3).
func withSchemasPresent(doc map[string]any) map[string]any {
	list, _ := doc["schemas"].([]any)
	if len(list) < 2 {
		return doc
	}
	kept := make([]any, 0, len(list))
	for i, s := range list {
		uri, _ := s.(string)
		if _, present := doc[uri]; i == 0 || present {
			kept = append(kept, s)
		}
	}
	doc["schemas"] = kept
	return doc
}

// onlySub keeps sub-attribute sub of v, merged into what an earlier path
// kept (prev).
func onlySub(v any, sub string, prev any) any {
	switch x := v.(type) {
	case map[string]any:
		out, _ := prev.(map[string]any)
		if out == nil {
			out = map[string]any{}
		}
		if sv, ok := x[sub]; ok {
			out[sub] = sv
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		prevList, _ := prev.([]any)
		out := make([]any, len(x))
		for i, e := range x {
			var p any
			if i < len(prevList) {
				p = prevList[i]
			}
			m := onlySub(e, sub, p)
			if m == nil {
				m = map[string]any{}
			}
			out[i] = m
		}
		return out
	}
	return nil
}

func dropSub(v any, sub string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, sv := range x {
			if k != sub {
				out[k] = sv
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			if m := dropSub(e, sub); m != nil {
				out = append(out, m)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	return v
}
