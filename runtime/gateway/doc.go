// Package gateway is idrecon's identity-aware front door: it lets users
// signed in to idrecon over SAML reach an application that trusts an HTTP
// header for the user name, such as Application Security's HTTP-header SSO
// ("HTTP header for username", default "username").
//
// It works in two modes, answering the same question ("who is this, and may
// they pass?") from the session cookie and the user's access in the store,
// asked afresh on every request so a user disabled or deleted in Entra, or
// left without a role, is refused on their next request:
//
//   - Built-in reverse proxy. A request under Config.PathPrefix (idrecon's
//     own paths excluded) without a session is redirected to the sign-in
//     with returnTo set to the original path and query; a signed-in user
//     without access gets a 403 page (not a redirect, which would loop);
//     otherwise it is forwarded to Config.Upstream with the user, and
//     optionally roles and versions, in the configured headers. Streaming
//     responses, large uploads and WebSocket upgrades pass through; any
//     other upgrade (h2c above all, whose tunnel would carry requests
//     idrecon never decides) is refused with 400. CONNECT, a tunnel
//     (over HTTP/2 with :protocol, a WebSocket's), and TRACE, whose echo
//     would show the client the shared secret, are refused with 405. An
//     unreachable upstream, or one answering with more than 1 MiB of
//     headers, is a 502 page (504 when it is too slow) that names no
//     upstream detail. Unsafe methods and WebSocket handshakes
//     from another origin are refused (http.CrossOriginProtection): the
//     application now trusts an ambient cookie, so a cross-site form post
//     or socket would otherwise ride on it.
//
//   - Forward-auth at VerifyPath (/auth/verify and below, any method) for
//     nginx auth_request, Traefik ForwardAuth, Caddy forward_auth and Envoy
//     ext_authz: 200 with the identity headers, 401 without a session (with
//     the sign-in URL in X-Idrecon-Signin; no redirect, since nginx turns a
//     3xx into a 500), 403 when signed in but not entitled, 500 when access
//     cannot be checked. Always Cache-Control: no-store. The original URI
//     is the one X-Original-URI, X-Forwarded-Uri or path below VerifyPath
//     the request gives (see OriginalURI; two of them, or one holding a dot
//     segment or not percent-decoding, are refused with 403), and is used
//     only if it is a local path (one leading '/'), so the sign-in cannot
//     redirect away. The original request meets the proxy's cross-origin
//     rule (403) with each method it may have had: the request's own
//     (Envoy's is the original) and X-Forwarded-Method's (Traefik and Caddy
//     send it; nginx's subrequest is always a GET, so its configuration
//     must set it), or, without that header, a POST when it carries an
//     Origin; its host is X-Forwarded-Host, else Host; its Origin and
//     Sec-Fetch-Site are those the proxy copies from the browser's request.
//     Two X-Forwarded-Method or X-Forwarded-Host values, a list, an empty
//     one, or a method that is no token are refused with 403.
//
// # Header stripping
//
// Identity headers must never come from the client. Before the proxy sets
// them, it deletes every incoming header whose name, lower-cased and with
// '_' and '.' read as '-', equals one of the configured user, roles,
// versions or shared-secret headers, or names the original request
// (Forwarded, X-Forwarded-*, X-Real-IP, X-Original-*): "username",
// "USERNAME", a repeated "username", "User_Name" or "User.Name" for
// "user-name" all go, because CGI, WSGI, PHP and nginx with
// underscores_in_headers fold those spellings into one while Go keeps them
// apart. The headers are then set with exactly one value each. A client
// that names the user header in Connection cannot remove the injected
// value: httputil.ReverseProxy's Rewrite runs after hop-by-hop headers are
// removed. idrecon's session cookie is removed from the Cookie header sent
// upstream.
//
// Every header section the upstream sends back (the final response, each
// 1xx response such as 103 Early Hints, and the trailers) passes one
// filter: a Set-Cookie for idrecon's session cookie or any idrecon_ name is
// dropped, and so are the hop-by-hop headers (but a 101's). The 1xx
// responses forwarded to a client stay within the 1 MiB bound on response
// headers in all; later ones are dropped.
//
// In forward-auth mode the proxy in front forwards the request itself, so
// it must do the stripping: nginx does when the protected location sets the
// header with proxy_set_header (a set header replaces the client's in any
// case) and underscores_in_headers stays off; testdata/nginx-idrecon.conf is
// a configuration that does both, exercised by the package's tests.
//
// The server's read and write timeouts (http.Server.ReadTimeout and
// WriteTimeout) bound a proxied request's each read of its body and each
// write of its response, not the whole exchange: an event stream, a long
// download or a slow upload lasts as long as the client keeps up, and a
// client that stalls is cut, freeing the upstream connection.
//
// A request is forwarded only if its path is under PathPrefix, and
// outside idrecon's own, both as Go decodes it and as the application maps
// the escaped path it is sent (SentPath): Tomcat splits segments and drops
// ";parameters" before decoding, so "/ssc%3Bx/y" is not under /ssc to it.
//
// Upgraded and streaming connections are decided again every
// Deps.Recheck while they last, and closed once their user is refused, or
// once access could not be checked at two rechecks in a row (the new
// requests of that time are refused with 503).
//
// The application must be reachable only through idrecon or the proxy: a
// plain header is unsigned, so network isolation (or Config.SharedSecret,
// or mTLS with Config.ClientCertificate) is what makes it trustworthy.
package gateway
