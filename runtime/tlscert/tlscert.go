// Package tlscert serves the daemon's TLS certificate from the keystore: the
// Certificate document of usage tls in the runtime store. Every handshake
// looks the certificate up, so a new certificate or key from the spec takes
// effect without a restart and without dropping open connections.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// ErrNoCertificate is returned when the keystore holds no usable tls certificate.
var ErrNoCertificate = errors.New("tlscert: no Certificate of usage tls with a private key in the spec")

// Source hands out the keystore's TLS certificate.
type Source struct {
	st   *store.Store
	name string           // the Certificate to use; "" takes the first of usage tls
	now  func() time.Time // judges validity; tests set it

	mu     sync.Mutex
	from   *spec.Certificate
	cached *tls.Certificate
	// bad is the newest stored Certificate that is not served, and badErr
	// why; the last good one (cached) goes on being served.
	bad    *spec.Certificate
	badErr error
	// pending is bad built, when only its validity holds it back: it is
	// switched to at the first look that finds it valid, or finds cached
	// no longer valid either, with no other change in the store.
	pending *tls.Certificate
}

// New returns a Source reading st. name picks a Certificate document; empty
// means the first (by name) of usage tls.
func New(st *store.Store, name string) *Source {
	return &Source{st: st, name: name, now: time.Now}
}

// Config returns a server TLS configuration that refuses anything below TLS 1.2.
func (s *Source) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.Certificate() },
	}
}

// Certificate returns the current certificate, rebuilding it only when the
// stored Certificate changed. A stored Certificate that cannot be served (its
// key does not match it, it does not parse) does not replace the last good
// one: that goes on being served, and Ready says why. Nor does one outside
// its validity while the served one is inside its own: every client that
// verifies would refuse it at once. One staged ahead of its NotBefore is
// switched to at the first handshake (or Ready) from then on; there is no
// timer, as every handshake looks.
func (s *Source) Certificate() (*tls.Certificate, error) {
	tc, _, err := s.current()
	return tc, err
}

// current returns the certificate to serve and, when it is an earlier one
// because the stored Certificate is not served, why not.
func (s *Source) current() (tc *tls.Certificate, stale, err error) {
	c, err := s.lookup()
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == s.from && s.cached != nil {
		return s.cached, nil, nil
	}
	if c != s.bad {
		s.bad = c
		s.pending, s.badErr = build(c)
	}
	if s.pending != nil {
		// An invalid certificate is still better than none, or than an
		// invalid earlier one: take it then, and Ready says so.
		now := s.now()
		s.badErr = validity(s.pending.Leaf, now)
		if s.badErr == nil || s.cached == nil || validity(s.cached.Leaf, now) != nil {
			s.from, s.cached = c, s.pending
			s.bad, s.badErr, s.pending = nil, nil, nil
			return s.cached, nil, nil
		}
	}
	if s.cached != nil {
		return s.cached, s.badErr, nil
	}
	return nil, nil, s.badErr
}

// validity says why leaf is not valid at now, naming it by its subject and
// validity window; nil when it is valid.
func validity(leaf *x509.Certificate, now time.Time) error {
	var state string
	switch {
	case now.Before(leaf.NotBefore):
		state = "is not valid yet"
	case !now.Before(leaf.NotAfter):
		state = "has expired"
	default:
		return nil
	}
	return fmt.Errorf("tlscert: certificate %q %s (valid from %s to %s)", leaf.Subject, state,
		leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
}

// build makes what crypto/tls serves of c.
func build(c *spec.Certificate) (*tls.Certificate, error) {
	tc, err := c.TLSCertificate()
	if err != nil {
		// The loader sets Subject; a Certificate stored another way may
		// lack it, and the reason must still say which one is refused.
		name := c.Subject
		if name == "" {
			if leaf, perr := x509.ParseCertificate(c.DER); perr == nil {
				name = leaf.Subject.String()
			}
		}
		return nil, fmt.Errorf("tlscert: certificate %q: %w", name, err)
	}
	return tc, nil
}

// Ready reports whether a certificate is available, and why not. A
// certificate outside its validity is still served (crypto/tls does not
// look), so it stays ready, but the reason says so: clients that verify
// refuse it, and nothing else warns while the daemon runs. So does an
// earlier certificate served because the stored one is not.
func (s *Source) Ready() (bool, string) {
	c, stale, err := s.current()
	if err != nil {
		return false, err.Error()
	}
	var why []string
	if stale != nil {
		why = append(why, fmt.Sprintf("serving the previous certificate %q instead of the new one: %v", c.Leaf.Subject, stale))
	}
	now := s.now()
	switch leaf := c.Leaf; {
	case !now.Before(leaf.NotAfter):
		why = append(why, fmt.Sprintf("serving a certificate that expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(leaf.NotBefore):
		why = append(why, fmt.Sprintf("serving a certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	return true, strings.Join(why, "; ")
}

// chosen reports whether the Certificate c named name is one a Source
// for the Certificate want ("" for the first of usage tls) may serve.
func chosen(want, name string, c *spec.Certificate) bool {
	return c.Usage == spec.UsageTLS && (want == "" || name == want)
}

// Offers reports whether docs, a spec revision, hold a Certificate a
// Source for want may serve: applied without one, the Source has nothing
// to serve but what it held.
func Offers(want string, docs []*spec.Document) bool {
	for _, d := range docs {
		if c, ok := d.Spec.(*spec.Certificate); ok && chosen(want, d.Metadata.Name, c) {
			return true
		}
	}
	return false
}

// Serving reports whether the store holds a certificate the Source would
// serve.
func (s *Source) Serving() bool {
	_, err := s.lookup()
	return err == nil
}

func (s *Source) lookup() (*spec.Certificate, error) {
	res, err := s.st.Read().Resources(spec.KindCertificate)
	if err != nil {
		return nil, fmt.Errorf("tlscert: %w", err)
	}
	// A Certificate stored without its key (the etcd mirror drops a key
	// another daemon resolved, until this one's reconciler resolves it
	// again) is returned when there is no other: build then refuses it and
	// the last good one goes on being served, rather than none at all.
	var keyless *spec.Certificate
	for _, r := range res {
		c, ok := r.Spec.(*spec.Certificate)
		if !ok || !chosen(s.name, r.Name, c) {
			continue
		}
		if c.PrivateKey == nil || len(c.DER) == 0 {
			if keyless == nil && len(c.DER) > 0 {
				keyless = c
			}
			continue
		}
		return c, nil
	}
	if keyless != nil {
		return keyless, nil
	}
	return nil, ErrNoCertificate
}
