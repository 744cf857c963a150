package scim

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// manyNames is how many names one object may have before scanMembers
// keeps them in a map rather than comparing each new one with all before
// it: Entra's objects stay below it, and nothing is allocated for them.
const manyNames = 64

// nameSpan is a member name in a body: body[start:end] is its JSON string,
// quotes included.
type nameSpan struct {
	start, end int
	escaped    bool // holds a backslash, so compare it decoded
}

// container is one open object or array of the body.
type container struct {
	object bool
	first  int                 // object: where its names start in names
	index  int                 // array: the element being read
	name   nameSpan            // object: the member being read
	seen   map[string]struct{} // object with more than manyNames names
}

// scanMembers refuses a body nesting deeper than maxDepth, or whose
// objects name one member twice, spelt exactly alike once decoded
// ("userName" and "user\u004eame" too): encoding/json keeps the last, so
// what would be stored is not clearly what the client meant, and the
// decoded map no longer shows it. Names that differ in case are left to
// schema.DistinctNames. It walks the bytes once, without recursion and
// without allocating for bodies of ordinary size; a body that is no valid
// JSON may pass, for the decoder to say what is wrong with it.
func scanMembers(body []byte) error {
	var stackBuf [maxDepth]container
	var namesBuf [manyNames]nameSpan
	stack, names := stackBuf[:0], namesBuf[:0]
	nameNext := false // the next string is an object's member name
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '"':
			end, escaped := stringEnd(body, i)
			if nameNext {
				nameNext = false
				s := nameSpan{start: i, end: end, escaped: escaped}
				top := &stack[len(stack)-1]
				var err error
				if names, err = addName(body, stack, top, names, s); err != nil {
					return err
				}
				top.name = s
			}
			i = end - 1
		case '{', '[':
			if len(stack) == maxDepth {
				return scimerr.New(scimerr.InvalidSyntax, "request body nests deeper than %d levels", maxDepth)
			}
			stack = append(stack, container{object: body[i] == '{', first: len(names)})
			nameNext = body[i] == '{'
		case '}', ']':
			if len(stack) > 0 {
				names = names[:stack[len(stack)-1].first]
				stack = stack[:len(stack)-1]
			}
			nameNext = false
		case ',':
			if n := len(stack); n > 0 {
				if stack[n-1].object {
					nameNext = true
				} else {
					stack[n-1].index++
				}
			}
		}
	}
	return nil
}

// stringEnd returns the index just past the JSON string that starts at
// body[i], or len(body) when it does not end, and whether it holds an
// escape.
func stringEnd(body []byte, i int) (int, bool) {
	escaped := false
	for j := i + 1; j < len(body); j++ {
		switch body[j] {
		case '"':
			return j + 1, escaped
		case '\\':
			escaped = true
			j++
		}
	}
	return len(body), escaped
}

// addName records name s in the object top (the last of stack), or
// returns the error naming it when top has it already.
func addName(body []byte, stack []container, top *container, names []nameSpan, s nameSpan) ([]nameSpan, error) {
	if top.seen != nil {
		text := nameText(body, s)
		if _, dup := top.seen[text]; dup {
			return names, errRepeated(body, stack, s)
		}
		top.seen[text] = struct{}{}
		return names, nil
	}
	for _, o := range names[top.first:] {
		if sameName(body, o, s) {
			return names, errRepeated(body, stack, s)
		}
	}
	if len(names)-top.first < manyNames {
		return append(names, s), nil
	}
	// No object inside top is open: its names are the last in names.
	top.seen = make(map[string]struct{}, 2*manyNames)
	for _, o := range names[top.first:] {
		top.seen[nameText(body, o)] = struct{}{}
	}
	top.seen[nameText(body, s)] = struct{}{}
	return names[:top.first], nil
}

func sameName(body []byte, a, b nameSpan) bool {
	if !a.escaped && !b.escaped {
		return bytes.Equal(body[a.start:a.end], body[b.start:b.end])
	}
	return nameText(body, a) == nameText(body, b)
}

// nameText decodes a member name as encoding/json does; a name that does
// not decode stands for itself, for the decoder to refuse later.
func nameText(body []byte, s nameSpan) string {
	raw := body[s.start:s.end]
	if s.escaped {
		var text string
		if json.Unmarshal(raw, &text) == nil {
			return text
		}
		return string(raw)
	}
	if len(raw) < 2 {
		return string(raw)
	}
	return string(raw[1 : len(raw)-1])
}

// errRepeated names the member s of the last object of stack, and where
// it is, as Operations[0].value.members: indices count from 0.
func errRepeated(body []byte, stack []container, s nameSpan) error {
	var b strings.Builder
	for i, c := range stack {
		switch {
		case !c.object:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(c.index))
			b.WriteByte(']')
		case i == len(stack)-1:
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(nameText(body, c.name))
		}
	}
	name := nameText(body, s)
	if b.Len() == 0 {
		return scimerr.New(scimerr.InvalidSyntax, "request body names member %q twice: JSON leaves unclear which one counts (RFC 8259 §4), so send it once", name)
	}
	b.WriteByte('.')
	b.WriteString(name)
	return scimerr.New(scimerr.InvalidSyntax, "request body names member %q twice at %s: JSON leaves unclear which one counts (RFC 8259 §4), so send it once", name, b.String())
}
