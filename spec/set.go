package spec

func (s *Set) index() {
	s.byRef = make(map[Ref]*Document, len(s.Docs))
	for _, d := range s.Docs {
		s.byRef[d.Ref()] = d
	}
}

// Get returns the document of that kind and name, or nil.
func (s *Set) Get(kind, name string) *Document {
	if s == nil {
		return nil
	}
	if s.byRef != nil {
		return s.byRef[Ref{Kind: kind, Name: name}]
	}
	for _, d := range s.Docs {
		if d.Kind == kind && d.Metadata.Name == name {
			return d
		}
	}
	return nil
}

// OfKind returns the documents of one kind, in name order for a loaded Set.
func (s *Set) OfKind(kind string) []*Document {
	if s == nil {
		return nil
	}
	var out []*Document
	for _, d := range s.Docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// Scim returns the ScimProvisioning spec, or nil if the spec has none.
func (s *Set) Scim() *ScimProvisioning { return first[ScimProvisioning](s) }

// SAML returns the SamlServiceProvider spec, or nil if the spec has none.
func (s *Set) SAML() *SamlServiceProvider { return first[SamlServiceProvider](s) }

// first returns the spec of the first document whose spec is a *T.
func first[T any](s *Set) *T {
	if s == nil {
		return nil
	}
	for _, d := range s.Docs {
		if v, ok := d.Spec.(*T); ok {
			return v
		}
	}
	return nil
}

// Certificate returns the named Certificate spec, or nil.
func (s *Set) Certificate(name string) *Certificate {
	if d := s.Get(KindCertificate, name); d != nil {
		v, _ := d.Spec.(*Certificate)
		return v
	}
	return nil
}
