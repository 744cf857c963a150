package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/scim/scimload"
)

// cpuFakeArg, as the first argument, makes the test binary serve
// serveCPUFake: a server process whose CPU the test dictates.
const cpuFakeArg = "cpu-fake-serve"

const cpuFakeServing = "cpu fake serving"

// burn uses d of this process's CPU.
func burn(d time.Duration) {
	var ru syscall.Rusage
	used := func() time.Duration {
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for end := used() + d; used() < end; {
	}
}

// serveCPUFake answers a cycle's lookups and creates at once, and a
// read-back page only after burning a second of CPU; its group page is one
// group of 600,000 members, costly for the client to decode.
func serveCPUFake() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	var big bytes.Buffer
	big.WriteString(`{"totalResults":1,"Resources":[{"id":"big","members":[`)
	for i := range 600_000 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"value":"m%d"}`, i)
	}
	big.WriteString(`]}]}`)
	var mu sync.Mutex
	var users []map[string]any
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/scim+json")
		switch {
		case r.Method == "GET" && r.URL.Query().Has("filter"):
			fmt.Fprint(w, `{"totalResults":0,"Resources":[]}`)
		case r.Method == "POST":
			mu.Lock()
			id := "u" + strconv.Itoa(len(users))
			users = append(users, map[string]any{"id": id, "active": true})
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%q}`, id)
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/Users"):
			burn(time.Second)
			mu.Lock()
			b, _ := json.Marshal(map[string]any{"totalResults": len(users), "Resources": users})
			mu.Unlock()
			w.Write(b)
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/Groups"):
			burn(time.Second)
			w.Write(big.Bytes())
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	})
	line, _ := json.Marshal(map[string]string{"msg": cpuFakeServing, "scim": "http://" + ln.Addr().String() + "/scim"})
	fmt.Fprintf(os.Stderr, "%s\n", line)
	http.Serve(ln, h)
}

// TestCPUPerRequestIsTheCycles: the server's and the load tool's CPU per
// request are the cycle's, as the request rate beside them is: a run with
// the read-back reports what one without it does, however much the
// read-back's pages cost either side.
func TestCPUPerRequestIsTheCycles(t *testing.T) {
	if testing.Short() {
		t.Skip("burns CPU")
	}
	fake := target{"fake", func(ctx context.Context) (*daemon, error) {
		return startProcess(ctx, "the fake", exec.Command(os.Args[0], cpuFakeArg), func(b []byte) (announcement, bool) {
			var line struct{ Msg, SCIM string }
			if json.Unmarshal(b, &line) != nil || line.Msg != cpuFakeServing {
				return announcement{}, false
			}
			return announcement{scim: line.SCIM}, true
		}, io.Discard)
	}}
	perRequest := func(out, who string) float64 {
		m := regexp.MustCompile(`(?m)^` + who + ` CPU .*, (\d+) µs/request$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no %s CPU line:\n%s", who, out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	figures := func(noReadBack bool) (server, client float64) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		var out strings.Builder
		if _, err := load(ctx, fake, scimload.Config{Token: "t", Users: 500, Concurrency: 4, NoReadBack: noReadBack}, 0, &out); err != nil {
			t.Fatalf("%v\n%s", err, out.String())
		}
		return perRequest(out.String(), "daemon"), perRequest(out.String(), "load tool")
	}
	cycleServer, cycleClient := figures(true)
	server, client := figures(false)
	t.Logf("µs/request without the read-back: server %.0f, load tool %.0f; with it: %.0f, %.0f", cycleServer, cycleClient, server, client)
	if server > 2*cycleServer+200 {
		t.Errorf("server CPU %.0f µs/request with the read-back, %.0f without", server, cycleServer)
	}
	if client > 2*cycleClient+200 {
		t.Errorf("load tool CPU %.0f µs/request with the read-back, %.0f without", client, cycleClient)
	}
}
