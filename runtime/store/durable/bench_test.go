package durable

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/idrecon/idrecon/runtime/store"
)

// BenchmarkUpdate measures SCIM-like user creations through store.Update
// from many concurrent writers, in memory and with the journal (one fsync
// per batch).
func BenchmarkUpdate(b *testing.B) {
	for _, journal := range []bool{false, true} {
		name := "memory"
		if journal {
			name = "journal"
		}
		b.Run(name, func(b *testing.B) {
			opts := store.Options{}
			cj := &countingJournal{}
			if journal {
				db, err := Open(filepath.Join(b.TempDir(), FileName), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer db.Close()
				cj.Journal = db
				opts.Journal = cj
			}
			st, err := store.New(opts)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			var seq atomic.Int64
			b.SetParallelism(32) // 64 writers on 2 cores, like a busy SCIM sync
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					n := seq.Add(1)
					if err := st.Update(context.Background(), func(tx *store.Txn) error {
						return tx.Insert(store.TableUsers, bigUser(int(n)))
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			if n := cj.commits.Load(); n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "writes/fsync")
			}
		})
	}
}

// countingJournal counts commits, to show how many writes share an fsync.
type countingJournal struct {
	store.Journal
	commits atomic.Int64
}

func (j *countingJournal) Commit(c memdb.Changes) error {
	j.commits.Add(1)
	return j.Journal.Commit(c)
}

// bigUser is a user shaped like the ones Entra provisions.
func bigUser(i int) *store.User {
	r := rand.New(rand.NewPCG(uint64(i), 42))
	id := fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint32()&0xffff, r.Uint64()&0xffffffffffff)
	name := fmt.Sprintf("user%07d@contoso.example", i)
	return &store.User{
		ID: id, UserName: name, ExternalID: fmt.Sprintf("ext-%d", i), Active: true, WorkEmail: name,
		Attributes: fmt.Appendf(nil, `{"userName":%q,"active":true,"emails":[{"type":"work","value":%q}],"name":{"givenName":"Given%d","familyName":"Family%d"},"externalId":"ext-%d"}`, name, name, i, i, i),
		Created:    t0, Modified: t0, Version: 1,
	}
}

// writeUsers writes n users straight through the journal, 10,000 per commit.
func writeUsers(tb testing.TB, path string, n int) {
	tb.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	const batch = 10000
	changes := make(memdb.Changes, 0, batch)
	for i := range n {
		changes = append(changes, memdb.Change{Table: store.TableUsers, After: bigUser(i)})
		if len(changes) == batch || i == n-1 {
			if err := db.Commit(changes); err != nil {
				tb.Fatal(err)
			}
			changes = changes[:0]
		}
	}
}

// BenchmarkLoadInto measures start-up: open the state file and load 100,000
// users into a fresh store.
func BenchmarkLoadInto(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), FileName)
	writeUsers(b, path, n)
	b.ResetTimer()
	for b.Loop() {
		db, err := Open(path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		st, err := store.New(store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.LoadInto(st); err != nil {
			b.Fatal(err)
		}
		st.Close()
		db.Close()
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
}

// cpuTime is the process's user+system CPU time: on a shared machine wall
// time says more about the neighbours than about the code.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestLoadMillionUsers checks start-up with 1,000,000 stored users: the time
// is reported, and the heap after loading must stay within 1.5x of the same
// users filled into a store straight from memory. It writes a large file, so
// it only runs with IDRECON_BIG=1.
func TestLoadMillionUsers(t *testing.T) {
	if os.Getenv("IDRECON_BIG") != "1" {
		t.Skip("set IDRECON_BIG=1 to load 1,000,000 users")
	}
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("IDRECON_BIG_USERS")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(t.TempDir(), FileName)
	start := time.Now()
	writeUsers(t, path, n)
	t.Logf("wrote %d users in %v", n, time.Since(start))

	base := heapInUse()
	mem, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	start, cpu := time.Now(), cpuTime(t)
	if err := mem.Load(func(tx *store.Txn) error {
		for i := range n {
			if err := tx.Insert(store.TableUsers, bigUser(i)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	memFill, memCPU := time.Since(start), cpuTime(t)-cpu
	memHeap := heapInUse() - base
	mem.Close()
	runtime.KeepAlive(mem)
	mem = nil

	base = heapInUse()
	start, cpu = time.Now(), cpuTime(t)
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Since(start)
	st, err := store.New(store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stats, err := db.LoadInto(st)
	if err != nil {
		t.Fatal(err)
	}
	loaded, loadCPU := time.Since(start), cpuTime(t)-cpu
	db.Close()
	loadHeap := heapInUse() - base
	if stats.Users != n {
		t.Fatalf("loaded %d users, want %d", stats.Users, n)
	}
	if u, _ := st.Read().UserByName(fmt.Sprintf("USER%07d@contoso.example", n/2)); u == nil {
		t.Fatal("loaded store cannot find a user by name")
	}
	ratio := float64(loadHeap) / float64(memHeap)
	t.Logf("%d users, file %d MiB: open %v; open+LoadInto %v wall, %v CPU; in-memory fill %v wall, %v CPU",
		n, stats.FileBytes>>20, opened.Round(time.Millisecond), loaded.Round(time.Millisecond), loadCPU.Round(time.Millisecond),
		memFill.Round(time.Millisecond), memCPU.Round(time.Millisecond))
	t.Logf("heap %d MiB after load vs %d MiB in-memory (%.2fx)", loadHeap>>20, memHeap>>20, ratio)
	runtime.KeepAlive(st)
	if ratio > 1.5 {
		t.Fatalf("heap after load is %.2fx the in-memory figure, want at most 1.5x", ratio)
	}
}
