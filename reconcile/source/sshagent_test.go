package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// With no key file the key comes from the SSH agent; the user it logs in
// as is the same as with a key file: SSHUser, else the URL's, else "git"
// (what GitHub and GitLab take), never the daemon's own account name.
func TestGitSSHAgentUser(t *testing.T) {
	r := newTestRepo(t)
	r.commit(map[string]string{"f": "over ssh"}, nil)

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var agentMu sync.Mutex
	open := map[net.Conn]bool{}
	serve(t, ln, func(c net.Conn) {
		agentMu.Lock()
		open[c] = true
		agentMu.Unlock()
		agent.ServeAgent(keyring, c) // returns when the client hangs up
		agentMu.Lock()
		delete(open, c)
		agentMu.Unlock()
		c.Close()
	})
	// Before serve's clean-up, which waits for every connection: one the
	// code under test left open would hold it for ever.
	t.Cleanup(func() {
		agentMu.Lock()
		defer agentMu.Unlock()
		for c := range open {
			c.Close()
		}
	})
	// agentConns polls until the daemon holds no agent connection: each
	// fetch opens one, and one left open per poll is a descriptor leaked.
	agentConnsClosed := func() bool {
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			agentMu.Lock()
			n := len(open)
			agentMu.Unlock()
			if n == 0 {
				return true
			}
			time.Sleep(5 * time.Millisecond)
		}
		return false
	}
	t.Setenv("SSH_AUTH_SOCK", sock)

	hostSigner := newHostSigner(t)
	var mu sync.Mutex
	var users []string
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(m ssh.ConnMetadata, _ ssh.PublicKey) (*ssh.Permissions, error) {
		mu.Lock()
		defer mu.Unlock()
		users = append(users, m.User())
		return nil, nil
	}}
	cfg.AddHostKey(hostSigner)
	addr := serveTCP(t, func(conn net.Conn) { serveSSHConn(conn, cfg) })
	knownHosts := writeKnownHosts(t, addr, hostSigner.PublicKey())

	for _, tt := range []struct {
		name, url, sshUser, want string
	}{
		{"no user anywhere", "ssh://" + addr + r.dir, "", "git"},
		{"user in the URL", "ssh://deploy@" + addr + r.dir, "", "deploy"},
		{"SSHUser over the URL's", "ssh://deploy@" + addr + r.dir, "ci", "ci"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			users = nil
			mu.Unlock()
			g := newTestGit(t, GitOptions{URL: tt.url, Auth: GitAuth{SSHUser: tt.sshUser, KnownHostsFile: knownHosts}})
			_, err := g.Fetch(context.Background())
			mu.Lock()
			got := append([]string(nil), users...)
			mu.Unlock()
			if len(got) == 0 {
				t.Fatalf("no login reached the server: %v", err)
			}
			for _, u := range got {
				if u != tt.want {
					t.Fatalf("logged in as %q, want %q (Fetch: %v)", u, tt.want, err)
				}
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if !agentConnsClosed() {
				t.Fatal("the fetch left its ssh agent connection open")
			}
		})
	}
}
