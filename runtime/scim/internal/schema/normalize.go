package schema

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// Normalize turns a decoded request body into a resource document: keys are
// canonical attribute names (extension attributes under their schema URI),
// nulls and empty values are absent, read-only attributes (id, meta, groups)
// and attributes no schema knows are dropped, and values have their
// schema's type. The input must come from a json.Decoder with UseNumber.
func Normalize(rt *ResourceType, in map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(in))
	for k, v := range in {
		if v == nil || strings.EqualFold(k, "schemas") {
			continue
		}
		if err := normalizeInto(rt, out, k, v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func normalizeInto(rt *ResourceType, out map[string]any, k string, v any) error {
	if ext := rt.Extension(k); ext != nil {
		obj, ok := v.(map[string]any)
		if !ok {
			return scimerr.New(scimerr.InvalidValue, "%s must be an object", ext.ID)
		}
		dst, _ := out[ext.ID].(map[string]any)
		if dst == nil {
			dst = map[string]any{}
		}
		for sk, sv := range obj {
			a := ext.Attr(sk)
			if a == nil || sv == nil || a.ReadOnly() {
				continue
			}
			nv, err := Value(a, sv)
			if err != nil {
				return err
			}
			if err := put(dst, a, nv, ext.ID+":"+sk); err != nil {
				return err
			}
		}
		if len(dst) > 0 {
			out[ext.ID] = dst
		}
		return nil
	}
	if strings.EqualFold(k, rt.Core.ID) {
		obj, ok := v.(map[string]any)
		if !ok {
			return scimerr.New(scimerr.InvalidValue, "%s must be an object", rt.Core.ID)
		}
		for sk, sv := range obj {
			if sv == nil {
				continue
			}
			if err := normalizeInto(rt, out, sk, sv); err != nil {
				return err
			}
		}
		return nil
	}
	uri, name := SplitURN(k)
	r, ok := rt.Resolve(uri, name, "")
	if !ok || r.Attr.ReadOnly() || (uri == "" && r.Ext != "") {
		// Unknown attributes and unknown extensions are accepted and
		// dropped, as Entra may map attributes nobody stores.
		return nil
	}
	nv, err := Value(r.Attr, v)
	if err != nil {
		return err
	}
	if r.Ext == "" {
		return put(out, r.Attr, nv, k)
	}
	dst, _ := out[r.Ext].(map[string]any)
	if dst == nil {
		dst = map[string]any{}
		out[r.Ext] = dst
	}
	return put(dst, r.Attr, nv, k)
}

// put sets attribute a to nv (unless nil) in dst. A body may name one
// attribute by several keys (plain and schema-qualified, inside the core
// schema's object and outside it, inside an extension's object and
// qualified by it): the same value twice is harmless, but with two
// values which one won would follow map order, so that is refused as
// DistinctNames refuses keys that differ only in case.
func put(dst map[string]any, a *Attribute, nv any, key string) error {
	if nv == nil {
		return nil
	}
	if old, ok := dst[a.Name]; ok && !reflect.DeepEqual(old, nv) {
		return scimerr.New(scimerr.InvalidSyntax, "attribute %q is given twice with different values (%q is one of its names): send it once", a.Name, key)
	}
	dst[a.Name] = nv
	return nil
}

// Value normalises a value for attribute a. It returns nil for a value that
// means "absent" (null, empty list, empty object).
func Value(a *Attribute, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	if a.MultiValued {
		list, ok := v.([]any)
		if !ok {
			list = []any{v}
		}
		out := make([]any, 0, len(list))
		for _, e := range list {
			ne, err := single(a, e)
			if err != nil {
				return nil, err
			}
			if ne != nil {
				out = append(out, ne)
			}
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, nil
	}
	if list, ok := v.([]any); ok && a.Type == Complex {
		// Entra's doc example sends manager as [{"value": …}].
		switch len(list) {
		case 0:
			return nil, nil
		case 1:
			v = list[0]
		default:
			return nil, scimerr.New(scimerr.InvalidValue, "attribute %q is single-valued but got %d values", a.Name, len(list))
		}
	}
	return single(a, v)
}

func single(a *Attribute, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch a.Type {
	case Complex:
		switch x := v.(type) {
		case map[string]any:
			out := make(map[string]any, len(x))
			for k, sv := range x {
				s := a.Sub(k)
				if s == nil || sv == nil || (s.ReadOnly() && !a.ReadOnly()) {
					continue
				}
				nv, err := single(s, sv)
				if err != nil {
					return nil, qualify(a, s, err)
				}
				if nv != nil {
					out[s.Name] = nv
				}
			}
			if len(out) == 0 {
				if hasNonNull(x) {
					return nil, scimerr.New(scimerr.InvalidValue, "attribute %q: no writable sub-attribute in %d given (members need a value)", a.Name, len(x))
				}
				return nil, nil
			}
			return out, nil
		case string:
			// Entra sends manager (and sometimes members) as a bare id, and
			// clears the manager by replacing it with "".
			if x == "" {
				return nil, nil
			}
			if s := a.Sub("value"); s != nil {
				return map[string]any{s.Name: x}, nil
			}
		}
		return nil, scimerr.New(scimerr.InvalidValue, "attribute %q must be an object", a.Name)
	case Boolean:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			// Entra without aadOptscim062020 sends "True"/"False".
			switch strings.ToLower(strings.TrimSpace(x)) {
			case "true":
				return true, nil
			case "false":
				return false, nil
			}
		}
		return nil, scimerr.New(scimerr.InvalidValue, "attribute %q must be a boolean", a.Name)
	case Integer, Decimal:
		if n, ok := v.(json.Number); ok {
			if a.Type == Integer {
				if _, err := n.Int64(); err != nil {
					return nil, scimerr.New(scimerr.InvalidValue, "attribute %q must be an integer", a.Name)
				}
			}
			return n, nil
		}
		return nil, scimerr.New(scimerr.InvalidValue, "attribute %q must be a number", a.Name)
	default:
		if s, ok := v.(string); ok {
			return s, checkString(a, s)
		}
		return nil, scimerr.New(scimerr.InvalidValue, "attribute %q must be a string", a.Name)
	}
}

// SubValue is Value for sub-attribute sub of a, with errors naming
// "a.sub".
func SubValue(a, sub *Attribute, v any) (any, error) {
	nv, err := Value(sub, v)
	if err != nil {
		return nil, qualify(a, sub, err)
	}
	return nv, nil
}

// qualify names sub-attribute sub of a in err as "a.sub", so that a client
// told about "emails.value" knows which value is meant.
func qualify(a, sub *Attribute, err error) error {
	se, ok := err.(*scimerr.Error)
	if !ok {
		return err
	}
	short := fmt.Sprintf("attribute %q", sub.Name)
	if !strings.HasPrefix(se.Detail, short) {
		return err
	}
	return &scimerr.Error{Status: se.Status, ScimType: se.ScimType,
		Detail: fmt.Sprintf("attribute %q", a.Name+"."+sub.Name) + se.Detail[len(short):]}
}

// checkString refuses what a stored string must not hold: invalid UTF-8,
// control characters (an ESC in a name rewrites the terminal of whoever
// lists users; a line break fakes a row) and more than a.maxRunes runes.
func checkString(a *Attribute, s string) error {
	if !utf8.ValidString(s) {
		return scimerr.New(scimerr.InvalidValue, "attribute %q is not valid UTF-8", a.Name)
	}
	for _, r := range s {
		if unicode.IsControl(r) && !(a.multiline && (r == '\n' || r == '\r' || r == '\t')) {
			return scimerr.New(scimerr.InvalidValue, "attribute %q contains the control character %U", a.Name, r)
		}
	}
	limit := cmp.Or(a.maxRunes, MaxTextLength)
	if len(s) > limit && utf8.RuneCountInString(s) > limit {
		return scimerr.New(scimerr.InvalidValue, "attribute %q is longer than %d characters", a.Name, limit)
	}
	return nil
}

func hasNonNull(m map[string]any) bool {
	for _, v := range m {
		if v != nil {
			return true
		}
	}
	return false
}

// smallObject is the number of keys up to which DistinctNames compares
// every pair of an object's keys rather than building a set: a resource's
// objects have a dozen keys at most.
const smallObject = 16

// DistinctNames refuses a decoded body in which one object names an
// attribute twice, with keys that differ only in case ("userName" and
// "USERNAME"). Attribute names are case-insensitive (RFC 7643 §2.1), so
// such keys name one attribute, and which value would win follows the
// order of a Go map: random. Every object is checked, the resource's, its
// sub-attributes', a PATCH value's and the PatchOp's own ("op" and "OP"),
// as all their keys are matched case-insensitively. The error is 400
// invalidSyntax naming both keys.
func DistinctNames(v any) error {
	return distinctNames(v, "")
}

func distinctNames(v any, parent string) error {
	switch x := v.(type) {
	case map[string]any:
		if err := checkKeys(x, parent); err != nil {
			return err
		}
		for k, e := range x {
			if err := distinctNames(e, k); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := distinctNames(e, parent); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkKeys(m map[string]any, parent string) error {
	if len(m) < 2 {
		return nil
	}
	if len(m) <= smallObject {
		var buf [smallObject]string
		keys := buf[:0]
		for k := range m {
			for _, o := range keys {
				if strings.EqualFold(k, o) {
					return errSameName(m, parent)
				}
			}
			keys = append(keys, k)
		}
		return nil
	}
	seen := make(map[string]struct{}, len(m))
	for k := range m {
		f := foldName(k)
		if _, ok := seen[f]; ok {
			return errSameName(m, parent)
		}
		seen[f] = struct{}{}
	}
	return nil
}

// errSameName names the first two keys of m (in sorted order, so that the
// answer does not depend on map order) that differ only in case.
func errSameName(m map[string]any, parent string) error {
	keys := slices.Sorted(maps.Keys(m))
	a, b := "", ""
	for i, k := range keys {
		for _, o := range keys[i+1:] {
			if a == "" && strings.EqualFold(k, o) {
				a, b = k, o
			}
		}
	}
	in := ""
	if parent != "" {
		in = fmt.Sprintf(" (in %q)", parent)
	}
	return scimerr.New(scimerr.InvalidSyntax, "%q and %q name one attribute twice%s: attribute names are case-insensitive (RFC 7643 §2.1), so send it once", a, b, in)
}

// foldName maps s to a key equal for exactly the strings strings.EqualFold
// finds equal: each rune becomes the smallest rune of its case-folding
// orbit (for an ASCII letter, its upper case: 'K' < 'k' < U+212A KELVIN
// SIGN).
func foldName(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}
