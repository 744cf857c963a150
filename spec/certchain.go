package spec

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// leafFirst orders a certificate file's blocks as a server presents them:
// the leaf (the certificate of key), then each certificate followed by its
// issuer. Clients take the first certificate for the server's, and many
// build the path in the order sent, so a file written out of order fails
// there though it holds all they need. Nothing given is dropped: a root or
// a cross-signed intermediate is kept, after the path. When a certificate
// is neither the leaf nor the issuer of another, the file belongs to no
// order: the rest is kept as given after the leaf, and note says why. The
// leaf is nil when no certificate is key's.
func leafFirst(blocks [][]byte, key crypto.PublicKey) (leaf *x509.Certificate, ordered [][]byte, note string) {
	parsed := make([]*x509.Certificate, len(blocks))
	at := -1
	for i, der := range blocks {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, nil, "" // the loader parsed each already
		}
		parsed[i] = c
		if pub, ok := c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); at < 0 && ok && pub.Equal(key) {
			at = i
		}
	}
	if at < 0 {
		return nil, nil, ""
	}
	path := []int{at}
	used := make([]bool, len(parsed))
	used[at] = true
	for cur := at; ; {
		next := -1
		for i, c := range parsed {
			if !used[i] && issued(c, parsed[cur]) {
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		path = append(path, next)
		cur = next
	}
	var strays []string
	for i, c := range parsed {
		if used[i] {
			continue
		}
		path = append(path, i)
		if !slices.ContainsFunc(parsed, func(child *x509.Certificate) bool { return issued(c, child) }) {
			strays = append(strays, fmt.Sprintf("%q", c.Subject))
		}
	}
	if len(strays) > 0 {
		path = []int{at}
		for i := range blocks {
			if i != at {
				path = append(path, i)
			}
		}
		note = fmt.Sprintf("its chain holds %s, which neither is the certificate of the private key nor issues another: it is presented as given, after the certificate",
			strings.Join(strays, ", "))
	}
	ordered = make([][]byte, len(path))
	for k, i := range path {
		ordered[k] = blocks[i]
	}
	return parsed[at], ordered, note
}

// issued reports whether parent issued child: child names it as its issuer
// and it signed child, or, for a signature crypto/x509 no longer checks
// (SHA-1), it holds the key child names as its issuer's.
func issued(parent, child *x509.Certificate) bool {
	if parent == child || !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	err := parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature)
	var insecure x509.InsecureAlgorithmError
	if errors.As(err, &insecure) {
		return len(child.AuthorityKeyId) > 0 && bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId)
	}
	return err == nil
}
