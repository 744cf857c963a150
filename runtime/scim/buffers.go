package scim

import "sync"

// Request bodies and rendered responses live in pooled buffers for the
// length of one request: at thousands of requests a second, a fresh body
// and response per request was a fifth of what the SCIM paths allocate,
// and the collector's work grows with it. Nothing the store keeps points
// into them: the JSON decoder copies every string it returns, and a
// response is copied into the connection's buffer by Write.
var buffers = sync.Pool{New: func() any { return new([]byte) }}

// maxPooled is the largest buffer put back: a rare large request (a
// member list of thousands) must not stay resident in the pool.
const maxPooled = 64 << 10

// buffer returns an empty buffer that stays valid until the request ends,
// when serve puts it back.
func (r *request) buffer() *[]byte {
	b := buffers.Get().(*[]byte)
	*b = (*b)[:0]
	r.buffers = append(r.buffers, b)
	return b
}

// release puts the request's buffers back; nothing may use them after.
func (r *request) release() {
	for _, b := range r.buffers {
		if cap(*b) <= maxPooled {
			buffers.Put(b)
		}
	}
	r.buffers = nil
}
