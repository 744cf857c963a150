package scim

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// benchServer is a server on a store with the default configuration, driven
// through ServeHTTP (no network), so benchmarks measure the server's CPU.
type benchServer struct {
	st  *store.Store
	srv *Server
}

func newBenchServer(b *testing.B) *benchServer {
	b.Helper()
	st, err := store.New(store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	err = st.Update(context.Background(), func(txn *store.Txn) error {
		return txn.Insert(store.TableResources, &store.Resource{Kind: spec.KindScimProvisioning, Name: "scim", Spec: defaultConfig()})
	})
	if err != nil {
		b.Fatal(err)
	}
	return &benchServer{st: st, srv: NewServer(st, Options{Logger: slog.New(slog.DiscardHandler)})}
}

func (s *benchServer) serve(b *testing.B, method, path, body string, want int) *httptest.ResponseRecorder {
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, spec.DefaultScimBasePath+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ContentType)
	} else {
		req = httptest.NewRequest(method, spec.DefaultScimBasePath+path, nil)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	w := httptest.NewRecorder()
	s.srv.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body)
	}
	return w
}

func entraUser(i int) string {
	name := fmt.Sprintf("user%07d@contoso.com", i)
	return fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"u%07d","userName":%q,"active":true,"displayName":"User %d","emails":[{"primary":true,"type":"work","value":%q}],"meta":{"resourceType":"User"},"name":{"formatted":"Some User","familyName":"User","givenName":"Some"},"roles":[]}`, i, name, i, name)
}

// preload stores n users built by the same code path as a POST, in one
// write that bypasses the committer.
func (s *benchServer) preload(b *testing.B, n int) (attrBytes int) {
	b.Helper()
	cfg, err := s.srv.config()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	err = s.st.Load(func(txn *store.Txn) error {
		for i := range n {
			body, err := decodeObject([]byte(entraUser(i)))
			if err != nil {
				return err
			}
			doc, err := normalizeUser(body)
			if err != nil {
				return err
			}
			u, err := userRecord(cfg, doc)
			if err != nil {
				return err
			}
			u.ID, u.Created, u.Modified, u.Version = newID(), now, now, 1
			attrBytes += len(u.Attributes)
			if err := txn.Insert(store.TableUsers, u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return attrBytes
}

func BenchmarkCreateUser(b *testing.B) {
	s := newBenchServer(b)
	i := 0
	for b.Loop() {
		s.serve(b, "POST", "/Users", entraUser(i), 201)
		i++
	}
}

func BenchmarkLookupUserNameInProcess(b *testing.B) {
	s := newBenchServer(b)
	s.preload(b, 10000)
	i := 0
	for b.Loop() {
		path := "/Users?filter=" + url.QueryEscape(fmt.Sprintf(`userName eq "user%07d@contoso.com"`, i%10000))
		s.serve(b, "GET", path, "", 200)
		i++
	}
}

func BenchmarkPatchUser(b *testing.B) {
	s := newBenchServer(b)
	id := idOf(b, s.serve(b, "POST", "/Users", entraUser(0), 201))
	i := 0
	for b.Loop() {
		body := fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"emails[type eq \"work\"].value","value":"n%d@contoso.com"},{"op":"replace","value":{"name.givenName":"G%d","name.familyName":"F"}}]}`, i, i)
		s.serve(b, "PATCH", "/Users/"+id, body, 200)
		i++
	}
}

func idOf(b *testing.B, w *httptest.ResponseRecorder) string {
	var v struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		b.Fatal(err)
	}
	return v.ID
}

// BenchmarkGroupMemberBatch is the member phase of an Entra initial cycle:
// 100,000 users, groups of 1,000 filled by PATCHes of 100 members, so that
// at -benchtime 10000x every user ends up in 10 groups.
func BenchmarkGroupMemberBatch(b *testing.B) {
	s := newBenchServer(b)
	const users, perGroup, perPatch = 100_000, 1000, 100
	s.preload(b, users)
	var ids []string
	it, err := s.st.Read().Get(store.TableUsers, store.IndexID)
	if err != nil {
		b.Fatal(err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		ids = append(ids, raw.(*store.User).ID)
	}
	var gid string
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		g, part := n/(perGroup/perPatch), n%(perGroup/perPatch)
		if part == 0 {
			gid = idOf(b, s.serve(b, "POST", "/Groups", fmt.Sprintf(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"g%d"}`, g), 201))
		}
		var body strings.Builder
		body.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[`)
		for j := range perPatch {
			if j > 0 {
				body.WriteByte(',')
			}
			body.WriteString(`{"$ref":null,"value":"` + ids[(g*perPatch+part*perPatch+j)%users] + `"}`)
		}
		body.WriteString(`]}]}`)
		s.serve(b, "PATCH", "/Groups/"+gid, body.String(), 204)
		n++
	}
}

// benchUsers is the store size of the lookup-latency and memory
// benchmarks: IDRECON_BENCH_USERS, default 1,000,000.
func benchUsers(b *testing.B) int {
	if v, err := strconv.Atoi(os.Getenv("IDRECON_BENCH_USERS")); err == nil && v > 0 {
		return v
	}
	if testing.Short() {
		return 100_000
	}
	return 1_000_000
}

// BenchmarkLookupLatency measures userName eq lookups over loopback HTTP
// with benchUsers users stored and reports latency percentiles.
func BenchmarkLookupLatency(b *testing.B) {
	n := benchUsers(b)
	s := newBenchServer(b)
	s.preload(b, n)
	ts := httptest.NewServer(s.srv)
	defer ts.Close()
	client := ts.Client()
	var lat []time.Duration
	i := 0
	for b.Loop() {
		u := ts.URL + spec.DefaultScimBasePath + "/Users?aadOptscim062020&filter=" + url.QueryEscape(fmt.Sprintf(`userName eq "USER%07d@contoso.com"`, (i*7919)%n))
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var body struct{ TotalResults int }
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if err != nil || body.TotalResults != 1 {
			b.Fatalf("lookup %d: %v %+v", i, err, body)
		}
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(n), "users")
}

// BenchmarkUserMemory reports heap bytes per stored user beyond the
// attribute bytes, measured after GC.
func BenchmarkUserMemory(b *testing.B) {
	n := benchUsers(b)
	for b.Loop() {
		s := newBenchServer(b)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		attrs := s.preload(b, n)
		runtime.GC()
		runtime.ReadMemStats(&after)
		total := float64(after.HeapAlloc) - float64(before.HeapAlloc)
		b.ReportMetric(total/float64(n), "heap-B/user")
		b.ReportMetric(float64(attrs)/float64(n), "attr-B/user")
		b.ReportMetric((total-float64(attrs))/float64(n), "overhead-B/user")
		runtime.KeepAlive(s)
	}
}

// BenchmarkPageThroughUsers reads the unfiltered user list page after
// page (1,000 users each), as a client reading every user back does, with
// benchUsers users stored: each page starts where the one before it
// ended, so a page costs the same at the end of the list as at its start.
// BenchmarkPageThroughUsers/counted reads pages spread over the list with
// no page before them to start from: each counts the users before it.
func BenchmarkPageThroughUsers(b *testing.B) {
	s := newBenchServer(b)
	n := benchUsers(b)
	s.preload(b, n)
	pages := n / MaxResults
	for _, counted := range []bool{false, true} {
		name := "sequential"
		if counted {
			name = "counted"
		}
		b.Run(name, func(b *testing.B) {
			p := 0
			for b.Loop() {
				if counted {
					s.srv.cursors = cursors{}
				}
				at := p % pages
				if counted {
					at = p * 97 % pages // all over the list, as p grows
				}
				start := at*MaxResults + 1
				w := s.serve(b, "GET", fmt.Sprintf("/Users?startIndex=%d&count=%d", start, MaxResults), "", 200)
				if w.Body.Len() < MaxResults*100 {
					b.Fatalf("page at %d: %d bytes", start, w.Body.Len())
				}
				p++
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/page")
		})
	}
}

// BenchmarkBodyChecks measures what every body pays for refusing keys that
// differ only in case or name a member twice, beside what decoding it
// costs: the general check on Entra's user POST, and the fast path's key
// scan on a 100-member PATCH.
func BenchmarkBodyChecks(b *testing.B) {
	user := []byte(entraUser(1))
	var members strings.Builder
	members.WriteString(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"Add","path":"members","value":[`)
	for j := range 100 {
		if j > 0 {
			members.WriteByte(',')
		}
		fmt.Fprintf(&members, `{"$ref":null,"value":"%026d"}`, j)
	}
	members.WriteString(`]}]}`)
	batch := []byte(members.String())
	doc, err := decodeObject(user)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decodeObject/user", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeObject(user); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DistinctNames/user", func(b *testing.B) {
		for b.Loop() {
			if err := schema.DistinctNames(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("entraMemberDelta/100", func(b *testing.B) {
		for b.Loop() {
			if _, ok := entraMemberDelta(batch); !ok {
				b.Fatal("not taken")
			}
		}
	})
	b.Run("entraKeys/100", func(b *testing.B) {
		for b.Loop() {
			if !entraKeys(batch) {
				b.Fatal("refused")
			}
		}
	})
	b.Run("scanMembers/user", func(b *testing.B) {
		for b.Loop() {
			if err := scanMembers(user); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("scanMembers/100", func(b *testing.B) {
		for b.Loop() {
			if err := scanMembers(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}
