package scim

import (
	"net/url"
	"strings"

	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
)

// parseQuery decodes a request's query string. url.ParseQuery is not used:
// it drops a pair it cannot decode, or one holding a semicolon, and goes on,
// so a lookup whose filter it dropped would answer with every resource. Here
// a semicolon is an ordinary character (only "&" separates pairs, as in
// application/x-www-form-urlencoded), and a pair that does not decode is
// refused, as invalidFilter when it is the filter.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, scimerr.New(scimerr.InvalidValue, "the query parameter name %q is not valid percent-encoding", k)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			if strings.EqualFold(key, "filter") {
				return nil, scimerr.New(scimerr.InvalidFilter, "the filter is not valid percent-encoding")
			}
			return nil, scimerr.New(scimerr.InvalidValue, "the value of query parameter %q is not valid percent-encoding", key)
		}
		q[key] = append(q[key], val)
	}
	return q, nil
}

// unpairedSurrogate returns the first \u escape in s, a JSON text or a
// filter, of a UTF-16 surrogate that is not half of a pair, "" if there is
// none. Such an escape encodes no character: encoding/json decodes it to
// U+FFFD, which would make the value stored or looked up another than the
// one sent. Outside strings a backslash is a syntax error the parser
// reports, so every backslash here starts an escape.
func unpairedSurrogate[T ~string | ~[]byte](s T) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			continue
		}
		if i+1 >= len(s) || s[i+1] != 'u' {
			i++ // a one-character escape, maybe of a backslash
			continue
		}
		hi, ok := hex4(s, i+2)
		if !ok {
			return "" // a malformed escape: the parser reports it
		}
		switch {
		case hi >= 0xdc00 && hi <= 0xdfff:
			return string(s[i : i+6])
		case hi >= 0xd800 && hi <= 0xdbff:
			if i+7 < len(s) && s[i+6] == '\\' && s[i+7] == 'u' {
				if lo, ok := hex4(s, i+8); ok && lo >= 0xdc00 && lo <= 0xdfff {
					i += 11
					continue
				}
			}
			return string(s[i : i+6])
		}
		i += 5
	}
	return ""
}

// hex4 decodes the four hex digits of s at i.
func hex4[T ~string | ~[]byte](s T, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range []byte(s[i : i+4]) {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
