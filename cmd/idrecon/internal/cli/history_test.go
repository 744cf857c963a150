package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/reconcile"
)

// TestWriteHistory: a run of reconciles is one line saying when the last
// of them was, how many, the revision and the one fetched when another was
// refused, and what an apply changed or why it failed.
func TestWriteHistory(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	h := []reconcile.HistoryEntry{
		{Last: now.Add(-time.Minute), Count: 3, Revision: "main@sha1:57c643674a6812345678", Seen: "main@sha1:9999999999999999", Outcome: "refused",
			Error: "revision refused: apps.yaml:4:9: metadata.name: required\nmore"},
		{Last: now.Add(-time.Hour), Count: 1, Revision: "main@sha1:57c643674a6812345678", Outcome: "ok", Applied: true,
			Summary: reconcile.Summary{Create: 2, Update: 1}},
		{Last: now.Add(-2 * time.Hour), Count: 12, Revision: "main@sha1:1111111111111111", Outcome: "ok"},
	}
	var b strings.Builder
	if err := writeHistory(&b, h, now); err != nil {
		t.Fatal(err)
	}
	want := `LAST                               COUNT  REVISION                                                 OUTCOME  CHANGES
2026-12-07T11:59:00Z (1m0s ago)    3      main@sha1:57c643674a68 (fetched main@sha1:999999999999)  refused  revision refused: apps.yaml:4:9: metadata.name: required
2026-12-07T11:00:00Z (1h0m0s ago)  1      main@sha1:57c643674a68                                   ok       2 created, 1 updated, 0 deleted
2026-12-07T10:00:00Z (2h0m0s ago)  12     main@sha1:111111111111                                   ok       -
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if writeHistory(&b, nil, now); b.String() != "No reconcile yet.\n" {
		t.Errorf("empty history: %q", b.String())
	}
}
