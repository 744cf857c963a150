package source

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Sentinel errors returned (wrapped) by Fetch and Checkout. Callers keep
// their last good revision on any of them. ErrAuth, ErrHostKey and every
// *SignatureError have a StallReason: retrying the fetch unchanged cannot
// help, only new credentials, keys or commits can.
var (
	// ErrRefNotFound means the branch, tag or commit does not exist (any
	// more) in the repository, e.g. a deleted tag.
	ErrRefNotFound = errors.New("source: ref not found")
	// ErrPathNotFound means the spec path is missing from the revision, is
	// not a folder there, or holds no regular file (only symlinks or
	// submodules, which are not exported).
	ErrPathNotFound = errors.New("source: spec path not found in revision")
	// ErrRepositoryNotFound means the remote has no repository at the URL.
	ErrRepositoryNotFound = errors.New("source: repository not found")
	// ErrAuth means the remote refused the credentials or required some.
	ErrAuth error = &stallingError{"source: authentication failed", "AuthenticationFailed"}
	// ErrHostKey means the SSH server's host key is not the one pinned in
	// known_hosts (or is not listed there at all).
	ErrHostKey error = &stallingError{"source: ssh host key not trusted", "HostKeyUntrusted"}
	// ErrTransient marks failures worth retrying unchanged: unreachable
	// hosts, DNS, timeouts, dropped connections.
	ErrTransient = errors.New("source: transient fetch failure")
	// ErrUnverified is matched by every *SignatureError.
	ErrUnverified = errors.New("source: commit signature not verified")
	// ErrNotDir means a path that must be a folder is not one.
	ErrNotDir = errors.New("source: not a directory")
	// ErrInvalidOptions reports a GitOptions value that cannot work.
	ErrInvalidOptions = errors.New("source: invalid options")
)

// stallingError is a sentinel for a failure that retrying unchanged cannot
// fix.
type stallingError struct{ msg, reason string }

func (e *stallingError) Error() string { return e.msg }

// StallReason is a short machine reason, for status.
func (e *stallingError) StallReason() string { return e.reason }

// SignatureError refuses a revision whose head commit lacks a valid OpenPGP
// signature from the configured key ring.
type SignatureError struct {
	// Commit is the full SHA of the refused commit.
	Commit string
	// Reason is a short machine-friendly cause: "unsigned", "invalid"
	// (bad or unknown-key signature) or "keyring" (key ring unreadable).
	Reason string
	// Err is the underlying verification error, if any.
	Err error
}

func (e *SignatureError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("commit %s refused: signature %s", e.Commit, e.Reason)
	}
	return fmt.Sprintf("commit %s refused: signature %s: %v", e.Commit, e.Reason, e.Err)
}

// Is makes errors.Is(err, ErrUnverified) true for every SignatureError.
func (e *SignatureError) Is(target error) bool { return target == ErrUnverified }

func (e *SignatureError) Unwrap() error { return e.Err }

// StallReason says that a refused commit stays refused: only a new commit
// or a changed key ring can change the outcome.
func (e *SignatureError) StallReason() string { return "SignatureUnverified" }

// classify wraps a go-git transport error with the sentinel callers act on.
func classify(err error) error {
	switch {
	case isHostKeyFailure(err):
		return fmt.Errorf("%w: %w", ErrHostKey, err)
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod),
		isSSHAuthFailure(err):
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("%w: %w", ErrRepositoryNotFound, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return fmt.Errorf("%w: %w", ErrTransient, err)
	}
	// go-git flattens many network errors into text; recognise the common
	// ones so that the caller retries instead of reporting a bad spec.
	msg := err.Error()
	for _, s := range []string{"no such host", "connection refused", "connection reset", "i/o timeout",
		"network is unreachable", "unexpected EOF", "EOF", "502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout"} {
		if strings.Contains(msg, s) {
			return fmt.Errorf("%w: %w", ErrTransient, err)
		}
	}
	return err
}

func isHostKeyFailure(err error) bool {
	if _, ok := errors.AsType[*knownhosts.KeyError](err); ok {
		return true
	}
	return strings.Contains(err.Error(), "knownhosts:")
}

// isSSHAuthFailure reports a server that refused every offered key. It
// does not match "ssh: handshake failed" alone: that prefix also wraps
// connections dropped mid-handshake ("ssh: handshake failed: EOF", a reset),
// which are transient and must not stall as AuthenticationFailed; a refused
// key reads "ssh: handshake failed: ssh: unable to authenticate ...".
func isSSHAuthFailure(err error) bool {
	return strings.Contains(err.Error(), "ssh: unable to authenticate")
}

// redactedError hides secret values in a wrapped error's text while keeping
// errors.Is/As working on the chain.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// scrub replaces every secret value found in err's text. go-git sometimes
// echoes request URLs or server replies into errors; this is the last line
// of defence that keeps tokens out of logs.
func scrub(err error, secretVals []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	redacted := msg
	for _, s := range secretVals {
		if s != "" {
			redacted = strings.ReplaceAll(redacted, s, "[REDACTED]")
			redacted = strings.ReplaceAll(redacted, url.QueryEscape(s), "[REDACTED]")
			redacted = strings.ReplaceAll(redacted, url.PathEscape(s), "[REDACTED]")
		}
	}
	if redacted == msg {
		return err
	}
	return &redactedError{msg: redacted, err: err}
}
