package store

import (
	"context"
	"errors"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// TestStaleRetriesBackOff: a write that keeps meeting a newer state (other
// replicas keep winning the same keys) runs again at once the first times,
// then after growing, jittered pauses, so that the writers it races with
// drain instead of beating it every time; it gives up after
// maxStaleRetries, and a cancelled context ends a pause at once.
func TestStaleRetriesBackOff(t *testing.T) {
	stale := journalFunc(func(memdb.Changes) error { return ErrStale })
	catchUps := 0
	s, err := New(Options{Journal: stale, CatchUp: func(context.Context) error { catchUps++; return nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	write := func(tx *Txn) error { return tx.Insert(TableMeta, &Meta{Key: "k", Value: "v"}) }

	start := time.Now()
	if err := s.Update(context.Background(), write); !errors.Is(err, ErrStale) {
		t.Fatalf("err = %v, want ErrStale", err)
	}
	var least time.Duration
	for attempt := 1; attempt <= maxStaleRetries; attempt++ {
		least += staleBackoffBase(attempt) / 2
	}
	if took := time.Since(start); took < least || least == 0 {
		t.Errorf("%d stale attempts took %v, want the pauses' least, %v", maxStaleRetries+1, took, least)
	}
	if catchUps != maxStaleRetries {
		t.Errorf("%d catch-ups, want %d", catchUps, maxStaleRetries)
	}

	// Cancelled while its fourth attempt is in the journal: the write is
	// answered stale, and the pause before the fifth ends at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	s2, err := New(Options{
		Journal: journalFunc(func(memdb.Changes) error {
			if calls++; calls == 4 {
				cancel()
			}
			return ErrStale
		}),
		CatchUp: func(context.Context) error { return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.Update(ctx, write); !errors.Is(err, context.Canceled) || calls != 4 {
		t.Errorf("cancelled during its attempts: err = %v after %d attempts, want context.Canceled after 4", err, calls)
	}
}

// TestStaleWriteThatCannotCatchUpStaysStale: a write the journal refused
// as stale was not made, and a catch-up that fails for a reason of its own
// must not hide that: callers tell a write to retry (ErrStale) from one
// that failed by the error's class.
func TestStaleWriteThatCannotCatchUpStaysStale(t *testing.T) {
	errMirror := errors.New("mirror: lost its stream")
	s := newStore(t, Options{
		Journal: journalFunc(func(memdb.Changes) error { return ErrStale }),
		CatchUp: func(context.Context) error { return errMirror },
	})
	err := s.Update(context.Background(), func(tx *Txn) error { return tx.Insert(TableMeta, &Meta{Key: "k", Value: "v"}) })
	if !errors.Is(err, ErrStale) || !errors.Is(err, errMirror) {
		t.Errorf("err = %v, want ErrStale and the catch-up's error", err)
	}
}
