package admin

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/spec"
)

// An empty segment ("//") is cleaned away by the router, which redirected
// to the cleaned path: a DELETE or PUT whose name a client forgot to escape
// (kind, then "/x") was sent on, method and body kept, to another resource.
// Like a dot segment, it is refused with a 400.
func TestEmptySegmentRefused(t *testing.T) {
	f := newFixtureEnv(t, nil)
	if code, resp := f.do(t, "PUT", "/v1/resources/Application/x", token, strings.NewReader(`{"versions":["1.0"]}`)); code != http.StatusOK {
		t.Fatalf("PUT: %d %s", code, resp)
	}
	// A client that follows redirects, as Go's and curl -L do.
	client := &http.Client{}
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		for _, p := range []string{"/v1/resources/Application//x", "/v1//resources/Application/x", "/v1/resources//Application/x"} {
			req, _ := http.NewRequest(method, f.srv.URL+p, strings.NewReader(`{"versions":["2.0"]}`))
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "empty segment") {
				t.Errorf("%s %s: %d %s, want 400 naming the empty segment", method, p, resp.StatusCode, b)
			}
		}
	}
	r, _ := f.st.Read().Resource(spec.KindApplication, "x")
	if r == nil || r.Spec.(*spec.Application).Versions[0] != "1.0" {
		t.Errorf("Application x after requests for other paths: %+v", r)
	}
}

// Below /v1 and /debug, nothing is answered without the token, a redirect
// of the router included: it told anyone which routes exist.
func TestNoRedirectWithoutToken(t *testing.T) {
	f := newFixture(t, "")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/v1//status", "/debug/pprof", "/debug//pprof/heap", "/v1/users/../status"} {
		resp, err := client.Get(f.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d (Location %q), want 401", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// The router's redirect to a path's clean form, outside /v1 and /debug,
// keeps its Location when the API answers it in its error JSON: a 307 that
// says nowhere to go is an answer no client can follow.
func TestUnroutedRedirectKeepsLocation(t *testing.T) {
	f := newFixture(t, "")
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"//healthz", "/x/../healthz"} {
		req, _ := http.NewRequest("PUT", f.srv.URL+p, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 3 && resp.Header.Get("Location") != "/healthz" {
			t.Errorf("PUT %s: %d with Location %q, want /healthz", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

// A path that reaches /v1 or /debug only once cleaned ("/./v1/status",
// "/x/../v1/…") was answered without the token: the router's redirect for
// a route that exists, in HTML, and the API's JSON for one that does not,
// so anyone could tell which routes and methods the daemon serves. And with
// the token, a dot segment outside /v1 escaped the refusal of dot segments,
// and the redirect carried a DELETE to the resource its cleaning named.
func TestPathsCleanedIntoTheAPINeedTheToken(t *testing.T) {
	f := newFixtureEnv(t, nil)
	for _, name := range []string{"x", "y"} {
		if code, resp := f.do(t, "PUT", "/v1/resources/Application/"+name, token, strings.NewReader(`{"versions":["1.0"]}`)); code != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", name, code, resp)
		}
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/./v1/status", "/./v1/nope", "/x/../v1/status", "/x/..//v1/backup", "/./debug/pprof/", "/./debug/nope"} {
		for _, method := range []string{"GET", "POST"} {
			req, _ := http.NewRequest(method, f.srv.URL+p, nil)
			resp, err := noFollow.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without the token: %d (Location %q, %s), want 401", method, p, resp.StatusCode,
					resp.Header.Get("Location"), resp.Header.Get("Content-Type"))
			}
		}
	}
	// With the token, as a client that follows redirects.
	req, _ := http.NewRequest("DELETE", f.srv.URL+"/x/../v1/resources/Application/y/../x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "segment") {
		t.Errorf("DELETE with dot segments outside /v1: %d %s, want 400 naming the dot segment", resp.StatusCode, b)
	}
	if r, _ := f.st.Read().Resource(spec.KindApplication, "x"); r == nil {
		t.Errorf("Application x deleted by a DELETE of another path")
	}
}
