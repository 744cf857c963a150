package filter

import (
	"encoding/json"
	"strconv"
	"strings"
)

type token struct {
	text  string
	space bool // whitespace preceded the token
}

func tokenize(s string) []token {
	var toks []token
	space := false
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			space = true
			i++
			continue
		case c == '"':
			j := i + 1
			for j < len(s) && s[j] != '"' {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(s) {
				j = len(s) - 1
			}
			toks = append(toks, token{s[i : j+1], space})
			i = j + 1
		case c == '(' || c == ')' || c == '[' || c == ']':
			toks = append(toks, token{s[i : i+1], space})
			i++
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\n\r\"()[]", rune(s[j])) {
				j++
			}
			toks = append(toks, token{s[i:j], space})
			i = j
		}
		space = false
	}
	return toks
}

func isCompareOp(w string) bool {
	switch strings.ToLower(w) {
	case "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le":
		return true
	}
	return false
}

func isWord(t string) bool {
	return t != "" && !strings.ContainsRune("\"()[]", rune(t[0]))
}

func isLiteral(w string) bool {
	switch strings.ToLower(w) {
	case "true", "false", "null":
		return true
	}
	_, err := strconv.ParseFloat(w, 64)
	return err == nil && !strings.ContainsAny(w, "xXpP_") && json.Valid([]byte(w))
}

// singleQuoted returns the first compare value of s written in single
// quotes, "" if none is. RFC 7644 §3.4.2.2 takes JSON literals only, so
// 'alice' is no string: read as the bare word lenient quotes, it would
// match nothing (or, in a PATCH path, create an element holding the
// quotes) where the client meant alice.
func singleQuoted(s string) string {
	toks := tokenize(s)
	for i := 1; i < len(toks); i++ {
		if isCompareOp(toks[i-1].text) && strings.HasPrefix(toks[i].text, "'") {
			return toks[i].text
		}
	}
	return ""
}

// lenient rewrites the forms Entra (and its documentation) send that RFC
// 7644's grammar does not allow into equivalent standard filters:
//   - an unquoted string value (`externalId eq jyoung`) is quoted;
//   - a value path with a sub-attribute compared outside the brackets
//     (`emails[type eq "work"].value eq "x"`) moves the comparison inside
//     (`emails[type eq "work" and value eq "x"]`).
//
// It also spells the hex digits of \u escapes in upper case, the only case
// the third-party parser reads; JSON takes either (RFC 8259 §7).
func lenient(s string) string { return rewrite(s, true) }

// lenientPath is lenient for a PATCH path, which ends at the value path's
// sub-attribute (RFC 7644 §3.5.2): a comparison after it is no path, and
// moved inside the brackets it would select elements the client never
// named.
func lenientPath(s string) string { return rewrite(s, false) }

func rewrite(s string, moveSub bool) string {
	toks := tokenize(s)
	for i := range toks {
		if strings.HasPrefix(toks[i].text, `"`) {
			toks[i].text = upperHexEscapes(toks[i].text)
		}
	}
	for i := 1; i+1 < len(toks); i++ {
		prev, next := toks[i-1].text, toks[i+1].text
		if isCompareOp(toks[i].text) && (isWord(prev) || prev == "]") && isWord(next) && !isLiteral(next) {
			q, _ := json.Marshal(next)
			toks[i+1].text = string(q)
		}
	}
	for i := 0; moveSub && i+1 < len(toks); i++ {
		if toks[i].text != "]" || toks[i+1].space || !strings.HasPrefix(toks[i+1].text, ".") {
			continue
		}
		open := -1
		for j := i - 1; j >= 0; j-- {
			if toks[j].text == "[" {
				open = j
				break
			}
		}
		if open < 0 || i+2 >= len(toks) {
			continue
		}
		sub := strings.TrimPrefix(toks[i+1].text, ".")
		cmp := []token{{"and", true}, {sub, true}, {toks[i+2].text, true}}
		end := i + 3
		if strings.ToLower(toks[i+2].text) != "pr" {
			if i+3 >= len(toks) {
				continue
			}
			cmp = append(cmp, token{toks[i+3].text, true})
			end = i + 4
		}
		inner := toks[open+1 : i]
		hasOr := false
		for _, t := range inner {
			if strings.EqualFold(t.text, "or") {
				hasOr = true
			}
		}
		var out []token
		out = append(out, toks[:open+1]...)
		if hasOr {
			out = append(out, token{"(", false})
			out = append(out, inner...)
			out = append(out, token{")", false})
		} else {
			out = append(out, inner...)
		}
		out = append(out, cmp...)
		out = append(out, token{"]", false})
		out = append(out, toks[end:]...)
		toks = out
	}
	var b strings.Builder
	for i, t := range toks {
		if i > 0 && t.space {
			b.WriteByte(' ')
		}
		b.WriteString(t.text)
	}
	return b.String()
}

// upperHexEscapes returns the quoted string q with the hex digits of its
// \u escapes in upper case.
func upperHexEscapes(q string) string {
	if !strings.Contains(q, `\u`) {
		return q
	}
	b := []byte(q)
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		i++ // the escaped byte: a backslash escapes the next one only
		if b[i] != 'u' {
			continue
		}
		for j := i + 1; j < len(b) && j <= i+4; j++ {
			if 'a' <= b[j] && b[j] <= 'f' {
				b[j] -= 'a' - 'A'
			}
		}
	}
	return string(b)
}
