package access_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/runtime/store"
)

func baseWorld(t *testing.T) *world {
	t.Helper()
	w := newWorld(t)
	w.builtinRoles()
	w.app("payments", "1.0", "2.0")
	w.app("ledger", "1")
	return w
}

var dev = []string{"Developer"}

func TestEffectiveRules(t *testing.T) {
	tests := []struct {
		name         string
		setup        func(w *world)
		user         string
		wantRoles    []string
		wantVersions []string
		wantAccess   bool
		wantPending  []string
	}{
		{
			name:  "no assignment means no access",
			setup: func(w *world) { w.user("ann", true) },
			user:  "ann",
		},
		{
			name: "direct role and version",
			setup: func(w *world) {
				w.user("ann@x.com", true)
				w.assign("a1", "user:ANN@x.com", dev, "payments/1.0")
			},
			user: "ann@X.com", wantRoles: dev, wantVersions: []string{"payments/1.0"}, wantAccess: true,
		},
		{
			name: "version without a role is no access",
			setup: func(w *world) {
				w.user("ann", true)
				w.assign("a1", "user:ann", nil, "payments/1.0")
			},
			user: "ann", wantVersions: []string{"payments/1.0"},
		},
		{
			name: "role through a group, version directly",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Developers")
				w.member(g, u)
				w.assign("devs", "group:developers", dev)
				w.assign("ann", "user:ann", nil, "ledger/1")
			},
			user: "ann", wantRoles: dev, wantVersions: []string{"ledger/1"}, wantAccess: true,
		},
		{
			name: "disabled user keeps grants without access",
			setup: func(w *world) {
				w.user("ann", false)
				w.assign("a1", "user:ann", dev, "payments/2.0")
			},
			user: "ann", wantRoles: dev, wantVersions: []string{"payments/2.0"},
		},
		{
			name: "re-enabled user has access again",
			setup: func(w *world) {
				id := w.user("ann", true)
				w.assign("a1", "user:ann", dev)
				w.setActive(id, false)
				w.setActive(id, true)
			},
			user: "ann", wantRoles: dev, wantAccess: true,
		},
		{
			name: "app/* includes versions added later",
			setup: func(w *world) {
				w.user("ann", true)
				w.assign("a1", "user:ann", dev, "payments/*")
				w.app("payments", "1.0", "2.0", "3.0")
			},
			user: "ann", wantRoles: dev, wantVersions: []string{"payments/1.0", "payments/2.0", "payments/3.0"}, wantAccess: true,
		},
		{
			name: "unknown roles, applications and versions grant nothing",
			setup: func(w *world) {
				w.user("ann", true)
				w.assign("a1", "user:ann", []string{"Wizard"}, "payments/9.9", "nope/*", "garbage")
			},
			user: "ann",
		},
		{
			name: "member of a nested group only gets nothing from the outer group",
			setup: func(w *world) {
				u := w.user("ann", true)
				inner, outer := w.group("Inner"), w.group("Outer")
				w.member(inner, u)
				w.member(outer, inner)
				w.assign("outer", "group:Outer", dev)
			},
			user: "ann",
		},
		{
			name: "pending group takes effect when it arrives",
			setup: func(w *world) {
				u := w.user("ann", true)
				w.assign("later", "group:Later", dev)
				g := w.group("later")
				w.member(g, u)
			},
			user: "ann", wantRoles: dev, wantAccess: true,
		},
		{
			name: "pending subjects are reported",
			setup: func(w *world) {
				w.user("ann", true)
				w.assign("g", "group:Nobody", dev)
				w.assign("u", "user:nobody", dev)
			},
			user: "ann", wantPending: []string{"g=not provisioned", "u=not provisioned"},
		},
		{
			name: "deleted bound group is reported deleted",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Ops")
				w.member(g, u)
				w.assign("ops", "group:Ops", dev)
				w.bind()
				w.deleteGroup(g)
				w.bind()
			},
			user: "ann", wantPending: []string{"ops=deleted"},
		},
		{
			name: "deleted user is reported not provisioned",
			setup: func(w *world) {
				w.user("ann", true)
				id := w.user("bob", true)
				w.assign("bob", "user:bob", dev)
				w.deleteUser(id)
			},
			user: "ann", wantPending: []string{"bob=not provisioned"},
		},
		{
			name: "renamed bound group keeps its access",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Ops")
				w.member(g, u)
				w.assign("ops", "group:Ops", dev, "ledger/1")
				w.bind()
				w.rename(g, "Operations")
				w.bind()
			},
			user: "ann", wantRoles: dev, wantVersions: []string{"ledger/1"}, wantAccess: true,
		},
		{
			name: "a new group with the old name does not take the access over",
			setup: func(w *world) {
				w.user("ann", true)
				g := w.group("Ops")
				w.assign("ops", "group:Ops", dev)
				w.bind()
				w.rename(g, "Operations")
				newer := w.group("Ops")
				w.member(newer, w.user("mallory", true))
				w.bind()
			},
			user: "mallory",
		},
		{
			name: "renamed group never bound is matched by name only",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Ops")
				w.member(g, u)
				w.assign("ops", "group:Ops", dev)
				w.rename(g, "Operations")
			},
			user: "ann", wantPending: []string{"ops=not provisioned"},
		},
		{
			name: "changing the spec subject drops the stale binding",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Ops")
				w.member(g, u)
				w.group("Other")
				w.assign("ops", "group:Ops", dev)
				w.bind()
				w.assign("ops", "group:Other", dev)
			},
			user: "ann",
		},
		{
			name: "deleted then recreated group binds by name again",
			setup: func(w *world) {
				u := w.user("ann", true)
				g := w.group("Ops")
				w.assign("ops", "group:Ops", dev)
				w.bind()
				w.deleteGroup(g)
				w.bind()
				g2 := w.group("OPS")
				w.member(g2, u)
			},
			user: "ann", wantRoles: dev, wantAccess: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := baseWorld(t)
			tt.setup(w)
			e := w.forUser(tt.user)
			if got := e.RoleNames(); !slices.Equal(got, tt.wantRoles) {
				t.Errorf("roles = %v, want %v", got, tt.wantRoles)
			}
			if got := e.VersionNames(); !slices.Equal(got, tt.wantVersions) {
				t.Errorf("versions = %v, want %v", got, tt.wantVersions)
			}
			if e.HasAccess() != tt.wantAccess {
				t.Errorf("HasAccess = %v, want %v", e.HasAccess(), tt.wantAccess)
			}
			want := tt.wantPending
			if want == nil {
				want = []string{}
			}
			if got := w.pending(); !slices.Equal(got, want) {
				t.Errorf("pending = %v, want %v", got, want)
			}
		})
	}
}

func TestGrantSources(t *testing.T) {
	w := baseWorld(t)
	u := w.user("ann", true)
	g := w.group("Developers")
	w.member(g, u)
	w.assign("devs", "group:developers", []string{"Developer", "View Only"}, "payments/*")
	w.assign("ann", "user:ann", []string{"Developer"}, "payments/1.0")
	e := w.forUser("ann")
	want := []string{"Developer<ann@", "Developer<devs@Developers", "View Only<devs@Developers"}
	if got := roleGrants(e); !slices.Equal(got, want) {
		t.Errorf("role grants = %v, want %v", got, want)
	}
	var vias []string
	for _, v := range e.Versions() {
		vias = append(vias, v.Version+" "+v.Via+" "+v.Assignment+"@"+v.Group)
	}
	wantVias := []string{"1.0 payments/1.0 ann@", "1.0 payments/* devs@Developers", "2.0 payments/* devs@Developers"}
	if !slices.Equal(vias, wantVias) {
		t.Errorf("version grants = %v, want %v", vias, wantVias)
	}
}

// TestGrantOrder checks the documented order: direct assignments first, then
// groups by displayName (byte order: "Dev", "QA", "ops"); within a source by
// assignment, bound to the group or matched by name.
func TestGrantOrder(t *testing.T) {
	w := baseWorld(t)
	u := w.user("ann", true)
	for _, name := range []string{"ops", "QA", "Dev"} {
		w.member(w.group(name), u)
	}
	for _, a := range []string{"c", "a", "d", "b"} {
		w.assign(a+"-ann", "user:ann", dev)
		w.assign(a+"-ops", "group:OPS", dev)
	}
	w.assign("qa", "group:qa", dev)
	w.assign("dev", "group:dev", dev)
	want := []string{
		"Developer<a-ann@", "Developer<b-ann@", "Developer<c-ann@", "Developer<d-ann@",
		"Developer<dev@Dev", "Developer<qa@QA",
		"Developer<a-ops@ops", "Developer<b-ops@ops", "Developer<c-ops@ops", "Developer<d-ops@ops",
	}
	if got := roleGrants(w.forUser("ann")); !slices.Equal(got, want) {
		t.Errorf("matched by name: role grants = %v, want %v", got, want)
	}
	w.bind()
	w.assign("bb-ops", "group:ops", []string{"Manager"}) // not bound yet
	want = slices.Insert(want, 8, "Manager<bb-ops@ops")
	if got := roleGrants(w.forUser("ann")); !slices.Equal(got, want) {
		t.Errorf("bound and matched: role grants = %v, want %v", got, want)
	}
}

func TestUnknownUser(t *testing.T) {
	w := baseWorld(t)
	if _, err := access.ForUser(w.st.Read(), "ghost"); !errors.Is(err, access.ErrUnknownUser) {
		t.Fatalf("err = %v, want ErrUnknownUser", err)
	}
}

func TestWhoCanReach(t *testing.T) {
	w := baseWorld(t)
	ann, bob, cid, dan := w.user("ann", true), w.user("Bob", true), w.user("cid", false), w.user("dan", true)
	devs, ops := w.group("Developers"), w.group("Ops")
	for _, id := range []string{ann, bob, cid} {
		w.member(devs, id)
	}
	w.member(ops, bob)
	w.member(ops, dan)
	w.assign("devs", "group:Developers", dev, "payments/*")
	w.assign("ops", "group:Ops", nil, "payments/2.0")
	w.assign("dan", "user:dan", nil, "payments/2.0") // dan has no role anywhere

	r, err := access.WhoCanReach(w.st.Read(), "payments", "2.0")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range r.Users {
		for _, p := range u.Paths {
			got = append(got, u.UserName+" "+p.Assignment+"@"+p.Group+" "+p.Via)
		}
	}
	want := []string{
		"ann devs@Developers payments/*",
		"Bob devs@Developers payments/*",
		"Bob ops@Ops payments/2.0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("paths = %q, want %q", got, want)
	}

	for _, limit := range []int{1, 2, 3} {
		if whole, paged := w.reachPages("payments", "2.0", limit); !slices.Equal(paged, whole) {
			t.Errorf("pages of %d = %q, want %q", limit, paged, whole)
		}
	}
	p, err := access.WhoCanReachPage(w.st.Read(), "payments", "2.0", "ANN", 1)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 2 || len(p.Users) != 1 || p.Users[0].UserName != "Bob" || p.Next != "" {
		t.Errorf("page after ANN = %+v, want Bob of 2 and no next page", p)
	}

	for _, tc := range []struct {
		app, version string
		want         error
	}{
		{"nope", "1", access.ErrUnknownApplication},
		{"payments", "9", access.ErrUnknownVersion},
	} {
		if _, err := access.WhoCanReach(w.st.Read(), tc.app, tc.version); !errors.Is(err, tc.want) {
			t.Errorf("WhoCanReach(%s/%s) err = %v, want %v", tc.app, tc.version, err, tc.want)
		}
		if _, err := access.WhoCanReachPage(w.st.Read(), tc.app, tc.version, "", 10); !errors.Is(err, tc.want) {
			t.Errorf("WhoCanReachPage(%s/%s) err = %v, want %v", tc.app, tc.version, err, tc.want)
		}
	}
}

func TestRenameIsReportedAsDrift(t *testing.T) {
	w := baseWorld(t)
	g := w.group("Ops")
	w.assign("ops", "group:Ops", dev)
	w.bind()
	w.rename(g, "Operations")
	got, err := access.Renames(w.st.Read())
	if err != nil {
		t.Fatal(err)
	}
	want := []access.GroupRename{{
		Assignment: "ops", From: "Ops", To: "Operations", GroupID: g, GroupExternalID: "ext-" + g,
		Suggestion: `rename subject.group from "Ops" to "Operations"`,
	}}
	if !slices.Equal(got, want) {
		t.Errorf("renames = %+v, want %+v", got, want)
	}
	// Applying the suggestion resolves the drift and keeps the access.
	w.assign("ops", "group:Operations", dev)
	if got, _ := access.Renames(w.st.Read()); len(got) != 0 {
		t.Errorf("renames after fix = %+v, want none", got)
	}
}

func TestSyncBindingsIsIdempotent(t *testing.T) {
	w := baseWorld(t)
	w.group("Ops")
	w.assign("ops", "group:Ops", dev)
	w.assign("gone", "group:Gone", dev)
	count := func() int {
		var n int
		w.update(func(tx *store.Txn) error {
			var err error
			n, err = access.SyncBindings(tx)
			return err
		})
		return n
	}
	if n := count(); n != 1 {
		t.Fatalf("first sync changed %d records, want 1", n)
	}
	if n := count(); n != 0 {
		t.Fatalf("second sync changed %d records, want 0", n)
	}
	w.deleteResource("AccessAssignment", "ops")
	if n := count(); n != 1 {
		t.Fatalf("sync after removing the assignment changed %d records, want 1", n)
	}
}
