// Package fields renders spec structs into ordered, masked field paths and
// diffs two renderings. It is how the reconciler compares and shows resources
// without knowing their types and without ever exposing secret material.
package fields

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/redact"
)

// Field is one leaf of a rendered resource.
type Field struct {
	Path string
	// Value is the comparable rendering. For a secret it is "sha256:" and the
	// full hex digest; Display shortens it.
	Value  string
	Secret bool
	// Shown, when set, is how the value is shown: a URL with its userinfo
	// and query values hidden. Value keeps the whole URL, so that a rotated
	// token in it is still a change to apply.
	Shown string
}

// secretPrefixLen is how many hex digits of a fingerprint a plan shows.
const secretPrefixLen = 12

// Display is the value as plans and logs show it.
func (f Field) Display() string {
	switch {
	case f.Secret:
		return shorten(f.Value)
	case f.Shown != "":
		return f.Shown
	}
	return f.Value
}

func shorten(v string) string {
	const p = "sha256:"
	if len(v) > len(p)+secretPrefixLen {
		return v[:len(p)+secretPrefixLen]
	}
	return v
}

// Rendered is a resource's fields in a stable order, with a digest over all of
// them so that equal resources are recognised without a field diff.
type Rendered struct {
	Fields []Field
	Hash   [sha256.Size]byte
}

// mask says how a string field that holds secret material is shown.
type mask int

const (
	maskNone mask = iota
	// maskDigest fields already hold a hex SHA-256 (a SCIM token's hash):
	// the value stays comparable but only its prefix is ever shown. What is
	// no digest there is taken for the plaintext pasted in its place, and
	// shown as maskContent shows it: even a prefix of a token gives away
	// part of it.
	maskDigest
	// maskContent fields hold the material itself (PEM text): only its
	// SHA-256 is kept.
	maskContent
	// maskURL fields hold a URL that may carry a token in its userinfo or
	// its query (some IdPs, or a proxy, take "?token="): it is compared
	// whole but shown as redact.URL shows it.
	maskURL
	// maskEnv fields name an environment variable; a value that is no
	// variable's name is taken for the secret pasted in its place.
	maskEnv
	// maskPath fields name a file; a value with line breaks or PEM armour
	// is taken for the content pasted in its place.
	maskPath
)

// masked lists the string fields of spec types that carry secret material.
// Every []byte field is treated like maskContent.
var masked = map[reflect.Type]map[string]mask{
	reflect.TypeFor[spec.ScimToken](): {"SHA256": maskDigest},
	// The value itself is never rendered (json:"-"), its hash is.
	reflect.TypeFor[spec.GatewaySecret](): {"SHA256": maskDigest},
	// Validation refuses credentials in these URLs (and a query but in
	// metadataURL), yet the runtime side of a plan is what the store
	// holds, which the admin API may have written. SamlIDP's metadataURL
	// is below, with its metadataFile.
	reflect.TypeFor[spec.SamlServiceProvider](): {"BaseURL": maskURL},
	reflect.TypeFor[spec.ScimProvisioning]():    {"BaseURL": maskURL},
	reflect.TypeFor[spec.Gateway]():             {"Upstream": maskURL},
	// References are shown, so that a plan says where a secret comes from,
	// unless they look like the secret itself: the loader refuses such a
	// spec, but the store may hold what the admin API wrote.
	reflect.TypeFor[spec.ValueFrom]():   {"Env": maskEnv, "File": maskPath},
	reflect.TypeFor[spec.Certificate](): {"PEM": maskContent, "File": maskPath},
	reflect.TypeFor[spec.SamlIDP]():     {"MetadataURL": maskURL, "MetadataFile": maskPath},
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// Render flattens v (a spec struct or a pointer to one) into fields whose
// paths start with prefix. Field names follow the json tags, empty values
// that JSON would omit are left out, lists of structs with a name field are
// keyed by that name (tokens[entra].sha256), other lists are one field.
func Render(prefix string, v any) *Rendered {
	r := &Rendered{}
	walk(&r.Fields, prefix, reflect.ValueOf(v), maskNone)
	// The digest is over the fields in path order: items keyed by name that
	// only moved are the same resource, as Diff sees it.
	sorted := slices.Clone(r.Fields)
	slices.SortFunc(sorted, func(a, b Field) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range sorted {
		h.Write([]byte(f.Path))
		h.Write([]byte{0})
		h.Write([]byte(f.Value))
		h.Write([]byte{0})
	}
	h.Sum(r.Hash[:0])
	return r
}

func walk(out *[]Field, path string, v reflect.Value, m mask) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return
	}
	if isLeafType(v.Type()) {
		*out = append(*out, leaf(path, v, m))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		walkStruct(out, path, v)
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			if v.Len() > 0 {
				*out = append(*out, Field{Path: path, Value: digest(v.Bytes()), Secret: true})
			}
			return
		}
		if isStructList(v.Type().Elem()) {
			walkList(out, path, v)
			return
		}
		*out = append(*out, Field{Path: path, Value: scalarList(v)})
	case reflect.Map:
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = scalar(k)
		}
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return strings.Compare(names[a], names[b]) })
		for _, i := range idx {
			walk(out, path+"["+names[i]+"]", v.MapIndex(keys[i]), maskNone)
		}
	default:
		*out = append(*out, leaf(path, v, m))
	}
}

func walkStruct(out *[]Field, path string, v reflect.Value) {
	t := v.Type()
	masks := masked[t]
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, omitEmpty, omitZero, skip := jsonName(sf)
		if skip {
			continue
		}
		fv := v.Field(i)
		if (omitEmpty && isEmpty(fv)) || (omitZero && fv.IsZero()) {
			continue
		}
		if sf.Anonymous && sf.Tag.Get("json") == "" && indirect(sf.Type).Kind() == reflect.Struct {
			walk(out, path, fv, maskNone)
			continue
		}
		walk(out, path+"."+name, fv, masks[sf.Name])
	}
}

// walkList keys the items of a list by their names, so that reordering or
// inserting an item changes only that item's fields. A list whose names are
// missing or repeated (which validation rejects, but the admin API might
// store) is keyed by position, so that paths stay unique.
func walkList(out *[]Field, path string, v reflect.Value) {
	keys := make([]string, v.Len())
	seen := make(map[string]bool, v.Len())
	byName := true
	for i := range keys {
		keys[i] = nameOf(v.Index(i))
		if keys[i] == "" || seen[keys[i]] {
			byName = false
			break
		}
		seen[keys[i]] = true
	}
	for i := range keys {
		key := strconv.Itoa(i)
		if byName {
			key = keys[i]
		}
		walk(out, path+"["+key+"]", v.Index(i), maskNone)
	}
}

// nameOf returns the value of a struct's field tagged json:"name", if any.
func nameOf(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	t := v.Type()
	for i := range t.NumField() {
		sf := t.Field(i)
		if n, _, _, _ := jsonName(sf); n == "name" && sf.Type.Kind() == reflect.String {
			return v.Field(i).String()
		}
	}
	return ""
}

func jsonName(sf reflect.StructField) (name string, omitEmpty, omitZero, skip bool) {
	tag := sf.Tag.Get("json")
	if tag == "-" {
		return "", false, false, true
	}
	name, opts, _ := strings.Cut(tag, ",")
	if name == "" {
		name = sf.Name
	}
	for o := range strings.SplitSeq(opts, ",") {
		switch o {
		case "omitempty":
			omitEmpty = true
		case "omitzero":
			omitZero = true
		}
	}
	return name, omitEmpty, omitZero, false
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func isStructList(elem reflect.Type) bool {
	elem = indirect(elem)
	return elem.Kind() == reflect.Struct && !isLeafType(elem)
}

// isLeafType reports whether values of t render as one field: types with
// their own JSON or text form (time.Time, spec.Duration) are not taken apart.
func isLeafType(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	return t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler) ||
		t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)
}

func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}

func leaf(path string, v reflect.Value, m mask) Field {
	if v.Kind() == reflect.String && m != maskNone {
		s := v.String()
		switch m {
		case maskURL:
			f := Field{Path: path, Value: scalar(v)}
			if shown := redact.URL(s); shown != s {
				f.Shown = strconv.Quote(shown)
			}
			return f
		case maskDigest:
			if isHexDigest(s) {
				return Field{Path: path, Value: "sha256:" + strings.ToLower(s), Secret: true}
			}
		case maskEnv:
			if spec.IsEnvName(s) {
				return Field{Path: path, Value: scalar(v)}
			}
		case maskPath:
			if spec.IsFileReference(s) {
				return Field{Path: path, Value: scalar(v)}
			}
		}
		return Field{Path: path, Value: digest([]byte(s)), Secret: true}
	}
	return Field{Path: path, Value: scalar(v)}
}

func isHexDigest(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// scalar renders one value: strings quoted, numbers and bools bare, types
// with a JSON form as that form.
func scalar(v reflect.Value) string {
	if v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "null"
		}
		return scalar(v.Elem())
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(v.String())
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if v.Type().Implements(jsonMarshaler) {
			break
		}
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	}
	if v.CanInterface() {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v.Interface()); err == nil {
			return strings.TrimSuffix(b.String(), "\n")
		}
	}
	return "?"
}

func scalarList(v reflect.Value) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range v.Len() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(scalar(v.Index(i)))
	}
	b.WriteByte(']')
	return b.String()
}

// Change is one field that differs. An empty Before or After means the field
// is absent on that side; present values are never empty strings (a present
// empty string renders as "").
type Change struct {
	Path, Before, After string
}

// Diff lists the fields that differ between before and after, shown as
// plans show them (secrets shortened). Paths keep the order of the
// renderings; a field only one side has appears where that side has it.
func Diff(before, after []Field) []Change {
	inBefore := make(map[string]int, len(before))
	for i, f := range before {
		inBefore[f.Path] = i
	}
	inAfter := make(map[string]int, len(after))
	for i, f := range after {
		inAfter[f.Path] = i
	}
	var out []Change
	done := make([]bool, len(before))
	i, j := 0, 0
	for i < len(before) || j < len(after) {
		if i < len(before) && done[i] {
			i++
			continue
		}
		if i < len(before) {
			if _, ok := inAfter[before[i].Path]; !ok {
				out = append(out, Change{Path: before[i].Path, Before: before[i].Display()})
				i++
				continue
			}
		}
		if j >= len(after) {
			// Every remaining before field is also an after field already seen.
			i++
			continue
		}
		a := after[j]
		j++
		bi, ok := inBefore[a.Path]
		if !ok {
			out = append(out, Change{Path: a.Path, After: a.Display()})
			continue
		}
		done[bi] = true
		if b := before[bi]; b.Value != a.Value {
			out = append(out, Change{Path: a.Path, Before: b.Display(), After: a.Display()})
		}
	}
	return out
}
