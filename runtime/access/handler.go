package access

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/idrecon/idrecon/runtime/internal/adminjson"
	"github.com/idrecon/idrecon/runtime/store"
)

// Reader gives the handler consistent snapshots of the store.
type Reader interface {
	Read() *store.Txn
}

// NewHandler serves the read-only access and listing routes of the admin
// API (the admin server mounts it behind its authentication):
//
//	GET /access/users/{userName}                effective access
//	GET /access/applications/{app}/{version}    who can reach a version
//	    ?after=&limit=                          one page of them (ReachPage)
//	GET /access/pending                         assignments without subject
//	GET /access/renames                         group renames (drift)
//	GET /users?filter=&active=&after=&limit=    users, paged
//	GET /users/{userName}
//	GET /groups?filter=&after=&limit=           groups, paged
//	GET /groups/{displayName}
//
// filter matches a substring of userName or displayName, case-insensitively;
// active is "true" or "false"; after is the next cursor of the previous page.
func NewHandler(st Reader, logger *slog.Logger) http.Handler {
	h := &handler{st: st, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /access/users/{userName...}", h.effective)
	mux.HandleFunc("GET /access/applications/{app}/{version...}", h.reach)
	mux.HandleFunc("GET /access/pending", h.pending)
	mux.HandleFunc("GET /access/renames", h.renames)
	mux.HandleFunc("GET /users", h.users)
	mux.HandleFunc("GET /users/{userName...}", h.user)
	mux.HandleFunc("GET /groups", h.groups)
	mux.HandleFunc("GET /groups/{displayName...}", h.group)
	return mux
}

type handler struct {
	st     Reader
	logger *slog.Logger
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T `json:"items"`
	// Next is the cursor for the following page (?after=), absent on the last.
	Next string `json:"next,omitempty"`
}

func (h *handler) write(w http.ResponseWriter, status int, v any) {
	h.written(adminjson.Write(w, status, v))
}

// written logs the error of writing an answer: the client is gone.
func (h *handler) written(err error) {
	if err != nil {
		h.logger.Debug("write response", "err", err)
	}
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrUnknownUser), errors.Is(err, ErrUnknownGroup),
		errors.Is(err, ErrUnknownApplication), errors.Is(err, ErrUnknownVersion):
		status = http.StatusNotFound
	case errors.Is(err, errBadRequest):
		status = http.StatusBadRequest
	}
	// The package's prefix is for Go callers; the CLI adds its own, and
	// "idrecon access: access: unknown user" says it twice.
	msg := strings.TrimPrefix(err.Error(), "access: ")
	if status == http.StatusInternalServerError {
		h.logger.Error("access request failed", "path", r.URL.Path, "err", err)
		msg = "internal error"
	}
	h.written(adminjson.WriteError(w, status, msg))
}

var errBadRequest = errors.New("access: bad request")

func (h *handler) effective(w http.ResponseWriter, r *http.Request) {
	e, err := ForUser(h.st.Read(), r.PathValue("userName"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, e)
}

func (h *handler) reach(w http.ResponseWriter, r *http.Request) {
	if q := r.URL.Query(); q.Has("after") || q.Has("limit") {
		h.reachPage(w, r)
		return
	}
	reach, err := WhoCanReach(h.st.Read(), r.PathValue("app"), r.PathValue("version"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, reach)
}

// reachPage answers one page of who can reach a version: a client that
// shows a page need not have every user of a large tenant sent and
// described.
func (h *handler) reachPage(w http.ResponseWriter, r *http.Request) {
	_, after, limit, err := pageParams(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, err := WhoCanReachPage(h.st.Read(), r.PathValue("app"), r.PathValue("version"), after, limit)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, p)
}

func (h *handler) pending(w http.ResponseWriter, r *http.Request) {
	p, err := Pending(h.st.Read())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, p)
}

func (h *handler) renames(w http.ResponseWriter, r *http.Request) {
	p, err := Renames(h.st.Read())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, p)
}

// pageParams reads filter, after and limit.
func pageParams(r *http.Request) (filter, after string, limit int, err error) {
	q := r.URL.Query()
	if s := q.Get("limit"); s != "" {
		limit, err = strconv.Atoi(s)
		if err != nil || limit < 1 || limit > MaxPage {
			return "", "", 0, fmt.Errorf("%w: limit must be between 1 and %d", errBadRequest, MaxPage)
		}
	}
	return q.Get("filter"), q.Get("after"), limit, nil
}

func (h *handler) users(w http.ResponseWriter, r *http.Request) {
	filter, after, limit, err := pageParams(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var active *bool
	switch s := r.URL.Query().Get("active"); s {
	case "":
	case "true", "false":
		b := s == "true"
		active = &b
	default:
		h.fail(w, r, fmt.Errorf("%w: active must be true or false", errBadRequest))
		return
	}
	page, next, err := ListUsers(h.st.Read(), after, limit, UserFilter(filter, active))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, Page[UserSummary]{Items: page, Next: next})
}

func (h *handler) groups(w http.ResponseWriter, r *http.Request) {
	filter, after, limit, err := pageParams(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	page, next, err := ListGroups(h.st.Read(), after, limit, GroupFilter(filter))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, Page[GroupSummary]{Items: page, Next: next})
}

func (h *handler) user(w http.ResponseWriter, r *http.Request) {
	txn := h.st.Read()
	name := r.PathValue("userName")
	u, err := txn.UserByName(name)
	if err == nil && u == nil {
		err = fmt.Errorf("%w: %q", ErrUnknownUser, name)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	s, err := SummarizeUser(txn, u)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, s)
}

func (h *handler) group(w http.ResponseWriter, r *http.Request) {
	txn := h.st.Read()
	name := r.PathValue("displayName")
	g, err := txn.GroupByName(name)
	if err == nil && g == nil {
		err = fmt.Errorf("%w: %q", ErrUnknownGroup, name)
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	s, err := SummarizeGroup(txn, g)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.write(w, http.StatusOK, s)
}
