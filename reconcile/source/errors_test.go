package source

import (
	"errors"
	"fmt"
	"testing"
)

// TestStallReason: failures that need new credentials, keys or commits
// carry a StallReason through wrapping; those worth retrying carry none.
func TestStallReason(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("git x: fetch HEAD: %w: %w", ErrAuth, errors.New("authentication required")), "AuthenticationFailed"},
		{fmt.Errorf("git x: %w", classify(errors.New("ssh: handshake failed: knownhosts: key mismatch"))), "HostKeyUntrusted"},
		{fmt.Errorf("git x: %w", &SignatureError{Commit: "abc", Reason: "unsigned"}), "SignatureUnverified"},
		{fmt.Errorf("git x: %w", classify(errors.New("dial tcp: connection refused"))), ""},
		{fmt.Errorf("git x: %w", ErrRefNotFound), ""},
	}
	for _, tt := range tests {
		var s interface{ StallReason() string }
		got := ""
		if errors.As(tt.err, &s) {
			got = s.StallReason()
		}
		if got != tt.want {
			t.Errorf("%v: stall reason %q, want %q", tt.err, got, tt.want)
		}
	}
	if !errors.Is(fmt.Errorf("x: %w", ErrAuth), ErrAuth) || errors.Is(ErrAuth, ErrHostKey) {
		t.Error("the stalling sentinels no longer match with errors.Is")
	}
}
