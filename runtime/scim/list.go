package scim

import (
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
	"github.com/idrecon/idrecon/runtime/scim/internal/scimerr"
	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/runtime/store/idset"
)

// page is a startIndex/count window (RFC 7644 §3.4.2.4).
type page struct {
	start, count int
}

func parsePage(q url.Values) (page, error) {
	p := page{start: 1, count: MaxResults}
	if v := param(q, "startIndex"); v != "" {
		n, err := pageInt(v)
		if err != nil {
			return p, scimerr.New(scimerr.InvalidValue, "startIndex must be an integer")
		}
		// Below 1 reads as 1 (RFC 7644 §3.4.2.4).
		p.start = max(n, 1)
	}
	if v := param(q, "count"); v != "" {
		n, err := pageInt(v)
		if err != nil {
			return p, scimerr.New(scimerr.InvalidValue, "count must be an integer")
		}
		// Negative reads as 0, above the maximum as the maximum.
		p.count = min(max(n, 0), MaxResults)
	}
	return p, nil
}

// pageInt parses a startIndex or count. An integer beyond an int's range
// is clamped to the range, not refused: RFC 7644 §3.4.2.4 treats values
// out of range leniently, and the clamped value reads as the huge or
// negative one would (an empty page, the maximum count, startIndex 1).
func pageInt(v string) (int, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 0)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
		err = nil // ParseInt returned the bound of the range
	}
	return int(n), err
}

// listed is one resource of a list: the document filters and projections
// see (built only when one is asked for) and the hot-path encoding.
type listed interface {
	id() string
	doc(base string, withMembers bool) map[string]any
	encode(b []byte, base string) []byte
}

type userItem struct{ u *store.User }

func (i userItem) id() string  { return i.u.ID }
func (i groupItem) id() string { return i.g.ID }

func (i userItem) doc(base string, _ bool) map[string]any { return userMap(base, i.u) }
func (i userItem) encode(b []byte, base string) []byte    { return appendUser(b, base, i.u) }

type groupItem struct {
	g       *store.Group
	members idset.Set
}

func (i groupItem) doc(base string, withMembers bool) map[string]any {
	var members []string
	if withMembers {
		members = i.members.Slice()
	}
	return groupMap(base, i.g, members, withMembers)
}
func (i groupItem) encode(b []byte, base string) []byte {
	return appendGroup(b, base, i.g, i.members.Slice(), true)
}

// list answers a GET of a resource type's endpoint (RFC 7644 §3.4.2): the
// candidates an index narrows the filter to (exact: the index decided the
// filter on its own), matched, paged, projected and encoded. Without a
// filter, a resource type with an all pager is paged by cursor instead.
func (s *Server) list(w http.ResponseWriter, r *request, rt *schema.ResourceType, all *pager,
	candidates func(*store.Txn, *filter.Filter) (seq iter.Seq2[listed, error], exact bool, err error)) error {
	q := r.query
	pg, err := parsePage(q)
	if err != nil {
		return err
	}
	var f *filter.Filter
	text := param(q, "filter")
	if !utf8.ValidString(text) {
		return scimerr.New(scimerr.InvalidFilter, "the filter is not valid UTF-8")
	}
	if esc := unpairedSurrogate(text); esc != "" {
		return scimerr.New(scimerr.InvalidFilter, "the filter escapes half a UTF-16 surrogate pair (%s), which is no character", esc)
	}
	if text != "" {
		if f, err = filter.Parse(text, rt); err != nil {
			return err
		}
	}
	proj := parseProjection(q, rt)
	withMembers := proj.wants("members")
	txn := s.st.Read()
	if f == nil && all != nil {
		return s.listAll(w, r, txn, rt, pg, proj, withMembers, all)
	}
	// A filter on members needs them in the document it matches.
	filterMembers := strings.Contains(strings.ToLower(text), "members")
	seq, exact, err := candidates(txn, f)
	if err != nil {
		return err
	}
	lw := newListWriter(pg, r.buffer())
	for item, err := range seq {
		if err != nil {
			return err
		}
		if !exact && !f.Match(item.doc(r.baseURL, filterMembers)) {
			continue
		}
		if !lw.next() {
			continue
		}
		if err := lw.add(item, proj, r.baseURL, withMembers); err != nil {
			return err
		}
	}
	lw.write(w)
	return nil
}

// pager lists every resource of a type in id order after a cursor, and
// counts them, for unfiltered lists.
type pager struct {
	count func(*store.Txn) (int, error)
	after func(txn *store.Txn, id string) (iter.Seq2[listed, error], error)
}

// listAll answers an unfiltered list. A page that starts where an earlier
// page ended starts after that page's last id; any other is found by
// counting from the first resource.
func (s *Server) listAll(w http.ResponseWriter, r *request, txn *store.Txn, rt *schema.ResourceType, pg page, proj *projection, withMembers bool, all *pager) error {
	total, err := all.count(txn)
	if err != nil {
		return err
	}
	if pg.start > total {
		// Past the end (startIndex may be as large as an int): an empty
		// page, without walking every resource to skip them.
		lw := newListWriter(pg, r.buffer())
		lw.total = total
		lw.write(w)
		return nil
	}
	key := cursorKey{rt.Name, pg.start}
	from, skip := "", pg.start-1
	if id, ok := s.cursors.after(key); ok {
		from, skip = id, 0
	}
	seq, err := all.after(txn, from)
	if err != nil {
		return err
	}
	lw := newListWriter(pg, r.buffer())
	var last string
	for item, err := range seq {
		if err != nil {
			return err
		}
		if lw.items == pg.count {
			break
		}
		if skip > 0 {
			skip--
			continue
		}
		if err := lw.add(item, proj, r.baseURL, withMembers); err != nil {
			return err
		}
		last = item.id()
	}
	if lw.items == pg.count && last != "" {
		s.cursors.remember(cursorKey{rt.Name, pg.start + lw.items}, last)
	}
	lw.total = total
	lw.write(w)
	return nil
}

// listWriter collects the resources of one page of a ListResponse, in
// place, into a buffer the request holds.
type listWriter struct {
	page   page
	total  int
	items  int
	buf    []byte
	pooled *[]byte
}

// headRoom is the room kept at the front of a page for its head, which is
// known only at the end (totalResults, itemsPerPage): the longest head,
// with three 19-digit numbers, takes 172 bytes.
const headRoom = 192

func newListWriter(p page, b *[]byte) *listWriter {
	buf := slices.Grow((*b)[:0], 1024)[:headRoom]
	return &listWriter{page: p, buf: append(buf, `,"Resources":[`...), pooled: b}
}

// next counts one more match and reports whether it falls in the page.
func (l *listWriter) next() bool {
	l.total++
	return l.total >= l.page.start && l.items < l.page.count
}

// sep counts one more resource on the page and returns the buffer to
// append it to.
func (l *listWriter) sep() []byte {
	if l.items > 0 {
		l.buf = append(l.buf, ',')
	}
	l.items++
	return l.buf
}

// add puts item on the page, projected if proj asks.
func (l *listWriter) add(item listed, proj *projection, base string, withMembers bool) error {
	if proj != nil {
		return l.addDoc(proj.apply(item.doc(base, withMembers)))
	}
	l.buf = item.encode(l.sep(), base)
	return nil
}

func (l *listWriter) addDoc(doc map[string]any) error {
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	l.buf = append(l.sep(), b...)
	return nil
}

func (l *listWriter) write(w http.ResponseWriter) {
	var h [headRoom]byte
	head := append(h[:0], `{"schemas":["`+uriListResponse+`"],"totalResults":`...)
	head = strconv.AppendInt(head, int64(l.total), 10)
	head = append(head, `,"startIndex":`...)
	head = strconv.AppendInt(head, int64(l.page.start), 10)
	head = append(head, `,"itemsPerPage":`...)
	head = strconv.AppendInt(head, int64(l.items), 10)
	start := headRoom - len(head)
	copy(l.buf[start:], head)
	l.buf = append(l.buf, "]}"...)
	*l.pooled = l.buf
	writeRaw(w, http.StatusOK, l.buf[start:])
}

// checkIfMatch enforces an If-Match precondition against the current version.
func checkIfMatch(r *request, version uint64) error {
	h := r.Header.Get("If-Match")
	if h == "" || etagListHas(h, version) {
		return nil
	}
	return errStatus(http.StatusPreconditionFailed, "the resource has changed: its version is %s", etag(version))
}

// notModified answers a conditional GET (RFC 7644 §3.14) whose
// If-None-Match names the current version with 304 and no body, as the
// advertised etag support promises, and reports whether it did.
func notModified(w http.ResponseWriter, r *request, version uint64) bool {
	h := r.Header.Get("If-None-Match")
	if h == "" || !etagListHas(h, version) {
		return false
	}
	w.Header().Set("ETag", etag(version))
	w.WriteHeader(http.StatusNotModified)
	return true
}

// etagListHas reports whether an If-Match or If-None-Match list names
// version ("*" names any), comparing weakly.
func etagListHas(h string, version uint64) bool {
	want := strconv.FormatUint(version, 10)
	for _, t := range strings.Split(h, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.Trim(strings.TrimPrefix(t, "W/"), `"`) == want {
			return true
		}
	}
	return false
}

// rows yields the rows of table whose index idx matches args, in index
// order, as T.
func rows[T any](txn *store.Txn, table, idx string, args ...any) (iter.Seq[T], error) {
	it, err := txn.Get(table, idx, args...)
	if err != nil {
		return nil, err
	}
	return func(yield func(T) bool) {
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if !yield(raw.(T)) {
				return
			}
		}
	}, nil
}
