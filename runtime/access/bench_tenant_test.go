package access_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

const (
	tenantUsers        = 100_000
	tenantGroups       = 1_000
	tenantGroupsOfUser = 4 // besides All Staff
	tenantApps         = 50
	tenantVersions     = 5
)

var (
	tenantOnce  sync.Once
	tenantStore *store.Store
)

// tenant is the shape of a large Entra tenant: 100,000 users with
// mixed-case userNames (as UPNs often are), 1,000 groups, one of them "All
// Staff" holding every user and granting a role and every version of
// "portal"; each user is also in 4 of the other 999 groups (about 400
// members each), each of which grants a version and every third a role.
func tenant(b *testing.B) *store.Store {
	b.Helper()
	return builtOnce(b, &tenantOnce, &tenantStore, func(tx *store.Txn, ins func(table string, v any)) error {
		assign := func(name, group string, roles []string, versions ...string) {
			ins(store.TableResources, &store.Resource{Kind: spec.KindAccessAssignment, Name: name,
				Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: group}, Roles: roles, ApplicationVersions: versions}})
		}
		vs := make([]string, tenantVersions)
		for v := range vs {
			vs[v] = fmt.Sprint(v)
		}
		ins(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: "portal", Spec: &spec.Application{Versions: vs}})
		for a := range tenantApps {
			ins(store.TableResources, &store.Resource{Kind: spec.KindApplication, Name: fmt.Sprintf("app%d", a), Spec: &spec.Application{Versions: vs}})
		}
		members := make([][]string, tenantGroups)
		for u := range tenantUsers {
			id := fmt.Sprintf("u-%06d", u)
			ins(store.TableUsers, &store.User{ID: id, UserName: fmt.Sprintf("User.%06d@Contoso.com", u), Active: u%50 != 0})
			members[0] = append(members[0], id)
			for k := range tenantGroupsOfUser {
				g := 1 + (u*tenantGroupsOfUser+k*251)%(tenantGroups-1)
				members[g] = append(members[g], id)
			}
		}
		for g := range tenantGroups {
			name := fmt.Sprintf("Team %04d", g)
			if g == 0 {
				name = "All Staff"
				assign("all-staff", name, []string{"View Only"}, "portal/*")
			} else {
				var roles []string
				if g%3 == 0 {
					roles = []string{"Developer"}
				}
				assign(fmt.Sprintf("team-%04d", g), name, roles, fmt.Sprintf("app%d/%d", g%tenantApps, g%tenantVersions))
			}
			gid := fmt.Sprintf("g-%04d", g)
			ins(store.TableGroups, &store.Group{ID: gid, DisplayName: name, ExternalID: "ext-" + gid})
			if err := tx.ChangeMembers(gid, slices.Compact(members[g]), nil, time.Time{}); err != nil {
				return err
			}
		}
		return nil
	})
}

// BenchmarkTenantWhoCanReach lists who can reach a version some 19 teams
// are assigned.
func BenchmarkTenantWhoCanReach(b *testing.B) {
	benchTenantReach(b, "app0", "0")
}

// BenchmarkTenantWhoCanReachEveryone lists who can reach a version every
// user is assigned through All Staff: the whole tenant.
func BenchmarkTenantWhoCanReachEveryone(b *testing.B) {
	benchTenantReach(b, "portal", "1")
}

func benchTenantReach(b *testing.B, app, version string) {
	st := tenant(b)
	r, err := access.WhoCanReach(st.Read(), app, version)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(r.Users)), "users")
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := access.WhoCanReach(st.Read(), app, version); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkTenantForUser is a user's effective access, memo warm.
func BenchmarkTenantForUser(b *testing.B) {
	st := tenant(b)
	e, err := access.ForUser(st.Read(), "user.012345@contoso.com")
	if err != nil {
		b.Fatal(err)
	}
	if !e.HasAccess() {
		b.Fatal("the user has no access")
	}
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := access.ForUser(st.Read(), "user.012345@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkTenantForUserCold is the first query for a user after a SCIM
// write.
func BenchmarkTenantForUserCold(b *testing.B) {
	st := tenant(b)
	cpu := startCPU(b)
	for b.Loop() {
		access.ForgetEffective()
		if _, err := access.ForUser(st.Read(), "user.012345@contoso.com"); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkTenantWhoCanReachPage is one page of 50 (the console's) of a
// version the whole tenant reaches, from the middle of the list.
func BenchmarkTenantWhoCanReachPage(b *testing.B) {
	st := tenant(b)
	p, err := access.WhoCanReachPage(st.Read(), "portal", "1", "user.050000@contoso.com", 50)
	if err != nil {
		b.Fatal(err)
	}
	if len(p.Users) != 50 || p.Next == "" {
		b.Fatalf("page = %d users, next %q", len(p.Users), p.Next)
	}
	b.ReportMetric(float64(p.Total), "users")
	cpu := startCPU(b)
	for b.Loop() {
		if _, err := access.WhoCanReachPage(st.Read(), "portal", "1", "user.050000@contoso.com", 50); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
