package cli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode"
	"unicode/utf8"
)

// printable returns s with every rune that could act on a terminal shown
// as a Go escape: C0 and C1 controls (ESC starts a sequence that can clear
// the screen or retitle the window; CR and LF fake rows; a tab shifts a
// table's columns), bidi overrides and isolates that reorder what follows,
// other invisible format characters, line and paragraph separators, and
// invalid UTF-8. Names come from SCIM clients, so every table cell and every
// line that carries one goes through here. Backslashes stay as they are:
// "DOMAIN\user" is a common name, and a literal "\x1b" in one is harmless.
func printable(s string) string {
	if strings.IndexFunc(s, needsEscape) < 0 && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case needsEscape(r) && r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case needsEscape(r) && r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		case needsEscape(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether r is anything but a visible character or a
// space. Zero-width (non-)joiners are kept: scripts such as Persian and
// emoji sequences need them, and they move nothing.
func needsEscape(r rune) bool {
	return !unicode.IsGraphic(r) && r != '\u200c' && r != '\u200d'
}

// table writes aligned columns whose cells are made printable.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			io.WriteString(t.tw, "\t")
		}
		io.WriteString(t.tw, printable(c))
	}
	io.WriteString(t.tw, "\n")
}

func (t *table) flush() error { return t.tw.Flush() }
