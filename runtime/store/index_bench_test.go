package store

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/benbjohnson/immutable"
	"github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store/internal/hamt"
)

// BenchmarkIndexEntryBytes measures what one entry of a string → id index
// costs on the heap in each structure the store could keep it in: a go-memdb
// index (a radix tree whose nodes each carry a watch channel), the store's
// HAMT, and the ordered map that keeps users and userNames. Keys and rows
// are built before measuring, so B/entry is the index alone. It is why the
// store keeps users, and per-user and per-membership indexes, in maps rather
// than in memdb; the README quotes the figures.
func BenchmarkIndexEntryBytes(b *testing.B) {
	const n = 100_000
	type row struct{ Key, ID string }
	rows := make([]*row, n)
	for i := range rows {
		rows[i] = &row{Key: fmt.Sprintf("user%06d@contoso.example", i), ID: fmt.Sprintf("%032x", i)}
	}
	schema := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{"t": {
		Name: "t",
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
		},
	}}}
	build := map[string]func() any{
		"memdb": func() any {
			db, err := memdb.NewMemDB(schema)
			if err != nil {
				b.Fatal(err)
			}
			txn := db.Txn(true)
			for _, r := range rows {
				if err := txn.Insert("t", r); err != nil {
					b.Fatal(err)
				}
			}
			txn.Commit()
			return db
		},
		"hamt": func() any {
			e := (&hamt.Map[string]{}).Edit()
			for _, r := range rows {
				e.Set(r.Key, r.ID)
			}
			return e.Map()
		},
		"sortedmap": func() any {
			sb := immutable.NewSortedMapBuilder[string, string](stringComparer{})
			for _, r := range rows {
				sb.Set(r.Key, r.ID)
			}
			return sb.Map()
		},
	}
	for _, name := range []string{"memdb", "hamt", "sortedmap"} {
		b.Run(name, func(b *testing.B) {
			var perEntry float64
			for b.Loop() {
				before := heapInUse()
				index := build[name]()
				perEntry = float64(heapInUse()-before) / n
				runtime.KeepAlive(index)
			}
			b.ReportMetric(perEntry, "B/entry")
		})
	}
}

func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
