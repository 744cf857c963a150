// Package schema describes the SCIM resource schemas idrecon serves (core
// User and Group, the enterprise User extension) and normalises resources
// against them: canonical attribute names, nulls dropped, string booleans
// turned into booleans, Entra's plain-string manager made complex, types
// checked.
package schema

import (
	"strings"
)

// Schema URIs.
const (
	URIUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	URIGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	URIEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// Attribute types.
const (
	String    = "string"
	Boolean   = "boolean"
	Complex   = "complex"
	Reference = "reference"
	DateTime  = "dateTime"
	Integer   = "integer"
	Decimal   = "decimal"
)

// Attribute is one attribute definition (RFC 7643 §7).
type Attribute struct {
	Name            string       `json:"name"`
	Type            string       `json:"type"`
	MultiValued     bool         `json:"multiValued"`
	Description     string       `json:"description"`
	Required        bool         `json:"required"`
	CaseExact       bool         `json:"caseExact"`
	Mutability      string       `json:"mutability"`
	Returned        string       `json:"returned"`
	Uniqueness      string       `json:"uniqueness"`
	CanonicalValues []string     `json:"canonicalValues,omitempty"`
	ReferenceTypes  []string     `json:"referenceTypes,omitempty"`
	SubAttributes   []*Attribute `json:"subAttributes,omitempty"`

	// maxRunes bounds a string value (MaxTextLength when 0); multiline
	// lets it hold line breaks and tabs, the only control characters any
	// attribute may hold.
	maxRunes  int
	multiline bool
}

// Limits of string values, in runes (Unicode code points). Entra's own are
// lower (a userPrincipalName has at most 113 characters, a displayName 256),
// so they refuse only what no directory sends.
const (
	// MaxNameLength bounds userName, displayName, externalId and the
	// values of emails, members and manager: what identifies an object.
	MaxNameLength = 256
	// MaxTextLength bounds every other string.
	MaxTextLength = 1024
)

// name marks a as an identifying attribute, bounded by MaxNameLength.
func name(a *Attribute) *Attribute { a.maxRunes = MaxNameLength; return a }

// multiline lets a hold line breaks, as a postal address does.
func multiline(a *Attribute) *Attribute { a.multiline = true; return a }

// Sub returns the sub-attribute called name (case-insensitively), or nil.
func (a *Attribute) Sub(name string) *Attribute {
	for _, s := range a.SubAttributes {
		if strings.EqualFold(s.Name, name) {
			return s
		}
	}
	return nil
}

// ReadOnly reports whether clients may not write the attribute.
func (a *Attribute) ReadOnly() bool { return a.Mutability == "readOnly" }

// Immutable reports whether the attribute is set only with what holds it
// (a resource, an element of a multi-valued attribute) and never changed
// after (RFC 7643 §2.2).
func (a *Attribute) Immutable() bool { return a.Mutability == "immutable" }

// Schema is one schema resource.
type Schema struct {
	ID          string       `json:"id"`
	Name        string       `json:"name"`
	Description string       `json:"description"`
	Attributes  []*Attribute `json:"attributes"`
}

// Attr returns the attribute called name (case-insensitively), or nil.
func (s *Schema) Attr(name string) *Attribute {
	for _, a := range s.Attributes {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// ResourceType ties a core schema to its extensions.
type ResourceType struct {
	Name       string
	Endpoint   string
	Core       *Schema
	Extensions []*Schema
}

// Extension returns the extension schema with uri (case-insensitively), or nil.
func (rt *ResourceType) Extension(uri string) *Schema {
	for _, s := range rt.Extensions {
		if strings.EqualFold(s.ID, uri) {
			return s
		}
	}
	return nil
}

// Resolved is an attribute path resolved against a resource type. Ext is ""
// for core (and common) attributes, else the extension URI the attribute is
// stored under.
type Resolved struct {
	Ext  string
	Attr *Attribute
	Sub  *Attribute // nil when the path names no sub-attribute
}

// Resolve finds the attribute uri:name(.sub). uri may be "" (core, common,
// or — as Entra sends "manager" — an extension attribute no core attribute
// shadows). ok is false when nothing matches.
func (rt *ResourceType) Resolve(uri, name, sub string) (Resolved, bool) {
	var r Resolved
	switch {
	case uri == "" || strings.EqualFold(uri, rt.Core.ID):
		if a := common(name); a != nil {
			r.Attr = a
		} else if a := rt.Core.Attr(name); a != nil {
			r.Attr = a
		} else if uri == "" {
			for _, e := range rt.Extensions {
				if a := e.Attr(name); a != nil {
					r.Ext, r.Attr = e.ID, a
					break
				}
			}
		}
	default:
		if e := rt.Extension(uri); e != nil {
			if a := e.Attr(name); a != nil {
				r.Ext, r.Attr = e.ID, a
			}
		}
	}
	if r.Attr == nil {
		return r, false
	}
	if sub != "" {
		r.Sub = r.Attr.Sub(sub)
		if r.Sub == nil {
			return r, false
		}
	}
	return r, true
}

// SplitURN splits a fully qualified attribute path
// ("urn:…:User:name.givenName") into its schema URI and the attribute path.
// It returns uri "" when path is not URN-qualified.
func SplitURN(path string) (uri, attr string) {
	if len(path) < 4 || !strings.EqualFold(path[:4], "urn:") {
		return "", path
	}
	head := path
	if b := strings.IndexByte(path, '['); b >= 0 {
		head = path[:b]
	}
	i := strings.LastIndexByte(head, ':')
	return path[:i], path[i+1:]
}

var (
	idAttr         = &Attribute{Name: "id", Type: String, CaseExact: true, Mutability: "readOnly", Returned: "always", Uniqueness: "server", Description: "Identifier issued by the service provider."}
	externalIDAttr = name(&Attribute{Name: "externalId", Type: String, CaseExact: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: "Identifier issued by the provisioning client."})
	metaAttr       = &Attribute{Name: "meta", Type: Complex, Mutability: "readOnly", Returned: "default", Uniqueness: "none", Description: "Resource metadata.", SubAttributes: []*Attribute{
		str("resourceType", "readOnly", true), dt("created"), dt("lastModified"),
		{Name: "location", Type: Reference, CaseExact: true, Mutability: "readOnly", Returned: "default", Uniqueness: "none", ReferenceTypes: []string{"uri"}},
		str("version", "readOnly", true),
	}}
)

func common(name string) *Attribute {
	switch strings.ToLower(name) {
	case "id":
		return idAttr
	case "externalid":
		return externalIDAttr
	case "meta":
		return metaAttr
	}
	return nil
}

func str(name, mutability string, caseExact bool) *Attribute {
	return &Attribute{Name: name, Type: String, CaseExact: caseExact, Mutability: mutability, Returned: "default", Uniqueness: "none"}
}

func dt(name string) *Attribute {
	return &Attribute{Name: name, Type: DateTime, Mutability: "readOnly", Returned: "default", Uniqueness: "none"}
}

func withDesc(a *Attribute, d string) *Attribute { a.Description = d; return a }

func complexAttr(name, desc string, subs ...*Attribute) *Attribute {
	return &Attribute{Name: name, Type: Complex, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: desc, SubAttributes: subs}
}

// multi is a multi-valued complex attribute with the usual value, display,
// type and primary sub-attributes.
func multi(attr, desc string, types ...string) *Attribute {
	return &Attribute{Name: attr, Type: Complex, MultiValued: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: desc, SubAttributes: []*Attribute{
		name(str("value", "readWrite", false)), str("display", "readWrite", false),
		{Name: "type", Type: String, Mutability: "readWrite", Returned: "default", Uniqueness: "none", CanonicalValues: types},
		{Name: "primary", Type: Boolean, Mutability: "readWrite", Returned: "default", Uniqueness: "none"},
	}}
}

// User is the core User schema.
var User = &Schema{ID: URIUser, Name: "User", Description: "User Account", Attributes: []*Attribute{
	name(&Attribute{Name: "userName", Type: String, Required: true, Mutability: "readWrite", Returned: "default", Uniqueness: "server", Description: "Unique identifier for the user; Entra sends the userPrincipalName."}),
	complexAttr("name", "The components of the user's name.",
		str("formatted", "readWrite", false), str("familyName", "readWrite", false), str("givenName", "readWrite", false),
		str("middleName", "readWrite", false), str("honorificPrefix", "readWrite", false), str("honorificSuffix", "readWrite", false)),
	name(withDesc(str("displayName", "readWrite", false), "Name of the user, suitable for display.")),
	withDesc(str("nickName", "readWrite", false), "Casual name of the user."),
	{Name: "profileUrl", Type: Reference, Mutability: "readWrite", Returned: "default", Uniqueness: "none", ReferenceTypes: []string{"external"}, Description: "URL of the user's online profile."},
	withDesc(str("title", "readWrite", false), "The user's title."),
	withDesc(str("userType", "readWrite", false), "Relationship between the organisation and the user."),
	withDesc(str("preferredLanguage", "readWrite", false), "Preferred written or spoken language."),
	withDesc(str("locale", "readWrite", false), "Default location for localisation."),
	withDesc(str("timezone", "readWrite", false), "Time zone in IANA format."),
	{Name: "active", Type: Boolean, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: "Whether the user may sign in; false when Entra disables or unassigns the user."},
	{Name: "password", Type: String, Mutability: "writeOnly", Returned: "never", Uniqueness: "none", Description: "Not supported; accepted and discarded."},
	multi("emails", "Email addresses.", "work", "home", "other"),
	multi("phoneNumbers", "Phone numbers.", "work", "home", "mobile", "fax", "pager", "other"),
	multi("ims", "Instant messaging addresses."),
	multi("photos", "URLs of photos.", "photo", "thumbnail"),
	{Name: "addresses", Type: Complex, MultiValued: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: "Physical mailing addresses.", SubAttributes: []*Attribute{
		multiline(str("formatted", "readWrite", false)), multiline(str("streetAddress", "readWrite", false)), str("locality", "readWrite", false),
		str("region", "readWrite", false), str("postalCode", "readWrite", false), str("country", "readWrite", false),
		{Name: "type", Type: String, Mutability: "readWrite", Returned: "default", Uniqueness: "none", CanonicalValues: []string{"work", "home", "other"}},
		{Name: "primary", Type: Boolean, Mutability: "readWrite", Returned: "default", Uniqueness: "none"},
	}},
	{Name: "groups", Type: Complex, MultiValued: true, Mutability: "readOnly", Returned: "default", Uniqueness: "none", Description: "Groups the user belongs to; managed through the Group resource.", SubAttributes: []*Attribute{
		str("value", "readOnly", false), {Name: "$ref", Type: Reference, Mutability: "readOnly", Returned: "default", Uniqueness: "none", ReferenceTypes: []string{"Group"}},
		str("display", "readOnly", false), str("type", "readOnly", false),
	}},
	multi("entitlements", "Entitlements."),
	multi("roles", "Roles."),
	multi("x509Certificates", "X.509 certificates."),
}}

// Enterprise is the enterprise User extension.
var Enterprise = &Schema{ID: URIEnterprise, Name: "EnterpriseUser", Description: "Enterprise User", Attributes: []*Attribute{
	str("employeeNumber", "readWrite", false), str("costCenter", "readWrite", false), str("organization", "readWrite", false),
	str("division", "readWrite", false), str("department", "readWrite", false),
	{Name: "manager", Type: Complex, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: "The user's manager; Entra may send the id as a plain string.", SubAttributes: []*Attribute{
		name(&Attribute{Name: "value", Type: String, CaseExact: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none"}),
		{Name: "$ref", Type: Reference, Mutability: "readWrite", Returned: "default", Uniqueness: "none", ReferenceTypes: []string{"User"}},
		str("displayName", "readOnly", false),
	}},
}}

// Group is the core Group schema.
var Group = &Schema{ID: URIGroup, Name: "Group", Description: "Group", Attributes: []*Attribute{
	name(&Attribute{Name: "displayName", Type: String, Required: true, Mutability: "readWrite", Returned: "default", Uniqueness: "server", Description: "Unique, human-readable name of the group."}),
	{Name: "members", Type: Complex, MultiValued: true, Mutability: "readWrite", Returned: "default", Uniqueness: "none", Description: "Members of the group (users or groups).", SubAttributes: []*Attribute{
		name(&Attribute{Name: "value", Type: String, CaseExact: true, Mutability: "immutable", Returned: "default", Uniqueness: "none"}),
		{Name: "$ref", Type: Reference, Mutability: "immutable", Returned: "default", Uniqueness: "none", ReferenceTypes: []string{"User", "Group"}},
		str("display", "readOnly", false),
		{Name: "type", Type: String, Mutability: "immutable", Returned: "default", Uniqueness: "none", CanonicalValues: []string{"User", "Group"}},
	}},
}}

// UserType and GroupType are the resource types served.
var (
	UserType  = &ResourceType{Name: "User", Endpoint: "/Users", Core: User, Extensions: []*Schema{Enterprise}}
	GroupType = &ResourceType{Name: "Group", Endpoint: "/Groups", Core: Group}
)
