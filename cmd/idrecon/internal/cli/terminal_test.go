package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"strings"
	"testing"
)

// TestBackupRefusesATerminal: without -o, a binary backup is not sprayed
// over a terminal; the command asks for -o or a redirect and asks no daemon.
func TestBackupRefusesATerminal(t *testing.T) {
	var out, errb bytes.Buffer
	code := Main(context.Background(), Env{
		Args:       []string{"backup"},
		Getenv:     func(string) string { return "" },
		Stdout:     &out,
		Stderr:     &errb,
		IsTerminal: func(w io.Writer) bool { return w == &out },
	})
	if code != 1 || out.Len() != 0 || !strings.Contains(errb.String(), "terminal") || strings.Contains(errb.String(), "reach daemon") {
		t.Fatalf("exit %d, stdout %q\nstderr:\n%s", code, out.String(), errb.String())
	}
}

func TestIsTerminal(t *testing.T) {
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if isTerminal(devNull) {
		t.Error("/dev/null, a character device, is taken for a terminal")
	}
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is taken for a terminal")
	}
}
