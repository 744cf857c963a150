package console

import (
	"net/http"
	"strings"
	"testing"
)

// TestSignInsInSeveralTabs: a browser that opens the console in several
// tabs at once (a restored session, a bookmark folder), each starting a
// sign-in before the others finish, gets each of them through, whichever
// finishes first: a new sign-in does not make the pending ones fail as if
// their code had been opened in another browser.
func TestSignInsInSeveralTabs(t *testing.T) {
	e := newEnv(t, consoleRole)
	c := browser(t)
	var auths []string
	for range 3 {
		auths = append(auths, e.authURL(t, c))
	}
	for i, u := range []string{auths[0], auths[2], auths[1]} {
		resp, body := get(t, c, u)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as alice@contoso.example") {
			t.Errorf("tab %d: %d\n%s", i, resp.StatusCode, body)
		}
	}
	if resp, body := get(t, noFollow(c), e.adminURL+Path); resp.StatusCode != http.StatusOK {
		t.Errorf("console after the sign-ins: %d\n%s", resp.StatusCode, body)
	}
	// Each code still goes once.
	if resp, _ := get(t, c, auths[1]); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("code used twice: %d", resp.StatusCode)
	}
}
