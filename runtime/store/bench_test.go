package store

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkMemberAdds is the member phase of an Entra initial cycle: groups
// filled 100 members per write, the shape of its member PATCHes.
func BenchmarkMemberAdds(b *testing.B) {
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	g := 0
	for b.Loop() {
		gid := fmt.Sprintf("group-%06d", g/10)
		base := (g % 10) * 100
		g++
		err := s.Update(context.Background(), func(tx *Txn) error {
			for i := range 100 {
				if err := tx.Insert(TableMemberships, &Membership{GroupID: gid, MemberID: fmt.Sprintf("user-%08d", base+i)}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "members/s")
}
