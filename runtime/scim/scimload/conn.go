package scimload

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// conns is a pool of keep-alive HTTP/1.1 connections to one plain-HTTP
// host, each carrying one request at a time, written and read by the
// goroutine that sends it. net/http's Transport hands every request to a
// writer and a reader goroutine of the connection: two goroutine switches
// per request, which the load run pays on the cores of the server it
// measures. Entra's own costs are not on the server's machine.
type conns struct {
	addr    string // host:port to dial, and the Host header
	timeout time.Duration
	idle    chan *conn
}

type conn struct {
	nc net.Conn
	br *bufio.Reader
	bw *bufio.Writer
}

func newConns(addr string, size int, timeout time.Duration) *conns {
	return &conns{addr: addr, timeout: timeout, idle: make(chan *conn, size)}
}

// do sends a request for target (path and query) and returns the response's
// status and body.
func (p *conns) do(ctx context.Context, method, target, token string, body []byte) (int, []byte, error) {
	c, reused, err := p.get(ctx)
	if err != nil {
		return 0, nil, err
	}
	status, out, err := p.roundTrip(ctx, c, method, target, token, body)
	if err != nil && reused && errors.Is(err, io.EOF) {
		// The server closed an idle connection before it read the request:
		// nothing was processed, so sending it again is safe.
		if c, err = p.dial(ctx); err != nil {
			return 0, nil, err
		}
		status, out, err = p.roundTrip(ctx, c, method, target, token, body)
	}
	return status, out, err
}

func (p *conns) roundTrip(ctx context.Context, c *conn, method, target, token string, body []byte) (int, []byte, error) {
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c.nc.SetDeadline(time.Now().Add(p.timeout))
	w := c.bw
	w.WriteString(method)
	w.WriteByte(' ')
	w.WriteString(target)
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(p.addr)
	w.WriteString("\r\nUser-Agent: idrecon-load\r\nAuthorization: Bearer ")
	w.WriteString(token)
	if body != nil {
		w.WriteString("\r\nContent-Type: application/scim+json\r\nContent-Length: ")
		w.WriteString(strconv.Itoa(len(body)))
	}
	w.WriteString("\r\n\r\n")
	w.Write(body)
	if err := w.Flush(); err != nil {
		c.nc.Close()
		return 0, nil, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.nc.Close()
		return 0, nil, err
	}
	out, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.Close {
		c.nc.Close()
	} else {
		p.put(c)
	}
	return res.StatusCode, out, err
}

func (p *conns) get(ctx context.Context) (c *conn, reused bool, err error) {
	select {
	case c := <-p.idle:
		return c, true, nil
	default:
	}
	c, err = p.dial(ctx)
	return c, false, err
}

func (p *conns) dial(ctx context.Context) (*conn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

func (p *conns) put(c *conn) {
	select {
	case p.idle <- c:
	default:
		c.nc.Close()
	}
}

// close closes the idle connections.
func (p *conns) close() {
	for {
		select {
		case c := <-p.idle:
			c.nc.Close()
		default:
			return
		}
	}
}
