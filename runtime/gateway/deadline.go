package gateway

import (
	"io"
	"net/http"
	"sync"
	"time"
)

// progress turns the server's read and write timeouts, which bound a whole
// exchange from its start, into bounds on each read of the request body
// and each write of the response, for the one proxied request it is made
// for. An event stream, a long download or a slow upload then lasts as
// long as the client keeps up, and a client that stops reading or sending
// still ends the exchange, and so frees the upstream connection, once one
// operation has waited the timeout (nginx's client_body_timeout and
// send_timeout work the same way). With a timeout unset on the server,
// that side stays unbounded, as the server's owner chose.
type progress struct {
	rc        *http.ResponseController
	readIdle  time.Duration
	writeIdle time.Duration

	// mu orders the body's reads, which the transport makes from its own
	// goroutine and may still make after the handler returned, against
	// end: once the server owns the connection again, for its next
	// request, no deadline of this one may touch it.
	mu    sync.Mutex
	ended bool
}

// newProgress applies the server's timeouts to r as progress bounds: it
// returns r with its body wrapped and the writer to proxy to. The writer
// must be one Unwrap leads from to the server's.
func newProgress(w http.ResponseWriter, r *http.Request) (*progress, *http.Request) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil || srv.ReadTimeout <= 0 && srv.WriteTimeout <= 0 {
		return nil, r
	}
	p := &progress{rc: http.NewResponseController(w), readIdle: srv.ReadTimeout, writeIdle: srv.WriteTimeout}
	if p.readIdle > 0 {
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			// Nothing more to read: a deadline left on the connection
			// would only fail the server's background read and so cancel
			// the request.
			p.disarm(true)
		} else {
			c := *r
			c.Body = &progressBody{ReadCloser: r.Body, p: p}
			r = &c
		}
	}
	p.disarm(false)
	return p, r
}

// arm gives the read or write about to start the timeout from now, and
// disarm lifts it once it is over: between operations the exchange may
// idle for as long as the upstream takes (an event stream between events),
// and HTTP/2 enforces a stream's deadline with a timer that fires whether
// or not an operation is waiting. On HTTP/1, at the end of the body the
// server starts reading the connection in the background, and a deadline
// passing there cancels the request.
func (p *progress) arm(read bool)    { p.deadline(read, true) }
func (p *progress) disarm(read bool) { p.deadline(read, false) }

func (p *progress) deadline(read, arm bool) {
	if p == nil {
		return
	}
	idle, set := p.writeIdle, p.rc.SetWriteDeadline
	if read {
		idle, set = p.readIdle, p.rc.SetReadDeadline
	}
	if idle <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ended {
		return
	}
	var at time.Time
	if arm {
		at = time.Now().Add(idle)
	}
	_ = set(at)
}

// end leaves the connection to the server, with the write timeout for
// what it still writes of this response.
func (p *progress) end() {
	if p == nil {
		return
	}
	p.arm(false)
	p.mu.Lock()
	p.ended = true
	p.mu.Unlock()
}

type progressBody struct {
	io.ReadCloser
	p *progress
}

func (b *progressBody) Read(buf []byte) (int, error) {
	b.p.arm(true)
	defer b.p.disarm(true)
	return b.ReadCloser.Read(buf)
}
