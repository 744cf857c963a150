package reconcile

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// edit replaces old with new in one file of the example spec.
type edit struct{ file, old, new string }

// loadExample copies examples/entra, applies edits (each must match) and
// loads the result as a daemon would.
func loadExample(t *testing.T, edits ...edit) *spec.Set {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../examples/entra")); err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		p := filepath.Join(dir, e.file)
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		if e.old == "" {
			b = append(b, e.new...) // a new document (or file)
		} else {
			if !strings.Contains(string(b), e.old) {
				t.Fatalf("edit of %s: %q not found", e.file, e.old)
			}
			b = []byte(strings.Replace(string(b), e.old, e.new, 1))
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := spec.Load(context.Background(), dir, spec.LoadOptions{Now: t0, Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatalf("load edited example: %v", err)
	}
	return set
}

// scimWorld writes the users, groups and memberships Entra would provision:
// every group the example names, a nested group, a user in two groups, a
// disabled user and a user in no group.
type scimWorld struct {
	t      *testing.T
	s      *store.Store
	groups map[string]string // displayName → id
	users  map[string]string // userName → id
}

func newScimWorld(t *testing.T, s *store.Store) *scimWorld {
	w := &scimWorld{t: t, s: s, groups: map[string]string{}, users: map[string]string{}}
	for _, g := range []string{"AppSec Admins", "Payments Developers", "Release Managers", "Payments Contractors", "Auditors"} {
		w.group(g)
	}
	for _, u := range []struct {
		name   string
		active bool
		groups []string
	}{
		{"alice@contoso.com", true, []string{"Auditors"}},
		{"bob@contoso.com", true, []string{"AppSec Admins"}},
		{"carol@contoso.com", true, []string{"Payments Developers"}},
		{"dave@contoso.com", true, []string{"Payments Developers", "Release Managers"}},
		{"erin@contoso.com", true, []string{"Payments Contractors"}}, // nested: reaches nothing through Payments Developers
		{"frank@contoso.com", false, []string{"Release Managers"}},
		{"grace@contoso.com", true, nil},
		{"heidi@contoso.com", true, []string{"Release Managers", "Auditors"}},
	} {
		id := fmt.Sprintf("u-%d", len(w.users))
		w.users[u.name] = id
		w.update(func(tx *store.Txn) error {
			return tx.Insert(store.TableUsers, &store.User{ID: id, UserName: u.name, Active: u.active})
		})
		for _, g := range u.groups {
			w.member(g, id)
		}
	}
	w.member("Payments Developers", w.groups["Payments Contractors"])
	return w
}

func (w *scimWorld) update(fn func(*store.Txn) error) {
	w.t.Helper()
	if err := w.s.Update(context.Background(), fn); err != nil {
		w.t.Fatal(err)
	}
}

func (w *scimWorld) group(name string) {
	w.t.Helper()
	id := fmt.Sprintf("g-%d", len(w.groups))
	w.groups[name] = id
	w.update(func(tx *store.Txn) error {
		return tx.Insert(store.TableGroups, &store.Group{ID: id, DisplayName: name, ExternalID: "ext-" + id})
	})
}

func (w *scimWorld) member(group, id string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error { return tx.ChangeMembers(w.groups[group], []string{id}, nil, time.Time{}) })
}

// rename renames a group as Entra does over SCIM.
func (w *scimWorld) rename(from, to string) {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		g, err := tx.GroupByID(w.groups[from])
		if err != nil || g == nil {
			return fmt.Errorf("group %s: %v", from, err)
		}
		c := *g
		c.DisplayName = to
		return tx.Insert(store.TableGroups, &c)
	})
}

// bind runs what the daemon's Binder runs after a commit.
func (w *scimWorld) bind() {
	w.t.Helper()
	w.update(func(tx *store.Txn) error {
		_, err := access.SyncBindings(tx)
		return err
	})
}

// accessOf is every user's effective access as access.ForUser answers it,
// counted as BlastRadius counts it: roles, and versions only for a user some
// role reaches.
func (w *scimWorld) accessOf() map[string]map[[2]string]bool {
	w.t.Helper()
	out := map[string]map[[2]string]bool{}
	for name := range w.users {
		e, err := access.ForUser(w.s.Read(), name)
		if err != nil {
			w.t.Fatal(err)
		}
		items := map[[2]string]bool{}
		for _, r := range e.RoleNames() {
			items[[2]string{"role", r}] = true
		}
		if e.HasRole() {
			for _, v := range e.VersionNames() {
				items[[2]string{"version", v}] = true
			}
		}
		out[name] = items
	}
	return out
}

// impactOf is the blast radius the access answers before and after show.
func impactOf(before, after map[string]map[[2]string]bool) access.Impact {
	changes := map[[2]string]*access.AccessChange{}
	note := func(item [2]string, user string, gained bool) {
		c := changes[item]
		if c == nil {
			c = &access.AccessChange{Kind: item[0], Name: item[1]}
			changes[item] = c
		}
		if gained {
			c.Gained++
			c.GainedBy = append(c.GainedBy, user)
		} else {
			c.Lost++
			c.LostBy = append(c.LostBy, user)
		}
	}
	imp := access.Impact{Changes: []access.AccessChange{}}
	for _, user := range slices.Sorted(maps.Keys(before)) {
		b, a := before[user], after[user]
		moved := false
		for item := range a {
			if !b[item] {
				note(item, user, true)
				moved = true
			}
		}
		for item := range b {
			if !a[item] {
				note(item, user, false)
				moved = true
			}
		}
		if moved {
			imp.Users++
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(changes), func(x, y [2]string) int {
		return strings.Compare(x[0]+"\x00"+x[1], y[0]+"\x00"+y[1])
	}) {
		c := changes[k]
		slices.Sort(c.GainedBy)
		slices.Sort(c.LostBy)
		imp.Changes = append(imp.Changes, *c)
	}
	return imp
}

func formatImpact(imp access.Impact) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d users", imp.Users)
	for _, c := range imp.Changes {
		fmt.Fprintf(&b, "\n  %s %s: +%d %v -%d %v", c.Kind, c.Name, c.Gained, c.GainedBy, c.Lost, c.LostBy)
	}
	return b.String()
}

// blastCase is a spec change planned and applied against live users.
type blastCase struct {
	name          string
	before, after []edit
	// live changes the store between the two revisions, as Entra or an
	// admin would.
	live func(t *testing.T, w *scimWorld)
	mode DriftMode
	// restart plans and applies after with a new Reconciler, as a daemon
	// restarted between the two revisions does: it has no baseline.
	restart bool
	// empty says the plan must change nothing.
	empty bool
}

// runBlastCase applies before, plans after with its blast radius as the
// daemon computes it (plan --server), applies after, and checks that the
// plan is what apply did and that the blast radius is the difference of
// every user's effective access.
func runBlastCase(t *testing.T, tc blastCase) {
	ctx := context.Background()
	s := newStore(t)
	w := newScimWorld(t, s)
	r := newReconciler(t, Config{Store: s, DriftMode: tc.mode})
	if _, err := r.Apply(ctx, loadExample(t, tc.before...)); err != nil {
		t.Fatal(err)
	}
	w.bind()
	if tc.live != nil {
		tc.live(t, w)
		w.bind()
	}
	if tc.restart {
		r = newReconciler(t, Config{Store: s, DriftMode: tc.mode})
	}
	after := loadExample(t, tc.after...)
	before := w.accessOf()
	planned, err := r.Plan(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	impact, err := access.BlastRadius(s.Read(), nil, after.Docs, planned.Kept()...)
	if err != nil {
		t.Fatal(err)
	}
	applied, err := r.Apply(ctx, after)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(planned, applied) {
		t.Errorf("plan and apply differ:\n plan  %+v\n apply %+v", planned, applied)
	}
	if tc.empty != planned.Empty() {
		t.Errorf("plan empty %v, want %v: %+v", planned.Empty(), tc.empty, planned)
	}
	// Converged: what is left is drift kept in place (report mode).
	if again, err := r.Plan(ctx, after); err != nil || again.Changes() {
		t.Errorf("not converged after apply: %v %+v", err, again)
	}
	// The Binder runs after every commit; it must not move access either.
	w.bind()
	got := impactOf(before, w.accessOf())
	if planned.Empty() && len(got.Changes) > 0 {
		t.Errorf("the plan says no changes, but access changed:\n%s", formatImpact(got))
	}
	if planned.Empty() && len(impact.Changes) > 0 {
		t.Errorf("the plan says no changes, but its blast radius shows some:\n%s", formatImpact(*impact))
	}
	if !reflect.DeepEqual(*impact, got) {
		t.Errorf("blast radius is not what apply did to access:\n planned %s\n applied %s", formatImpact(*impact), formatImpact(got))
	}
}

func TestBlastRadiusIsWhatApplyDoes(t *testing.T) {
	const rm = "name: Release Manager\n"
	tests := []blastCase{
		{name: "unchanged", empty: true},
		{
			name: "rename a role",
			after: []edit{
				{"roles.yaml", rm, "name: Release Lead\n"},
				{"assignments.yaml", "roles: [Release Manager]", "roles: [Release Lead]"},
			},
		},
		{name: "remove an assignment", after: []edit{{"assignments.yaml", "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: alice\n", "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: alice-gone\n"}, {"assignments.yaml", "user: alice@contoso.com", "user: nobody@contoso.com"}}},
		{name: "change a group reference", after: []edit{{"assignments.yaml", "group: Payments Developers", "group: Auditors"}}},
		{name: "group reference to a nested group", after: []edit{{"assignments.yaml", "group: Payments Developers", "group: Payments Contractors"}}},
		{name: "delete a version a wildcard grants", after: []edit{{"applications.yaml", `versions: ["2025.1", "2025.2"]`, `versions: ["2025.2"]`}}},
		{name: "add a version a wildcard grants", after: []edit{{"applications.yaml", `versions: ["1.0", "2.0"]`, `versions: ["1.0", "2.0", "3.0"]`}}},
		{name: "assignment grants no role", after: []edit{{"assignments.yaml", "  roles: [Release Manager]\n", ""}}},
		{name: "direct assignment grants no role", after: []edit{{"assignments.yaml", "  roles: [View Only]\n", ""}}},
		{
			name:   "duplicate grants removed",
			before: []edit{{"assignments.yaml", "", "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: release-managers-again\nspec:\n  subject:\n    group: release managers\n  roles: [Release Manager]\n  applicationVersions: [\"webgoat/*\", \"webgoat/1.0\"]\n"}},
		},
		{
			name:  "duplicate grants added",
			after: []edit{{"assignments.yaml", "", "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: release-managers-again\nspec:\n  subject:\n    group: release managers\n  roles: [Release Manager]\n  applicationVersions: [\"webgoat/*\", \"webgoat/1.0\"]\n"}},
		},
		{name: "case of a group name", after: []edit{{"assignments.yaml", "group: Release Managers", "group: RELEASE managers"}}},
		{name: "case of a user name", after: []edit{{"assignments.yaml", "user: alice@contoso.com", "user: Alice@Contoso.COM"}}},
		{name: "case of an assignment name", after: []edit{{"assignments.yaml", "name: alice\n", "name: Alice\n"}}},
		{
			name: "only reordered",
			after: []edit{
				{"assignments.yaml", "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: alice\nspec:\n  subject:\n    user: alice@contoso.com\n  roles: [View Only]\n  applicationVersions: [\"webgoat/2.0\"]\n", ""},
				{"assignments.yaml", "# Who may do what.", "apiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: alice\nspec:\n  subject:\n    user: alice@contoso.com\n  roles: [View Only]\n  applicationVersions: [\"webgoat/2.0\"]\n---\n# Who may do what."},
			},
			empty: true,
		},
		{
			name:  "group renamed in Entra, spec follows",
			live:  func(t *testing.T, w *scimWorld) { w.rename("Release Managers", "Release Mgmt") },
			after: []edit{{"assignments.yaml", "group: Release Managers", "group: Release Mgmt"}},
		},
		{
			name:  "group renamed in Entra, assignment renamed",
			live:  func(t *testing.T, w *scimWorld) { w.rename("Release Managers", "Release Mgmt") },
			after: []edit{{"assignments.yaml", "name: release-managers\n", "name: release-mgrs\n"}},
		},
		{
			name: "role renamed in case only",
			after: []edit{
				{"roles.yaml", rm, "name: Release manager\n"},
				{"assignments.yaml", "roles: [Release Manager]", "roles: [Release manager]"},
			},
		},
		{
			name: "application deleted",
			after: []edit{
				{"applications.yaml", "---\napiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: payments-api\nspec:\n  versions: [\"2025.1\", \"2025.2\"]\n", ""},
				{"assignments.yaml", `  applicationVersions: ["payments-api/*"]` + "\n", ""},
				{"assignments.yaml", `["webgoat/*", "payments-api/*"]`, `["webgoat/*"]`},
			},
		},
		{
			name: "assignment deleted outside git, corrected",
			live: func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindAccessAssignment, "release-managers") },
		},
		{
			name: "assignment deleted outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindAccessAssignment, "release-managers") },
		},
		{
			name: "assignment created outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "backdoor",
					&spec.AccessAssignment{Subject: spec.Subject{User: "grace@contoso.com"}, Roles: []string{"Administrator"}})
			},
		},
		{
			name: "assignment changed outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "alice",
					&spec.AccessAssignment{Subject: spec.Subject{User: "alice@contoso.com"}, Roles: []string{"Administrator"}})
			},
		},
		{
			name: "assignment created outside git, corrected",
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "backdoor",
					&spec.AccessAssignment{Subject: spec.Subject{User: "grace@contoso.com"}, Roles: []string{"Administrator"}})
			},
		},
		{
			name: "application renamed, assignments follow",
			after: []edit{
				{"applications.yaml", "name: payments-api\n", "name: payments\n"},
				{"assignments.yaml", `"payments-api/*"`, `"payments/*"`},
				{"assignments.yaml", `"payments-api/*"`, `"payments/*"`},
			},
		},
		{name: "assignment renamed, same content", after: []edit{{"assignments.yaml", "name: release-managers\n", "name: release-mgrs\n"}}},
		{name: "group name in another Unicode case folding", after: []edit{{"assignments.yaml", "group: AppSec Admins", "group: APPSEC ADMIN\u017f"}}},
		{name: "group name folding alike, assignment renamed", after: []edit{{"assignments.yaml", "name: appsec-admins\n", "name: admins\n"}, {"assignments.yaml", "group: AppSec Admins", "group: appsec admin\u017f"}}},
		{name: "disabled user granted directly", after: []edit{{"assignments.yaml", "", directAssignment("frank", "frank@contoso.com", "Administrator")}}},
		{name: "disabled user's direct grant removed", before: []edit{{"assignments.yaml", "", directAssignment("frank", "frank@contoso.com", "Administrator")}}},
		{
			name:   "same role directly and through a group, direct one removed",
			before: []edit{{"assignments.yaml", "", directAssignment("dave", "dave@contoso.com", "Release Manager")}},
		},
		{
			name:   "same role directly and through a group, group one removed",
			before: []edit{{"assignments.yaml", "", directAssignment("dave", "dave@contoso.com", "Release Manager")}},
			after: []edit{
				{"assignments.yaml", "", directAssignment("dave", "dave@contoso.com", "Release Manager")},
				{"assignments.yaml", "group: Release Managers\n  roles: [Release Manager]", "group: Release Managers\n  roles: [Developer]"},
			},
		},
		{
			name: "role deleted outside git, corrected",
			live: func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindRole, "Release Manager") },
		},
		{
			name: "role deleted outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindRole, "Release Manager") },
		},
		{
			name:  "role deleted outside git, report mode, its assignment changed",
			mode:  DriftReport,
			live:  func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindRole, "Release Manager") },
			after: []edit{{"assignments.yaml", `["webgoat/*", "payments-api/*"]`, `["webgoat/*"]`}},
		},
		{
			name: "version removed outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindApplication, "payments-api", &spec.Application{Versions: []string{"2025.1"}})
			},
		},
		{
			name: "application deleted outside git, report mode",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) { adminDelete(t, w.s, spec.KindApplication, "payments-api") },
		},
		{
			name: "role removed from git while an assignment kept in report mode grants it",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "backdoor",
					&spec.AccessAssignment{Subject: spec.Subject{User: "grace@contoso.com"}, Roles: []string{"Release Manager"}})
			},
			after: []edit{
				{"roles.yaml", releaseManagerRole, ""},
				{"assignments.yaml", "group: Release Managers\n  roles: [Release Manager]", "group: Release Managers\n  roles: [Developer]"},
			},
		},
		{
			name: "application removed from git while an assignment kept in report mode grants it",
			mode: DriftReport,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "backdoor",
					&spec.AccessAssignment{Subject: spec.Subject{User: "grace@contoso.com"}, Roles: []string{"Developer"}, ApplicationVersions: []string{"payments-api/*"}})
			},
			after: []edit{
				{"applications.yaml", "---\napiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: payments-api\nspec:\n  versions: [\"2025.1\", \"2025.2\"]\n", ""},
				{"assignments.yaml", `  applicationVersions: ["payments-api/*"]` + "\n", ""},
				{"assignments.yaml", `["webgoat/*", "payments-api/*"]`, `["webgoat/*"]`},
			},
		},
		{
			name:    "after a restart, assignment changed outside git, report mode",
			mode:    DriftReport,
			restart: true,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "alice",
					&spec.AccessAssignment{Subject: spec.Subject{User: "alice@contoso.com"}, Roles: []string{"Administrator"}})
			},
		},
		{
			name:    "after a restart, assignment created outside git, report mode, role removed in git",
			mode:    DriftReport,
			restart: true,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindAccessAssignment, "backdoor",
					&spec.AccessAssignment{Subject: spec.Subject{User: "grace@contoso.com"}, Roles: []string{"Release Manager"}})
			},
			after: []edit{
				{"roles.yaml", releaseManagerRole, ""},
				{"assignments.yaml", "group: Release Managers\n  roles: [Release Manager]", "group: Release Managers\n  roles: [Developer]"},
			},
		},
		{
			name:    "after a restart, role changed outside git, report mode, assignment renamed in git",
			mode:    DriftReport,
			restart: true,
			live: func(t *testing.T, w *scimWorld) {
				adminWrite(t, w.s, spec.KindRole, "Release Manager", &spec.Role{Permissions: []string{"report.view"}})
			},
			after: []edit{{"assignments.yaml", "name: release-managers\n", "name: release-mgrs\n"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { runBlastCase(t, tc) })
	}
}

// directAssignment is a document granting role to user directly.
func directAssignment(name, user, role string) string {
	return "---\napiVersion: idrecon.io/v1alpha1\nkind: AccessAssignment\nmetadata:\n  name: " + name +
		"\nspec:\n  subject:\n    user: " + user + "\n  roles: [" + role + "]\n"
}

// releaseManagerRole is the example's one custom Role document.
const releaseManagerRole = "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: Release Manager\nspec:\n" +
	"  description: Creates and edits versions and reads reports, without auditing issues.\n" +
	"  permissions:\n    - version.create\n    - version.edit\n    - version.view\n    - report.view\n"
