package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkMemberAdds is the member phase of an Entra initial cycle: 1,000
// groups filled with 1,000 of 100,000 users each, 100 members per write (the
// shape of Entra's member PATCHes), so every user ends up in 10 groups. Ids
// are random like the SCIM server's.
func BenchmarkMemberAdds(b *testing.B) {
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const users, perGroup, perWrite = 100_000, 1000, 100
	r := rand.New(rand.NewPCG(1, 2))
	ids := make([]string, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())
	}
	// The members exist, as the SCIM server checks before it writes.
	for chunk := range slices.Chunk(ids, 1000) {
		if err := s.Update(context.Background(), func(tx *Txn) error {
			for _, id := range chunk {
				if err := tx.Insert(TableUsers, &User{ID: id, UserName: id}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	w := 0
	for b.Loop() {
		g := w / (perGroup / perWrite)
		gid := fmt.Sprintf("group-%06d", g)
		batch := make([]string, perWrite)
		for i := range batch {
			batch[i] = ids[(g*perGroup+(w%(perGroup/perWrite))*perWrite+i)*7919%users]
		}
		w++
		err := s.Update(context.Background(), func(tx *Txn) error {
			return tx.ChangeMembers(gid, batch, nil, time.Time{})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*perWrite)/b.Elapsed().Seconds(), "members/s")
}

// BenchmarkFold folds the names an index or a lookup folds: ASCII already
// folded (the common userName), ASCII with capitals (a displayName), and
// Greek. strings.ToLower, which the indexes used before, is the yardstick.
func BenchmarkFold(b *testing.B) {
	names := []struct{ kind, name string }{
		{"folded", "alice.smith@contoso.com"},
		{"capitals", "Platform Engineering EU"},
		{"greek", "Ομάδα Πλατφόρμας"},
	}
	for _, n := range names {
		b.Run("Fold/"+n.kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = Fold(n.name)
			}
		})
		b.Run("ToLower/"+n.kind, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = strings.ToLower(n.name)
			}
		})
	}
}
