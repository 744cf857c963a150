package source

import (
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// GitAuth says how to authenticate to the remote. Secrets are named by
// environment variable or file, never given inline, and are re-read on every
// Fetch so that a rotated token is picked up without a restart. At most one
// method (basic, bearer, SSH key) may be configured.
type GitAuth struct {
	// Username for HTTPS basic auth (GitHub accepts any non-empty name with
	// a token as password).
	Username string
	// PasswordEnv or PasswordFile holds the HTTPS basic password or token.
	PasswordEnv, PasswordFile string
	// BearerTokenEnv or BearerTokenFile holds an HTTPS bearer token.
	BearerTokenEnv, BearerTokenFile string

	// SSHKeyFile is a PEM/OpenSSH private key for ssh:// and scp-like URLs.
	SSHKeyFile string
	// SSHUser defaults to the URL's user, else "git".
	SSHUser string
	// SSHPassphraseEnv or SSHPassphraseFile holds the key's passphrase.
	SSHPassphraseEnv, SSHPassphraseFile string
	// KnownHostsFile pins host keys; empty means the usual SSH_KNOWN_HOSTS /
	// ~/.ssh/known_hosts lookup. Host keys are always checked unless
	// InsecureSkipHostKeyCheck is set.
	KnownHostsFile string
	// InsecureSkipHostKeyCheck disables host key checking. Test use only.
	InsecureSkipHostKeyCheck bool
}

func (a GitAuth) validate() error {
	n := 0
	if a.Username != "" || a.PasswordEnv != "" || a.PasswordFile != "" {
		n++
	}
	if a.BearerTokenEnv != "" || a.BearerTokenFile != "" {
		n++
	}
	if a.SSHKeyFile != "" {
		n++
	}
	if n > 1 {
		return fmt.Errorf("%w: more than one git auth method configured", ErrInvalidOptions)
	}
	if a.PasswordEnv != "" && a.PasswordFile != "" || a.BearerTokenEnv != "" && a.BearerTokenFile != "" ||
		a.SSHPassphraseEnv != "" && a.SSHPassphraseFile != "" {
		return fmt.Errorf("%w: a git secret is given both by env and by file", ErrInvalidOptions)
	}
	return nil
}

// method builds the go-git auth for one fetch and returns the secret values
// it read, so that they can be scrubbed from any error text.
func (a GitAuth) method(ep *transport.Endpoint, getenv func(string) string) (transport.AuthMethod, []string, error) {
	isSSH := ep.Protocol == "ssh"
	switch {
	case a.SSHKeyFile != "":
		if !isSSH {
			return nil, nil, fmt.Errorf("%w: ssh key configured for a %s URL", ErrInvalidOptions, ep.Protocol)
		}
		pass, err := readSecret("ssh passphrase", a.SSHPassphraseEnv, a.SSHPassphraseFile, getenv)
		if err != nil {
			return nil, nil, err
		}
		keys, err := gitssh.NewPublicKeysFromFile(a.sshUser(ep), a.SSHKeyFile, pass)
		if err != nil {
			// The parse error text never includes the key or passphrase.
			return nil, secrets(pass), fmt.Errorf("load ssh key %s: %w", a.SSHKeyFile, err)
		}
		cb, err := a.hostKeyCallback()
		if err != nil {
			return nil, secrets(pass), err
		}
		keys.HostKeyCallback = cb
		return keys, secrets(pass), nil
	case a.BearerTokenEnv != "" || a.BearerTokenFile != "":
		tok, err := readSecret("bearer token", a.BearerTokenEnv, a.BearerTokenFile, getenv)
		if err != nil {
			return nil, nil, err
		}
		if isSSH {
			return nil, secrets(tok), fmt.Errorf("%w: bearer token configured for an ssh URL", ErrInvalidOptions)
		}
		return &githttp.TokenAuth{Token: tok}, secrets(tok), nil
	case a.Username != "" || a.PasswordEnv != "" || a.PasswordFile != "":
		pass, err := readSecret("password", a.PasswordEnv, a.PasswordFile, getenv)
		if err != nil {
			return nil, nil, err
		}
		if isSSH {
			return nil, secrets(pass), fmt.Errorf("%w: basic auth configured for an ssh URL", ErrInvalidOptions)
		}
		user := a.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: pass}, secrets(pass), nil
	case isSSH:
		// No key file: sign with the SSH agent's keys, still checking host
		// keys. go-git's agent auth is not used: it logs in as the local
		// account, not SSHUser or "git", and keeps its agent connection
		// open after the fetch, one per poll.
		cb, err := a.hostKeyCallback()
		if err != nil {
			return nil, nil, err
		}
		sock := getenv("SSH_AUTH_SOCK")
		if sock == "" {
			return nil, nil, fmt.Errorf("%w: ssh URL without key file and no ssh agent (SSH_AUTH_SOCK is not set)", ErrAuth)
		}
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: ssh URL without key file and no ssh agent: %w", ErrAuth, err)
		}
		auth := &agentAuth{PublicKeysCallback: gitssh.PublicKeysCallback{User: a.sshUser(ep), Callback: agent.NewClient(conn).Signers}, conn: conn}
		auth.HostKeyCallback = cb
		return auth, nil, nil
	}
	return nil, nil, nil
}

// sshUser is the account an ssh fetch logs in as.
func (a GitAuth) sshUser(ep *transport.Endpoint) string {
	switch {
	case a.SSHUser != "":
		return a.SSHUser
	case ep.User != "":
		return ep.User
	}
	return "git"
}

// agentAuth signs with an SSH agent's keys over conn, which the fetch
// closes when it is done (see closeAuth).
type agentAuth struct {
	gitssh.PublicKeysCallback
	conn net.Conn
}

// closeAuth releases what auth holds open for one fetch.
func closeAuth(auth transport.AuthMethod) {
	if a, ok := auth.(*agentAuth); ok {
		a.conn.Close()
	}
}

func (a GitAuth) hostKeyCallback() (ssh.HostKeyCallback, error) {
	if a.InsecureSkipHostKeyCheck {
		return ssh.InsecureIgnoreHostKey(), nil
	}
	var files []string
	if a.KnownHostsFile != "" {
		files = append(files, a.KnownHostsFile)
	}
	cb, err := gitssh.NewKnownHostsCallback(files...)
	if err != nil {
		return nil, fmt.Errorf("load ssh known_hosts: %w", err)
	}
	return cb, nil
}

// readSecret reads a secret from the named env var or file; an empty
// result is allowed only when neither is configured.
func readSecret(what, env, file string, getenv func(string) string) (string, error) {
	switch {
	case env != "":
		v := getenv(env)
		if v == "" {
			return "", fmt.Errorf("%w: git %s env var %s is empty", ErrInvalidOptions, what, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			// The error names the file, not its content.
			return "", fmt.Errorf("read git %s file: %w", what, err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("%w: git %s file %s is empty", ErrInvalidOptions, what, file)
		}
		return v, nil
	}
	return "", nil
}

func secrets(vals ...string) []string {
	var out []string
	for _, v := range vals {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}
