//go:build !linux

package cli

import (
	"io"
	"os"
)

// isTerminal reports whether w may be a terminal. Without the terminal
// ioctl at hand, any character device counts: refusing `> /dev/null` is the
// safer mistake.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
