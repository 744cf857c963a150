package console

import (
	"net/http"
	"testing"

	"github.com/idrecon/idrecon/runtime/store"
)

// TestSessionFollowsTheUserNotTheName: a console session is the user's it
// was issued to. Once that user is deleted and another is created with
// the same userName (a reused UPN), the session is over, even though the
// new user holds the console role too: the browser is sent to sign in.
func TestSessionFollowsTheUserNotTheName(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := e.signedIn(t, "alice@contoso.example")
	if resp, _ := get(t, noFollow(c), e.adminURL+Path); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed in: %d", resp.StatusCode)
	}
	e.update(t, func(tx *store.Txn) error {
		u, err := tx.UserByName("alice@contoso.example")
		if err != nil {
			return err
		}
		return tx.Delete(store.TableUsers, u)
	})
	e.user(t, "alice@contoso.example", true) // another person, the same name
	resp, body := get(t, noFollow(c), e.adminURL+Path)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("after the name went to another user: %d, want the sign-in again\n%s", resp.StatusCode, body)
	}
	// And the old session does not come back.
	if resp, _ := get(t, noFollow(c), e.adminURL+Path); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("second request: %d, want the sign-in again", resp.StatusCode)
	}
}
