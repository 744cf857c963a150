package scim

import (
	"net/http"
	"strings"

	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

const (
	uriServiceProviderConfig = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	uriResourceType          = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	uriSchema                = "urn:ietf:params:scim:schemas:core:2.0:Schema"
)

type supported struct {
	Supported bool `json:"supported"`
}

type discoveryMeta struct {
	ResourceType string `json:"resourceType"`
	Location     string `json:"location"`
}

// refuseFilter answers a filter on a discovery endpoint with 403, as RFC
// 7644 §4 asks: these endpoints ignore list parameters, and a 200 would let
// the client believe that what it got matched its filter.
func refuseFilter(r *request) error {
	if param(r.query, "filter") != "" {
		return errStatus(http.StatusForbidden, "the discovery endpoints take no filter; GET them without one")
	}
	return nil
}

func (s *Server) serviceProviderConfig(w http.ResponseWriter, r *request, _ string) error {
	if err := refuseFilter(r); err != nil {
		return err
	}
	type bulk struct {
		Supported      bool  `json:"supported"`
		MaxOperations  int   `json:"maxOperations"`
		MaxPayloadSize int64 `json:"maxPayloadSize"`
	}
	type filterCap struct {
		Supported  bool `json:"supported"`
		MaxResults int  `json:"maxResults"`
	}
	type authScheme struct {
		Type        string `json:"type"`
		Name        string `json:"name"`
		Description string `json:"description"`
		Primary     bool   `json:"primary"`
	}
	writeJSON(w, http.StatusOK, struct {
		Schemas               []string      `json:"schemas"`
		Patch                 supported     `json:"patch"`
		Bulk                  bulk          `json:"bulk"`
		Filter                filterCap     `json:"filter"`
		ChangePassword        supported     `json:"changePassword"`
		Sort                  supported     `json:"sort"`
		ETag                  supported     `json:"etag"`
		AuthenticationSchemes []authScheme  `json:"authenticationSchemes"`
		Meta                  discoveryMeta `json:"meta"`
	}{
		Schemas:        []string{uriServiceProviderConfig},
		Patch:          supported{true},
		Bulk:           bulk{Supported: false, MaxPayloadSize: s.opts.MaxBodyBytes},
		Filter:         filterCap{Supported: true, MaxResults: MaxResults},
		ChangePassword: supported{false},
		Sort:           supported{false},
		ETag:           supported{true},
		AuthenticationSchemes: []authScheme{{
			Type: "oauthbearertoken", Name: "Bearer token",
			Description: "A static bearer token (Entra's Secret Token) whose SHA-256 is listed in the ScimProvisioning spec.",
			Primary:     true,
		}},
		Meta: discoveryMeta{ResourceType: "ServiceProviderConfig", Location: r.baseURL + "/ServiceProviderConfig"},
	})
	return nil
}

type schemaExtension struct {
	Schema   string `json:"schema"`
	Required bool   `json:"required"`
}

type resourceTypeDoc struct {
	Schemas          []string          `json:"schemas"`
	ID               string            `json:"id"`
	Name             string            `json:"name"`
	Endpoint         string            `json:"endpoint"`
	Description      string            `json:"description"`
	Schema           string            `json:"schema"`
	SchemaExtensions []schemaExtension `json:"schemaExtensions,omitempty"`
	Meta             discoveryMeta     `json:"meta"`
}

func resourceTypeDocs(base string) []any {
	var out []any
	for _, rt := range []*schema.ResourceType{schema.UserType, schema.GroupType} {
		d := resourceTypeDoc{
			Schemas: []string{uriResourceType}, ID: rt.Name, Name: rt.Name, Endpoint: rt.Endpoint,
			Description: rt.Core.Description, Schema: rt.Core.ID,
			Meta: discoveryMeta{ResourceType: "ResourceType", Location: base + "/ResourceTypes/" + rt.Name},
		}
		for _, e := range rt.Extensions {
			d.SchemaExtensions = append(d.SchemaExtensions, schemaExtension{Schema: e.ID})
		}
		out = append(out, d)
	}
	return out
}

type schemaDoc struct {
	Schemas []string `json:"schemas"`
	*schema.Schema
	Meta discoveryMeta `json:"meta"`
}

func schemaDocs(base string) []any {
	var out []any
	for _, s := range []*schema.Schema{schema.User, schema.Enterprise, schema.Group} {
		out = append(out, schemaDoc{Schemas: []string{uriSchema}, Schema: s,
			Meta: discoveryMeta{ResourceType: "Schema", Location: base + "/Schemas/" + s.ID}})
	}
	return out
}

func (s *Server) resourceTypes(w http.ResponseWriter, r *request, id string) error {
	if err := refuseFilter(r); err != nil {
		return err
	}
	return writeDiscovery(w, resourceTypeDocs(r.baseURL), id, func(d any) string { return d.(resourceTypeDoc).ID })
}

func (s *Server) schemas(w http.ResponseWriter, r *request, id string) error {
	if err := refuseFilter(r); err != nil {
		return err
	}
	return writeDiscovery(w, schemaDocs(r.baseURL), id, func(d any) string { return d.(schemaDoc).ID })
}

func writeDiscovery(w http.ResponseWriter, docs []any, id string, idOf func(any) string) error {
	if id == "" {
		writeJSON(w, http.StatusOK, map[string]any{
			"schemas":      []string{uriListResponse},
			"totalResults": len(docs),
			"startIndex":   1,
			"itemsPerPage": len(docs),
			"Resources":    docs,
		})
		return nil
	}
	for _, d := range docs {
		if strings.EqualFold(idOf(d), id) {
			writeJSON(w, http.StatusOK, d)
			return nil
		}
	}
	return errStatus(http.StatusNotFound, "no such resource %q", id)
}
