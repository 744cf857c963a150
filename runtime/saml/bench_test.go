package saml

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/internal/testidp"
	"github.com/idrecon/idrecon/spec"
)

// benchResponse is Entra's default shape (assertion signed, RSA-SHA256,
// 2048-bit key) with the claims it sends, about 2 KB before base64.
func benchResponse(b *testing.B, e *env) testidp.ResponseOptions {
	o := e.good("")
	o.Attributes = o.Attributes[:2]
	return o
}

// BenchmarkACS compares gosaml2's bare RetrieveAssertionInfo with our full
// stateless validation on the same input, and measures the whole ACS
// handler (validation, replay cache, authorisation, session) in parallel.
func BenchmarkACS(b *testing.B) {
	e := newEnv(b, func(sp *spec.SamlServiceProvider) { sp.AllowIDPInitiated = true })
	c, err := e.srv.current(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	o := benchResponse(b, e)
	encoded := encode(b, o)
	raw := len(encoded) * 3 / 4
	now := e.clock.Now()

	b.Logf("response: %d bytes", raw)
	b.Run("gosaml2-RetrieveAssertionInfo", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := c.saml.RetrieveAssertionInfo(encoded); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("checkResponse", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			if _, err := checkResponse(c, encoded, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Interleaved, so machine load hits both sides alike: the extra cost of
	// our checks over gosaml2's own, as a percentage.
	b.Run("overhead", func(b *testing.B) {
		var lib, ours time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := c.saml.RetrieveAssertionInfo(encoded); err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			if _, err := checkResponse(c, encoded, now); err != nil {
				b.Fatal(err)
			}
			lib, ours = lib+t1.Sub(t0), ours+time.Since(t1)
		}
		b.ReportMetric(100*(float64(ours)/float64(lib)-1), "overhead-%")
	})
	b.Run("handler-parallel", func(b *testing.B) {
		// Distinct assertions, so the replay cache lets each one in once.
		const pool = 512
		bodies := make([]string, pool)
		for i := range bodies {
			p := o
			p.AssertionID = "_" + testidp.NewID()
			bodies[i] = url.Values{"SAMLResponse": {encode(b, p)}}.Encode()
		}
		var n atomic.Int64
		b.ResetTimer()
		defer cpuPerOp(b)()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				// One user signs in throughout: emptied well before
				// the user's bound, which parallel sign-ins overshoot.
				if i%min(pool, MaxSignInsPerUser/2) == 0 {
					e.replayTable().reset()
					e.sessionTable().reset()
				}
				req := httptest.NewRequest(http.MethodPost, e.ts.URL+"/saml/acs", strings.NewReader(bodies[i%pool]))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				w := httptest.NewRecorder()
				e.srv.ServeHTTP(w, req)
				if w.Code != http.StatusSeeOther && w.Code != http.StatusForbidden {
					b.Errorf("status %d", w.Code)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sign-ins/s")
	})
}

// cpuPerOp reports process CPU time per operation next to wall time: on a
// shared, loaded machine it is the figure that says what one sign-in costs
// (sign-ins/s per core = 1e9 / cpu-ns/op).
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		if b.N > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		}
	}
}

func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkLogin is GET /saml/login, which anyone may call: what it costs
// the server is what a flood of it costs.
func BenchmarkLogin(b *testing.B) {
	e := newEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, e.ts.URL+"/saml/login", nil))
		if w.Code != http.StatusFound {
			b.Fatalf("status %d", w.Code)
		}
	}
}
