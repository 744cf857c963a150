package saml

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	saml2 "github.com/russellhaering/gosaml2"
	"github.com/russellhaering/gosaml2/types"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"

	"github.com/idrecon/idrecon/runtime/store"
	"github.com/idrecon/idrecon/spec/samlmeta"
)

// Rejection codes of a SAML response, in ResponseError.Code and passed to
// the Observer.
const (
	CodeTooLarge        = "too-large"
	CodeMalformed       = "malformed"
	CodeDoctype         = "doctype"
	CodeTooDeep         = "too-deep"
	CodeAlgorithm       = "algorithm"
	CodeAssertionCount  = "assertion-count"
	CodeDecrypt         = "decrypt"
	CodeSignature       = "signature"
	CodeIssuer          = "issuer"
	CodeDestination     = "destination"
	CodeRecipient       = "recipient"
	CodeStatus          = "status"
	CodeVersion         = "version"
	CodeMissingElement  = "missing-element"
	CodeNotYetValid     = "not-yet-valid"
	CodeExpired         = "expired"
	CodeAudience        = "audience"
	CodeInResponseTo    = "in-response-to"
	CodeUnsolicited     = "unsolicited"
	CodeUnknownRequest  = "unknown-request"
	CodeRequestExpired  = "request-expired"
	CodeWrongBrowser    = "wrong-browser"
	CodeReplay          = "replay"
	CodeTooManySignIns  = "too-many-sign-ins"
	CodeLoggedOut       = "logged-out"
	CodeNoUsername      = "no-username"
	CodeLogoutSignature = "logout-signature"
	CodeLogoutMalformed = "logout-malformed"
)

// ResponseError is why a SAML message was rejected. Code is one of the
// Code constants; Err carries the detail, which goes to the log only.
type ResponseError struct {
	Code string
	Err  error
	// detail is why, for the debug log only, when Err must not tell (see
	// encryptedReject).
	detail error
	// retryAt is when a CodeTooManySignIns refusal lapses.
	retryAt time.Time
}

func (e *ResponseError) Error() string { return "saml: " + e.Code + ": " + e.Err.Error() }
func (e *ResponseError) Unwrap() error { return e.Err }

func reject(code, format string, args ...any) *ResponseError {
	return &ResponseError{Code: code, Err: fmt.Errorf(format, args...)}
}

// checked is a response that passed every check that needs no server state.
type checked struct {
	issuer       string
	assertionID  string
	inResponseTo string
	nameID       string
	sessionIndex string
	values       saml2.Values
	expires      time.Time // when the assertion can no longer be replayed
	issued       time.Time // the assertion's IssueInstant
}

// checkResponse validates an HTTP-POST SAMLResponse with gosaml2 and adds
// what gosaml2 leaves out: a DOCTYPE and algorithm pre-scan, exactly one
// assertion, a required Destination, the Conditions window with skew, and a
// required audience equal to our entity ID.
func checkResponse(c *config, encoded string, now time.Time) (*checked, error) {
	if len(encoded) > maxResponseXML*4/3+4 {
		return nil, reject(CodeTooLarge, "SAMLResponse larger than %d bytes", maxResponseXML)
	}
	raw, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		return nil, reject(CodeMalformed, "SAMLResponse is not base64: %v", err)
	}
	scan, err := samlmeta.Scan(raw, c.sp.AllowSHA1)
	if err != nil {
		return nil, scanReject(err)
	}
	if scan.Assertions != 1 {
		return nil, reject(CodeAssertionCount, "response carries %d assertions, want exactly one", scan.Assertions)
	}
	if scan.Signatures == 0 && scan.Encrypted == 0 {
		// Refused before gosaml2 parses it whole; an encrypted assertion
		// keeps its signature inside, where gosaml2 looks after decrypting.
		return nil, reject(CodeSignature, "response carries no Signature element")
	}
	if scan.Encrypted > 0 {
		if c.decrypt == nil {
			return nil, reject(CodeDecrypt, "encrypted assertion but no spEncryptionCertificate is configured")
		}
		if err := openEncrypted(c, raw); err != nil {
			return nil, err
		}
	}
	resp, err := c.saml.ValidateEncodedResponse(encoded)
	if err != nil {
		return nil, classify(err)
	}
	if len(resp.Assertions) != 1 {
		return nil, reject(CodeAssertionCount, "response carries %d verified assertions, want exactly one", len(resp.Assertions))
	}
	if resp.Destination == "" {
		return nil, reject(CodeDestination, "response has no Destination")
	}
	a := &resp.Assertions[0]
	cond := a.Conditions
	if cond == nil {
		return nil, reject(CodeMissingElement, "assertion has no Conditions")
	}
	notBefore, err1 := time.Parse(time.RFC3339, cond.NotBefore)
	notOnOrAfter, err2 := time.Parse(time.RFC3339, cond.NotOnOrAfter)
	if err := errors.Join(err1, err2); err != nil {
		return nil, reject(CodeMissingElement, "assertion Conditions need NotBefore and NotOnOrAfter: %v", err)
	}
	if err := checkWindow("assertion", notBefore, notOnOrAfter, now, c.skew); err != nil {
		return nil, err
	}
	if len(cond.AudienceRestrictions) == 0 {
		return nil, reject(CodeAudience, "assertion has no AudienceRestriction")
	}
	for _, ar := range cond.AudienceRestrictions {
		ok := false
		for _, aud := range ar.Audiences {
			if isOurAudience(aud.Value, c.sp.EntityID) {
				ok = true
			}
		}
		if !ok {
			return nil, reject(CodeAudience, "assertion is not for audience %q", c.sp.EntityID)
		}
	}
	scd := a.Subject.SubjectConfirmation.SubjectConfirmationData
	scdNotOnOrAfter, err := time.Parse(time.RFC3339, scd.NotOnOrAfter)
	if err != nil {
		return nil, reject(CodeMissingElement, "SubjectConfirmationData needs NotOnOrAfter: %v", err)
	}
	// gosaml2 refuses a SubjectConfirmationData only after its NotOnOrAfter;
	// at that instant it is already too late, as for Conditions.
	if !now.Before(staleAt(scdNotOnOrAfter, c.skew)) {
		return nil, reject(CodeExpired, "subject confirmation expired at %s (now %s, skew %s)", scdNotOnOrAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), c.skew)
	}
	expires := notOnOrAfter
	if scdNotOnOrAfter.After(expires) {
		expires = scdNotOnOrAfter
	}
	irt := scd.InResponseTo
	if resp.InResponseTo != "" && irt != "" && resp.InResponseTo != irt {
		return nil, reject(CodeInResponseTo, "response and assertion answer different requests")
	}
	if irt == "" && resp.SignatureValidated {
		irt = resp.InResponseTo
	}
	if a.ID == "" {
		return nil, reject(CodeMissingElement, "assertion has no ID")
	}
	ch := &checked{
		issuer:       a.Issuer.Value,
		assertionID:  a.ID,
		inResponseTo: irt,
		values:       saml2.Values{},
		expires:      expires,
		issued:       a.IssueInstant,
	}
	if a.Subject.NameID != nil {
		ch.nameID = a.Subject.NameID.Value
	}
	if a.AttributeStatement != nil {
		for _, at := range a.AttributeStatement.Attributes {
			ch.values[at.Name] = at
		}
	}
	if a.AuthnStatement != nil {
		ch.sessionIndex = a.AuthnStatement.SessionIndex
	}
	return ch, nil
}

// isOurAudience reports whether an Audience names the SP entityID. Entra
// sets it to the AuthnRequest's Issuer, prefixed with "spn:" when that is
// not a URI (an application ID, say); a URI entity ID must match exactly.
func isOurAudience(aud, entityID string) bool {
	if aud == entityID {
		return true
	}
	rest, ok := strings.CutPrefix(aud, "spn:")
	if !ok || rest != entityID {
		return false
	}
	u, err := url.Parse(entityID)
	return err != nil || u.Scheme == ""
}

// checkWindow is the one freshness rule for the IdP's signed messages (an
// assertion's Conditions, a LogoutRequest): what is valid from notBefore
// until notOnOrAfter is refused before notBefore and from notOnOrAfter on,
// each moved by the clock skew allowed. what names the message in the error.
func checkWindow(what string, notBefore, notOnOrAfter, now time.Time, skew time.Duration) error {
	if now.Add(skew).Before(notBefore) {
		return reject(CodeNotYetValid, "%s not valid before %s (now %s, skew %s)", what, notBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	if !now.Before(staleAt(notOnOrAfter, skew)) {
		return reject(CodeExpired, "%s expired at %s (now %s, skew %s)", what, notOnOrAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339), skew)
	}
	return nil
}

// staleAt is when checkWindow starts refusing a message valid until
// notOnOrAfter; a replay cache entry for it is needed until then, and no
// longer.
func staleAt(notOnOrAfter time.Time, skew time.Duration) time.Time {
	return notOnOrAfter.Add(skew)
}

// Replay cache keys. An assertion's is its issuer and ID, as it always was
// (daemons of different versions can share one cache in etcd). A
// LogoutRequest's starts with a NUL, which neither an issuer nor an ID can
// hold (XML has no NUL character), so it never equals an assertion's key,
// even when the IdP gives both the same ID under the same issuer (logout
// messages may carry the assertion issuer, see config.logoutIssuers).
func assertionReplayKey(issuer, id string) string { return issuer + "\x00" + id }

const logoutRequestKeyPrefix = "\x00LogoutRequest\x00"

func logoutRequestReplayKey(issuer, id string) string {
	return logoutRequestKeyPrefix + issuer + "\x00" + id
}

// logoutRequestReplayUser is whose record a LogoutRequest's replay key is:
// the user it names, apart from the user's sign-ins (the NameID may not be
// what the SP finds users by, see usernameOf), so that neither kind of
// record crowds out the other.
func logoutRequestReplayUser(nameID string) string {
	return logoutRequestKeyPrefix + nameID
}

// replayErr is the error of a ReplayCache's FirstUse of what for user: its
// *TooManyError a refusal (CodeTooManySignIns), any other a replay cache
// that could not say, which the caller answers as unavailable.
func replayErr(err error, what, user string) error {
	tm, ok := errors.AsType[*TooManyError](err)
	if !ok {
		return fmt.Errorf("replay cache: %w", err)
	}
	return &ResponseError{Code: CodeTooManySignIns, retryAt: tm.Until,
		Err: fmt.Errorf("%s refused: %s holds %d records in the replay cache, the soonest until %s", what, user, MaxSignInsPerUser, tm.Until.UTC().Format(time.RFC3339))}
}

func scanReject(err error) *ResponseError {
	switch {
	case errors.Is(err, samlmeta.ErrDoctype):
		return reject(CodeDoctype, "%v", err)
	case errors.Is(err, samlmeta.ErrTooDeep):
		return reject(CodeTooDeep, "%v", err)
	case errors.Is(err, samlmeta.ErrAlgorithm):
		return reject(CodeAlgorithm, "%v", err)
	case errors.Is(err, samlmeta.ErrTooMany):
		return reject(CodeTooLarge, "%v", err)
	default:
		return reject(CodeMalformed, "not a plain XML document (the POST binding is never deflated): %v", err)
	}
}

// errEncrypted is all that is told, above the debug log, of why an
// EncryptedAssertion was refused once its decryption started (see
// openEncrypted).
var errEncrypted = errors.New("the encrypted assertion did not decrypt to an assertion the IdP signed; " +
	"why is logged at debug level only, since telling the reasons apart would make the ACS a decryption oracle")

// encryptedReject refuses an EncryptedAssertion from the moment its
// decryption started until the IdP's signature over what it holds
// verified: always the same code, status, page and log line, whatever went
// wrong (the detail goes to the debug log).
func encryptedReject(format string, args ...any) *ResponseError {
	return &ResponseError{Code: CodeDecrypt, Err: errEncrypted, detail: fmt.Errorf(format, args...)}
}

// openEncrypted decrypts the response's EncryptedAssertion and checks what
// it holds before gosaml2 sees it: the pre-scan (an inner DOCTYPE or SHA-1
// signature, which gosaml2 lets through), exactly one SAML Assertion, and
// that the IdP signed it (its own signature verifies, or the Response's
// did, checked before decrypting). gosaml2 then decrypts and verifies
// again; it only ever gets an encrypted assertion that passed here, so
// whatever it refuses is something the IdP signed.
//
// Decryption oracle: anyone can post a captured EncryptedAssertion with its
// ciphertext changed, or encrypt a plaintext of their own to the SP's
// public key. With AES-CBC, which Entra uses, learning whether such a
// ciphertext had valid padding, or decrypted to well-formed XML, decrypts
// a captured assertion a block at a time without the key (Jager and
// Somorovsky, "How to Break XML Encryption", 2011; likewise for the key
// transport: Bleichenbacher, Manger). So every refusal from the start of
// the RSA decryption until a signature verified is encryptedReject, and
// each does the same expensive work (one RSA decryption): no plaintext
// reaches gosaml2, whose second RSA decryption would take measurably
// longer, before it is known to be the IdP's. The parse and signature
// check of a plaintext still take longer than a padding refusal, by
// microseconds; a Response signed over the ciphertext (Entra's "sign SAML
// response and assertion") or AES-GCM leaves nothing to learn.
func openEncrypted(c *config, raw []byte) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil || doc.Root() == nil {
		return reject(CodeMalformed, "parse response: %v", err)
	}
	root := doc.Root()
	vc := dsig.NewDefaultValidationContext(c.saml.IDPCertificateStore)
	vc.Clock = c.saml.Clock // as gosaml2 validates
	// gosaml2 verifies the Response's signature, if it has one, before it
	// decrypts; so does this: a ciphertext it covers is then refused
	// changed before anything is decrypted.
	_, err := vc.Validate(root)
	responseSigned := err == nil
	if err != nil && err != dsig.ErrMissingSignature {
		return classify(err)
	}
	type found struct {
		ctx etreeutils.NSContext
		el  *etree.Element
	}
	var encrypted []found
	if err := etreeutils.NSFindIterate(root, nsAssertion, "EncryptedAssertion", func(ctx etreeutils.NSContext, el *etree.Element) error {
		encrypted = append(encrypted, found{ctx, el})
		return nil
	}); err != nil {
		return reject(CodeMalformed, "find the encrypted assertion: %v", err)
	}
	if len(encrypted) != 1 {
		return reject(CodeAssertionCount, "response carries %d encrypted assertions in the assertion namespace, want one", len(encrypted))
	}
	ctx, el := encrypted[0].ctx, encrypted[0].el
	if el.Parent() != root {
		// gosaml2 refuses it too, as unsigned (no assertion of the
		// Response verified).
		return reject(CodeSignature, "the EncryptedAssertion is not a child of the Response")
	}
	det, err := etreeutils.NSDetatch(ctx, el)
	if err != nil {
		return reject(CodeDecrypt, "detach encrypted assertion: %v", err)
	}
	d := etree.NewDocument()
	d.SetRoot(det)
	b, err := d.WriteToBytes()
	if err != nil {
		return reject(CodeDecrypt, "encrypted assertion: %v", err)
	}
	var ea types.EncryptedAssertion
	if err := xml.Unmarshal(b, &ea); err != nil {
		return reject(CodeDecrypt, "encrypted assertion: %v", err)
	}
	// Everything so far is what the attacker sent in the clear, and may be
	// refused with its own reason; from the RSA decryption on, nothing may.
	if err := checkEncrypted(&ea, c.decrypt); err != nil {
		return err
	}
	plain, err := ea.DecryptBytes(c.decrypt)
	if err != nil {
		return encryptedReject("decrypt assertion: %v", err)
	}
	res, err := samlmeta.Scan(plain, c.sp.AllowSHA1)
	if err != nil {
		return encryptedReject("decrypted assertion: %v", err)
	}
	if res.Assertions != 1 || res.Encrypted != 0 {
		return encryptedReject("the decrypted content holds %d assertions (%d encrypted), want one Assertion", res.Assertions, res.Encrypted)
	}
	pd := etree.NewDocument()
	if err := pd.ReadFromBytes(plain); err != nil || pd.Root() == nil {
		return encryptedReject("parse decrypted assertion: %v", err)
	}
	// In the response's place, as gosaml2 puts it, so that it is read
	// with the namespaces in scope there.
	a := pd.Root()
	root.InsertChildAt(el.Index(), a)
	root.RemoveChild(el)
	var assertion *etree.Element
	if err := etreeutils.NSFindIterate(root, nsAssertion, "Assertion", func(ctx etreeutils.NSContext, x *etree.Element) error {
		if x != a {
			return nil
		}
		var err error
		assertion, err = etreeutils.NSDetatch(ctx, x)
		return err
	}); err != nil {
		return encryptedReject("decrypted assertion: %v", err)
	}
	if assertion == nil {
		return encryptedReject("the decrypted content is not a SAML Assertion")
	}
	switch _, err := vc.Validate(assertion); {
	case err == dsig.ErrMissingSignature && responseSigned:
	case err != nil:
		return encryptedReject("decrypted assertion signature: %v", err)
	}
	return nil
}

// The EncryptedKey methods accepted: RSA-OAEP, as Entra sends it. gosaml2
// also takes RSA PKCS#1 v1.5 (rsa-1_5), and would run it with the SP's
// private key on anyone's ciphertext before any signature is checked: a
// Bleichenbacher oracle.
var oaepKeyTransport = map[string]bool{
	types.MethodRSAOAEP:  true,
	types.MethodRSAOAEP2: true,
}

// contentEncryption are the EncryptedData methods accepted. Entra encrypts
// with AES-256 (Microsoft's documentation of SAML token encryption), in
// CBC mode; GCM, its authenticated form, is accepted too. gosaml2 also
// takes AES-128-CBC, AES-128 and -192 GCM, and "tripledes-cbc", which it
// runs as AES, each with whatever key length the key transport yields.
var contentEncryption = map[string]bool{
	types.MethodAES256CBC: true,
	types.MethodAES256GCM: true,
}

// checkEncrypted refuses, before anything of ea is decrypted, what Entra
// does not send: a key transport other than RSA-OAEP with SHA-1 (the
// digest gosaml2 reads under the standard URI; its SHA-2 URIs are not the
// standard ones), content encryption other than AES-256, or a key
// encrypted for another certificate. Only what the sender wrote in the
// clear decides, so its reasons may be told apart.
func checkEncrypted(ea *types.EncryptedAssertion, cert *tls.Certificate) error {
	// The EncryptedKey DecryptBytes picks: the inline one unless it has no
	// CipherValue.
	ek := ea.EncryptedKey
	if ek.CipherValue == "" {
		ek = ea.DetEncryptedKey
	}
	if alg := ek.EncryptionMethod.Algorithm; !oaepKeyTransport[alg] {
		return reject(CodeAlgorithm, "key transport %q is not RSA-OAEP", alg)
	}
	if dm := ek.EncryptionMethod.DigestMethod; dm != nil && dm.Algorithm != "" && dm.Algorithm != types.MethodSHA1 {
		return reject(CodeAlgorithm, "RSA-OAEP digest %q is not SHA-1, which Entra uses", dm.Algorithm)
	}
	if alg := ea.EncryptionMethod.Algorithm; !contentEncryption[alg] {
		return reject(CodeAlgorithm, "content encryption %q is not AES-256 (CBC or GCM)", alg)
	}
	if ek.X509Data != "" {
		der, err := base64.StdEncoding.DecodeString(ek.X509Data)
		if err != nil || !bytes.Equal(der, cert.Certificate[0]) {
			return reject(CodeDecrypt, "the assertion is encrypted for another certificate than spEncryptionCertificate")
		}
	}
	return nil
}

// classify maps gosaml2's errors onto rejection codes.
func classify(err error) *ResponseError {
	var iv saml2.ErrInvalidValue
	if errors.As(err, &iv) {
		code := CodeSignature
		switch iv.Key {
		case saml2.IssuerTag:
			code = CodeIssuer
		case saml2.DestinationAttr:
			code = CodeDestination
		case saml2.RecipientAttr:
			code = CodeRecipient
		case saml2.StatusCodeTag:
			code = CodeStatus
		case saml2.NotOnOrAfterAttr:
			code = CodeExpired
		case "SAML version":
			code = CodeVersion
		case saml2.SubjectConfirmationTag:
			code = CodeMissingElement
		}
		return &ResponseError{Code: code, Err: err}
	}
	var me saml2.ErrMissingElement
	if errors.As(err, &me) || errors.Is(err, saml2.ErrMissingAssertion) {
		return &ResponseError{Code: CodeMissingElement, Err: err}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "too many XML tokens"), strings.Contains(msg, "exceeds maximum size"):
		return &ResponseError{Code: CodeTooLarge, Err: err}
	case strings.Contains(msg, "decrypt"):
		return &ResponseError{Code: CodeDecrypt, Err: err}
	}
	return &ResponseError{Code: CodeSignature, Err: err}
}

// consume binds a checked response to its context: the sign-in it answers
// (in this browser's pending cookie, unexpired, with the same RelayState)
// or the IdP-initiated policy, and the replay cache. It returns the local
// path to land on and the browser's other pending sign-ins. userName is
// the user the response names (see usernameOf).
func (s *Server) consume(c *config, ch *checked, r *http.Request, relay, userName string, now time.Time) (string, []pendingLogin, error) {
	returnTo := ""
	var rest []pendingLogin
	if ch.inResponseTo == "" {
		if !c.sp.AllowIDPInitiated {
			return "", nil, reject(CodeUnsolicited, "unsolicited response and allowIdpInitiated is off")
		}
		returnTo = localReturnTo(onThisSite(relay, c.origin), c.basePath)
	} else {
		list, err := readPending(c, r)
		if err != nil {
			return "", nil, reject(CodeWrongBrowser, "the response answers a sign-in this browser did not start: %v", err)
		}
		i := slices.IndexFunc(list, func(p pendingLogin) bool { return p.ID == ch.inResponseTo })
		switch {
		case i < 0:
			return "", nil, reject(CodeUnknownRequest, "InResponseTo names no pending sign-in of this browser (unknown or already used)")
		case now.Unix() >= list[i].Expires:
			return "", nil, reject(CodeRequestExpired, "the sign-in request expired")
		case subtle.ConstantTimeCompare([]byte(relay), []byte(list[i].Relay)) != 1:
			return "", nil, reject(CodeWrongBrowser, "RelayState does not match the request")
		}
		returnTo = list[i].ReturnTo
		rest = slices.Delete(list, i, i+1)
	}
	at, loggedOut, err := s.logouts.LoggedOut(r.Context(), store.Fold(ch.nameID))
	if err != nil {
		return "", nil, fmt.Errorf("logout record: %w", err)
	}
	if loggedOut && ch.issued.Before(at) {
		// Issued before the IdP's LogoutRequest for the user, which
		// applies to it too (SAML core §3.7.3.2): the IdP's clock dates
		// both, so skew does not enter. One issued at the same instant
		// passes: an IdP writing whole seconds could not tell it from a
		// sign-in just after the logout.
		return "", nil, reject(CodeLoggedOut, "assertion %s was issued at %s, before the IdP's LogoutRequest for %s at %s",
			ch.assertionID, ch.issued.UTC().Format(time.RFC3339Nano), ch.nameID, at.UTC().Format(time.RFC3339Nano))
	}
	if !s.replayFrom.IsZero() && ch.issued.Before(s.replayFrom) {
		// The replay cache is this process's and started empty: an
		// assertion issued before could have been used on the process
		// before it, with a pending cookie that still opens (its key
		// derives from the SP signing key). Its browser signs in again.
		return "", nil, reject(CodeReplay, "assertion %s was issued at %s, before this process started at %s; whether it was used before cannot be known",
			ch.assertionID, ch.issued.UTC().Format(time.RFC3339), s.replayFrom.UTC().Format(time.RFC3339))
	}
	if userName == "" {
		// Refused before it is recorded: there is no user to count it
		// against.
		return "", nil, reject(CodeNoUsername, "the response names no user")
	}
	// Recorded as the user's, as the SP finds users (the name Authorize
	// looks up, which sessions are grouped by), whether or not they may
	// sign in: the record is made either way.
	first, err := s.replay.FirstUse(r.Context(), userName, assertionReplayKey(ch.issuer, ch.assertionID), staleAt(ch.expires, c.skew))
	if err != nil {
		return "", nil, replayErr(err, "sign-in", userName)
	}
	if !first {
		return "", nil, reject(CodeReplay, "assertion %s was already used", ch.assertionID)
	}
	return returnTo, rest, nil
}

// serveACS is the assertion consumer service (HTTP-POST binding).
func (s *Server) serveACS(c *config, w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		code := CodeMalformed
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			code = CodeTooLarge
		}
		s.rejected(w, c, &ResponseError{Code: code, Err: err})
		return
	}
	now := s.now()
	ch, err := checkResponse(c, r.PostForm.Get("SAMLResponse"), now)
	if err != nil {
		s.rejected(w, c, err)
		return
	}
	userName := c.usernameOf(ch.nameID, ch.values)
	returnTo, rest, err := s.consume(c, ch, r, r.PostForm.Get("RelayState"), userName, now)
	if _, refused := errors.AsType[*ResponseError](err); err != nil && !refused {
		// The replay cache or the logout record could not say whether
		// the assertion may sign in (etcd unavailable): nothing is wrong
		// with the response, which signs in once it can be checked (its
		// pending sign-in is kept).
		s.log.Error("saml: sign-in: replay or logout check", "err", err)
		s.errorPage(w, c, http.StatusServiceUnavailable, "Sign-in failed", "The sign-in could not be checked; try again.")
		return
	}
	if err != nil {
		s.rejected(w, c, err)
		return
	}
	if ch.inResponseTo != "" {
		s.writePending(w, c, r, rest)
	}
	d, err := s.authz.Authorize(r.Context(), userName)
	if err != nil {
		s.log.Error("saml: authorize", "err", err)
		s.errorPage(w, c, http.StatusInternalServerError, "Sign-in failed", "Access could not be checked; try again.")
		return
	}
	if !d.Allowed {
		s.obs("denied")
		s.log.Info("saml: sign-in denied", "user", userName, "reason", d.Reason)
		s.errorPage(w, c, http.StatusForbidden, "Access denied", deniedText(userName, d.Reason))
		return
	}
	id := s.sessionIDs.mint()
	if err := s.sessions.Add(r.Context(), id, Session{UserName: d.UserName, UserID: d.UserID, NameID: ch.nameID, SessionIndex: ch.sessionIndex}, now.Add(c.lifetime)); err != nil {
		s.log.Error("saml: store session", "err", err)
		s.errorPage(w, c, http.StatusServiceUnavailable, "Sign-in failed", "The session could not be stored; try again.")
		return
	}
	if err := s.loggedOutSince(r.Context(), ch, id); err != nil {
		if _, refused := errors.AsType[*ResponseError](err); refused {
			s.rejected(w, c, err)
			return
		}
		s.log.Error("saml: sign-in: logout check", "err", err)
		s.errorPage(w, c, http.StatusServiceUnavailable, "Sign-in failed", "The sign-in could not be checked; try again.")
		return
	}
	s.setCookie(w, c, r, &http.Cookie{Name: c.cookies.session, Value: id, MaxAge: int(c.lifetime.Seconds()), SameSite: http.SameSiteLaxMode})
	s.obs("success")
	s.log.Info("saml: signed in", "user", d.UserName, "idpInitiated", ch.inResponseTo == "")
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// loggedOutSince checks the IdP's logouts again once the session id is
// stored: a LogoutRequest another daemon took between consume's check and
// the store ended every session of the user but this one, which did not
// exist yet. The logout is recorded before its sessions are deleted, so
// this read sees it whenever the delete missed the session. A session
// whose assertion the logout covers is deleted again and refused; one
// that cannot be checked is deleted too, as its sign-in is answered 503.
func (s *Server) loggedOutSince(ctx context.Context, ch *checked, id string) error {
	at, loggedOut, err := s.logouts.LoggedOut(ctx, store.Fold(ch.nameID))
	switch {
	case err != nil:
	case !loggedOut || !ch.issued.Before(at):
		return nil
	default:
		err = reject(CodeLoggedOut, "assertion %s was issued at %s, before the IdP's LogoutRequest for %s at %s, taken while it signed in",
			ch.assertionID, ch.issued.UTC().Format(time.RFC3339Nano), ch.nameID, at.UTC().Format(time.RFC3339Nano))
	}
	if derr := s.sessions.Delete(ctx, id); derr != nil {
		s.log.Error("saml: delete a session its sign-in refused", "err", derr)
	}
	return err
}

func deniedText(userName, reason string) string {
	switch reason {
	case ReasonUnknownUser:
		return fmt.Sprintf("%s is not provisioned in this application (unknown user). Ask an administrator to assign you to the application in Entra ID.", userName)
	case ReasonUserDisabled:
		return fmt.Sprintf("The account %s is disabled (user disabled).", userName)
	case ReasonNoRole:
		return fmt.Sprintf("%s has no role in this application (no role). Ask an administrator for access.", userName)
	}
	return fmt.Sprintf("%s may not use this application: %s.", userName, reason)
}

// rejected answers a refused SAML message: the detail goes to the log, the
// browser gets the code and a plain explanation.
func (s *Server) rejected(w http.ResponseWriter, c *config, err error) {
	var re *ResponseError
	if !errors.As(err, &re) {
		re = &ResponseError{Code: CodeMalformed, Err: err}
	}
	s.obs(re.Code)
	s.log.Warn("saml: response rejected", "code", re.Code, "err", re.Err)
	if re.detail != nil {
		s.log.Debug("saml: response rejected: detail", "code", re.Code, "detail", re.detail)
	}
	if re.Code == CodeTooManySignIns {
		s.errorPage(w, c, s.tooManyStatus(w, re), "Too many sign-ins",
			fmt.Sprintf("This account has signed in too many times in a short while (%s). Try again after %s.",
				re.Code, re.retryAt.UTC().Format("15:04:05 MST")))
		return
	}
	status := http.StatusForbidden
	switch re.Code {
	case CodeTooLarge:
		status = http.StatusRequestEntityTooLarge
	case CodeMalformed, CodeDoctype, CodeTooDeep:
		status = http.StatusBadRequest
	}
	s.errorPage(w, c, status, "Sign-in rejected", "The sign-in response was rejected ("+re.Code+"). Start the sign-in again.")
}

// tooManyStatus sets Retry-After for a CodeTooManySignIns refusal and
// returns its status: only this user is refused, until their soonest
// record lapses, and a sign-in started before then would be refused again.
func (s *Server) tooManyStatus(w http.ResponseWriter, re *ResponseError) int {
	wait := max(re.retryAt.Sub(s.now()), time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(int64((wait+time.Second-1)/time.Second), 10))
	return http.StatusTooManyRequests
}
