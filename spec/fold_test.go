package spec

import (
	"errors"
	"strings"
	"testing"
)

// TestGatewayHeadersFoldAsTheGatewayDoes: runtime/gateway defaults the user
// header to "username" and refuses another header that folds like it, so a
// Gateway that leaves userHeader out and names a roles, versions or secret
// header spelled like "username" loaded, then the gateway refused it and
// answered 503 after a successful apply.
func TestGatewayHeadersFoldAsTheGatewayDoes(t *testing.T) {
	tests := []struct{ name, spec, want string }{
		{"roles header is the default user header", "  rolesHeader: UserName\n",
			"g.yaml:6:16: spec.rolesHeader: UserName is already used by spec.userHeader (default username)"},
		{"versions header is the default user header", "  versionsHeader: USERNAME\n",
			"g.yaml:6:19: spec.versionsHeader: USERNAME is already used by spec.userHeader (default username)"},
		{"secret header is the default user header", "  upstream: http://app\n  sharedSecret: {header: username, valueFrom: {env: GW_SECRET}}\n",
			"spec.sharedSecret.header: username is already used by spec.userHeader (default username)"},
		{"secret header folds like the roles header", "  upstream: http://app\n  rolesHeader: X-Roles\n  sharedSecret: {header: x_ROLES, valueFrom: {env: GW_SECRET}}\n",
			"spec.sharedSecret.header: x_ROLES is already used by spec.rolesHeader"},
		{"forwarding header with underscores and odd case", "  versionsHeader: x_FORWARDED_proto\n",
			"g.yaml:6:19: spec.versionsHeader: x_FORWARDED_proto is set by HTTP or proxies"},
		{"x-original with underscores", "  rolesHeader: X_ORIGINAL_URI\n", "spec.rolesHeader: X_ORIGINAL_URI is set by HTTP or proxies"},
		{"hop-by-hop with underscores", "  userHeader: proxy_CONNECTION\n", "spec.userHeader: proxy_CONNECTION is a hop-by-hop header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, map[string]string{"g.yaml": gatewayDoc("g", tt.spec)}), map[string]string{"GW_SECRET": "s3cret-value"})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
	// A user header written out replaces the default, which then names
	// nothing: "username" is free for the roles.
	if _, err := load(t, writeTree(t, map[string]string{"g.yaml": gatewayDoc("g", "  userHeader: X-User\n  rolesHeader: username\n")}), nil); err != nil {
		t.Fatalf("roles in username beside another user header: %v", err)
	}
}

// TestFoldHeaderName: the spelling runtime/gateway strips by, so the loader
// refuses exactly the names the gateway takes for one another.
func TestFoldHeaderName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"User-Name", "user-name"}, {"USER_NAME", "user-name"}, {"User.Name", "user-name"},
		{"x_Forwarded.FOR", "x-forwarded-for"}, {"", ""}, {"é_X", "é-x"},
	} {
		if got := FoldHeaderName(tt.in); got != tt.want {
			t.Errorf("FoldHeaderName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if FoldHeaderName(DefaultGatewayUserHeader) != "username" {
		t.Errorf("the default user header is %q", DefaultGatewayUserHeader)
	}
}

// TestNamesThatFoldAlike: a custom Role spelled like a builtin one but for
// case loaded, and its name went out in the roles header, where an
// application comparing role names case-insensitively reads it as the
// builtin; two Roles or two Applications differing only by case are one to
// such an application too. Names are compared as the runtime compares
// names, with Unicode simple case folding.
func TestNamesThatFoldAlike(t *testing.T) {
	roleDoc := func(name string) string {
		return "apiVersion: idrecon.io/v1alpha1\nkind: Role\nmetadata:\n  name: " + name + "\nspec:\n  permissions: [version.view]\n"
	}
	appDoc := func(name string) string {
		return "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: " + name + "\nspec:\n  versions: [\"1.0\"]\n"
	}
	tests := []struct {
		name  string
		files map[string]string
		want  string // "" means valid
	}{
		{"builtin in lower case", map[string]string{"r.yaml": roleDoc("administrator")},
			`r.yaml:4:9: metadata.name: "administrator" is the builtin role "Administrator" but for case`},
		{"builtin with one letter's case changed", map[string]string{"r.yaml": roleDoc("\"View only\"")},
			`metadata.name: "View only" is the builtin role "View Only" but for case`},
		{"two applications, one with a Kelvin sign", map[string]string{"a.yaml": appDoc("k8s"), "b.yaml": appDoc("\u212a8s")},
			"b.yaml:4:9: metadata.name: Application \"\u212a8s\" differs only in case from Application \"k8s\""},
		{"two roles in two files", map[string]string{"a.yaml": roleDoc("Ops"), "b.yaml": roleDoc("OPS")},
			`b.yaml:4:9: metadata.name: Role "OPS" differs only in case from Role "Ops" (defined at a.yaml:1:1)`},
		{"two roles, one with a long s", map[string]string{"a.yaml": roleDoc("ops"), "b.yaml": roleDoc("op\u017f")},
			`b.yaml:4:9: metadata.name: Role "opſ" differs only in case from Role "ops"`},
		{"two applications", map[string]string{"a.yaml": appDoc("WebGoat") + "---\n" + appDoc("webgoat")},
			`a.yaml:11:9: metadata.name: Application "webgoat" differs only in case from Application "WebGoat"`},
		{"a role and an application may share a name", map[string]string{"a.yaml": roleDoc("ops"), "b.yaml": appDoc("OPS")}, ""},
		{"distinct names", map[string]string{"a.yaml": roleDoc("ops"), "b.yaml": roleDoc("dev")}, ""},
		// Names that read as another everywhere they are shown.
		{"a zero-width space", map[string]string{"r.yaml": roleDoc("\"Administrator\u200b\"")},
			`r.yaml:4:9: metadata.name: must not contain invisible characters`},
		{"a direction override", map[string]string{"a.yaml": appDoc("\"web\u202egoat\"")}, `must not contain invisible characters`},
		{"an invisible version", map[string]string{"a.yaml": "apiVersion: idrecon.io/v1alpha1\nkind: Application\nmetadata:\n  name: w\nspec:\n  versions: [\"1.0\u00ad\"]\n"},
			`spec.versions[0]: must not start or end with spaces or contain control or invisible characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, writeTree(t, tt.files), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant one containing %q", err, tt.want)
			}
		})
	}
}
