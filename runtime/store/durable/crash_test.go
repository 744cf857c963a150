package durable

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/store"
)

// crashDirEnv, when set, makes TestHelperProcess the crash test's child: a
// tiny server that persists through this package into the dir it names.
const crashDirEnv = "IDRECON_DURABLE_CRASH_DIR"

// crashSegmentBytes makes the child's log start a segment and checkpoint
// the full one every dozen or so batches, so that kills land while segments
// are created, checkpointed and removed, not only mid-append.
const crashSegmentBytes = 4 << 10

var errTaken = errors.New("userName taken")

// TestHelperProcess is the child of TestCrashLosesNothingAcknowledged. It
// loads the state file, prints "port N" and serves POST /users?name=&group=,
// which creates a user and its membership in one Update and answers 201 only
// once Update returned nil. It runs until it is killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for the crash test")
	}
	db, err := Open(Path(dir), Options{Timeout: 10 * time.Second, SegmentBytes: crashSegmentBytes})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	st, err := store.New(store.Options{Journal: db})
	if err != nil {
		fmt.Fprintln(os.Stderr, "store:", err)
		os.Exit(3)
	}
	if _, err := db.LoadInto(st); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(3)
	}
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/users" {
			http.NotFound(w, r)
			return
		}
		name, group := r.URL.Query().Get("name"), r.URL.Query().Get("group")
		err := st.Update(r.Context(), createUser(name, group))
		switch {
		case err == nil:
			w.WriteHeader(http.StatusCreated)
		case errors.Is(err, errTaken):
			w.WriteHeader(http.StatusConflict)
		default:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}))
	fmt.Fprintln(os.Stderr, "serve:", err)
	os.Exit(3)
}

// createUser creates user name and its membership in group, creating the
// group on first use: three tables in one write.
func createUser(name, group string) func(*store.Txn) error {
	return func(tx *store.Txn) error {
		if u, err := tx.UserByName(name); err != nil || u != nil {
			return errors.Join(err, errTaken)
		}
		g, err := tx.GroupByID(group)
		if err != nil {
			return err
		}
		if g == nil {
			if err := tx.Insert(store.TableGroups, &store.Group{ID: group, DisplayName: group, Version: 1}); err != nil {
				return err
			}
		}
		if err := tx.Insert(store.TableUsers, &store.User{ID: name, UserName: name, Active: true, Version: 1}); err != nil {
			return err
		}
		return tx.ChangeMembers(group, []string{name}, nil, time.Time{})
	}
}

type child struct {
	cmd    *exec.Cmd
	url    string
	stderr *strings.Builder
}

// startChild runs this test binary as the helper process on dir and waits
// for it to serve.
func startChild(ctx context.Context, t *testing.T, dir string) *child {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "port "); ok {
				port <- p
				break
			}
		}
		io.Copy(io.Discard, stdout)
		close(port)
	}()
	select {
	case p, ok := <-port:
		if !ok {
			cmd.Wait()
			t.Fatalf("child exited before serving: %s", stderr.String())
		}
		return &child{cmd: cmd, url: "http://127.0.0.1:" + p, stderr: stderr}
	case <-time.After(60 * time.Second):
		t.Fatalf("child did not start: %s", stderr.String())
	}
	return nil
}

// outcomes records what the parent was told about each write.
type outcomes struct {
	mu      sync.Mutex
	acked   map[string]string // name -> group, answered 201
	unknown map[string]string // name -> group, error or no answer
}

func (o *outcomes) record(name, group string, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if ok {
		o.acked[name] = group
	} else {
		o.unknown[name] = group
	}
}

func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("running as the helper process")
	}
	minRounds, maxRounds, budget := 20, 40, 25*time.Second
	if testing.Short() {
		minRounds, maxRounds, budget = 5, 5, 10*time.Second
	}
	const workers = 8
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers},
	}
	out := &outcomes{acked: map[string]string{}, unknown: map[string]string{}}
	deadline := time.Now().Add(budget)
	done := 0
	for round := range maxRounds {
		// The budget bounds the test's time; the minimum keeps it
		// meaningful on a slow machine.
		if round >= minRounds && time.Now().After(deadline) {
			break
		}
		c := startChild(ctx, t, dir)
		var wg sync.WaitGroup
		stop := make(chan struct{})
		acked := make(chan struct{})
		var ackOnce sync.Once
		for w := range workers {
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					group := fmt.Sprintf("g%d", i%3)
					resp, err := client.Post(c.url+"/users?name="+name+"&group="+group, "", nil)
					if err != nil {
						out.record(name, group, false)
						return // the child is gone
					}
					resp.Body.Close()
					ok := resp.StatusCode == http.StatusCreated
					out.record(name, group, ok)
					if ok {
						ackOnce.Do(func() { close(acked) })
					}
				}
			})
		}
		// Crash at a random moment once writes flow, so every round kills
		// the child with writes in flight.
		select {
		case <-acked:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: no write acknowledged: %s", round, c.stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		if err := c.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		close(stop)
		wg.Wait()
		c.cmd.Wait()
		client.CloseIdleConnections()
		verifyNothingLost(t, dir, out)
		done++
	}
	t.Logf("%d crash rounds: %d writes acknowledged, %d unanswered or failed", done, len(out.acked), len(out.unknown))
	if len(out.acked) == 0 {
		t.Fatal("no write was ever acknowledged; the test proved nothing")
	}
}

// verifyNothingLost loads the state file after a crash and checks every
// acknowledged write is there and no write is there in part.
func verifyNothingLost(t *testing.T, dir string, out *outcomes) {
	t.Helper()
	db, err := Open(Path(dir), Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := db.LoadInto(st); err != nil {
		t.Fatalf("state after kill -9 does not load: %v", err)
	}
	tx := st.Read()
	out.mu.Lock()
	defer out.mu.Unlock()
	holdsWhole(t, tx, out.acked, out, "after kill -9")
}

// holdsWhole checks that tx holds every write of want (a user and its
// membership) and that every user in it is a write of out, whole: a user
// without its membership is half a write. where names the state checked.
func holdsWhole(t *testing.T, tx *store.Txn, want map[string]string, out *outcomes, where string) {
	t.Helper()
	for name, group := range want {
		u, _ := tx.UserByID(name)
		m, _ := tx.IsMember(group, name)
		if u == nil || !m {
			t.Fatalf("%s: acknowledged write %s is missing (user=%v membership=%v)", where, name, u != nil, m)
		}
	}
	users := dump(t, tx)[store.TableUsers]
	for _, raw := range users {
		u := raw.(*store.User)
		group, ok := out.acked[u.ID]
		if !ok {
			if group, ok = out.unknown[u.ID]; !ok {
				t.Fatalf("%s: user %s was never written", where, u.ID)
			}
		}
		if m, _ := tx.IsMember(group, u.ID); !m {
			t.Fatalf("%s: write %s is half there: user without its membership", where, u.ID)
		}
	}
	memberships := 0
	for _, raw := range dump(t, tx)[store.TableMembers] {
		memberships += len(raw.(*memberRow).IDs)
	}
	if memberships != len(users) {
		t.Fatalf("%s: %d memberships for %d users", where, memberships, len(users))
	}
}
