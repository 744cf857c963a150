package scim

import (
	"testing"

	"github.com/idrecon/idrecon/runtime/scim/internal/filter"
	"github.com/idrecon/idrecon/runtime/scim/internal/schema"
)

// TestIndexedFiltersDoNotScan pins which index answers each filter shape
// Entra sends: an equality on an indexed attribute, alone or in an "and",
// never walks the whole table.
func TestIndexedFiltersDoNotScan(t *testing.T) { forModes(t, testIndexedFiltersDoNotScan) }

func testIndexedFiltersDoNotScan(t *testing.T, flag bool) {
	e := newEnv(t, flag, defaultConfig())
	txn := e.st.Read()
	users := []struct {
		filter, plan string
		exact        bool
	}{
		{`userName eq "a@b.c"`, "userName", true},
		{`USERNAME eq a@b.c`, "userName", true},
		{`externalId eq "x"`, "externalId", true},
		{`id eq "1"`, "id", true},
		{`emails[type eq "work"].value eq "a@b.c"`, "emails.work", false},
		{`id eq "1" and manager eq "2"`, "id", false},
		{`active eq true and userName eq "a@b.c"`, "userName", false},
		{`userName eq "a" and externalId eq "b"`, "userName", false},
		{`userName sw "a"`, "scan", false},
		{`userName eq "a" or userName eq "b"`, "scan", false},
	}
	for _, tt := range users {
		f, err := filter.Parse(tt.filter, schema.UserType)
		if err != nil {
			t.Fatal(err)
		}
		_, exact, plan, err := userCandidates(txn, f)
		if err != nil || plan != tt.plan || exact != tt.exact {
			t.Errorf("%s: plan %q exact %v (%v), want %q %v", tt.filter, plan, exact, err, tt.plan, tt.exact)
		}
	}
	groups := []struct{ filter, plan string }{
		{`displayName eq "Developers"`, "displayName"},
		{`id eq "g" and members eq "u"`, "id"},
		{`members eq "u"`, "members"},
		{`externalId eq "x"`, "externalId"},
		{`displayName co "dev"`, "scan"},
	}
	for _, tt := range groups {
		f, err := filter.Parse(tt.filter, schema.GroupType)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, plan, err := groupCandidates(txn, f); err != nil || plan != tt.plan {
			t.Errorf("%s: plan %q (%v), want %q", tt.filter, plan, err, tt.plan)
		}
	}
}
