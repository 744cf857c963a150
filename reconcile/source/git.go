package source

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"

	"github.com/idrecon/idrecon/spec"
	"github.com/idrecon/idrecon/spec/bundle"
	"github.com/idrecon/idrecon/spec/redact"
)

// DefaultFetchTimeout bounds one Fetch when GitOptions.FetchTimeout is zero.
const DefaultFetchTimeout = 30 * time.Second

// maxCachePacks is how many pack files the cache may collect (one per
// fetch that brought something) before it is rebuilt from scratch; go-git
// cannot garbage-collect a shallow repository cheaply.
const maxCachePacks = 64

// targetRef is the single local ref the cache keeps; everything else in the
// object store is garbage once the ref moves.
const targetRef = plumbing.ReferenceName("refs/idrecon/target")

// GitOptions configures a Git source.
type GitOptions struct {
	// URL of the repository: https://, http://, ssh://, scp-like
	// (git@host:org/repo.git), file:// or a local path. Credentials in an
	// http(s) URL ("user:pass@" or a token as the user name) are used for
	// basic auth and stripped from String, errors and logs.
	URL string
	// At most one of Branch, Tag and Commit (a full 40-hex SHA). With none,
	// the remote's default branch (its HEAD) is followed, else "main".
	Branch, Tag, Commit string
	// Path is the spec root inside the repository, slash-separated and
	// relative; it must stay inside the repository.
	Path string
	// CacheDir holds the shallow clone and the checked-out revisions. It is
	// owned by this source; two sources must not share one.
	CacheDir string
	// Auth configures credentials.
	Auth GitAuth
	// FetchTimeout bounds one Fetch; DefaultFetchTimeout when zero.
	FetchTimeout time.Duration
	// VerifySignatures names an armored OpenPGP key ring file. When set, the
	// head commit must carry a valid signature by one of its keys or Fetch
	// returns a *SignatureError.
	VerifySignatures string
	// Logger; nil discards.
	Logger *slog.Logger
	// Getenv reads the environment for Auth's *Env fields; os.Getenv when nil.
	Getenv func(string) string
	// MaxBytes bounds the total size of the files exported below Path
	// (default spec.DefaultMaxBytes); a larger tree is refused with a
	// *spec.LimitError before the file that crosses it is written.
	MaxBytes int64
}

// Git is a git repository source. It keeps a shallow (depth 1) bare clone in
// CacheDir/repo.git and exports each new head commit into
// CacheDir/rev-<sha>-<path key> (see revDir).
//
// Directory contract: the Dir of a returned Revision is never modified.
// Fetch keeps the directories of the revision it returns and of the one
// returned before it, and deletes older ones. So a revision's tree lives
// until two newer revisions have been fetched, and a caller that has
// finished with one revision by the time it receives the next never sees
// its tree vanish.
type Git struct {
	opts     GitOptions
	url      string    // URL given to go-git: no embedded secret
	urlCreds *urlCreds // credentials that were embedded in an http(s) URL
	ssh      bool      // the URL is an ssh one (see boundSSHDial)
	display  string
	logger   *slog.Logger
	getenv   func(string) string
	mu       sync.Mutex // serialises Fetch: one cache, one writer
	current  string     // SHA of the last returned revision
	previous string     // SHA of the revision before it
}

// NewGit validates opts and returns a source. It does no I/O.
func NewGit(opts GitOptions) (*Git, error) {
	if opts.URL == "" {
		return nil, fmt.Errorf("%w: git URL is empty", ErrInvalidOptions)
	}
	pins := 0
	for _, v := range []string{opts.Branch, opts.Tag, opts.Commit} {
		if v != "" {
			pins++
		}
	}
	if pins > 1 {
		return nil, fmt.Errorf("%w: set at most one of branch, tag and commit", ErrInvalidOptions)
	}
	if opts.Commit != "" {
		if _, err := hex.DecodeString(opts.Commit); err != nil || len(opts.Commit) != 40 {
			return nil, fmt.Errorf("%w: commit must be a full 40-hex SHA", ErrInvalidOptions)
		}
		opts.Commit = strings.ToLower(opts.Commit)
	}
	for _, ref := range []string{opts.Branch, opts.Tag} {
		if ref != "" && plumbing.ReferenceName("refs/heads/"+ref).Validate() != nil {
			return nil, fmt.Errorf("%w: invalid ref name %q", ErrInvalidOptions, ref)
		}
	}
	cleanPath, err := specPath(opts.Path)
	if err != nil {
		return nil, err
	}
	opts.Path = cleanPath
	if opts.CacheDir == "" {
		return nil, fmt.Errorf("%w: git cache dir is empty", ErrInvalidOptions)
	}
	if opts.CacheDir, err = filepath.Abs(opts.CacheDir); err != nil {
		return nil, fmt.Errorf("resolve git cache dir: %w", err)
	}
	if err := opts.Auth.validate(); err != nil {
		return nil, err
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	g := &Git{opts: opts, logger: opts.Logger, getenv: opts.Getenv}
	if g.logger == nil {
		g.logger = slog.New(slog.DiscardHandler)
	}
	if g.getenv == nil {
		g.getenv = os.Getenv
	}
	g.url, g.urlCreds, g.display = splitURL(opts.URL)
	ep, err := transport.NewEndpoint(g.url)
	if err != nil {
		return nil, fmt.Errorf("%w: git URL %s: cannot parse", ErrInvalidOptions, g.display)
	}
	g.ssh = ep.Protocol == "ssh"
	if c := g.urlCreds; c != nil && c.pass == "" && opts.Auth.Username == "" &&
		(opts.Auth.PasswordEnv != "" || opts.Auth.PasswordFile != "") {
		// "https://user@host/repo" plus a password secret: one basic login.
		g.opts.Auth.Username, g.urlCreds = c.user, nil
	}
	if g.urlCreds != nil && (opts.Auth != GitAuth{}) {
		return nil, fmt.Errorf("%w: git URL embeds credentials and auth is configured too", ErrInvalidOptions)
	}
	return g, nil
}

// specPath cleans a slash-separated spec root and refuses one that leaves
// the repository.
func specPath(p string) (string, error) {
	if p == "" {
		return "", nil
	}
	if strings.Contains(p, `\`) {
		return "", fmt.Errorf("%w: spec path %q must use forward slashes", ErrInvalidOptions, p)
	}
	c := path.Clean(p)
	if c == "." {
		return "", nil
	}
	if !filepath.IsLocal(filepath.FromSlash(c)) {
		return "", fmt.Errorf("%w: spec path %q leaves the repository", ErrInvalidOptions, p)
	}
	return c, nil
}

// urlCreds are credentials found in an http(s) URL's userinfo.
type urlCreds struct{ user, pass string }

// splitURL takes embedded credentials out of a URL. For http(s) the whole
// userinfo goes, since a token is often passed as the user name; for ssh
// only a password goes, the user name being part of the address. It
// returns the URL for go-git, the credentials, and a display form.
func splitURL(raw string) (clean string, creds *urlCreds, display string) {
	if c, ok := scpLikeWithoutPassword(raw); ok {
		return c, nil, c
	}
	u, err := url.Parse(raw)
	if err != nil {
		// A password with a character URLs do not allow unescaped ('^', a
		// space, a '%' that is no escape) makes the URL unparsable, yet it
		// is still shown in errors and logs: hide whatever may be userinfo,
		// and the query's values, which may hold a token as they may in a
		// URL that parses.
		return raw, nil, redact.URL(raw)
	}
	if u.Scheme == "" {
		// scp-like "git@host:path" and local paths carry no secret.
		return raw, nil, raw
	}
	clean = raw
	if u.User != nil {
		switch u.Scheme {
		case "http", "https":
			pass, _ := u.User.Password()
			creds = &urlCreds{user: u.User.Username(), pass: pass}
			u.User = nil
		default:
			u.User = url.User(u.User.Username())
		}
		clean = u.String()
	}
	// Some forges take an access token in the query ("?private_token=",
	// "?access_token=").
	return clean, creds, redact.Query(*u)
}

// scpLikeWithoutPassword drops a password from an scp-like address
// ("user:pass@host:path"), which go-git, like git, reads as SSH with the
// whole "user:pass" as the user name, and url.Parse as an opaque URL of
// scheme "user" with nothing to hide. ok is false for any other address.
func scpLikeWithoutPassword(raw string) (clean string, ok bool) {
	if strings.Contains(raw, "://") {
		return "", false
	}
	userinfo, rest, found := strings.Cut(raw, "@")
	if !found || !strings.Contains(userinfo, ":") {
		return "", false
	}
	ep, err := transport.NewEndpoint(raw)
	if err != nil || ep.Protocol != "ssh" || ep.User != userinfo {
		return "", false
	}
	user, _, _ := strings.Cut(userinfo, ":")
	if user == "" {
		return rest, true
	}
	return user + "@" + rest, true
}

// queryOf returns the query of an http(s) URL, which go-git echoes
// verbatim in its errors and which may hold a token ("" if none). For a
// URL that does not parse it is the text after the first '?' past the
// userinfo, so that its token is scrubbed all the same.
func queryOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		_, query, _ := redact.CutQuery(redact.Userinfo(raw))
		return query
	}
	if u.Scheme == "" {
		return ""
	}
	return u.RawQuery
}

// querySecrets lists the values to scrub of a URL's query: the whole, and
// each parameter's value long enough to be a token (scrubbing a short one
// would mangle every error that holds its letters), as escaped and as
// decoded.
func querySecrets(query string) []string {
	out := secrets(query)
	for _, part := range strings.Split(query, "&") {
		_, v, _ := strings.Cut(part, "=")
		d, err := url.QueryUnescape(v)
		if err != nil {
			d = v
		}
		if len(d) < minQuerySecret {
			continue
		}
		out = append(out, v)
		if d != v {
			out = append(out, d)
		}
	}
	return out
}

// minQuerySecret is the shortest query value scrubbed on its own.
const minQuerySecret = 8

// secrets lists the values to scrub from errors.
func (c *urlCreds) secrets() []string {
	if c.pass == "" {
		return secrets(c.user) // a token passed as the user name
	}
	return secrets(c.pass)
}

// String returns the repository URL without credentials.
func (g *Git) String() string { return g.display }

// describe names the source in errors and logs: URL, ref and path.
func (g *Git) describe() string {
	s := g.display
	switch {
	case g.opts.Branch != "":
		s += "@" + g.opts.Branch
	case g.opts.Tag != "":
		s += "@tag:" + g.opts.Tag
	case g.opts.Commit != "":
		s += "@" + g.opts.Commit
	}
	if g.opts.Path != "" {
		s += "//" + g.opts.Path
	}
	return s
}

// Fetch brings the cache up to the configured ref and returns the head
// commit's tree, exported under CacheDir. When the remote tip has not moved
// no objects are transferred. Errors wrap ErrRefNotFound, ErrPathNotFound,
// ErrAuth, ErrHostKey, ErrRepositoryNotFound, ErrTransient or are a
// *SignatureError; none contains a credential. Calls are serialised.
func (g *Git) Fetch(ctx context.Context) (Revision, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, g.opts.FetchTimeout)
	defer cancel()

	ep, err := transport.NewEndpoint(g.url)
	if err != nil {
		return Revision{}, fmt.Errorf("git %s: %w: cannot parse URL", g.display, ErrInvalidOptions)
	}
	auth, secretVals, err := g.opts.Auth.method(ep, g.getenv)
	defer closeAuth(auth)
	if g.urlCreds != nil {
		auth = &githttp.BasicAuth{Username: g.urlCreds.user, Password: g.urlCreds.pass}
		secretVals = append(secretVals, g.urlCreds.secrets()...)
	}
	// The URL's query may carry a token; the display form hides it but
	// go-git's errors quote the URL as given, or a server echoes the
	// token alone.
	secretVals = append(secretVals, querySecrets(queryOf(g.url))...)
	if err != nil {
		return Revision{}, scrub(fmt.Errorf("git %s: %w", g.display, err), secretVals)
	}
	rev, err := g.fetch(ctx, auth, secretVals)
	if err != nil {
		return Revision{}, scrub(fmt.Errorf("git %s: %w", g.describe(), err), secretVals)
	}
	return rev, nil
}

// fetch is Fetch's work; secretVals are scrubbed from what it logs, as
// Fetch scrubs them from its errors.
func (g *Git) fetch(ctx context.Context, auth transport.AuthMethod, secretVals []string) (Revision, error) {
	if err := os.MkdirAll(g.opts.CacheDir, 0o755); err != nil {
		return Revision{}, fmt.Errorf("create cache dir: %w", err)
	}
	repo, err := g.openCache(secretVals)
	if err != nil {
		return Revision{}, err
	}
	rev, err := g.fetchInto(ctx, repo, auth)
	if err != nil && errors.Is(err, errCacheBroken) {
		// A fetch into a damaged or confused cache (a crash or power loss
		// while go-git wrote it, which it does without syncing): start over
		// once, or the daemon would fail the same way on every poll.
		g.logger.Warn("git cache unusable, re-cloning", "source", g.describe(), "error", scrub(err, secretVals))
		if repo, err = g.resetCache(); err != nil {
			return Revision{}, err
		}
		rev, err = g.fetchInto(ctx, repo, auth)
	}
	return rev, err
}

// fetchInto brings repo up to the configured ref and exports its tree.
// Errors that come from reading the cache's own objects wrap
// errCacheBroken.
func (g *Git) fetchInto(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (Revision, error) {
	if err := g.checkCache(repo); err != nil {
		return Revision{}, err
	}
	head, ref, err := g.resolve(ctx, repo, auth)
	if err != nil {
		return Revision{}, err
	}
	commit, err := repo.CommitObject(head)
	if err != nil {
		return Revision{}, fmt.Errorf("%w: read commit %s: %w", errCacheBroken, head, err)
	}
	if g.opts.VerifySignatures != "" {
		if err := verifyCommit(commit, g.opts.VerifySignatures); err != nil {
			return Revision{}, err
		}
	}
	dir, err := g.exportRevision(ctx, repo, commit)
	if err != nil {
		return Revision{}, err
	}
	sha := head.String()
	if sha != g.current {
		g.previous, g.current = g.current, sha
		g.pruneRevisions()
		g.logger.Info("git revision fetched", "source", g.describe(), "revision", sha)
	}
	return Revision{ID: sha, Dir: dir, Name: gitName(ref, sha)}, nil
}

// checkCache reads what a fetch relies on in the cache: the refs, the
// shallow list, and the commit and root tree that the target ref or the
// pinned commit names. go-git fetches nothing when the target ref already
// matches the remote, so a ref or pack left empty or cut short by a crash
// would otherwise fail every poll, with errors that read like a missing
// ref or a flaky network.
func (g *Git) checkCache(repo *git.Repository) error {
	if _, err := repo.Storer.Shallow(); err != nil {
		return fmt.Errorf("%w: read shallow list: %w", errCacheBroken, err)
	}
	refs, err := repo.Storer.IterReferences()
	if err != nil {
		return fmt.Errorf("%w: read refs: %w", errCacheBroken, err)
	}
	refs.Close()
	h := plumbing.NewHash(g.opts.Commit)
	if g.opts.Commit == "" {
		ref, err := repo.Storer.Reference(targetRef)
		if errors.Is(err, plumbing.ErrReferenceNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read %s: %w", errCacheBroken, targetRef, err)
		}
		h, err = peel(repo, ref.Hash())
		if errors.Is(err, ErrRefNotFound) {
			return nil // a tag naming no commit: the remote's doing, reported by resolve
		}
		if errors.Is(err, errCacheBroken) {
			return err
		}
		if err != nil {
			return fmt.Errorf("%w: %w", errCacheBroken, err)
		}
	}
	commit, err := repo.CommitObject(h)
	if g.opts.Commit != "" && errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil // not fetched yet
	}
	if err != nil {
		return fmt.Errorf("%w: read commit %s: %w", errCacheBroken, h, err)
	}
	if _, err := commit.Tree(); err != nil {
		return fmt.Errorf("%w: read tree of %s: %w", errCacheBroken, h, err)
	}
	return nil
}

// errCacheBroken marks local cache failures that a fresh clone fixes.
var errCacheBroken = errors.New("git cache inconsistent")

func (g *Git) repoDir() string { return filepath.Join(g.opts.CacheDir, "repo.git") }

func (g *Git) openCache(secretVals []string) (*git.Repository, error) {
	dir := g.repoDir()
	repo, err := git.PlainOpen(dir)
	if err == nil {
		packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*.pack"))
		if len(packs) <= maxCachePacks {
			return repo, nil
		}
		g.logger.Info("git cache compacted by re-cloning", "source", g.describe(), "packs", len(packs))
	} else if !errors.Is(err, git.ErrRepositoryNotExists) {
		g.logger.Warn("git cache unreadable, re-cloning", "source", g.describe(), "error", scrub(err, secretVals))
	}
	return g.resetCache()
}

func (g *Git) resetCache() (*git.Repository, error) {
	dir := g.repoDir()
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("remove git cache: %w", err)
	}
	repo, err := git.PlainInit(dir, true)
	if err != nil {
		return nil, fmt.Errorf("init git cache: %w", err)
	}
	return repo, nil
}

// resolve fetches the configured ref into the cache and returns the commit
// it names and the ref's name for the revision name (see refName): "main"
// when a default branch that names no branch fell back to it.
func (g *Git) resolve(ctx context.Context, repo *git.Repository, auth transport.AuthMethod) (plumbing.Hash, string, error) {
	remote := git.NewRemote(repo.Storer, &config.RemoteConfig{Name: "origin", URLs: []string{g.url}})

	if g.opts.Commit != "" {
		h := plumbing.NewHash(g.opts.Commit)
		if hasCommit(repo, h) {
			return h, "", nil
		}
		spec := config.RefSpec(g.opts.Commit + ":" + string(targetRef))
		err := g.runFetch(ctx, remote, auth, spec, 1)
		if errors.Is(err, git.ErrExactSHA1NotSupported) {
			// Servers that refuse a bare SHA in "want" need the full
			// history of every ref; a commit pin never moves, so this
			// happens once per cache.
			err = g.runFetch(ctx, remote, auth, "+refs/heads/*:refs/idrecon/heads/*", 0)
		}
		if err != nil {
			return plumbing.ZeroHash, "", err
		}
		if !hasCommit(repo, h) {
			if shallow, _ := repo.Storer.Shallow(); len(shallow) > 0 {
				// A cache that followed a branch at depth 1 (the daemon's
				// cache dir outlives a switch to a commit pin) tells the
				// server it has the shallow tip, so an older pinned commit
				// behind it is never sent. Only a fresh cache can say the
				// commit does not exist.
				return plumbing.ZeroHash, "", fmt.Errorf("%w: commit %s not fetched into a shallow cache", errCacheBroken, g.opts.Commit)
			}
			return plumbing.ZeroHash, "", fmt.Errorf("commit %s: %w", g.opts.Commit, ErrRefNotFound)
		}
		return h, "", nil
	}

	// One fetch session per poll: go-git compares the advertised tip with
	// the local target ref and transfers nothing when they match.
	src, name := g.srcRef(), g.refName()
	err := g.runFetch(ctx, remote, auth, config.RefSpec("+"+string(src)+":"+string(targetRef)), 1)
	if src == plumbing.HEAD && errors.Is(err, ErrRefNotFound) {
		// A remote whose HEAD names no branch: fall back to "main".
		src, name = plumbing.NewBranchReferenceName("main"), "main"
		err = g.runFetch(ctx, remote, auth, config.RefSpec("+"+string(src)+":"+string(targetRef)), 1)
	}
	if err != nil {
		return plumbing.ZeroHash, "", err
	}
	ref, err := repo.Storer.Reference(targetRef)
	if err != nil {
		return plumbing.ZeroHash, "", fmt.Errorf("%w: fetched ref missing: %w", errCacheBroken, err)
	}
	h, err := peel(repo, ref.Hash())
	if err != nil && !errors.Is(err, ErrRefNotFound) && !errors.Is(err, errCacheBroken) {
		err = fmt.Errorf("%w: %w", errCacheBroken, err)
	}
	return h, name, err
}

// refName names what the source follows, for revision names: the branch
// or tag, "HEAD" for the remote's default branch, "" for a pinned commit.
func (g *Git) refName() string {
	switch {
	case g.opts.Tag != "":
		return g.opts.Tag
	case g.opts.Branch != "":
		return g.opts.Branch
	case g.opts.Commit != "":
		return ""
	}
	return "HEAD"
}

// srcRef is the remote ref to follow.
func (g *Git) srcRef() plumbing.ReferenceName {
	switch {
	case g.opts.Tag != "":
		return plumbing.NewTagReferenceName(g.opts.Tag)
	case g.opts.Branch != "":
		return plumbing.NewBranchReferenceName(g.opts.Branch)
	}
	return plumbing.HEAD
}

func (g *Git) runFetch(ctx context.Context, remote *git.Remote, auth transport.AuthMethod, spec config.RefSpec, depth int) error {
	opts := &git.FetchOptions{
		RefSpecs: []config.RefSpec{spec},
		Depth:    depth,
		Auth:     auth,
		Tags:     git.NoTags,
		Force:    true,
	}
	if g.ssh {
		var release func()
		opts.ProxyOptions, release = boundSSHDial(ctx)
		defer release()
	}
	err := remote.FetchContext(ctx, opts)
	switch {
	case err == nil, errors.Is(err, git.NoErrAlreadyUpToDate):
		return nil
	case errors.Is(err, git.NoMatchingRefSpecError{}):
		return fmt.Errorf("fetch %s: %w", spec.Src(), ErrRefNotFound)
	case errors.Is(err, git.ErrExactSHA1NotSupported):
		return err
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return fmt.Errorf("fetch %s: %w: remote repository is empty", spec.Src(), ErrRefNotFound)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The transport's own error (a killed upload-pack, a closed
		// connection) hides the real cause: the fetch ran out of time.
		return fmt.Errorf("fetch %s: %w: %w: %w", spec.Src(), ErrTransient, ctxErr, err)
	}
	return fmt.Errorf("fetch %s: %w", spec.Src(), classify(err))
}

func hasCommit(repo *git.Repository, h plumbing.Hash) bool {
	_, err := repo.CommitObject(h)
	return err == nil
}

// peel follows annotated tags to the commit they name.
func peel(repo *git.Repository, h plumbing.Hash) (plumbing.Hash, error) {
	for range 10 {
		tag, err := repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			if !hasCommit(repo, h) {
				return plumbing.ZeroHash, fmt.Errorf("%w: fetched object %s missing", errCacheBroken, h)
			}
			return h, nil
		}
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read tag %s: %w", h, err)
		}
		if tag.TargetType != plumbing.CommitObject && tag.TargetType != plumbing.TagObject {
			return plumbing.ZeroHash, fmt.Errorf("tag %s names a %s: %w", tag.Name, tag.TargetType, ErrRefNotFound)
		}
		h = tag.Target
	}
	return plumbing.ZeroHash, fmt.Errorf("tag chain at %s too deep: %w", h, ErrRefNotFound)
}

// exportRevision writes the commit's tree to CacheDir/revDir(sha) unless
// this process already did, and returns the spec root inside it.
func (g *Git) exportRevision(ctx context.Context, repo *git.Repository, commit *object.Commit) (string, error) {
	tree, err := commit.Tree()
	if err != nil {
		return "", fmt.Errorf("%w: read tree of %s: %w", errCacheBroken, commit.Hash, err)
	}
	// Only the spec root is exported: the loader reads nothing outside it,
	// and the size limit is the spec's, not the repository's.
	if g.opts.Path != "" {
		if tree, err = subtree(repo, tree, g.opts.Path); err != nil {
			if errors.Is(err, errCacheBroken) {
				return "", fmt.Errorf("%s in %s: %w", g.opts.Path, commit.Hash, err)
			}
			return "", fmt.Errorf("%s in %s: %w", g.opts.Path, commit.Hash, ErrPathNotFound)
		}
	}
	sha := commit.Hash.String()
	dest := filepath.Join(g.opts.CacheDir, g.revDir(sha))
	specRoot := filepath.Join(dest, filepath.FromSlash(g.opts.Path))
	if _, err := os.Stat(dest); err == nil {
		if sha == g.current || sha == g.previous {
			return specRoot, nil
		}
		// Left by an earlier run: its files were never synced, so a power
		// loss may have left them empty or cut short, and served as they
		// are they would be a spec nobody committed. It was never
		// returned by this process, so nobody is reading it.
		if err := os.RemoveAll(dest); err != nil {
			return "", fmt.Errorf("export revision %s: %w", commit.Hash, err)
		}
	}
	tmp, err := os.MkdirTemp(g.opts.CacheDir, ".tmp-rev-")
	if err != nil {
		return "", fmt.Errorf("export revision: %w", err)
	}
	maxBytes := cmp.Or(g.opts.MaxBytes, spec.DefaultMaxBytes)
	err = exportTree(ctx, repo.Storer, tree, filepath.Join(tmp, filepath.FromSlash(g.opts.Path)), g.logger, maxBytes, bundle.MaxFiles)
	if errors.Is(err, errReadObject) {
		err = fmt.Errorf("%w: %w", errCacheBroken, err)
	}
	if errors.Is(err, errOnlySkipped) {
		// Served as it is, the spec root would be missing (the loader then
		// fails with a bare "no such file or directory") or, for the whole
		// repository, an empty folder: an empty spec.
		where := "the repository root"
		if g.opts.Path != "" {
			where = fmt.Sprintf("spec path %q", g.opts.Path)
		}
		err = fmt.Errorf("%s holds no regular file, only symlinks or submodules, which are not exported: %w", where, ErrPathNotFound)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("export revision %s: %w", commit.Hash, err)
	}
	// The rename makes the directory appear complete or not at all.
	if err := os.Rename(tmp, dest); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("export revision %s: %w", commit.Hash, err)
	}
	return specRoot, nil
}

// subtree returns the tree at slash-separated p below t. Unlike
// (*object.Tree).Tree it tells a path that is not there (ErrPathNotFound)
// from a tree object that cannot be read (errCacheBroken).
func subtree(repo *git.Repository, t *object.Tree, p string) (*object.Tree, error) {
	for part := range strings.SplitSeq(p, "/") {
		var next *object.TreeEntry
		for i := range t.Entries {
			if t.Entries[i].Name == part {
				next = &t.Entries[i]
				break
			}
		}
		if next == nil || next.Mode != filemode.Dir {
			return nil, ErrPathNotFound
		}
		sub, err := repo.TreeObject(next.Hash)
		if err != nil {
			return nil, fmt.Errorf("%w: read tree %s: %w", errCacheBroken, next.Hash, err)
		}
		t = sub
	}
	return t, nil
}

// revDir names the folder commit sha is exported to. Only the spec path
// is exported, so the name carries the path too: the cache dir outlives a
// restart with another path (the daemon's is DATA_DIR/git whatever the
// path), and the export of another path must not be served for this one.
// Even the whole repository ("") gets a suffix, so that a folder named
// before the path was part of the name ("rev-<sha>") is never reused.
func (g *Git) revDir(sha string) string {
	sum := sha256.Sum256([]byte(g.opts.Path))
	return "rev-" + sha + "-" + hex.EncodeToString(sum[:6])
}

// pruneRevisions removes exported revisions other than the current and the
// previous one, and leftovers of interrupted exports.
func (g *Git) pruneRevisions() {
	entries, err := os.ReadDir(g.opts.CacheDir)
	if err != nil {
		g.logger.Warn("list git cache", "source", g.describe(), "error", err)
		return
	}
	for _, e := range entries {
		name := e.Name()
		keep := name == g.revDir(g.current) || (g.previous != "" && name == g.revDir(g.previous))
		if keep || !(strings.HasPrefix(name, "rev-") || strings.HasPrefix(name, ".tmp-rev-")) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(g.opts.CacheDir, name)); err != nil {
			g.logger.Warn("remove old revision", "source", g.describe(), "dir", name, "error", err)
		}
	}
}

// LogValue keeps credentials embedded in the URL out of structured logs.
func (o GitOptions) LogValue() slog.Value {
	_, _, display := splitURL(o.URL)
	return slog.GroupValue(
		slog.String("url", display),
		slog.String("branch", o.Branch),
		slog.String("tag", o.Tag),
		slog.String("commit", o.Commit),
		slog.String("path", o.Path),
		slog.Bool("verify_signatures", o.VerifySignatures != ""),
	)
}
