package reconcile

import (
	"fmt"
	"slices"
	"strings"

	"github.com/idrecon/idrecon/spec"
)

// cautions says which changes of ops Entra does not follow by itself: the
// connection breaks at apply until an admin changes Entra's side too.
// They are valid and may be meant (a leaked token is revoked at once), so
// the plan says so for its review rather than the guard refusing them.
func cautions(ops []op) []string {
	var out []string
	for _, o := range ops {
		if o.actual == nil || o.doc == nil || o.kept {
			continue
		}
		ref := o.ref.String()
		switch before := o.actual.Spec.(type) {
		case *spec.ScimProvisioning:
			after, ok := o.doc.Spec.(*spec.ScimProvisioning)
			if !ok || !before.Enabled || !after.Enabled {
				continue
			}
			if len(before.Tokens) > 0 && !slices.ContainsFunc(after.Tokens, func(t spec.ScimToken) bool {
				return slices.ContainsFunc(before.Tokens, func(b spec.ScimToken) bool { return b.SHA256 == t.SHA256 })
			}) {
				out = append(out, fmt.Sprintf("%s replaces every token: Entra's provisioning gets 401 until its Secret Token is a new one "+
					"(to rotate without a gap, add the new token, update Entra, then remove the old)", ref))
			}
			if before.BasePath != after.BasePath || before.BaseURL != after.BaseURL {
				out = append(out, fmt.Sprintf("%s moves the SCIM endpoint: Entra's provisioning fails until its Tenant URL is %s", ref, tenantURL(after)))
			}
		case *spec.SamlServiceProvider:
			after, ok := o.doc.Spec.(*spec.SamlServiceProvider)
			if !ok || !before.Enabled || !after.Enabled {
				continue
			}
			if before.EntityID != after.EntityID {
				out = append(out, fmt.Sprintf("%s changes the entityID: sign-ins fail until Entra's Identifier (Entity ID) is %q", ref, after.EntityID))
			}
			if before.BaseURL != after.BaseURL {
				out = append(out, fmt.Sprintf("%s changes the baseURL: sign-ins fail until Entra's Reply URL is %s/saml/acs (`idrecon saml metadata` writes the SP metadata to upload)", ref, strings.TrimRight(after.BaseURL, "/")))
			}
		}
	}
	return out
}

// tenantURL is the Tenant URL Entra provisions into for s: its baseURL, or
// its base path on the daemon's address.
func tenantURL(s *spec.ScimProvisioning) string {
	if s.BaseURL != "" {
		return s.BaseURL
	}
	return "https://<this daemon's address>" + s.BasePath
}
