package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeQuickStart runs the README's quick start against the built
// binary: the daemon as make run starts it (its flags read from the
// Makefile), then the README's second terminal as written, by sh, with only
// the addresses changed (the test listens on free ports, not :8080 and
// :9090). A flag renamed or a command's output changed breaks it.
func TestReadmeQuickStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a daemon")
	}
	for _, tool := range []string{"sh", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the quick start needs %s", tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := quickStartBlocks(t, string(readme))
	if len(blocks) != 2 || !strings.Contains(blocks[0], "make run") {
		t.Fatalf("want two sh blocks in the quick start, the first with make run; got %q", blocks)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^run:.*\n\t\$\(BIN\) (serve .*)$`).FindSubmatch(makefile)
	if m == nil {
		t.Fatal("no $(BIN) serve line under the Makefile's run target")
	}
	serveArgs := strings.Fields(string(m[1]))

	// The repository layout the quick start assumes, in a folder of its own
	// (the daemon writes ./data): bin/idrecon and examples/entra.
	work, bin := layout(t)

	// Later flags win: the Makefile's, then free loopback ports.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serve := exec.CommandContext(ctx, bin, append(serveArgs, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")...)
	serve.Dir = work
	// Stopped as ^C stops it, killed if it does not stop.
	serve.Cancel = func() error { return serve.Process.Signal(os.Interrupt) }
	serve.WaitDelay = 30 * time.Second
	logs, err := serve.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	logDone := make(chan struct{})
	var logText strings.Builder // written by the goroutine, read after logDone
	go func() {                 // owned here: ends when serve's stderr closes, when it exits
		defer close(logDone)
		readServing(io.TeeReader(logs, &logText), addrs)
	}()
	defer func() {
		cancel()
		serve.Wait()
		<-logDone
	}()
	var scim, admin string
	select {
	case a := <-addrs:
		scim, admin = a[0], a[1]
	case <-logDone:
		t.Fatalf("the daemon ended before serving:\n%s", logText.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the daemon did not say where it serves")
	}
	env := append(os.Environ(), "IDRECON_SERVER="+admin)

	// Wait until the first revision is applied: status exits 0 when ready.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st := exec.Command(bin, "status")
		st.Dir, st.Env = work, env
		out, err := st.CombinedOutput()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon is not ready: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	script := strings.ReplaceAll(blocks[1], "http://localhost:8080", scim)
	sh := exec.Command("sh", "-e", "-c", script)
	sh.Dir, sh.Env = work, env
	out, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the quick start failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		`"totalResults":0`,                         // Entra's test connection
		`"userName":"alice@contoso.com"`,           // the user provisioned
		"READY             True",                   // status
		"View Only  direct, assignment alice",      // access user
		"alice@contoso.com  true    yes     alice", // users
		"SP metadata saved to sp.xml",              // saml metadata
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the quick start's output lacks %q:\n%s", want, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(work, "sp.xml")); err != nil || !strings.Contains(string(b), "EntityDescriptor") {
		t.Errorf("sp.xml: %v %.200s", err, b)
	}
}

// layout builds the binary into a folder of its own laid out as the
// repository is for the quick start (the daemon writes ./data there):
// bin/idrecon and examples/entra. It returns the folder and the binary.
func layout(t *testing.T) (work, bin string) {
	t.Helper()
	work = t.TempDir()
	bin = filepath.Join(work, "bin", "idrecon")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.CopyFS(filepath.Join(work, "examples", "entra"), os.DirFS("../../examples/entra")); err != nil {
		t.Fatal(err)
	}
	return work, bin
}

// quickStartBlocks returns the sh code blocks of the README's Quick start.
func quickStartBlocks(t *testing.T, readme string) []string {
	t.Helper()
	_, section, ok := strings.Cut(readme, "\n## Quick start\n")
	if !ok {
		t.Fatal("the README has no Quick start")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var blocks []string
	for {
		_, rest, ok := strings.Cut(section, "```sh\n")
		if !ok {
			return blocks
		}
		block, after, ok := strings.Cut(rest, "```")
		if !ok {
			t.Fatal("an sh block of the Quick start does not end")
		}
		blocks = append(blocks, block)
		section = after
	}
}

// readServing reads the daemon's JSON log until its "idrecon serving" line,
// sends the SCIM base URL (scheme and host) and the admin URL, and drains
// the rest.
func readServing(r io.Reader, addrs chan<- [2]string) {
	sc := bufio.NewScanner(r)
	sent := false
	for sc.Scan() {
		if sent {
			continue
		}
		var line struct{ Msg, SCIM, Admin string }
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "idrecon serving" {
			continue
		}
		u, err := url.Parse(line.SCIM)
		if err != nil {
			continue
		}
		addrs <- [2]string{u.Scheme + "://" + u.Host, line.Admin}
		sent = true
	}
}
