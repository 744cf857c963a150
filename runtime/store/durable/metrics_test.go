package durable

import (
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Every batch written to the log is one observation of the sync time, and
// a checkpoint one of its own.
func TestMetricsCountSyncsAndCheckpoints(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), FileName))
	st := newStore(t, db)
	populate(t, st) // one batch
	if err := db.flush(); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(db)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]uint64{}
	for _, f := range families {
		counts[f.GetName()] = f.GetMetric()[0].GetHistogram().GetSampleCount()
	}
	if n := counts["idrecon_journal_sync_duration_seconds"]; n != 1 {
		t.Errorf("%d syncs observed after one batch, want 1", n)
	}
	if n := counts["idrecon_journal_checkpoint_duration_seconds"]; n != 1 {
		t.Errorf("%d checkpoints observed after one, want 1", n)
	}
}
