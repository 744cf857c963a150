// Package nesting measures how deeply brackets nest in a request's text
// before a parser sees it: JSON bodies and filters are bounded by depth,
// because the parsers' cost (or the recursion) grows with it.
package nesting

import "iter"

// Depth returns the deepest nesting in s of the opening bytes in open,
// each closed by the byte at the same index in close, outside
// double-quoted strings (see Unquoted).
func Depth[T ~string | ~[]byte](s T, open, close string) int {
	d, deepest := 0, 0
	for _, c := range Unquoted(s) {
		switch {
		case indexByte(open, c) >= 0:
			d++
			deepest = max(deepest, d)
		case indexByte(close, c) >= 0:
			d--
		}
	}
	return deepest
}

// Unquoted yields the bytes of s outside double-quoted strings, with
// their index; a backslash in a string escapes the byte after it.
func Unquoted[T ~string | ~[]byte](s T) iter.Seq2[int, byte] {
	return func(yield func(int, byte) bool) {
		inStr := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case inStr:
				if c == '\\' {
					i++
				} else if c == '"' {
					inStr = false
				}
			case c == '"':
				inStr = true
			default:
				if !yield(i, c) {
					return
				}
			}
		}
	}
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
