package source

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshGitServer is a minimal SSH server that runs the system git-upload-pack
// for "exec" requests, authenticating one client public key.
type sshGitServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func newSSHGitServer(t *testing.T, clientKeys ...ssh.PublicKey) *sshGitServer {
	t.Helper()
	if _, err := exec.LookPath("git-upload-pack"); err != nil {
		if _, err := exec.LookPath("git"); err != nil {
			t.Skip("system git not available for the SSH server")
		}
	}
	hostSigner := newHostSigner(t)
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			for _, ck := range clientKeys {
				if string(k.Marshal()) == string(ck.Marshal()) {
					return nil, nil
				}
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(hostSigner)
	addr := serveTCP(t, func(conn net.Conn) { serveSSHConn(conn, cfg) })
	return &sshGitServer{addr: addr, hostKey: hostSigner.PublicKey()}
}

// newHostSigner is an SSH server's host key, made for the test.
func newHostSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

// serveTCP listens on a loopback port and runs handle on each connection,
// each in its own goroutine, until the test ends; it returns the address.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ln, handle)
	return ln.Addr().String()
}

// serve hands each connection ln accepts to handle, in a goroutine of its
// own, until the test ends: then ln is closed and every handle waited for.
func serve(t *testing.T, ln net.Listener, handle func(net.Conn)) {
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(conn) })
		}
	})
}

func serveSSHConn(conn net.Conn, cfg *ssh.ServerConfig) {
	defer conn.Close()
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, chReqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range chReqs {
				if req.Type != "exec" {
					req.Reply(false, nil)
					continue
				}
				var payload struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
					req.Reply(false, nil)
					return
				}
				service, arg, _ := strings.Cut(payload.Command, " ")
				if service != "git-upload-pack" {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				cmd := exec.Command("git", "upload-pack", strings.Trim(arg, "'"))
				cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
				status := uint32(0)
				if err := cmd.Run(); err != nil {
					status = 1
				}
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
				return
			}
		}()
	}
}

// writeClientKey generates an ed25519 key and writes it in OpenSSH format,
// encrypted when passphrase is not empty. ssh-keygen is preferred for the
// encrypted form because it can lower the bcrypt rounds: the default 16
// rounds take seconds under the race detector.
func writeClientKey(t *testing.T, passphrase string) (ssh.PublicKey, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "id_ed25519")
	if keygen, err := exec.LookPath("ssh-keygen"); err == nil && passphrase != "" {
		out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-a", "1", "-N", passphrase, "-C", "", "-f", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen: %v: %s", err, out)
		}
		pubText, err := os.ReadFile(path + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		pub, _, _, _, err := ssh.ParseAuthorizedKey(pubText)
		if err != nil {
			t.Fatal(err)
		}
		return pub, path
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return sshPub, path
}

func writeKnownHosts(t *testing.T, addr string, key ssh.PublicKey) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "known_hosts")
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestGitSSH(t *testing.T) {
	const passphrase = "correct-horse-passphrase"
	r := newTestRepo(t)
	c1 := r.commit(map[string]string{"f": "over ssh"}, nil)

	clientPub, keyFile := writeClientKey(t, "")
	lockedPub, lockedKeyFile := writeClientKey(t, passphrase)
	_, strangerKeyFile := writeClientKey(t, "")
	srv := newSSHGitServer(t, clientPub, lockedPub)
	knownHosts := writeKnownHosts(t, srv.addr, srv.hostKey)
	_, otherHostPriv, _ := ed25519.GenerateKey(rand.Reader)
	otherHostSigner, err := ssh.NewSignerFromKey(otherHostPriv)
	if err != nil {
		t.Fatal(err)
	}
	wrongKnownHosts := writeKnownHosts(t, srv.addr, otherHostSigner.PublicKey())
	passFile := filepath.Join(t.TempDir(), "passphrase")
	if err := os.WriteFile(passFile, []byte(passphrase), 0o600); err != nil {
		t.Fatal(err)
	}
	url := "ssh://git@" + srv.addr + r.dir

	tests := []struct {
		name    string
		auth    GitAuth
		wantErr error
	}{
		{"key, known host", GitAuth{SSHKeyFile: keyFile, KnownHostsFile: knownHosts}, nil},
		{"key with passphrase from file", GitAuth{SSHKeyFile: lockedKeyFile, SSHPassphraseFile: passFile, KnownHostsFile: knownHosts}, nil},
		{"host key mismatch", GitAuth{SSHKeyFile: keyFile, KnownHostsFile: wrongKnownHosts}, ErrHostKey},
		{"insecure skip only when asked", GitAuth{SSHKeyFile: keyFile, KnownHostsFile: wrongKnownHosts, InsecureSkipHostKeyCheck: true}, nil},
		{"unknown client key", GitAuth{SSHKeyFile: strangerKeyFile, KnownHostsFile: knownHosts}, ErrAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newTestGit(t, GitOptions{URL: url, Auth: tt.auth})
			rev, err := g.Fetch(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if rev.ID != c1.String() || readFile(t, rev.Dir, "f") != "over ssh" {
					t.Fatalf("Fetch = %+v", rev)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), passphrase) {
				t.Fatalf("error leaks the passphrase: %v", err)
			}
		})
	}

	t.Run("host key checked by default", func(t *testing.T) {
		home := t.TempDir()
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", home)
		t.Setenv("SSH_KNOWN_HOSTS", "")
		g := newTestGit(t, GitOptions{URL: url, Auth: GitAuth{SSHKeyFile: keyFile}})
		if _, err := g.Fetch(context.Background()); !errors.Is(err, ErrHostKey) {
			t.Fatalf("err = %v, want ErrHostKey for a host missing from ~/.ssh/known_hosts", err)
		}
	})

	t.Run("wrong passphrase", func(t *testing.T) {
		t.Setenv("IDRECON_TEST_SSH_PASS", "not-it")
		g := newTestGit(t, GitOptions{URL: url, Auth: GitAuth{SSHKeyFile: lockedKeyFile, SSHPassphraseEnv: "IDRECON_TEST_SSH_PASS", KnownHostsFile: knownHosts}})
		if _, err := g.Fetch(context.Background()); err == nil || strings.Contains(err.Error(), "not-it") {
			t.Fatalf("err = %v, want a failure without the passphrase", err)
		}
	})
}
