package scim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/patch"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
)

// checkSchemas requires the body's schemas list (RFC 7643 §3: every
// resource carries one, and Entra always sends it) and that it names the
// core schema; other URIs (Microsoft's ADSCIM group schema, a malformed
// enterprise URN) are ignored.
func checkSchemas(body map[string]any, core string) error {
	for k, v := range body {
		if !strings.EqualFold(k, "schemas") || v == nil {
			continue
		}
		list, ok := v.([]any)
		if !ok {
			return scimerr.New(scimerr.InvalidSyntax, "schemas must be a list of URIs")
		}
		for _, s := range list {
			if str, ok := s.(string); ok && strings.EqualFold(str, core) {
				return nil
			}
		}
		return scimerr.New(scimerr.InvalidValue, "schemas must include %s", core)
	}
	return scimerr.New(scimerr.InvalidSyntax, "schemas is required and must include %s", core)
}

// userRecord builds the stored user from a normalised document: it keeps
// the configured attributes and derives the indexed fields.
func userRecord(cfg *config, doc map[string]any) (*store.User, error) {
	name, _ := doc["userName"].(string)
	if strings.TrimSpace(name) == "" {
		return nil, scimerr.New(scimerr.InvalidValue, "userName is required")
	}
	kept := cfg.keep.apply(doc)
	attrs, err := json.Marshal(kept)
	if err != nil {
		return nil, fmt.Errorf("encode user attributes: %w", err)
	}
	u := &store.User{UserName: share(attrs, name), Active: true, Attributes: attrs}
	if ext, ok := kept["externalId"].(string); ok {
		u.ExternalID = share(attrs, ext)
	}
	// From doc, not kept: whether the user may sign in follows what Entra
	// sends even when userAttributes leaves active out of the resource.
	if a, ok := doc["active"].(bool); ok {
		u.Active = a
	}
	if emails, ok := kept["emails"].([]any); ok {
		// Every work email is indexed: a user may have several.
		var buf [2]string
		work := buf[:0]
		for _, e := range emails {
			m, _ := e.(map[string]any)
			if t, _ := m["type"].(string); strings.EqualFold(t, "work") {
				if v, _ := m["value"].(string); v != "" {
					work = append(work, v)
				}
			}
		}
		u.WorkEmail = store.JoinWorkEmails(work...)
		if len(work) == 1 && u.WorkEmail == work[0] {
			u.WorkEmail = share(attrs, u.WorkEmail)
		}
	}
	return u, nil
}

// share returns s backed by its copy inside the encoded attributes when
// the encoding holds it verbatim, so the indexed fields of a stored user cost
// no memory of their own (a store of a million users keeps three strings per
// user). attrs is never modified once encoded: stored values are immutable.
func share(attrs []byte, s string) string {
	if s == "" {
		return s
	}
	q := make([]byte, 0, len(s)+2)
	q = append(append(append(q, '"'), s...), '"')
	i := bytes.Index(attrs, q)
	if i < 0 {
		return s
	}
	return unsafe.String(&attrs[i+1], len(s))
}

func errUserNameTaken(name, id string) error {
	return &scimerr.Error{Status: http.StatusConflict, ScimType: scimerr.Uniqueness,
		Detail: fmt.Sprintf("userName %q is already used by user %s (userName is unique, case-insensitively)", name, id)}
}

func (s *Server) userBody(w http.ResponseWriter, r *request) (*store.User, error) {
	body, err := s.readObject(w, r)
	if err != nil {
		return nil, err
	}
	doc, err := normalizeUser(body)
	if err != nil {
		return nil, err
	}
	return userRecord(r.cfg, doc)
}

func normalizeUser(body map[string]any) (map[string]any, error) {
	if err := checkSchemas(body, schema.URIUser); err != nil {
		return nil, err
	}
	return schema.Normalize(schema.UserType, body)
}

func (s *Server) createUser(w http.ResponseWriter, r *request, _ string) error {
	u, err := s.userBody(w, r)
	if err != nil {
		return err
	}
	now := s.opts.Now()
	u.ID, u.Created, u.Modified, u.Version = newID(), now, now, 1
	err = r.create(func() error {
		return s.st.Update(r.Context(), func(txn *store.Txn) error {
			if other, err := txn.UserByName(u.UserName); err != nil {
				return err
			} else if other != nil {
				return errUserNameTaken(u.UserName, other.ID)
			}
			if err := s.opts.Limits.room(txn, grows(1, 0, 0)); err != nil {
				return err
			}
			return txn.Insert(store.TableUsers, u)
		})
	})
	s.audit(r, "create", "User", u.ID, err)
	if err != nil {
		return err
	}
	w.Header().Set("Location", r.baseURL+"/Users/"+u.ID)
	return s.writeUser(w, r, http.StatusCreated, u)
}

func (s *Server) writeUser(w http.ResponseWriter, r *request, status int, u *store.User) error {
	w.Header().Set("ETag", etag(u.Version))
	if p := parseProjection(r.query, schema.UserType); p != nil {
		b, err := json.Marshal(p.apply(userMap(r.baseURL, u)))
		if err != nil {
			return err
		}
		writeRaw(w, status, b)
		return nil
	}
	b := r.buffer()
	*b = appendUser(*b, r.baseURL, u)
	writeRaw(w, status, *b)
	return nil
}

func (s *Server) getUser(w http.ResponseWriter, r *request, id string) error {
	u, err := s.st.Read().UserByID(id)
	if err != nil {
		return err
	}
	if u == nil {
		return errNotFound("User", id)
	}
	if notModified(w, r, u.Version) {
		return nil
	}
	return s.writeUser(w, r, http.StatusOK, u)
}

// updateUser runs change on the current user inside a write and stores the
// result, keeping identity and creation time; it returns what is stored,
// and whether the write stored it: a result equal to the stored user is
// not written, so its version and lastModified stay.
func (s *Server) updateUser(r *request, id string, change func(cur *store.User) (*store.User, error)) (out *store.User, wrote bool, err error) {
	err = s.st.Update(r.Context(), func(txn *store.Txn) error {
		// The write may run again, on other state: only its last run's
		// decision counts.
		wrote = false
		cur, err := txn.UserByID(id)
		if err != nil {
			return err
		}
		if cur == nil {
			return errNotFound("User", id)
		}
		if err := checkIfMatch(r, cur.Version); err != nil {
			return err
		}
		next, err := change(cur)
		if err != nil {
			return err
		}
		if bytes.Equal(next.Attributes, cur.Attributes) && next.Active == cur.Active {
			out = cur
			return nil
		}
		// Any changed userName is looked up, one that differs in case
		// only too: the lookup folds as the index does, so it alone decides.
		if next.UserName != cur.UserName {
			if other, err := txn.UserByName(next.UserName); err != nil {
				return err
			} else if other != nil && other.ID != id {
				return errUserNameTaken(next.UserName, other.ID)
			}
		}
		next.ID, next.Created, next.Modified, next.Version = cur.ID, cur.Created, s.opts.Now(), cur.Version+1
		out, wrote = next, true
		return txn.Insert(store.TableUsers, next)
	})
	return out, wrote, err
}

func (s *Server) replaceUser(w http.ResponseWriter, r *request, id string) error {
	body, err := s.readObject(w, r)
	if err != nil {
		return err
	}
	doc, err := normalizeUser(body)
	if err != nil {
		return err
	}
	u, err := userRecord(r.cfg, doc)
	if err != nil {
		return err
	}
	out, wrote, err := s.updateUser(r, id, func(cur *store.User) (*store.User, error) {
		if _, ok := doc["active"]; !ok && !cur.Active {
			// The write may run again: doc stays as it came.
			return userRecord(r.cfg, stayDisabled(maps.Clone(doc), cur))
		}
		c := *u
		return &c, nil
	})
	if wrote {
		s.audit(r, "replace", "User", id, err)
	}
	if err != nil {
		return err
	}
	return s.writeUser(w, r, http.StatusOK, out)
}

// stayDisabled keeps a disabled user disabled when doc, its next
// document, has no active attribute (a PUT without it, a PATCH that removes
// it): a user without one counts as active, and only an explicit active
// true may let back in a user Entra disabled.
func stayDisabled(doc map[string]any, cur *store.User) map[string]any {
	if _, ok := doc["active"]; !ok && !cur.Active {
		doc["active"] = false
	}
	return doc
}

func (s *Server) patchUser(w http.ResponseWriter, r *request, id string) error {
	body, err := s.readObject(w, r)
	if err != nil {
		return err
	}
	ops, err := patch.Parse(body)
	if err != nil {
		return err
	}
	out, wrote, err := s.updateUser(r, id, func(cur *store.User) (*store.User, error) {
		doc := map[string]any{}
		dec := json.NewDecoder(bytes.NewReader(cur.Attributes))
		dec.UseNumber()
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("decode stored user %s: %w", cur.ID, err)
		}
		if err := patch.Apply(doc, ops, schema.UserType); err != nil {
			return nil, err
		}
		return userRecord(r.cfg, stayDisabled(doc, cur))
	})
	if wrote {
		s.audit(r, "patch", "User", id, err)
	}
	if err != nil {
		return err
	}
	return s.writeUser(w, r, http.StatusOK, out)
}

func (s *Server) deleteUser(w http.ResponseWriter, r *request, id string) error {
	return s.deleteObject(w, r, "User", store.TableUsers, id, func(txn *store.Txn) (any, uint64, error) {
		u, err := txn.UserByID(id)
		if u == nil || err != nil {
			return nil, 0, err
		}
		return u, u.Version, nil
	})
}

// deleteObject deletes the user or group that find returns (with its
// version, for If-Match), and every membership it takes part in.
func (s *Server) deleteObject(w http.ResponseWriter, r *request, resourceType, table, id string, find func(*store.Txn) (any, uint64, error)) error {
	err := s.st.Update(r.Context(), func(txn *store.Txn) error {
		obj, version, err := find(txn)
		if err != nil {
			return err
		}
		if obj == nil {
			return errNotFound(resourceType, id)
		}
		if err := checkIfMatch(r, version); err != nil {
			return err
		}
		return deleteResource(txn, table, obj, id, s.opts.Now())
	})
	s.audit(r, "delete", resourceType, id, err)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deleteResource deletes obj and every membership it takes part in, as a
// member and (for groups) as the group.
func deleteResource(txn *store.Txn, table string, obj any, id string, now time.Time) error {
	if err := txn.DeleteMemberships(id, now); err != nil {
		return err
	}
	return txn.Delete(table, obj)
}

// userCandidates yields the users a filter can match, narrowed by an index
// when the filter requires an indexed equality; exact says the index
// decides the filter on its own, and plan names the index used ("scan" when
// none is).
func userCandidates(txn *store.Txn, f *filter.Filter) (seq iter.Seq[*store.User], exact bool, plan string, err error) {
	one := func(u *store.User, err error) (iter.Seq[*store.User], error) {
		return func(yield func(*store.User) bool) {
			if u != nil {
				yield(u)
			}
		}, err
	}
	if f == nil {
		seq, err := rows[*store.User](txn, store.TableUsers, store.IndexID)
		return seq, true, "all", err
	}
	terms, single := f.Terms()
	for _, key := range []string{"id", "userName", "emails.work", "externalId"} {
		for _, t := range terms {
			if t.Key != key {
				continue
			}
			var seq iter.Seq[*store.User]
			var err error
			switch key {
			case "id":
				seq, err = one(txn.UserByID(t.Value))
			case "userName":
				seq, err = one(txn.UserByName(t.Value))
			case "emails.work":
				var us []*store.User
				us, err = txn.UsersByWorkEmail(t.Value)
				seq = slices.Values(us)
			case "externalId":
				var us []*store.User
				us, err = txn.UsersByExternalID(t.Value)
				seq = slices.Values(us)
			}
			return seq, single && key != "emails.work", key, err
		}
	}
	seq, err = rows[*store.User](txn, store.TableUsers, store.IndexID)
	return seq, false, "scan", err
}

// allUsers pages through every user for unfiltered lists.
var allUsers = pager{
	count: (*store.Txn).UserCount,
	after: func(txn *store.Txn, id string) (iter.Seq2[listed, error], error) {
		users, err := txn.UsersAfter(id)
		if err != nil {
			return nil, err
		}
		return func(yield func(listed, error) bool) {
			for u := range users {
				if !yield(userItem{u}, nil) {
					return
				}
			}
		}, nil
	},
}

func (s *Server) listUsers(w http.ResponseWriter, r *request, _ string) error {
	return s.list(w, r, schema.UserType, &allUsers, func(txn *store.Txn, f *filter.Filter) (iter.Seq2[listed, error], bool, error) {
		seq, exact, _, err := userCandidates(txn, f)
		return func(yield func(listed, error) bool) {
			for u := range seq {
				if !yield(userItem{u}, nil) {
					return
				}
			}
		}, exact, err
	})
}
