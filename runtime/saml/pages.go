package saml

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
)

var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.}}</title>
<style>body{font-family:sans-serif;max-width:48em;margin:2em auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}</style>
</head><body>{{end}}
{{define "home"}}{{template "head" "Signed in"}}
<h1>Signed in as <span id="user">{{.UserName}}</span></h1>
<h2>Roles</h2>
<table id="roles"><tr><th>Role</th><th>Granted</th></tr>
{{range .Roles}}<tr><td>{{.Name}}</td><td>{{.Via}}</td></tr>{{end}}</table>
<h2>Application versions</h2>
{{if .Versions}}<table id="versions"><tr><th>Version</th><th>Granted</th></tr>
{{range .Versions}}<tr><td>{{.Name}}</td><td>{{.Via}}</td></tr>{{end}}</table>
{{else}}<p id="versions">No application versions assigned.</p>{{end}}
<form method="post" action="{{.LogoutURL}}"><button type="submit">Sign out</button></form>
</body></html>{{end}}
{{define "error"}}{{template "head" .Title}}
<h1>{{.Title}}</h1>
<p id="reason">{{.Text}}</p>
<p><a href="{{.LoginURL}}">Sign in again</a></p>
</body></html>{{end}}
{{define "logout"}}{{template "head" "Sign out"}}
<h1>Sign out <span id="user">{{.UserName}}</span>?</h1>
<form method="post" action="{{.LogoutURL}}"><button type="submit" id="signout">Sign out</button></form>
</body></html>{{end}}
{{define "signedout"}}{{template "head" "Signed out"}}
<h1>Signed out</h1>
<p><a href="{{.LoginURL}}">Sign in again</a></p>
</body></html>{{end}}
`))

type homeView struct {
	Decision
	LogoutURL string
}

type errorView struct {
	Title, Text, LoginURL string
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// No form-action: the sign-out form's redirect to the IdP would trip it.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("saml: render page", "page", name, "err", err)
	}
}

func (s *Server) errorPage(w http.ResponseWriter, c *config, status int, title, text string) {
	s.render(w, status, "error", errorView{Title: title, Text: text, LoginURL: c.basePath + "/saml/login"})
}

// sessionOf returns the browser's session, if any. A session that cannot
// be read (its store unavailable) is none: the browser is asked to sign in.
// A cookie no daemon of this store minted is none without asking the store.
func (s *Server) sessionOf(r *http.Request) (string, Session, bool) {
	names, ok := s.cookieNames()
	if !ok {
		return "", Session{}, false
	}
	ck, err := r.Cookie(names.session)
	if err != nil || !s.minted(ck.Value) {
		return "", Session{}, false
	}
	se, ok, err := s.sessions.Get(r.Context(), ck.Value)
	if err != nil {
		s.log.Warn("saml: read session", "err", err)
		return "", Session{}, false
	}
	return ck.Value, se, ok
}

// minted reports whether id may be a session id a daemon of this session
// store minted: tagged with its key, or untagged from before tags while
// sessions stored then may still live.
func (s *Server) minted(id string) bool {
	return s.sessionIDs.valid(id) || (untagged(id) && s.now().Before(s.untaggedUntil))
}

func (s *Server) clearSession(w http.ResponseWriter, c *config, r *http.Request, id string) {
	if id != "" {
		if err := s.sessions.Delete(r.Context(), id); err != nil {
			s.log.Error("saml: end session", "err", err)
		}
	}
	s.setCookie(w, c, r, &http.Cookie{Name: c.cookies.session, Value: "", MaxAge: -1, SameSite: http.SameSiteLaxMode})
}

// SessionUser returns the userName the request's browser signed in as,
// without deciding access: a front door decides that itself on every
// request, and shows a refused user a "no access" page rather than another
// sign-in.
func (s *Server) SessionUser(r *http.Request) (string, bool) {
	_, se, ok := s.liveSession(r)
	return se.UserName, ok
}

// SessionUserAndID is SessionUser with the session's id, for a session of
// another origin (the console's) that must end with this one (SessionLive).
func (s *Server) SessionUserAndID(r *http.Request) (userName, id string, ok bool) {
	id, se, ok := s.liveSession(r)
	return se.UserName, id, ok
}

// SessionLive reports whether the session id is still stored and not
// expired: a sign-out here or at the IdP, or its lifetime, ended it. A
// store that cannot answer (etcd unavailable) counts as live, as the
// sessions a daemon holds keep working without etcd.
func (s *Server) SessionLive(ctx context.Context, id string) bool {
	_, ok, err := s.sessions.Get(ctx, id) // the stores drop expired ones
	return ok || err != nil
}

// liveSession returns the browser's session while it is still the session
// of the user it was issued to; every check of a session comes through
// here (the SP's pages, Session, and SessionUser for the front door,
// /auth/verify and the console's hand-off). A session records the SCIM id
// of its user at sign-in (Session.UserID). Once its userName belongs to
// another SCIM user (the first deleted and a new one created with that
// name, or the name reused after a rename), the user it was issued to is
// gone: the session is ended and the browser is not signed in, as if it
// had expired (whoever the IdP signs in next gets a session of their own).
// A session whose userName no user holds passes, for the caller to refuse
// by name (unknown user); its id keeps it from passing as a user created
// later with the name.
//
// A session without a user id was stored by a daemon that predates it
// (etcd keeps sessions across upgrades). It keeps working: it is bound to
// the user who holds its userName when it is first checked, and from then
// on is checked like any other. Accepting it by name instead would leave
// it open to the reuse this check closes for as long as it lives (the
// session lifetime, 8 hours by default); binding it leaves open only a
// reuse between its sign-in and its first check after the upgrade, which
// nothing recorded can tell apart. One whose userName no user holds cannot
// be bound to its user and ends. If the binding cannot be stored (etcd
// unavailable) the session is taken by name for this request, as the
// sessions a daemon holds keep working without etcd, and binding is tried
// again on the next.
func (s *Server) liveSession(r *http.Request) (string, Session, bool) {
	id, se, ok := s.sessionOf(r)
	if !ok {
		return "", Session{}, false
	}
	u, err := s.st.Read().UserByName(se.UserName)
	if err != nil {
		s.log.Error("saml: look up the session's user", "err", err)
		return "", Session{}, false
	}
	switch {
	case u == nil && se.UserID == "":
		s.endSession(r, id, se, "its user is gone and it was never bound to it")
		return "", Session{}, false
	case u == nil:
		return id, se, true
	case se.UserID == "":
		bound, ok, err := s.sessions.Bind(r.Context(), id, u.ID)
		if err != nil {
			s.log.Warn("saml: bind session to its user; taken by name for now", "user", se.UserName, "err", err)
			se.UserID = u.ID
			break
		}
		if !ok {
			return "", Session{}, false
		}
		se = bound
	}
	if se.UserID != u.ID {
		s.endSession(r, id, se, "its userName now belongs to another user")
		return "", Session{}, false
	}
	return id, se, true
}

// endSession ends the session id, refused for why.
func (s *Server) endSession(r *http.Request, id string, se Session, why string) {
	if err := s.sessions.Delete(r.Context(), id); err != nil {
		s.log.Error("saml: end session", "err", err)
	}
	s.log.Info("saml: session ended; "+why, "user", se.UserName, "sessionUserID", se.UserID)
}

// BasePath is the path of the configured baseURL, without a trailing
// slash ("" at the root); ok is false while sign-in is not configured.
// The SAML routes lie below it.
func (s *Server) BasePath(ctx context.Context) (path string, ok bool) {
	c, err := s.current(ctx)
	if err != nil {
		return "", false
	}
	return c.basePath, true
}

// Session returns what the request's browser is signed in as, re-checked
// with the Authorizer on every call, so a user disabled or deleted over SCIM,
// or left without a role, loses the session at once: the session is ended
// and the Decision says why (Reason), with ok false. Without a session, or
// with one whose user was replaced by another of the same userName (see
// liveSession), the Decision is zero.
func (s *Server) Session(r *http.Request) (d Decision, ok bool) {
	id, se, found := s.liveSession(r)
	if !found {
		return Decision{}, false
	}
	d, err := s.authz.Authorize(r.Context(), se.UserName)
	if err != nil {
		s.log.Error("saml: authorize", "err", err)
		return Decision{}, false
	}
	if d.UserID != "" && d.UserID != se.UserID {
		// The user was replaced between liveSession's look-up and the
		// decision's: the decision is another user's.
		s.endSession(r, id, se, "its userName now belongs to another user")
		return Decision{}, false
	}
	if !d.Allowed {
		if err := s.sessions.Delete(r.Context(), id); err != nil {
			s.log.Error("saml: end session", "err", err)
		}
		s.log.Info("saml: session ended; user no longer allowed", "user", se.UserName, "reason", d.Reason)
		if d.UserName == "" {
			d.UserName = se.UserName
		}
		return d, false
	}
	return d, true
}

// serveHome shows who is signed in, their roles and application versions,
// and how each was granted.
func (s *Server) serveHome(c *config, w http.ResponseWriter, r *http.Request) {
	d, ok := s.Session(r)
	switch {
	case !ok && d.Reason != "":
		s.clearSession(w, c, r, "")
		s.errorPage(w, c, http.StatusForbidden, "Access denied", deniedText(d.UserName, d.Reason))
	case !ok:
		http.Redirect(w, r, c.basePath+"/saml/login?returnTo="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
	default:
		s.render(w, http.StatusOK, "home", homeView{Decision: d, LogoutURL: c.basePath + "/saml/logout"})
	}
}

// serveLogoutPage answers a sign-out link: a signed-in browser gets a page
// whose button signs out, any other one the signed-out page.
func (s *Server) serveLogoutPage(c *config, w http.ResponseWriter, r *http.Request) {
	_, se, ok := s.liveSession(r)
	if !ok {
		s.render(w, http.StatusOK, "signedout", errorView{LoginURL: c.basePath + "/saml/login"})
		return
	}
	s.render(w, http.StatusOK, "logout", homeView{Decision: Decision{UserName: se.UserName}, LogoutURL: c.basePath + "/saml/logout"})
}
