package source

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/net/proxy"
)

// go-git's ssh transport takes no context for connecting: only the TCP
// dial is bounded, and a server that accepts and then says nothing (a hung
// sshd, a load balancer that black-holes) holds the SSH handshake, and so
// the fetch and the source's lock, for ever, past the fetch timeout and
// past shutdown. Its one hook into connecting is the proxy dialer named by
// FetchOptions.ProxyOptions, so a fetch over ssh names a dialer of this
// scheme, which closes the connection once the fetch's context is done.
const fetchDialScheme = "idrecon-fetch"

var (
	fetchDials   sync.Map // fetch id -> context.Context
	fetchDialSeq atomic.Uint64
)

func init() {
	proxy.RegisterDialerType(fetchDialScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		ctx, ok := fetchDials.Load(u.Host)
		if !ok {
			return nil, fmt.Errorf("ssh connection for a fetch that has ended")
		}
		return boundDialer{ctx.(context.Context)}, nil
	})
}

// boundSSHDial returns the proxy options that tie a fetch's ssh
// connection to ctx, and the function that forgets ctx once the fetch
// returned.
func boundSSHDial(ctx context.Context) (transport.ProxyOptions, func()) {
	id := "f" + strconv.FormatUint(fetchDialSeq.Add(1), 10)
	fetchDials.Store(id, ctx)
	return transport.ProxyOptions{URL: fetchDialScheme + "://" + id}, func() { fetchDials.Delete(id) }
}

type boundDialer struct{ fetch context.Context }

func (d boundDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext dials as go-git does without a proxy option (honouring
// ALL_PROXY and NO_PROXY), within both go-git's dial timeout (ctx) and
// the fetch's context.
func (d boundDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.fetch, cancel)
	defer stop()
	conn, err := proxy.Dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	closeOnDone := context.AfterFunc(d.fetch, func() { conn.Close() })
	return &boundConn{Conn: conn, stop: closeOnDone}, nil
}

type boundConn struct {
	net.Conn
	stop func() bool
}

func (c *boundConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
