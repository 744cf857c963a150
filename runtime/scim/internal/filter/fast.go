package filter

import (
	"encoding/json"
	"strings"
	"sync"

	scimfilter "github.com/scim2/filter-parser/v2"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

// parseSimple handles the filters Entra sends on every lookup — equality
// comparisons joined by "and" (`userName eq "x"`, `id eq "1" and members eq
// "2"`) — without the general parser, which costs two thousand allocations a
// call. ok is false when text is anything else; the caller then uses the
// general parser, which also produces the errors.
func parseSimple(text string, rt *schema.ResourceType) (n node, ok bool) {
	toks := tokenize(text)
	if len(toks) < 3 || len(toks)%4 != 3 {
		return nil, false
	}
	for i := 0; i < len(toks); i += 4 {
		if i > 0 && !strings.EqualFold(toks[i-1].text, "and") {
			return nil, false
		}
		attr, op, val := toks[i].text, toks[i+1].text, toks[i+2].text
		if !isWord(attr) || !strings.EqualFold(op, "eq") || strings.ContainsAny(attr, "[]()") {
			return nil, false
		}
		var v any
		switch {
		case strings.HasPrefix(val, `"`):
			var s string
			if json.Unmarshal([]byte(val), &s) != nil {
				return nil, false
			}
			v = s
		case isWord(val) && !isLiteral(val) && val[0] != '\'':
			v = val
		default:
			return nil, false
		}
		uri, name := schema.SplitURN(attr)
		base, sub, hasSub := strings.Cut(name, ".")
		if base == "" || (hasSub && (sub == "" || strings.Contains(sub, "."))) {
			return nil, false
		}
		ap := scimfilter.AttributePath{AttributeName: base}
		if uri != "" {
			ap.URIPrefix = &uri
		}
		if hasSub {
			ap.SubAttribute = &sub
		}
		c, err := compileCmp(&scimfilter.AttributeExpression{AttributePath: ap, Operator: scimfilter.EQ, CompareValue: v}, rt, nil)
		if err != nil {
			return nil, false
		}
		if cn, ok := c.(*cmpNode); ok {
			if s, isStr := v.(string); isStr {
				// compileCmp unescapes the general parser's raw strings; this
				// value is already unescaped.
				cn.val = s
				if cn.attr.Type == schema.DateTime {
					return nil, false
				}
			}
		}
		if n == nil {
			n = c
		} else {
			n = &logicNode{and: true, l: n, r: c}
		}
	}
	return n, true
}

// pathCache holds parsed PATCH paths and kept-attribute paths: Entra sends
// the same few paths over and over, and a parsed Path is immutable.
var pathCache struct {
	sync.Mutex
	m map[pathKey]*Path
}

type pathKey struct {
	rt   *schema.ResourceType
	text string
}

const pathCacheMax = 1024

func cachedPath(text string, rt *schema.ResourceType) *Path {
	pathCache.Lock()
	defer pathCache.Unlock()
	return pathCache.m[pathKey{rt, text}]
}

func cachePath(text string, rt *schema.ResourceType, p *Path) {
	pathCache.Lock()
	defer pathCache.Unlock()
	if pathCache.m == nil || len(pathCache.m) >= pathCacheMax {
		pathCache.m = make(map[pathKey]*Path)
	}
	pathCache.m[pathKey{rt, text}] = p
}
