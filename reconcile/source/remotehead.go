package source

import (
	"context"

	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
)

// A remote whose HEAD is detached (a bare repository with HEAD set to a
// commit, a work tree checked out at one) advertises HEAD as a bare hash.
// go-git then guesses HEAD's branch from the other refs and, when none has
// that hash, fails every fetch with "reference not found", even one that
// names a branch and never looks at HEAD. Real git ignores such a HEAD.
// go-git offers no per-fetch hook, so its transports are wrapped once, here,
// for the whole process; the wrapper only turns that failure into a success.
func init() {
	for scheme, t := range client.Protocols {
		if t != nil {
			client.InstallProtocol(scheme, detachedHeadTransport{t})
		}
	}
}

type detachedHeadTransport struct{ transport.Transport }

func (t detachedHeadTransport) NewUploadPackSession(ep *transport.Endpoint, auth transport.AuthMethod) (transport.UploadPackSession, error) {
	s, err := t.Transport.NewUploadPackSession(ep, auth)
	if err != nil {
		return nil, err
	}
	return detachedHeadSession{s}, nil
}

type detachedHeadSession struct{ transport.UploadPackSession }

func (s detachedHeadSession) AdvertisedReferences() (*packp.AdvRefs, error) {
	ar, err := s.UploadPackSession.AdvertisedReferences()
	return dropDetachedHead(ar), err
}

func (s detachedHeadSession) AdvertisedReferencesContext(ctx context.Context) (*packp.AdvRefs, error) {
	ar, err := s.UploadPackSession.AdvertisedReferencesContext(ctx)
	return dropDetachedHead(ar), err
}

// dropDetachedHead forgets an advertised HEAD that names no ref, so that
// go-git has nothing to guess. HEAD is then absent from the remote's refs,
// like a HEAD that names a missing branch: a source following the default
// branch falls back to "main", as it does for that one.
func dropDetachedHead(ar *packp.AdvRefs) *packp.AdvRefs {
	if ar == nil || ar.Head == nil || ar.Capabilities.Supports(capability.SymRef) {
		// No HEAD, or the server said which branch it names: go-git
		// does not guess.
		return ar
	}
	for _, h := range ar.References {
		if h == *ar.Head {
			return ar // go-git's guess finds a ref with HEAD's commit
		}
	}
	// A copy: the session may keep the advertisement it returned.
	c := *ar
	c.Head = nil
	return &c
}
