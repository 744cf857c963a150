package spec

import (
	"fmt"
	"slices"
)

const enterpriseUser = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"

// UserAttributes lists every entry ScimProvisioning.userAttributes accepts:
// the core User attributes Entra maps by default, written as SCIM paths.
var UserAttributes = func() []string {
	attrs := []string{
		"userName", "active", "externalId", "displayName", "nickName", "title",
		"userType", "preferredLanguage", "locale", "timezone", "profileUrl",
		"name.givenName", "name.familyName", "name.formatted", "name.middleName",
		"name.honorificPrefix", "name.honorificSuffix",
	}
	for _, t := range []string{"work", "home", "other"} {
		attrs = append(attrs, fmt.Sprintf(`emails[type eq "%s"].value`, t))
	}
	for _, t := range []string{"work", "mobile", "fax"} {
		attrs = append(attrs, fmt.Sprintf(`phoneNumbers[type eq "%s"].value`, t))
	}
	for _, sub := range []string{"formatted", "streetAddress", "locality", "region", "postalCode", "country"} {
		attrs = append(attrs, fmt.Sprintf(`addresses[type eq "work"].%s`, sub))
	}
	for _, a := range []string{"employeeNumber", "department", "manager", "costCenter", "organization", "division"} {
		attrs = append(attrs, enterpriseUser+a)
	}
	return attrs
}()

var userAttributeSet = func() map[string]bool {
	m := make(map[string]bool, len(UserAttributes))
	for _, a := range UserAttributes {
		m[a] = true
	}
	return m
}()

// checkUserAttributes applies the default attribute set and makes sure
// userName, the key every SCIM request matches on, is always kept.
func (l *loader) checkUserAttributes(p *parsedDoc, s *ScimProvisioning) {
	if len(s.UserAttributes) == 0 {
		s.UserAttributes = slices.Clone(DefaultUserAttributes)
		return
	}
	seen := make(map[string]bool, len(s.UserAttributes))
	for i, a := range s.UserAttributes {
		f := fmt.Sprintf("spec.userAttributes[%d]", i)
		switch {
		case !userAttributeSet[a]:
			l.fail(p, f, "unknown user attribute %q", a)
		case seen[a]:
			l.fail(p, f, "duplicate user attribute %q", a)
		}
		seen[a] = true
	}
	if !seen["userName"] {
		s.UserAttributes = append([]string{"userName"}, s.UserAttributes...)
	}
}
