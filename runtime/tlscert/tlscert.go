// Package tlscert serves the daemon's TLS certificate from the keystore: the
// Certificate document of usage tls in the runtime store, or, when there are
// several and none is named, the one whose names match the server name the
// client asks for. Every handshake looks the certificate up, so a new
// certificate or key from the spec takes effect without a restart and
// without dropping open connections.
package tlscert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// ErrNoCertificate is returned when the keystore holds no usable tls certificate.
var ErrNoCertificate = errors.New("tlscert: no Certificate of usage tls with a private key in the spec")

// Source hands out the keystore's TLS certificates.
type Source struct {
	st   *store.Store
	name string           // the Certificate to use; "" takes the first of usage tls
	now  func() time.Time // judges validity; tests set it

	mu sync.Mutex
	// def is served when no name is given, or the client's matches none.
	def slot
	// docs holds, by document name, what each Certificate of usage tls
	// serves to a client asking for one of its names; only when no name
	// is given.
	docs map[string]*slot
	// builds holds what each stored Certificate built to, so that every
	// slot serving it shares one, and a handshake builds none.
	builds map[*spec.Certificate]builtOrErr
	seen   []stored // the documents builds and docs were pruned to
}

// stored is a Certificate document of usage tls.
type stored struct {
	name string
	c    *spec.Certificate
}

type builtOrErr struct {
	tc  *tls.Certificate
	err error
}

// slot is one certificate served: the last good one of the Certificates it
// was given, and why the newest is not served when it is not.
type slot struct {
	from   *spec.Certificate
	cached *tls.Certificate
	// bad is the newest Certificate given that is not served, and badErr
	// why; the last good one (cached) goes on being served.
	bad    *spec.Certificate
	badErr error
	// pending is bad built, when only its validity holds it back: it is
	// switched to at the first look that finds it valid, or finds cached
	// no longer valid either, with no other change in the store.
	pending *tls.Certificate
}

// New returns a Source reading st. name picks a Certificate document; empty
// means the one whose names match what the client asks for, else the
// first (by name) of usage tls.
func New(st *store.Store, name string) *Source {
	return &Source{st: st, name: name, now: time.Now}
}

// Config returns a server TLS configuration that refuses anything below TLS 1.2.
func (s *Source) Config() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: s.forHello,
	}
}

// Certificate returns the current certificate, rebuilding it only when the
// stored Certificate changed. A stored Certificate that cannot be served (its
// key does not match it, it does not parse) does not replace the last good
// one: that goes on being served, and Ready says why. Nor does one outside
// its validity while the served one is inside its own: every client that
// verifies would refuse it at once. One staged ahead of its NotBefore is
// switched to at the first handshake (or Ready) from then on; there is no
// timer, as every handshake looks. With no name given, it is the one
// served to a client whose server name matches no other.
func (s *Source) Certificate() (*tls.Certificate, error) {
	b, _, err := s.current()
	if err != nil {
		return nil, err
	}
	return b, nil
}

// current returns the certificate served by default and, when it is an
// earlier one because the stored Certificate is not served, why not.
func (s *Source) current() (b *tls.Certificate, stale, err error) {
	def, docs, err := s.lookup()
	if err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(docs)
	return s.def.current(def, s.now(), s.build)
}

// forHello picks the certificate for a handshake: with no name given and
// several Certificates, the one whose names match what the client asks
// for, each keeping its own last good one; the default one otherwise.
func (s *Source) forHello(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	def, docs, err := s.lookup()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(docs)
	now := s.now()
	b, _, err := s.def.current(def, now, s.build)
	if s.name == "" && len(docs) > 1 {
		if tc := s.byName(hello, docs, now); tc != nil {
			return tc, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// byName returns the certificate of docs whose names match what hello asks
// for, nil when none does. Of several, it takes the first the client can
// use, as crypto/tls picks among its Certificates (an ECDSA and an RSA one
// for the same name), and of those one it would accept now.
func (s *Source) byName(hello *tls.ClientHelloInfo, docs []stored, now time.Time) *tls.Certificate {
	host := wanted(hello)
	if host == "" {
		return nil
	}
	var best *tls.Certificate
	bestScore := -1
	for _, d := range docs {
		b, _, err := s.slot(d.name).current(d.c, now, s.build)
		// The names a client verifying the certificate accepts it for.
		if err != nil || b.Leaf.VerifyHostname(host) != nil {
			continue
		}
		score := 0
		if hello.SupportsCertificate(b) == nil {
			score += 2
		}
		if validity(b.Leaf, now) == nil {
			score++
		}
		if score > bestScore {
			best, bestScore = b, score
		}
	}
	return best
}

// slot returns the slot of the document name, made when first asked for.
func (s *Source) slot(name string) *slot {
	sl := s.docs[name]
	if sl == nil {
		sl = new(slot)
		s.docs[name] = sl
	}
	return sl
}

// prune forgets the builds and slots of documents no longer stored, once
// per change of the store.
func (s *Source) prune(docs []stored) {
	if slices.Equal(docs, s.seen) && s.builds != nil {
		return
	}
	s.seen = docs
	builds := make(map[*spec.Certificate]builtOrErr, len(docs))
	names := make(map[string]*slot, len(docs))
	for _, d := range docs {
		if r, ok := s.builds[d.c]; ok {
			builds[d.c] = r
		}
		if sl := s.docs[d.name]; sl != nil {
			names[d.name] = sl
		}
	}
	s.builds, s.docs = builds, names
}

// build builds c once for every slot.
func (s *Source) build(c *spec.Certificate) (*tls.Certificate, error) {
	r, ok := s.builds[c]
	if !ok {
		r.tc, r.err = build(c)
		s.builds[c] = r
	}
	return r.tc, r.err
}

// current returns what sl serves once given c, the newest stored
// Certificate it follows, and, when it is an earlier one because c is not
// served, why not.
func (sl *slot) current(c *spec.Certificate, now time.Time, build func(*spec.Certificate) (*tls.Certificate, error)) (b *tls.Certificate, stale, err error) {
	if c == sl.from && sl.cached != nil {
		return sl.cached, nil, nil
	}
	if c != sl.bad {
		sl.bad = c
		sl.pending, sl.badErr = build(c)
	}
	if sl.pending != nil {
		// An invalid certificate is still better than none, or than an
		// invalid earlier one: take it then, and Ready says so.
		sl.badErr = validity(sl.pending.Leaf, now)
		if sl.badErr == nil || sl.cached == nil || validity(sl.cached.Leaf, now) != nil {
			sl.from, sl.cached = c, sl.pending
			sl.bad, sl.badErr, sl.pending = nil, nil, nil
			return sl.cached, nil, nil
		}
	}
	if sl.cached != nil {
		return sl.cached, sl.badErr, nil
	}
	return nil, nil, sl.badErr
}

// wanted is the name the client asked for: the server name it sent, or,
// when it sent none, the address it connected to; "" when neither is known.
func wanted(hello *tls.ClientHelloInfo) string {
	if hello.ServerName != "" {
		return hello.ServerName
	}
	if hello.Conn != nil {
		if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
			return a.IP.String()
		}
	}
	return ""
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

// build makes what crypto/tls serves of c: the leaf, then its chain, as
// the loader ordered them.
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
// earlier certificate served because the stored one is not. With several
// Certificates served by name, each of the others is named before what is
// said of it.
func (s *Source) Ready() (bool, string) {
	def, docs, err := s.lookup()
	if err != nil {
		return false, err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prune(docs)
	now := s.now()
	b, stale, err := s.def.current(def, now, s.build)
	if err != nil {
		return false, err.Error()
	}
	why := concerns(b, stale, now)
	if s.name == "" && len(docs) > 1 {
		for _, d := range docs {
			if d.c == def {
				continue // said above
			}
			db, dstale, derr := s.slot(d.name).current(d.c, now, s.build)
			var dwhy []string
			if derr != nil {
				dwhy = []string{fmt.Sprintf("not served: %v", derr)}
			} else {
				dwhy = concerns(db, dstale, now)
			}
			for _, w := range dwhy {
				why = append(why, fmt.Sprintf("Certificate %q: %s", d.name, w))
			}
		}
	}
	return true, strings.Join(why, "; ")
}

// concerns is what Ready says of b, served instead of a newer certificate
// when stale says why.
func concerns(b *tls.Certificate, stale error, now time.Time) []string {
	var why []string
	leaf := b.Leaf
	if stale != nil {
		why = append(why, fmt.Sprintf("serving the previous certificate %q instead of the new one: %v", leaf.Subject, stale))
	}
	switch {
	case !now.Before(leaf.NotAfter):
		why = append(why, fmt.Sprintf("serving a certificate that expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339)))
	case now.Before(leaf.NotBefore):
		why = append(why, fmt.Sprintf("serving a certificate not valid before %s", leaf.NotBefore.UTC().Format(time.RFC3339)))
	}
	return why
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
	_, _, err := s.lookup()
	return err == nil
}

// lookup returns the stored Certificate served by default and, in name
// order, every one of usage tls the Source may serve (one only when a name
// is given).
func (s *Source) lookup() (def *spec.Certificate, docs []stored, err error) {
	res, err := s.st.Read().Resources(spec.KindCertificate)
	if err != nil {
		return nil, nil, fmt.Errorf("tlscert: %w", err)
	}
	// A Certificate stored without its key (the etcd mirror drops a key
	// another daemon resolved, until this one's reconciler resolves it
	// again) is the default when there is no other: build then refuses it
	// and the last good one goes on being served, rather than none at all.
	var keyless *spec.Certificate
	for _, r := range res {
		c, ok := r.Spec.(*spec.Certificate)
		if !ok || !chosen(s.name, r.Name, c) || len(c.DER) == 0 {
			continue
		}
		docs = append(docs, stored{name: r.Name, c: c})
		switch {
		case c.PrivateKey == nil:
			if keyless == nil {
				keyless = c
			}
		case def == nil:
			def = c
		}
	}
	if def == nil {
		def = keyless
	}
	if def == nil {
		return nil, nil, ErrNoCertificate
	}
	return def, docs, nil
}
