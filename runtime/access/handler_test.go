package access_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idrecon/idrecon/runtime/access"
	"github.com/idrecon/idrecon/spec/golden"
)

// handlerWorld is a small organisation: two groups, four users, one pending
// assignment and one renamed group.
func handlerWorld(t *testing.T) *world {
	t.Helper()
	w := baseWorld(t)
	ann, bob := w.user("ann@contoso.com", true), w.user("bob@contoso.com", true)
	cid := w.user("cid@contoso.com", false)
	w.user("dan@contoso.com", true)
	devs, ops := w.group("Developers"), w.group("Ops")
	w.member(devs, ann)
	w.member(devs, bob)
	w.member(devs, cid)
	w.member(ops, bob)
	w.assign("developers", "group:Developers", []string{"Developer"}, "payments/*")
	w.assign("ops", "group:Ops", []string{"View Only"}, "ledger/1")
	w.assign("security", "group:Security Team", []string{"Security Lead"})
	w.assign("dan", "user:dan@contoso.com", nil, "ledger/1")
	w.bind()
	w.rename(ops, "Operations")
	return w
}

func TestHandler(t *testing.T) {
	w := handlerWorld(t)
	srv := httptest.NewServer(access.NewHandler(w.st, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		path   string
		status int
	}{
		{"effective", "/access/users/ANN@contoso.com", http.StatusOK},
		{"effective-unknown", "/access/users/ghost@contoso.com", http.StatusNotFound},
		{"reach", "/access/applications/payments/2.0", http.StatusOK},
		{"reach-page1", "/access/applications/payments/2.0?limit=1", http.StatusOK},
		{"reach-page2", "/access/applications/payments/2.0?limit=1&after=ann%40contoso.com", http.StatusOK},
		{"reach-page-bad-limit", "/access/applications/payments/2.0?limit=0", http.StatusBadRequest},
		{"reach-unknown-version", "/access/applications/payments/9", http.StatusNotFound},
		{"reach-unknown-app", "/access/applications/nope/1", http.StatusNotFound},
		{"pending", "/access/pending", http.StatusOK},
		{"renames", "/access/renames", http.StatusOK},
		{"users-page1", "/users?limit=2", http.StatusOK},
		{"users-page2", "/users?limit=2&after=bob%40contoso.com", http.StatusOK},
		{"users-filter", "/users?filter=CID&active=false", http.StatusOK},
		{"users-bad-limit", "/users?limit=0", http.StatusBadRequest},
		{"users-bad-active", "/users?active=maybe", http.StatusBadRequest},
		{"user", "/users/bob@contoso.com", http.StatusOK},
		{"user-unknown", "/users/ghost", http.StatusNotFound},
		{"groups", "/groups", http.StatusOK},
		{"group", "/groups/" + url.PathEscape("operations"), http.StatusOK},
		{"group-unknown", "/groups/Nobody", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := srv.Client().Get(srv.URL + tt.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d; body %s", resp.StatusCode, tt.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			var pretty bytes.Buffer
			if err := json.Indent(&pretty, body, "", "  "); err != nil {
				t.Fatalf("response is not JSON: %v: %s", err, body)
			}
			golden.Check(t, filepath.Join("testdata", "handler", tt.name+".json"), append(pretty.Bytes(), '\n'))
		})
	}
}

func TestHandlerPagesThroughEveryUser(t *testing.T) {
	w := handlerWorld(t)
	h := access.NewHandler(w.st, slog.New(slog.DiscardHandler))
	var seen []string
	after := ""
	for range 10 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/users?limit=1&after="+url.QueryEscape(after), nil))
		var page access.Page[access.UserSummary]
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		for _, u := range page.Items {
			seen = append(seen, u.UserName)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	want := "ann@contoso.com bob@contoso.com cid@contoso.com dan@contoso.com"
	if got := strings.Join(seen, " "); got != want {
		t.Errorf("paged users = %s, want %s", got, want)
	}
}
