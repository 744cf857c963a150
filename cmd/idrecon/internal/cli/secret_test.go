package cli

import (
	"testing"
)

// TestSecretFromEnvIsTrimmed: a webhook secret or token from the
// environment is taken as one from a file is, without the newline a CI
// secret or `$(cat file)` leaves, and one of white space alone is refused
// rather than turning the webhook on with nothing to check against.
func TestSecretFromEnvIsTrimmed(t *testing.T) {
	for _, tt := range []struct {
		value, want string
		fails       bool
	}{
		{value: "s3cret\n", want: "s3cret"},
		{value: "  s3cret \r\n", want: "s3cret"},
		{value: "s3cret", want: "s3cret"},
		{value: " \n", fails: true},
	} {
		env := Env{Getenv: func(name string) string {
			if name == "IDRECON_WEBHOOK_SECRET" {
				return tt.value
			}
			return ""
		}}
		got, err := secretFrom(env, "webhook-secret-file", "", "IDRECON_WEBHOOK_SECRET")
		if tt.fails {
			if err == nil {
				t.Errorf("%q: secret %q, want an error", tt.value, got)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%q: secret %q, %v; want %q", tt.value, got, err, tt.want)
		}
	}
}
