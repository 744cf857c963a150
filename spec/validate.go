package spec

import (
	"net/url"
	"strconv"
	"strings"
	"unicode"
)

func (l *loader) checkApplication(p *parsedDoc, a *Application) {
	name := p.doc.Metadata.Name
	if strings.Contains(name, "/") || name == "*" {
		l.fail(p, "metadata.name", "an application name must not contain '/' or be '*'")
	}
	if len(a.Versions) == 0 {
		l.fail(p, "spec.versions", "at least one version is required")
	}
	seen := make(map[string]int, len(a.Versions))
	for i, v := range a.Versions {
		f := func() string { return item("spec.versions", i) }
		switch {
		case v == "":
			l.fail(p, f(), "must not be empty")
		case strings.Contains(v, "/") || v == "*":
			l.fail(p, f(), "a version must not contain '/' or be '*'")
		case strings.TrimSpace(v) != v || strings.ContainsFunc(v, unicode.IsControl) || strings.ContainsFunc(v, invisible):
			l.fail(p, f(), "must not start or end with spaces or contain control or invisible characters")
		default:
			if j, dup := seen[v]; dup {
				l.fail(p, f(), "duplicate version %q (first at spec.versions[%d])", v, j)
			} else {
				seen[v] = i
			}
		}
	}
}

func (l *loader) checkRole(p *parsedDoc, r *Role) {
	name := p.doc.Metadata.Name
	if _, builtin := BuiltinRoles[name]; builtin {
		l.fail(p, "metadata.name", "%q is a builtin role and cannot be redefined; assign it or define a role with another name", name)
	} else {
		for _, b := range sortedKeys(BuiltinRoles) {
			if strings.EqualFold(b, name) {
				// An application comparing role names case-insensitively
				// would grant the builtin role.
				l.fail(p, "metadata.name", "%q is the builtin role %q but for case; assign that one or define a role with another name", name, b)
			}
		}
	}
	if len(r.Permissions) == 0 {
		l.fail(p, "spec.permissions", "at least one permission is required")
	}
	seen := make(map[string]bool, len(r.Permissions))
	for i, perm := range r.Permissions {
		f := func() string { return item("spec.permissions", i) }
		switch {
		case perm == "" || strings.ContainsAny(perm, " \t\r\n"):
			l.fail(p, f(), "a permission is a non-empty word like version.view")
		case seen[perm]:
			l.fail(p, f(), "duplicate permission %q", perm)
		}
		seen[perm] = true
	}
}

func (l *loader) roleExists(name string) bool {
	if _, ok := BuiltinRoles[name]; ok {
		return true
	}
	_, ok := l.byRef[Ref{Kind: KindRole, Name: name}]
	return ok
}

func (l *loader) checkAssignment(p *parsedDoc, a *AccessAssignment) {
	switch {
	case a.Subject.Group != "" && a.Subject.User != "":
		l.fail(p, "spec.subject", "set exactly one of group and user, not both")
	case a.Subject.Group == "" && a.Subject.User == "":
		l.fail(p, "spec.subject", "set exactly one of group and user")
	}
	if len(a.Roles) == 0 && len(a.ApplicationVersions) == 0 {
		l.fail(p, "spec", "grant at least one role or application version")
	}
	seen := make(map[string]bool, len(a.Roles)+len(a.ApplicationVersions))
	for i, r := range a.Roles {
		f := func() string { return item("spec.roles", i) }
		switch {
		case seen[r]:
			l.fail(p, f(), "duplicate role %q", r)
		case !l.roleExists(r):
			l.fail(p, f(), "no Role named %q (builtin roles: %s)", r, strings.Join(sortedKeys(BuiltinRoles), ", "))
		}
		seen[r] = true
	}
	clear(seen)
	for i, av := range a.ApplicationVersions {
		f := func() string { return item("spec.applicationVersions", i) }
		app, version, ok := strings.Cut(av, "/")
		if !ok || app == "" || version == "" || strings.Contains(version, "/") {
			l.fail(p, f(), "%q must be app/version or app/*", av)
			continue
		}
		if seen[av] {
			l.fail(p, f(), "duplicate application version %q", av)
			continue
		}
		seen[av] = true
		ref, ok := l.byRef[Ref{Kind: KindApplication, Name: app}]
		if !ok {
			l.fail(p, f(), "no Application named %q", app)
			continue
		}
		if version == "*" {
			continue
		}
		if !ref.hasVersion(version) {
			l.fail(p, f(), "Application %q has no version %q", app, version)
		}
	}
}

// hasVersion reports whether an Application document lists version. The
// version set is built once per application, so checking many assignments
// stays linear.
func (p *parsedDoc) hasVersion(version string) bool {
	if p.versions == nil {
		a := p.doc.Spec.(*Application)
		p.versions = make(map[string]struct{}, len(a.Versions))
		for _, v := range a.Versions {
			p.versions[v] = struct{}{}
		}
	}
	_, ok := p.versions[version]
	return ok
}

// item renders the path of a list element; checks call it only on failure.
func item(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// checkMetadataURL accepts an https metadataURL, or an http one only with
// allowInsecureMetadataURL: fetched over plain http, the IdP's metadata
// (its endpoints, and its keys when unsigned) can be rewritten on the way.
// Which addresses may be dialled is decided at fetch time, on the address
// the name resolves to then.
//
// Unlike baseURL it may have a query: Entra's App Federation Metadata Url,
// the app-specific metadata, ends in ?appid=<application id>.
func (l *loader) checkMetadataURL(p *parsedDoc, idp *SamlIDP) {
	u, err := url.Parse(idp.MetadataURL)
	// A bare '#' is an empty fragment to url.Parse, but one written all
	// the same: refused as the schema refuses it.
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Contains(idp.MetadataURL, "#") || u.User != nil {
		l.fail(p, "spec.idp.metadataURL", "must be an absolute http(s) URL without credentials or fragment")
		return
	}
	if u.Scheme == "http" && !idp.AllowInsecureMetadataURL {
		l.fail(p, "spec.idp.metadataURL", "must be https (set idp.allowInsecureMetadataURL: true to fetch it over plain http)")
	}
}
