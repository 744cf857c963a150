package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/idrecon/idrecon/runtime/gateway"
)

// plantedCookies are Set-Cookie values an upstream must never get to a
// client, whatever part of a response carries them.
var plantedCookies = []string{"idrecon_session=planted; Path=/", "=idrecon_session=planted", "idrecon_console=planted"}

// informational is one 1xx response as the client read it.
type informational struct {
	code   int
	header textproto.MIMEHeader
}

// getWith1xx sends a signed-in GET to url and returns the final response
// and every 1xx response that came before it, as read off the wire.
func getWith1xx(t *testing.T, url string) (*http.Response, []informational) {
	t.Helper()
	return getWith1xxBy(t, noRedirects, url)
}

func getWith1xxBy(t *testing.T, client *http.Client, url string) (*http.Response, []informational) {
	t.Helper()
	var mu sync.Mutex
	var got []informational
	trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, informational{code, textproto.MIMEHeader(http.Header(h).Clone())})
		return nil
	}}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), trace), "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: gateway.DefaultSessionCookie, Value: "tok-ann"})
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	mu.Lock()
	defer mu.Unlock()
	return resp, slices.Clone(got)
}

// TestProxyFiltersInformationalResponses: ReverseProxy forwards an
// upstream's 1xx responses (103 Early Hints) from a ClientTrace hook, past
// ModifyResponse. They must go through the same filter as the final
// response: no Set-Cookie for idrecon's cookies, and no hop-by-hop header,
// which the final response loses too.
func TestProxyFiltersInformationalResponses(t *testing.T) {
	const link = "</style.css>; rel=preload; as=style"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Link", link)
		h["Set-Cookie"] = append(slices.Clone(plantedCookies), "JSESSIONID=j1")
		h.Set("Connection", "X-Hop")
		h.Set("X-Hop", "hop")
		h.Set("Keep-Alive", "timeout=1")
		w.WriteHeader(http.StatusEarlyHints)
		clear(h)
		h.Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	_, h1 := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	g, err := gateway.New(gateway.Config{Upstream: up.URL}, gateway.Deps{Sessions: sessions, Decider: deciders, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h2 := httptest.NewUnstartedServer(g)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		proto  int
	}{
		{"HTTP/1.1", noRedirects, h1.URL, 1},
		{"HTTP/2", h2.Client(), h2.URL, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, infos := getWith1xxBy(t, tc.client, tc.url+"/app")
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != tc.proto {
				t.Fatalf("%s %d, want HTTP/%d 200", resp.Proto, resp.StatusCode, tc.proto)
			}
			if len(infos) != 1 || infos[0].code != http.StatusEarlyHints {
				t.Fatalf("1xx responses %v, want one 103", infos)
			}
			h := http.Header(infos[0].header)
			if got := h.Values("Link"); !slices.Equal(got, []string{link}) {
				t.Errorf("103 Link %q, want %q", got, link)
			}
			if got := h["Set-Cookie"]; !slices.Equal(got, []string{"JSESSIONID=j1"}) {
				t.Errorf("103 Set-Cookie %q, want [JSESSIONID=j1]", got)
			}
			for _, k := range []string{"Connection", "X-Hop", "Keep-Alive"} {
				if v, ok := h[k]; ok {
					t.Errorf("103 carries hop-by-hop %s: %q", k, v)
				}
			}
			if c := resp.Header["Set-Cookie"]; c != nil {
				t.Errorf("the 103's cookies leaked into the final response: %q", c)
			}
		})
	}
}

// TestProxyBoundsInformationalResponses: each 1xx the proxy forwards
// resets the transport's limit on response headers, so without a bound an
// upstream could send the client any amount of header bytes, which the
// 1 MiB limit on a response's headers is there to stop.
func TestProxyBoundsInformationalResponses(t *testing.T) {
	const sent = 200
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range sent {
			w.Header().Set("Link", fmt.Sprintf("</%d.css>; rel=preload; as=style; x=%s", i, strings.Repeat("a", 8<<10)))
			w.WriteHeader(http.StatusEarlyHints)
		}
		clear(w.Header())
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})

	resp, infos := getWith1xx(t, srv.URL+"/app")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if len(infos) == 0 || len(infos) >= sent {
		t.Errorf("client got %d of the upstream's %d 1xx responses, want some but not all", len(infos), sent)
	}
}

// TestProxyFiltersResponseTrailers: trailers are a response's header
// section too, one that some clients and proxies merge into the header;
// an upstream cannot set idrecon's cookies through them either, announced
// or not.
func TestProxyFiltersResponseTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "Set-Cookie, X-Checksum")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header()["Set-Cookie"] = append(slices.Clone(plantedCookies), "JSESSIONID=j1")
		w.Header().Set("X-Checksum", "c1")
		w.Header()[http.TrailerPrefix+"Set-Cookie"] = slices.Clone(plantedCookies)
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})

	resp := do(t, "GET", srv.URL+"/app", "tok-ann", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if got := resp.Trailer.Get("X-Checksum"); got != "c1" {
		t.Errorf("trailer X-Checksum %q, want c1", got)
	}
	for _, v := range slices.Concat(resp.Trailer["Set-Cookie"], resp.Header["Set-Cookie"]) {
		if strings.Contains(v, "idrecon_") {
			t.Errorf("upstream cookie reached the client: %q", v)
		}
	}
}

// rawExchange sends raw, a whole HTTP/1.1 request, to srv and returns
// what came back.
func rawExchange(t *testing.T, srv *httptest.Server, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.Status + "\n" + string(b)
}

// TestProxyDropsRequestTrailers: a chunked request's trailers are a header
// section the client writes after the body; a client must not get an
// identity header to the upstream through them.
func TestProxyDropsRequestTrailers(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "header=%q trailer=%q", r.Header.Values("Username"), r.Trailer.Values("Username"))
	}))
	defer up.Close()
	_, srv := newFrontDoor(t, gateway.Config{Upstream: up.URL}, gateway.Deps{})
	host := strings.TrimPrefix(srv.URL, "http://")
	got := rawExchange(t, srv, "POST /app HTTP/1.1\r\nHost: "+host+"\r\nCookie: idrecon_session=tok-ann\r\n"+
		"Transfer-Encoding: chunked\r\nTrailer: Username\r\nConnection: close\r\n\r\n"+
		"4\r\nbody\r\n0\r\nUsername: "+forged+"\r\n\r\n")
	if !strings.HasPrefix(got, "200 ") {
		t.Fatalf("got %q, want 200", got)
	}
	if strings.Contains(got, forged) {
		t.Errorf("upstream saw the client's trailer: %s", got)
	}
}
