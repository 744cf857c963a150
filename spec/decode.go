package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// parsedDoc is a decoded document plus its YAML tree, so later checks can
// point at the line a field was written on.
type parsedDoc struct {
	doc      *Document
	node     *yaml.Node          // the document's top-level mapping
	versions map[string]struct{} // an Application's versions, built on first use
	// failed holds the fields that could not be decoded, so later checks do
	// not pile a second error onto the same field.
	failed map[string]bool
}

// at returns the position of field (a path like "spec.tokens[1].sha256"), or
// of its nearest written ancestor when the field itself is absent.
func (p *parsedDoc) at(field string) Position {
	if p.node == nil {
		return p.doc.Pos // a document given to Validate, not parsed
	}
	n := p.node
	for seg := range strings.SplitSeq(field, ".") {
		key, rest, _ := strings.Cut(seg, "[")
		next := mappingValue(n, key)
		if next == nil {
			break
		}
		n = next
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			rest = strings.TrimPrefix(after, "[")
			i, err := strconv.Atoi(idx)
			if err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				break
			}
			n = n.Content[i]
		}
	}
	return Position{File: p.doc.Pos.File, Line: n.Line, Column: n.Column}
}

func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// Parse decodes one file's YAML documents strictly, without resolving
// references or checking anything across documents. name is used in
// positions. A non-nil error is an ErrorList; the documents that could be
// decoded are returned with it.
//
// Parse applies the limits Load applies to one file by default: a document
// larger than MaxDocumentBytes, or more than DefaultMaxNodes YAML nodes,
// stops decoding with an error saying so.
func Parse(name string, data []byte) ([]*Document, error) {
	var errs ErrorList
	parsed, le := parseFile(name, data, &errs, &parseLimits{nodes: &budget{max: DefaultMaxNodes}})
	if le != nil {
		errs.add(Position{File: name, Line: le.Line, Column: 1}, "", le.Error())
	}
	docs := make([]*Document, len(parsed))
	for i, p := range parsed {
		docs[i] = p.doc
	}
	return docs, errs.err()
}

// yamlLineRE finds the line in a yaml.v3 syntax error ("yaml: line 5: did
// not find expected ',' or ']'").
var yamlLineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlParserProblems are the problems yaml.v3 (v3.0.1) reports from its
// parser, as opposed to its scanner, whose messages are all different.
var yamlParserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found incompatible YAML document":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
}

// yamlReaderProblems are yaml.v3's complaints about the bytes of UTF-8
// input, which come without a line.
var yamlReaderProblems = map[string]bool{
	"invalid leading UTF-8 octet":        true,
	"invalid trailing UTF-8 octet":       true,
	"incomplete UTF-8 octet sequence":    true,
	"invalid length of a UTF-8 sequence": true,
	"invalid Unicode character":          true,
	"control characters are not allowed": true,
}

// badCharPos finds the first character of UTF-8 data that YAML does not
// allow (invalid UTF-8 or a control character), as yaml.v3's reader does.
// ok is false for UTF-16 input, which the reader decodes itself.
func badCharPos(data []byte) (line, col int, ok bool) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return 0, 0, false
	}
	line, col = 1, 1
	for len(data) > 0 {
		r, size := utf8.DecodeRune(data)
		if r == utf8.RuneError && size == 1 || !yamlAllowed(r) {
			return line, col, true
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
		data = data[size:]
	}
	return 0, 0, false
}

// aliasPos finds the first alias of anchor name ("*name") written after
// line after, the last line of the documents decoded before the one that
// failed: yaml.v3 names no position for an alias of an undefined anchor. An
// anchor name is letters, digits, _ and -; the alias starts a token.
func aliasPos(data []byte, name string, after int) (line, col int, ok bool) {
	alias := "*" + name
	line = 1
	for i := 0; i < len(data); {
		nl := bytes.IndexByte(data[i:], '\n')
		end := len(data)
		if nl >= 0 {
			end = i + nl
		}
		// A line of comment only is skipped; the rest is best effort.
		if text := data[i:end]; line > after && !bytes.HasPrefix(bytes.TrimLeft(text, " \t"), []byte("#")) {
			for off := 0; ; {
				j := bytes.Index(text[off:], []byte(alias))
				if j < 0 {
					break
				}
				j += off
				k := j + len(alias)
				startsToken := j == 0 || bytes.IndexByte([]byte(" \t\r[{,"), text[j-1]) >= 0
				if startsToken && (k == len(text) || !isAnchorChar(text[k])) {
					return line, utf8.RuneCount(text[:j]) + 1, true
				}
				off = j + 1
			}
		}
		if nl < 0 {
			break
		}
		i, line = end+1, line+1
	}
	return 0, 0, false
}

func isAnchorChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-'
}

// yamlAllowed reports whether YAML allows r in a stream (YAML 1.2 §5.1).
func yamlAllowed(r rune) bool {
	return r == 0x09 || r == 0x0a || r == 0x0d || r >= 0x20 && r <= 0x7e || r == 0x85 ||
		r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
}

// parseLimits are the limits of a load that parseFile enforces, shared by
// the parse workers. A nil budget or gate is unlimited.
type parseLimits struct {
	docs  *budget // documents
	nodes *budget // YAML nodes, of every document including empty ones
	gate  *gate   // bytes of the documents being parsed at once
}

// parseFile decodes every document of one file. Documents that are broken
// beyond their own fields (no kind, a syntax error) are dropped; their
// mistakes land in errs. A file with a document larger than
// MaxDocumentBytes is refused before any of it is parsed. Each document
// takes one from lim.docs and its node count from lim.nodes, before it is
// converted; when either runs out, decoding stops with the *LimitError.
func parseFile(name string, data []byte, errs *ErrorList, lim *parseLimits) (out []*parsedDoc, _ *LimitError) {
	largest, line := largestDocument(data)
	if largest > MaxDocumentBytes {
		return nil, &LimitError{Limit: MaxDocumentBytes, Unit: "bytes", File: name, Line: line, Document: true}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	lastLine := 0 // the line the last node decoded so far starts on
	for {
		var n yaml.Node
		// yaml.v3 builds the whole tree of a document before Decode
		// returns; the gate keeps the trees not yet counted within
		// MaxDocumentBytes across the workers. The next document may be
		// any of the file's, so the file's largest is reserved.
		lim.gate.acquire(int64(largest))
		err := dec.Decode(&n)
		counted := err != nil || lim.nodes.take(countNodes(&n))
		lim.gate.release(int64(largest))
		if !counted {
			// No file: which one crosses a limit of the whole spec depends on
			// the order the workers ran in, and the error must read the same
			// at every load (it is logged once while it stays the same).
			return out, &LimitError{Limit: lim.nodes.max, Unit: "nodes"}
		}
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			pos := Position{File: name, Line: 1, Column: 1}
			msg := err.Error()
			m := yamlLineRE.FindStringSubmatch(msg)
			if m != nil {
				pos.Line, _ = strconv.Atoi(m[1])
				msg = msg[len(m[0]):]
			}
			msg = strings.TrimPrefix(msg, "yaml: ")
			switch {
			case m != nil && yamlParserProblems[msg]:
				// yaml.v3 adds 1 to the 0-based line of scanner errors
				// only; its parser's errors come one line short.
				pos.Line++
			case m == nil && yamlReaderProblems[msg]:
				// The reader reports no position at all.
				if line, col, ok := badCharPos(data); ok {
					pos.Line, pos.Column = line, col
				}
			case m == nil && strings.HasPrefix(msg, "unknown anchor '"):
				// Nor does the parser for an alias of an undefined anchor.
				name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown anchor '"), "' referenced")
				if line, col, ok := aliasPos(data, name, lastLine); ok {
					pos.Line, pos.Column = line, col
				}
			}
			errs.add(pos, "", "invalid YAML: "+msg)
			return out, nil
		}
		for last := &n; ; last = last.Content[len(last.Content)-1] {
			if len(last.Content) == 0 {
				// The last node in document order starts last.
				lastLine = max(lastLine, last.Line)
				break
			}
		}
		if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
			continue
		}
		root := n.Content[0]
		if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
			continue // an empty document, e.g. a trailing "---"
		}
		if !lim.docs.take(1) {
			return out, &LimitError{Limit: lim.docs.max, Unit: "documents"} // no file: see above
		}
		if p := decodeDocument(name, root, errs); p != nil {
			out = append(out, p)
		}
	}
}

// countNodes counts n and the nodes below it. An alias counts as one node:
// yaml.v3 points it at the anchored node rather than copying that into the
// tree, and decodeValue refuses aliases instead of following them, so
// nothing the loader does expands one.
func countNodes(n *yaml.Node) int64 {
	c := int64(1)
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

// largestDocument returns the size of the largest run of data between YAML
// document markers ("---" or "..." at the start of a line, followed by a
// blank or the line's end) and the line it starts on. yaml.v3 ends a
// document at every such marker whatever it is in the middle of (a block or
// quoted scalar, a flow collection: the latter two are errors), so no
// document it parses out of data is larger. yaml.v3 reads UTF-16 only after
// a byte order mark; such data is taken as one run, its markers being
// other bytes.
func largestDocument(data []byte) (size, line int) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return len(data), 1
	}
	line = 1
	start, startLine := 0, 1
	for off, ln := 0, 1; off < len(data); ln++ {
		if off > start && isDocumentMarker(data[off:]) {
			if off-start > size {
				size, line = off-start, startLine
			}
			start, startLine = off, ln
		}
		next := bytes.IndexByte(data[off:], '\n')
		if next < 0 {
			break
		}
		off += next + 1
	}
	if len(data)-start > size {
		size, line = len(data)-start, startLine
	}
	return size, line
}

// isDocumentMarker reports whether data, which starts a line, starts with a
// document marker.
func isDocumentMarker(data []byte) bool {
	if !bytes.HasPrefix(data, []byte("---")) && !bytes.HasPrefix(data, []byte("...")) {
		return false
	}
	return len(data) == 3 || bytes.IndexByte([]byte(" \t\r\n"), data[3]) >= 0
}

// gate bounds a quantity shared by goroutines that each hold at most one
// share at a time: acquire waits until n is free. n must not exceed the
// gate's size, or acquire waits for ever. A nil *gate is unlimited.
type gate struct {
	mu   sync.Mutex
	cond sync.Cond
	free int64
}

func newGate(size int64) *gate {
	g := &gate{free: size}
	g.cond.L = &g.mu
	return g
}

func (g *gate) acquire(n int64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	for g.free < n {
		g.cond.Wait()
	}
	g.free -= n
	g.mu.Unlock()
}

func (g *gate) release(n int64) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.free += n
	g.mu.Unlock()
	g.cond.Broadcast()
}

func decodeDocument(file string, root *yaml.Node, errs *ErrorList) *parsedDoc {
	d := &decoder{file: file, errs: errs}
	docPos := d.position(root)
	if root.Kind != yaml.MappingNode {
		errs.add(docPos, "", "a document must be a mapping with apiVersion, kind, metadata and spec")
		return nil
	}
	doc := &Document{Pos: docPos}
	if len(root.Content) > 0 {
		// yaml.v3 skips the mark only at the start of the stream; one
		// starting a later document (files joined with cat) comes in
		// its first key.
		first := root.Content[0]
		first.Value = strings.TrimPrefix(first.Value, byteOrderMark)
	}
	var apiNode, kindNode, specNode, metaNode *yaml.Node
	seen := make(map[string]bool, 4)
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key, ok := d.key(k)
		if !ok {
			continue
		}
		d.push(key, -1)
		switch key {
		case "apiVersion", "kind", "metadata", "spec":
			if seen[key] {
				d.fail(k, "duplicate field")
				break
			}
			seen[key] = true
			switch key {
			case "apiVersion":
				apiNode = v
				d.decodeValue(v, reflect.ValueOf(&doc.APIVersion).Elem())
			case "kind":
				kindNode = v
				d.decodeValue(v, reflect.ValueOf(&doc.Kind).Elem())
			case "metadata":
				metaNode = v
			case "spec":
				specNode = v
			}
		default:
			d.fail(k, "unknown field (want apiVersion, kind, metadata, spec)")
		}
		d.pop()
	}
	switch {
	case apiNode == nil:
		errs.add(docPos, "apiVersion", "required (want "+APIVersion+")")
	case doc.APIVersion != APIVersion:
		errs.add(d.position(apiNode), "apiVersion", fmt.Sprintf("unsupported apiVersion %q (want %s)", doc.APIVersion, APIVersion))
	}
	specValue, known := NewSpec(doc.Kind)
	switch {
	case kindNode == nil:
		errs.add(docPos, "kind", "required (want one of "+strings.Join(Kinds, ", ")+")")
	case !known:
		errs.add(d.position(kindNode), "kind", fmt.Sprintf("unknown kind %q (want one of %s)", doc.Kind, strings.Join(Kinds, ", ")))
	}
	if metaNode == nil {
		errs.add(docPos, "metadata", "required")
	} else {
		d.push("metadata", -1)
		d.decodeValue(metaNode, reflect.ValueOf(&doc.Metadata).Elem())
		d.pop()
		if doc.Metadata.Name == "" && !d.failed["metadata.name"] && !d.failed["metadata"] {
			at := metaNode
			if n := mappingValue(metaNode, "name"); n != nil {
				at = n
			}
			errs.add(d.position(at), "metadata.name", "required")
		}
	}
	if !known {
		return nil
	}
	doc.Spec = specValue
	if specNode == nil {
		errs.add(docPos, "spec", "required")
	} else {
		d.push("spec", -1)
		d.decodeValue(specNode, reflect.ValueOf(doc.Spec).Elem())
		d.pop()
	}
	return &parsedDoc{doc: doc, node: root, failed: d.failed}
}

// decoder walks yaml nodes into Go values, rejecting unknown fields. The
// field path is kept as a stack and only rendered for an error.
type decoder struct {
	file   string
	errs   *ErrorList
	stack  []segment
	failed map[string]bool
}

// segment is one step of a field path: a key, or an index when idx >= 0.
type segment struct {
	key string
	idx int
}

func (d *decoder) push(key string, idx int) { d.stack = append(d.stack, segment{key, idx}) }
func (d *decoder) pop()                     { d.stack = d.stack[:len(d.stack)-1] }

func (d *decoder) path() string {
	var b strings.Builder
	for i, s := range d.stack {
		switch {
		case s.idx >= 0:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.idx))
			b.WriteByte(']')
		case i > 0:
			b.WriteByte('.')
			b.WriteString(s.key)
		default:
			b.WriteString(s.key)
		}
	}
	return b.String()
}

// fail records an error at the current field.
func (d *decoder) fail(n *yaml.Node, msg string) {
	path := d.path()
	if d.failed == nil {
		d.failed = map[string]bool{}
	}
	d.failed[path] = true
	d.errs.add(d.position(n), path, msg)
}

func (d *decoder) position(n *yaml.Node) Position {
	return Position{File: d.file, Line: n.Line, Column: n.Column}
}

// key reads a mapping key; keys must be plain strings.
func (d *decoder) key(k *yaml.Node) (string, bool) {
	switch {
	case k.Kind == yaml.ScalarNode && k.Tag == "!!merge":
		// A merge copies fields in from elsewhere: what a document holds
		// would no longer be what it shows, and the fields' lines would
		// point into another document.
		d.fail(k, "YAML merge keys (<<) are not supported; write the fields out")
		return "", false
	case k.Kind != yaml.ScalarNode || k.Tag != "!!str":
		d.fail(k, "mapping keys must be strings")
		return "", false
	case strings.HasPrefix(k.Value, byteOrderMark):
		// Invisible in most editors, so "unknown field" would name a key
		// that looks like a known one.
		d.fail(k, fmt.Sprintf("the key %q starts with a byte order mark (U+FEFF), which most editors do not show; delete it", k.Value))
		return "", false
	}
	return k.Value, true
}

// byteOrderMark is U+FEFF as UTF-8. YAML allows it before each document;
// Windows editors save it at the start of a file.
const byteOrderMark = "\ufeff"

// trimBOM drops a byte order mark at the start of a file's text.
func trimBOM(data []byte) []byte {
	return bytes.TrimPrefix(data, []byte(byteOrderMark))
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// hints turn an unknown field into advice where the mistake is a known trap.
var hints = map[reflect.Type]map[string]string{
	reflect.TypeFor[ScimToken](): {
		"value":     "plaintext tokens are not allowed in git; use sha256 or valueFrom",
		"token":     "plaintext tokens are not allowed in git; use sha256 or valueFrom",
		"plaintext": "plaintext tokens are not allowed in git; use sha256 or valueFrom",
		"secret":    "plaintext tokens are not allowed in git; use sha256 or valueFrom",
	},
	reflect.TypeFor[ValueFrom](): {
		"value": "secrets are not allowed in git; name an environment variable (env) or a file (file)",
	},
	reflect.TypeFor[Certificate](): {
		"privateKey": errInlineKey,
		"key":        errInlineKey,
	},
}

func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		d.fail(n, "YAML aliases are not supported")
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
			d.fail(n, "must be a string")
			return
		}
		if err := v.Addr().Interface().(yaml.Unmarshaler).UnmarshalYAML(n); err != nil {
			d.fail(n, err.Error())
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		switch n.Value {
		case "", "~", "null", "Null", "NULL":
			return // an empty value leaves the zero value; required checks come later
		}
		// An explicit tag on any other text would drop what it says.
		d.fail(n, fmt.Sprintf("tagged !!null but holds %q (remove the tag or the value)", n.Value))
		return
	}
	switch v.Kind() {
	case reflect.String:
		switch {
		case n.Kind != yaml.ScalarNode:
			d.fail(n, "must be a string")
		case n.Tag != "!!str":
			d.fail(n, fmt.Sprintf("must be a string (quote it: %q)", n.Value))
		default:
			v.SetString(n.Value)
		}
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.fail(n, "must be true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.fail(n, "must be a whole number")
			return
		}
		v.SetInt(i)
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decodeValue(n, nv.Elem())
		v.Set(nv)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.push("", i)
			d.decodeValue(item, s.Index(i))
			d.pop()
		}
		v.Set(s)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, "must be a mapping")
			return
		}
		fields := fieldsOf(v.Type())
		var seen uint64 // by field index; the document types have fewer than 64 fields
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key, ok := d.key(k)
			if !ok {
				continue
			}
			d.push(key, -1)
			idx, known := fields.byName[key]
			switch {
			case !known:
				msg := "unknown field"
				if h := hints[v.Type()][key]; h != "" {
					msg += ": " + h
				} else if len(fields.names) > 0 {
					msg += " (want one of " + strings.Join(fields.names, ", ") + ")"
				}
				d.fail(k, msg)
			case seen&(1<<idx) != 0:
				d.fail(k, "duplicate field")
			default:
				seen |= 1 << idx
				d.decodeValue(val, v.Field(idx))
			}
			d.pop()
		}
	default:
		// Only the types above appear in the document types.
		d.fail(n, "unsupported field type "+v.Type().String())
	}
}

type structFields struct {
	byName map[string]int
	names  []string
}

var fieldCache sync.Map // reflect.Type -> *structFields

// fieldsOf indexes a struct's yaml field names.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	f := &structFields{byName: make(map[string]int)}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" || name == "" {
			continue
		}
		f.byName[name] = i
		f.names = append(f.names, name)
	}
	fieldCache.Store(t, f)
	return f
}
