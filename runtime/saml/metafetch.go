package saml

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"

	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/redact"
	"github.com/idrecon/idrecon/spec/samlmeta"
)

// maxMetadataRedirects bounds the redirects followed for metadataURL; Entra
// serves app metadata without any.
const maxMetadataRedirects = 3

// ErrMetadataURLRefused is wrapped by every refusal of a metadataURL, or of
// a redirect from it, by the fetch policy.
var ErrMetadataURLRefused = errors.New("idp metadataURL refused")

// fetchPolicy is what the spec allows a metadataURL fetch to reach. The
// daemon fetches from wherever the spec says, so without it a spec (or a
// redirect from the IdP's host) could aim the fetch at the admin API on
// loopback or the cloud metadata service, and read the answer back in
// status.
type fetchPolicy struct {
	allowHTTP    bool
	allowPrivate bool
}

func policyOf(idp spec.SamlIDP) fetchPolicy {
	return fetchPolicy{allowHTTP: idp.AllowInsecureMetadataURL, allowPrivate: idp.AllowPrivateMetadataHost}
}

func refused(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMetadataURLRefused}, args...)...)
}

// checkURL judges a URL to fetch, the first or one redirected to.
func (p fetchPolicy) checkURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.allowHTTP:
	case u.Scheme == "http":
		return refused("%s must be https (idp.allowInsecureMetadataURL permits http)", redact.URL(u.String()))
	default:
		return refused("%s is not an http(s) URL", redact.URL(u.String()))
	}
	if u.Host == "" || u.User != nil {
		return refused("%s must name a host and no user", redact.URL(u.String()))
	}
	return nil
}

// checkAddr judges the address about to be dialled, after name resolution,
// so a name that resolves (or is rebound) to a refused address is refused.
func (p fetchPolicy) checkAddr(a netip.Addr) error {
	a = reached(a)
	if kind := neverKind(a); kind != "" {
		return refused("%s is %s address", a, kind)
	}
	if kind := nonPublicKind(a); kind != "" && !p.allowPrivate {
		return refused("%s is %s address (idp.allowPrivateMetadataHost permits it)", a, kind)
	}
	return nil
}

// neverKind names the addresses no IdP is reached at, whatever the spec
// allows: 169.254.169.254 and its IPv6 kin serve cloud credentials, and
// 0.0.0.0 reaches this host.
func neverKind(a netip.Addr) string {
	switch {
	case a.IsUnspecified() || (a.Is4() && a.As4()[0] == 0):
		return "an unspecified"
	case a.IsLinkLocalUnicast():
		return "a link-local"
	case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "a multicast"
	}
	return ""
}

// nonPublic are the special-purpose ranges (IANA IPv4 and IPv6
// special-purpose address registries) not reachable on the public
// internet, beyond those netip classifies.
var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (carrier-grade NAT)
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("2001::/23"),       // IETF protocol assignments
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("2002::/16"),       // 6to4: tunnels to any IPv4 address
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

// nat64 is the well-known NAT64 prefix, through which an IPv6-only host
// reaches IPv4 addresses.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// reached is the address a connection to a ends at: the IPv4 address
// inside an IPv4-mapped or a NAT64 address.
func reached(a netip.Addr) netip.Addr {
	if nat64.Contains(a) {
		b := a.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a.Unmap()
}

// nonPublicKind names the addresses that are not on the public internet.
func nonPublicKind(a netip.Addr) string {
	switch {
	case a.IsLoopback():
		return "a loopback"
	case a.IsPrivate():
		return "a private"
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return "a non-public"
		}
	}
	return ""
}

// metadataClient makes the client for one metadataURL fetch under p: no
// proxy (a proxy would dial the IdP itself, out of reach of the address
// check), every dialled address and every redirect judged by p.
func (s *Server) metadataClient(p fetchPolicy) *http.Client {
	dialer := &net.Dialer{
		Timeout: metadataFetchTimeout,
		ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return refused("unexpected dial address %q", address)
			}
			return p.checkAddr(ap.Addr())
		},
	}
	return &http.Client{
		Timeout: metadataFetchTimeout,
		Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            dialer.DialContext,
			TLSClientConfig:        &tls.Config{RootCAs: s.metadataRoots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    10 * time.Second,
			ResponseHeaderTimeout:  metadataFetchTimeout,
			MaxResponseHeaderBytes: 64 << 10,
			// One fetch a day: keep no idle connection behind.
			DisableKeepAlives: true,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) > maxMetadataRedirects {
				return refused("more than %d redirects", maxMetadataRedirects)
			}
			return p.checkURL(req.URL)
		},
	}
}

// fetchMetadata downloads the IdP metadata of idp.MetadataURL under the
// spec's fetch policy, with a deadline and a size cap.
func (s *Server) fetchMetadata(ctx context.Context, idp spec.SamlIDP) ([]byte, error) {
	u, err := url.Parse(idp.MetadataURL)
	if err != nil {
		// url.Parse quotes the part it stopped at, which may be a
		// password ("invalid port"); the loader refuses such a URL first.
		return nil, errors.New("metadataURL: not a URL")
	}
	p := policyOf(idp)
	if err := p.checkURL(u); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, metadataFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, errors.New("metadataURL: not a URL")
	}
	resp, err := s.metadataClient(p).Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch idp metadata: %w", hideURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch idp metadata: HTTP %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, samlmeta.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("fetch idp metadata: %w", err)
	}
	if len(b) > samlmeta.MaxSize {
		return nil, fmt.Errorf("fetch idp metadata: larger than %d bytes", samlmeta.MaxSize)
	}
	return b, nil
}

// hideURL redacts the URL a *url.Error names (net/http's and url.Parse's
// errors quote the URL whole): why a fetch failed reaches status and the
// log, and the URL may carry a token.
func hideURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL)
	}
	return err
}
