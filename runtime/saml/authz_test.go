package saml

import (
	"reflect"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec"
)

// TestAccessAuthorizer: sign-in decisions are effective access's answer
// (runtime/access), with how each grant was made.
func TestAccessAuthorizer(t *testing.T) {
	e := newEnv(t)
	// A second assignment repeating alice's direct grant in other case, and
	// one for the group under a differently cased name.
	e.update(func(tx *store.Txn) error {
		for _, r := range []*store.Resource{
			{Kind: spec.KindAccessAssignment, Name: "alice-again", Spec: &spec.AccessAssignment{Subject: spec.Subject{User: "ALICE@contoso.example"}, Roles: []string{"Developer"}}},
			{Kind: spec.KindAccessAssignment, Name: "leads-view", Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "appsec leads"}, Roles: []string{"View Only"}}},
			{Kind: spec.KindAccessAssignment, Name: "other-group", Spec: &spec.AccessAssignment{Subject: spec.Subject{Group: "Auditors"}, Roles: []string{"Administrator"}}},
		} {
			if err := tx.Insert(store.TableResources, r); err != nil {
				return err
			}
		}
		return nil
	})
	a := AccessAuthorizer{Store: e.st}
	tests := []struct {
		user string
		want Decision
	}{
		{"Alice@Contoso.Example", Decision{Allowed: true, UserName: "alice@contoso.example", UserID: "u1",
			Roles: []Grant{{"Developer", "direct (assignment alice)"}, {"Developer", "direct (assignment alice-again)"},
				{"View Only", "group AppSec Leads (assignment leads-view)"}, {"Security Lead", "group AppSec Leads (assignment security)"}},
			Versions: []Grant{{"WebGoat/2026.1", "direct (assignment alice)"}, {"WebGoat/2026.2", "group AppSec Leads (assignment security)"}}}},
		{"dave@contoso.example", Decision{Allowed: true, UserName: "dave@contoso.example", UserID: "u4",
			Roles:    []Grant{{"View Only", "group AppSec Leads (assignment leads-view)"}, {"Security Lead", "group AppSec Leads (assignment security)"}},
			Versions: []Grant{{"WebGoat/2026.2", "group AppSec Leads (assignment security)"}}}},
		{"carol@contoso.example", Decision{Reason: ReasonNoRole, UserName: "carol@contoso.example", UserID: "u3"}},
		{"bob@contoso.example", Decision{Reason: ReasonUserDisabled, UserName: "bob@contoso.example", UserID: "u2"}},
		{"nobody@contoso.example", Decision{Reason: ReasonUnknownUser}},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			got, err := a.Authorize(t.Context(), tc.user)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
