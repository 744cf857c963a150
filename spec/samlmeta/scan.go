package samlmeta

import (
	"bytes"
	"errors"
	"fmt"
)

const (
	// maxDepth is far deeper than any SAML message nests, and shallow
	// enough that a nesting bomb fails in microseconds.
	maxDepth = 48
	// maxMarkup bounds the '<' count the way gosaml2 bounds tokens (its
	// default 50000 tokens ≈ 3 per '<'), so the refusal says what it is
	// instead of gosaml2's misleading "flate: corrupt input".
	maxMarkup = 16000
)

// Scan's rejections, which callers wrap into their own errors.
var (
	ErrDoctype   = errors.New("DOCTYPE and entity declarations are not allowed")
	ErrTooDeep   = errors.New("XML nested too deeply")
	ErrNotXML    = errors.New("not an XML document")
	ErrAlgorithm = errors.New("signature algorithm not allowed")
	ErrTooMany   = errors.New("too many XML elements")
)

var (
	strongSignatureMethods = map[string]bool{
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":   true,
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":   true,
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":   true,
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": true,
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": true,
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": true,
	}
	sha1SignatureMethods = map[string]bool{
		"http://www.w3.org/2000/09/xmldsig#rsa-sha1":        true,
		"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha1": true,
	}
	strongDigestMethods = map[string]bool{
		"http://www.w3.org/2001/04/xmlenc#sha256":       true,
		"http://www.w3.org/2001/04/xmldsig-more#sha384": true,
		"http://www.w3.org/2001/04/xmlenc#sha512":       true,
	}
	sha1DigestMethod = "http://www.w3.org/2000/09/xmldsig#sha1"
)

// ScanResult is what a token-level pass learns before any signature work.
type ScanResult struct {
	// Assertions counts Assertion and EncryptedAssertion elements anywhere.
	Assertions int
	Encrypted  int
	// Signatures counts ds:Signature elements anywhere.
	Signatures int
}

// Prescan rejects what gosaml2 lets through (a DOCTYPE, SHA-1) and what
// should fail before the expensive parse (deep nesting, too many elements),
// in one pass over the bytes.
func Prescan(raw []byte, allowSHA1 bool) error {
	_, err := Scan(raw, allowSHA1)
	return err
}

// Scan is Prescan that also counts what a SAML response's checks need.
func Scan(raw []byte, allowSHA1 bool) (ScanResult, error) {
	var res ScanResult
	trimmed := bytes.TrimLeft(bytes.TrimPrefix(raw, []byte("\xEF\xBB\xBF")), " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '<' {
		return res, ErrNotXML
	}
	if bytes.Count(raw, []byte("<")) > maxMarkup {
		return res, ErrTooMany
	}
	// A hand-rolled pass over the markup: encoding/xml's tokenizer cost as
	// much as a fifth of gosaml2's whole validation. It only has to find
	// tags, and skips comments, CDATA, processing instructions and quoted
	// attribute values exactly as a parser does, so nothing can hide from it
	// inside them; malformed XML is left for gosaml2's parser to refuse.
	var stack [maxDepth][]byte
	depth := 0
	for i := 0; i < len(raw); {
		lt := bytes.IndexByte(raw[i:], '<')
		if lt < 0 {
			break
		}
		i += lt
		rest := raw[i:]
		switch {
		case bytes.HasPrefix(rest, []byte("<!--")):
			end := bytes.Index(rest[4:], []byte("-->"))
			if end < 0 {
				return res, fmt.Errorf("%w: unterminated comment", ErrNotXML)
			}
			i += 4 + end + 3
			continue
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			end := bytes.Index(rest, []byte("]]>"))
			if end < 0 {
				return res, fmt.Errorf("%w: unterminated CDATA", ErrNotXML)
			}
			i += end + 3
			continue
		case bytes.HasPrefix(rest, []byte("<!")):
			return res, ErrDoctype
		case bytes.HasPrefix(rest, []byte("<?")):
			end := bytes.Index(rest, []byte("?>"))
			if end < 0 {
				return res, fmt.Errorf("%w: unterminated processing instruction", ErrNotXML)
			}
			i += end + 2
			continue
		}
		end, selfClosing, ok := tagEnd(rest)
		if !ok {
			return res, fmt.Errorf("%w: unterminated tag", ErrNotXML)
		}
		tag := rest[1:end]
		i += end + 1
		if len(tag) > 0 && tag[0] == '/' {
			if depth > 0 {
				depth--
			}
			continue
		}
		name := tag
		if n := bytes.IndexAny(tag, " \t\r\n/"); n >= 0 {
			name = tag[:n]
		}
		if c := bytes.LastIndexByte(name, ':'); c >= 0 {
			name = name[c+1:]
		}
		parent := []byte(nil)
		if depth > 0 {
			parent = stack[depth-1]
		}
		switch string(name) {
		case "Assertion":
			res.Assertions++
		case "EncryptedAssertion":
			res.Assertions++
			res.Encrypted++
		case "Signature":
			res.Signatures++
		case "SignatureMethod":
			if string(parent) == "SignedInfo" {
				alg := attrValue(tag, "Algorithm")
				if !strongSignatureMethods[alg] && !(allowSHA1 && sha1SignatureMethods[alg]) {
					return res, fmt.Errorf("%w: SignatureMethod %s", ErrAlgorithm, alg)
				}
			}
		case "DigestMethod":
			// The OAEP digest inside an EncryptedKey is SHA-1 by Entra's
			// design and protects no signature, so only References count.
			if string(parent) == "Reference" {
				alg := attrValue(tag, "Algorithm")
				if !strongDigestMethods[alg] && !(allowSHA1 && alg == sha1DigestMethod) {
					return res, fmt.Errorf("%w: DigestMethod %s", ErrAlgorithm, alg)
				}
			}
		}
		if selfClosing {
			continue
		}
		if depth >= maxDepth {
			return res, ErrTooDeep
		}
		stack[depth] = name
		depth++
	}
	return res, nil
}

// tagEnd finds the '>' closing the tag that starts tag, skipping quoted
// attribute values (which may contain '>').
func tagEnd(tag []byte) (end int, selfClosing, ok bool) {
	var quote byte
	for i := 1; i < len(tag); i++ {
		switch c := tag[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '<':
			return 0, false, false
		case c == '>':
			return i, tag[i-1] == '/', true
		}
	}
	return 0, false, false
}

// attrValue returns the value of attribute name (unprefixed) in a tag's
// text, or "".
func attrValue(tag []byte, name string) string {
	for i := 0; ; {
		n := bytes.Index(tag[i:], []byte(name))
		if n < 0 {
			return ""
		}
		i += n
		before := byte(' ')
		if i > 0 {
			before = tag[i-1]
		}
		j := i + len(name)
		for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\r' || tag[j] == '\n') {
			j++
		}
		if (before == ' ' || before == '\t' || before == '\r' || before == '\n') && j < len(tag) && tag[j] == '=' {
			j++
			for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\r' || tag[j] == '\n') {
				j++
			}
			if j < len(tag) && (tag[j] == '"' || tag[j] == '\'') {
				q := tag[j]
				if k := bytes.IndexByte(tag[j+1:], q); k >= 0 {
					return string(tag[j+1 : j+1+k])
				}
			}
			return ""
		}
		i = j
	}
}
