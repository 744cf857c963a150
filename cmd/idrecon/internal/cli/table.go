package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
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

// table writes aligned columns whose cells are made printable. It lays
// them out as text/tabwriter would (two spaces between columns, a column as
// wide as its widest cell among the consecutive rows that have it, the last
// cell of a row never padded), but measures a cell by how many columns a
// terminal gives it, not by its runes: names come from Entra, and a Japanese
// or Chinese display name takes two columns a character, which tabwriter
// would count as one and so push every column after it out of line.
type table struct {
	w    io.Writer
	rows [][]string
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{w: w}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	row := make([]string, len(cells))
	for i, c := range cells {
		row[i] = printable(c)
	}
	t.rows = append(t.rows, row)
}

// flush writes the rows and forgets them.
func (t *table) flush() error {
	var b strings.Builder
	layout(&b, t.rows, nil)
	t.rows = nil
	_, err := io.WriteString(t.w, b.String())
	return err
}

// columnGap is the space between two columns.
const columnGap = 2

// layout writes rows with the widths of the columns before them, as
// tabwriter's format does: each run of consecutive rows that have a cell
// in the next column, and a cell after it, is a block that column is
// aligned within, and each block is laid out on its own for the columns
// after it.
func layout(b *strings.Builder, rows [][]string, widths []int) {
	col := len(widths)
	for len(rows) > 0 {
		if col >= len(rows[0])-1 {
			writeRow(b, rows[0], widths)
			rows = rows[1:]
			continue
		}
		width, n := 0, 0
		for ; n < len(rows) && col < len(rows[n])-1; n++ {
			width = max(width, displayWidth(rows[n][col])+columnGap)
		}
		layout(b, rows[:n], append(widths, width))
		rows = rows[n:]
	}
}

func writeRow(b *strings.Builder, row []string, widths []int) {
	for j, c := range row {
		b.WriteString(c)
		if j < len(widths) && j < len(row)-1 {
			b.WriteString(strings.Repeat(" ", widths[j]-displayWidth(c)))
		}
	}
	b.WriteByte('\n')
}

// displayWidth is how many terminal columns s takes: two for a wide or
// fullwidth character (East Asian Width), none for a combining mark or a
// zero-width joiner, one for any other.
func displayWidth(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me) || r == '\u200c' || r == '\u200d':
		case wide(r):
			n += 2
		default:
			n++
		}
	}
	return n
}

func wide(r rune) bool {
	k := width.LookupRune(r).Kind()
	return k == width.EastAsianWide || k == width.EastAsianFullwidth
}
