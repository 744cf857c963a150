package access_test

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const (
	benchUsers       = 100_000
	benchGroups      = 10_000
	benchGroupsOfOne = 200
	benchApps        = 100
	benchVersions    = 10
)

var (
	benchOnce  sync.Once
	benchStore *store.Store
)

// bigStore is 100,000 users in 3 groups each, 10,000 groups, 20,000
// assignments (two per group: one role, one version or app/*), 100
// applications of 10 versions, and user "heavy" in 200 groups, with the
// group bindings recorded. It is built once and shared by the benchmarks.
func bigStore(b *testing.B) *store.Store {
	b.Helper()
	return builtOnce(b, &benchOnce, &benchStore, func(tx *store.Txn, ins func(table string, v any)) error {
		for a := range benchApps {
			vs := make([]string, benchVersions)
			for v := range vs {
				vs[v] = fmt.Sprint(v)
			}
			ins(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: fmt.Sprintf("app%d", a), Spec: &spec.Application{Versions: vs}})
		}
		for g := range benchGroups {
			name := fmt.Sprintf("Group %05d", g)
			ins(store.TableGroups, &store.Group{ID: fmt.Sprintf("g-%05d", g), DisplayName: name, ExternalID: fmt.Sprintf("ext-%05d", g)})
			ins(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: fmt.Sprintf("roles-%05d", g),
				Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: name}, Roles: []string{"Developer"}}})
			version := fmt.Sprintf("app%d/%d", g%benchApps, g%benchVersions)
			if g%7 == 0 {
				version = fmt.Sprintf("app%d/*", g%benchApps)
			}
			ins(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: fmt.Sprintf("versions-%05d", g),
				Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: name}, ApplicationVersions: []string{version}}})
		}
		for u := range benchUsers {
			id := fmt.Sprintf("u-%06d", u)
			ins(store.TableUsers, &store.User{ID: id, UserName: fmt.Sprintf("user%06d@contoso.com", u), Active: true})
			for k := range 3 {
				if err := tx.ChangeMembers(fmt.Sprintf("g-%05d", (u*3+k*1237)%benchGroups), []string{id}, nil, time.Time{}); err != nil {
					return err
				}
			}
		}
		ins(store.TableUsers, &store.User{ID: "u-heavy", UserName: "heavy@contoso.com", Active: true})
		for k := range benchGroupsOfOne {
			if err := tx.ChangeMembers(fmt.Sprintf("g-%05d", k*(benchGroups/benchGroupsOfOne)), []string{"u-heavy"}, nil, time.Time{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// builtOnce returns the store a benchmark set-up builds, built once into
// *st under once and shared by the benchmarks of its shape: the builtin
// roles, what fill inserts (ins keeps the first error), and the group
// bindings the Binder records in the steady state.
func builtOnce(b *testing.B, once *sync.Once, st **store.Store, fill func(tx *store.Txn, ins func(table string, v any)) error) *store.Store {
	b.Helper()
	once.Do(func() {
		s, err := store.New(store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		err = s.Load(func(tx *store.Txn) error {
			var err error
			ins := func(table string, v any) {
				if err == nil {
					err = tx.Insert(table, v)
				}
			}
			for name, r := range spec.BuiltinRoles {
				ins(store.TableResources, &store.Resource{Kind: spec.KindRole, Name: name, Spec: &r})
			}
			if ferr := fill(tx, ins); err == nil {
				err = ferr
			}
			if err != nil {
				return err
			}
			_, err = access.SyncBindings(tx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		*st = s
	})
	if *st == nil {
		b.Skip("store set-up failed")
	}
	return *st
}

// BenchmarkForUserCold is the first query for a user in 200 groups after a
// SCIM write: nothing about the user is memoised (the catalog is).
func BenchmarkForUserCold(b *testing.B) {
	st := bigStore(b)
	cpu := startCPU(b)
	for b.Loop() {
		access.ForgetEffective()
		if _, err := access.ForUser(st.Read(), "heavy@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkForUser is the effective access of a user in 200 groups, the
// memo warm (the steady state between spec and group changes, e.g. a SAML
// session re-checked on every request).
func BenchmarkForUser(b *testing.B) {
	st := bigStore(b)
	e, err := access.ForUser(st.Read(), "heavy@contoso.com")
	if err != nil {
		b.Fatal(err)
	}
	if len(e.Roles()) != benchGroupsOfOne {
		b.Fatalf("roles = %d, want %d", len(e.Roles()), benchGroupsOfOne)
	}
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := access.ForUser(st.Read(), "heavy@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkWhoCanReach lists everyone who can reach one version.
func BenchmarkWhoCanReach(b *testing.B) {
	st := bigStore(b)
	r, err := access.WhoCanReach(st.Read(), "app0", "0")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(r.Users)), "users")
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := access.WhoCanReach(st.Read(), "app0", "0"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkCatalogRebuild is the first query after an assignment changed:
// the spec-side lookup tables are rebuilt from 20,000 assignments, and the
// group sources with them. Membership changes (most of the SCIM traffic)
// never rebuild anything.
func BenchmarkCatalogRebuild(b *testing.B) {
	st := bigStore(b)
	cpu := startCPU(b)
	for b.Loop() {
		b.StopTimer()
		w := &store.Txn{Txn: st.Snapshot().Txn(true)}
		if err := w.Insert(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: "roles-00000",
			Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Group 00000"}, Roles: []string{"Manager"}}}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := access.ForUser(w, "heavy@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkBindingRebuild is the first query after the Binder recorded a
// binding (as it does while Entra creates groups): only the bindings side of
// the memo is rebuilt from 20,000 records.
func BenchmarkBindingRebuild(b *testing.B) {
	st := bigStore(b)
	v, err := st.Read().MetaValue("access/binding/roles-00000")
	if err != nil || v == "" {
		b.Fatalf("no binding to rewrite: %v", err)
	}
	if _, err := access.ForUser(st.Read(), "heavy@contoso.com"); err != nil { // warm the spec side
		b.Fatal(err)
	}
	cpu := startCPU(b)
	for b.Loop() {
		b.StopTimer()
		w := &store.Txn{Txn: st.Snapshot().Txn(true)}
		if err := w.Insert(store.TableMeta, &store.Meta{Key: "access/binding/roles-00000", Value: v}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := access.ForUser(w, "heavy@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkGroupSourcesRebuild is the first query after a group arrived,
// was renamed or was deleted: the groups that assignments apply to are
// looked up again, 10,000 of them.
func BenchmarkGroupSourcesRebuild(b *testing.B) {
	st := bigStore(b)
	if _, err := access.ForUser(st.Read(), "heavy@contoso.com"); err != nil { // warm the catalog
		b.Fatal(err)
	}
	cpu := startCPU(b)
	for b.Loop() {
		b.StopTimer()
		w := &store.Txn{Txn: st.Snapshot().Txn(true)}
		if err := w.Insert(store.TableGroups, &store.Group{ID: "g-new", DisplayName: "New group", ExternalID: "ext-new"}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := access.ForUser(w, "heavy@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// cpuTimer reports the process CPU time per operation as "cpu-ns/op": on a
// shared machine wall time per op mostly measures the other tenants.
type cpuTimer struct {
	start time.Duration
}

func cpuNow(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuTimer {
	b.Helper()
	runtime.GC() // the set-up's garbage is not the benchmark's
	b.ResetTimer()
	return &cpuTimer{start: cpuNow(b)}
}

func (c *cpuTimer) report(b *testing.B) {
	b.Helper()
	b.ReportMetric(float64(cpuNow(b)-c.start)/float64(b.N), "cpu-ns/op")
}
