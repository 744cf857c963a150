package spec

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"
)

// LoadOptions are the inputs of Load that do not come from the spec repo.
type LoadOptions struct {
	// Getenv resolves valueFrom.env and privateKeyFrom.env; nil means os.Getenv.
	Getenv func(string) string
	// Now is the time certificate expiry is judged against; zero means time.Now().
	Now time.Time
	// Cache, when set, lets a load whose inputs are unchanged return the
	// previous result without parsing anything (see Cache).
	Cache *Cache
	// DataDir is the daemon's data dir (state, audit log, admin token). No
	// file a document refers to may be read from inside it, unless it is
	// part of the spec repo itself (a pushed spec is kept there).
	DataDir string
	// MaxBytes bounds the total size of the spec's YAML files, MaxDocuments
	// the number of documents in them and MaxNodes the number of YAML nodes
	// (every mapping, list and scalar, keys included) the documents parse
	// into (defaults DefaultMaxBytes, DefaultMaxDocuments and
	// DefaultMaxNodes). A load past any of them stops there with a
	// *LimitError, before parsing the rest; so does a spec with one
	// document larger than MaxDocumentBytes.
	MaxBytes     int64
	MaxDocuments int
	MaxNodes     int
}

// Defaults of LoadOptions.MaxBytes and MaxDocuments: far above any real
// identity set-up, far below what exhausts a daemon's memory.
const (
	DefaultMaxBytes     = 64 << 20
	DefaultMaxDocuments = 100_000
)

// DefaultMaxNodes is the default of LoadOptions.MaxNodes. What a load costs
// in memory and time is set by its YAML nodes rather than its bytes:
// yaml.v3 builds each document's whole node tree before the loader sees it,
// the trees are kept until the load ends (errors point into them), and a
// node costs about the same however the YAML is written. Bytes bound nodes
// only loosely: a dense flow list ("[a,a,a]") or a flow mapping of bare keys
// has several times the nodes per byte of a spec written like the examples,
// so DefaultMaxBytes of it would cost many times what a real spec of that
// size does. The limit leaves a large tenant written like the examples (ten
// thousand access assignments, a thousand applications with their versions)
// room to grow several times over, and holds a load at the limit, however
// densely written, to a small multiple of the memory that tenant grown to
// the limit takes. BenchmarkLoadNearLimits measures both.
const DefaultMaxNodes = 1_000_000

// MaxDocumentBytes bounds one YAML document (the text between two "---"
// lines), and is what bounds yaml.v3's parse itself: a document is parsed
// whole before its nodes can be counted, and holds at most about one node
// per byte. A real document is a small fraction of it; it is the size of
// the largest file a document may refer to, so an inline certificate may
// be as large as one in a file. The parse workers share this many bytes of
// documents in flight, so the nodes parsed but not yet counted stay within
// it however many CPUs the daemon has.
const MaxDocumentBytes = maxReferencedFile

// Size limits for files the loader reads, so a stray large file cannot
// exhaust memory.
const (
	maxSpecFileSize     = 32 << 20
	maxReferencedFile   = 1 << 20
	maxSecretFileSize   = 64 << 10
	expiryWarningWindow = 30 * 24 * time.Hour
)

// Load reads every *.yaml and *.yml file below root (skipping dot-files and
// dot-folders), decodes, resolves and validates the documents and returns the
// self-contained Set. Mistakes in the spec are returned together as an
// ErrorList (errors.Is(err, ErrInvalid)); other errors are I/O failures or
// the context ending.
func Load(ctx context.Context, root string, opts LoadOptions) (*Set, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxDocuments <= 0 {
		opts.MaxDocuments = DefaultMaxDocuments
	}
	if opts.MaxNodes <= 0 {
		opts.MaxNodes = DefaultMaxNodes
	}
	fsRoot, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", root, err)
	}
	defer fsRoot.Close()

	files, err := specFiles(ctx, root, opts.MaxBytes)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", root, err)
	}
	if opts.Cache != nil {
		if set, err, ok := opts.Cache.lookup(newFiles(fsRoot, root, opts.DataDir), root, files, opts); ok {
			return set, err
		}
	}
	l := &loader{files: newFiles(fsRoot, root, opts.DataDir), rootDir: root, opts: opts}
	if opts.Cache != nil {
		l.inputs = &inputs{}
	}
	results, err := parseFiles(ctx, l.files, files, opts)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", root, err)
	}
	for i, r := range results {
		l.docs = append(l.docs, r.docs...)
		l.errs = append(l.errs, r.errs...)
		l.inputs.add("spec", files[i], r.sum[:])
	}
	set, err := l.finish()
	if opts.Cache != nil {
		opts.Cache.store(root, l.inputs, opts, l.until, set, err)
	}
	return set, err
}

// Validate checks documents that did not come from a spec repo (the
// runtime's documents with an admin edit merged in) with the checks of
// Load: the same rules, the same references across documents, the same
// defaults. The documents may be resolved already, as the runtime keeps
// them: a token's sha256, a certificate's DER and key fingerprint and the
// IdP metadata stand in for the secrets and files they came from, which are
// not read again. Anything else is read as Load reads it, except files
// relative to a spec repo, which there is none of. Errors are located at
// each document's Pos. The documents are not modified; the returned Set
// holds resolved copies, with the builtin roles.
func Validate(docs []*Document, opts LoadOptions) (*Set, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	l := &loader{files: newFiles(nil, "", opts.DataDir), opts: opts, resolved: true}
	for _, d := range docs {
		if d == nil {
			l.errs.add(Position{}, "", "a nil document")
			continue
		}
		if r, ok := d.Spec.(*Role); ok && r.Builtin && d.Kind == KindRole {
			if _, builtin := BuiltinRoles[d.Metadata.Name]; builtin {
				continue // finish adds the builtin roles
			}
		}
		if !l.checkEnvelope(d) {
			continue
		}
		cp := *d
		cp.Spec = cloneSpec(d.Spec)
		l.docs = append(l.docs, &parsedDoc{doc: &cp})
	}
	return l.finish()
}

// checkEnvelope checks what decodeDocument checks of a parsed document:
// the apiVersion, a known kind with a spec of its type, and a name. A
// document that fails is reported and left out, as Load leaves it out:
// the checks after it take each spec for its kind's type.
func (l *loader) checkEnvelope(d *Document) bool {
	ok := true
	if d.APIVersion != APIVersion {
		l.errs.add(d.Pos, "apiVersion", fmt.Sprintf("unsupported apiVersion %q (want %s)", d.APIVersion, APIVersion))
		ok = false
	}
	want, known := NewSpec(d.Kind)
	switch {
	case !known:
		l.errs.add(d.Pos, "kind", fmt.Sprintf("unknown kind %q (want one of %s)", d.Kind, strings.Join(Kinds, ", ")))
		ok = false
	case d.Spec == nil || reflect.ValueOf(d.Spec).Kind() == reflect.Pointer && reflect.ValueOf(d.Spec).IsNil():
		l.errs.add(d.Pos, "spec", "required")
		ok = false
	case reflect.TypeOf(d.Spec) != reflect.TypeOf(want):
		l.errs.add(d.Pos, "spec", fmt.Sprintf("a %T is not the spec of a %s", d.Spec, d.Kind))
		ok = false
	}
	if d.Metadata.Name == "" {
		l.errs.add(d.Pos, "metadata.name", "required")
		ok = false
	}
	return ok
}

// cloneSpec copies a spec deep enough that resolving the copy leaves the
// original alone.
func cloneSpec(v any) any {
	switch s := v.(type) {
	case *ScimProvisioning:
		c := *s
		c.Tokens = slices.Clone(s.Tokens)
		c.UserAttributes = slices.Clone(s.UserAttributes)
		return &c
	case *Certificate:
		c := *s
		return &c
	case *SamlServiceProvider:
		c := *s
		return &c
	case *Application:
		c := *s
		return &c
	case *Role:
		c := *s
		return &c
	case *AccessAssignment:
		c := *s
		return &c
	case *Gateway:
		// resolveGateway writes the secret's Value and SHA256 through the
		// pointer: without a copy they landed in the caller's document,
		// which for the admin API is the store's live, shared object.
		c := *s
		if s.SharedSecret != nil {
			ss := *s.SharedSecret
			c.SharedSecret = &ss
		}
		return &c
	}
	return v
}

type fileResult struct {
	docs []*parsedDoc
	errs ErrorList
	sum  [sha256.Size]byte
}

// parseFiles reads and decodes the files on all CPUs (YAML decoding is most
// of a load's time); the results keep the order of files. The bytes read and
// the documents and nodes decoded are counted across the workers, and the
// load stops at the first file that crosses a limit.
func parseFiles(ctx context.Context, fsys *files, files []string, opts LoadOptions) ([]fileResult, error) {
	results := make([]fileResult, len(files))
	readErrs := make([]error, len(files))
	byteBudget := &budget{max: opts.MaxBytes}
	lim := &parseLimits{
		docs:  &budget{max: int64(opts.MaxDocuments)},
		nodes: &budget{max: int64(opts.MaxNodes)},
		gate:  newGate(MaxDocumentBytes),
	}
	var limitErr atomic.Pointer[LimitError]
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			for i := range next {
				if limitErr.Load() != nil {
					continue
				}
				data, err := fsys.repo(files[i], maxSpecFileSize)
				if err != nil {
					readErrs[i] = fmt.Errorf("%s: %w", files[i], err)
					continue
				}
				// A file may have grown since specFiles measured it.
				name := filepath.ToSlash(files[i])
				if !byteBudget.take(int64(len(data))) {
					limitErr.CompareAndSwap(nil, NewBytesLimitError(name, opts.MaxBytes))
					continue
				}
				r := &results[i]
				r.sum = sha256.Sum256(data)
				var le *LimitError
				if r.docs, le = parseFile(name, data, &r.errs, lim); le != nil {
					limitErr.CompareAndSwap(nil, le)
				}
			}
		})
	}
	var err error
feed:
	for i := range files {
		select {
		case next <- i:
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if le := limitErr.Load(); le != nil {
		return nil, le
	}
	return results, errors.Join(readErrs...)
}

// budget counts what a load takes of one limit, across the parse workers.
// A nil *budget is unlimited.
type budget struct {
	used atomic.Int64
	max  int64
}

// take adds n and reports whether the total is still within the limit.
func (b *budget) take(n int64) bool {
	return b == nil || b.used.Add(n) <= b.max
}

// specFiles lists the YAML files below root, relative to it, in lexical order.
// The sizes are added up on the way, and the walk stops at the first file
// that takes the total past maxBytes: nothing of such a spec is parsed.
func specFiles(ctx context.Context, root string, maxBytes int64) ([]string, error) {
	var files []string
	var total int64
	err := walkSpec(ctx, root, func(path, rel string) error {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if total += info.Size(); total > maxBytes {
			return NewBytesLimitError(filepath.ToSlash(rel), maxBytes)
		}
		files = append(files, rel)
		return nil
	})
	return files, err
}

// walkSpec calls fn, in lexical order, for each file below root that Load
// reads: a YAML file none of whose path elements starts with a dot. rel is
// the file's path relative to root.
func walkSpec(ctx context.Context, root string, fn func(path, rel string) error) error {
	return WalkFiles(ctx, root, func(path, rel string, yaml bool) error {
		if !yaml {
			return nil
		}
		return fn(path, rel)
	})
}

// WalkFiles calls fn, in lexical order, for each file below root the loader
// may read, a spec document (yaml) or a file one names: every file none of
// whose path elements starts with a dot, and a symlink within the folder (as
// a Kubernetes ConfigMap mounts its files) as the file it names. It refuses
// what would leave out what the author meant to be read: a symlink to a
// folder, which the walk does not enter (it could loop), and a YAML file
// that is linked from outside the folder, dangling or no regular file (a
// spec reads nothing outside its folder); another file linked from outside,
// which no document could read either, is left out. root may itself be a
// symlink (a release switched with ln -sfn). rel is the file's path
// relative to root, with slashes.
func WalkFiles(ctx context.Context, root string, fn func(path, rel string, yaml bool) error) error {
	walkRoot := root
	if fi, err := os.Lstat(root); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		// WalkDir does not enter a root that is a symlink: through a
		// trailing separator it does.
		walkRoot = root + string(filepath.Separator)
	}
	return filepath.WalkDir(walkRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if path == walkRoot {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		yaml := false
		switch filepath.Ext(d.Name()) {
		case ".yaml", ".yml":
			yaml = true
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		readable := true
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if readable, err = checkLink(root, path, rel, yaml); err != nil {
				return err
			}
		case !d.Type().IsRegular():
			if yaml {
				return fmt.Errorf("%s: not a regular file", rel)
			}
			readable = false
		}
		if !readable {
			return nil
		}
		return fn(path, rel, yaml)
	})
}

// checkLink says whether the symlink at path is read as the file it names
// (see WalkFiles), or why it is refused.
func checkLink(root, path, rel string, yaml bool) (bool, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		if yaml {
			return false, fmt.Errorf("%s: %w", rel, err)
		}
		return false, nil // a dangling link to something no document reads
	}
	fi, err := os.Stat(target)
	switch {
	case err != nil:
		return false, fmt.Errorf("%s: %w", rel, err)
	case fi.IsDir():
		return false, fmt.Errorf("%s: a symlink to a folder, whose documents would be left out: links to folders are not followed; move the folder in, or link its files", rel)
	case !fi.Mode().IsRegular():
		if yaml {
			return false, fmt.Errorf("%s: not a regular file", rel)
		}
		return false, nil
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false, err
	}
	if in, err := filepath.Rel(realRoot, target); err != nil || !filepath.IsLocal(in) {
		if yaml {
			return false, fmt.Errorf("%s: a symlink to %s, outside the spec folder, which is not read: a spec reads only files inside its folder", rel, target)
		}
		return false, nil
	}
	return true, nil
}

// FilesRevision names the state of a spec folder whose spec did not load,
// and so has no content revision (Set.Revision) to be named by: "files:"
// and the SHA-256 of the path, size and modification time of every file
// Load would read. Files are stat'ed through symlinks, so a Kubernetes
// ConfigMap swapping its "..data" link changes it. It reads no file, so it
// costs as little for a folder far past the limits, and every save changes
// it.
func FilesRevision(ctx context.Context, root string) (string, error) {
	h := sha256.New()
	err := walkSpec(ctx, root, func(path, rel string) error {
		fi, err := os.Stat(path)
		if err != nil {
			return err
		}
		// NUL ends the path: no file name holds one.
		fmt.Fprintf(h, "%s\x00%d %d\n", filepath.ToSlash(rel), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("name spec folder %s: %w", root, err)
	}
	return "files:" + hex.EncodeToString(h.Sum(nil)), nil
}

// loader holds the state of one Load.
type loader struct {
	files   *files
	rootDir string
	opts    LoadOptions
	inputs  *inputs // what the load read, when a Cache is in use
	// resolved is set by Validate: documents may carry what their secrets
	// and files resolved to, and that is used instead of reading them again.
	resolved bool
	docs     []*parsedDoc
	byRef    map[Ref]*parsedDoc
	errs     ErrorList
	warnings []string
	// until is when the result may change with the clock alone (zero:
	// only with the day, see Cache).
	until time.Time
}

// fail records a mistake at a field of a document.
func (l *loader) fail(p *parsedDoc, field, format string, args ...any) {
	if p.failed[field] {
		return
	}
	l.errs.add(p.at(field), field, fmt.Sprintf(format, args...))
}

func (l *loader) finish() (*Set, error) {
	l.index()
	l.resolve()
	if err := l.errs.err(); err != nil {
		return nil, err
	}
	set := &Set{Docs: make([]*Document, 0, len(l.docs)+len(BuiltinRoles)), Warnings: l.warnings}
	for _, p := range l.docs {
		set.Docs = append(set.Docs, p.doc)
	}
	for _, name := range sortedKeys(BuiltinRoles) {
		r := BuiltinRoles[name]
		r.Permissions = slices.Clone(r.Permissions)
		set.Docs = append(set.Docs, &Document{
			APIVersion: APIVersion,
			Kind:       KindRole,
			Metadata:   Metadata{Name: name},
			Spec:       &r,
		})
	}
	sortDocs(set.Docs)
	rev, err := revision(set.Docs)
	if err != nil {
		return nil, fmt.Errorf("load spec %s: %w", l.rootDir, err)
	}
	set.Revision = rev
	set.index()
	return set, nil
}

// index finds duplicate documents and the singleton kinds.
func (l *loader) index() {
	l.byRef = make(map[Ref]*parsedDoc, len(l.docs))
	first := map[string]*parsedDoc{}
	folded := map[Ref]*parsedDoc{}
	kept := l.docs[:0]
	for _, p := range l.docs {
		ref := p.doc.Ref()
		if p.doc.Metadata.Name == "" {
			continue // already reported
		}
		if prev, ok := l.byRef[ref]; ok {
			l.fail(p, "metadata.name", "duplicate %s %q (first defined at %s)", ref.Kind, ref.Name, prev.doc.Pos)
			continue
		}
		switch ref.Kind {
		case KindRole, KindApplication:
			// Their names reach applications in the roles and versions
			// headers, where a case-insensitive comparison takes two
			// such names for one.
			key := Ref{Kind: ref.Kind, Name: Fold(ref.Name)}
			if prev, ok := folded[key]; ok {
				// Kept, so that what refers to it is not told it is
				// missing as well.
				l.fail(p, "metadata.name", "%s %q differs only in case from %s %q (defined at %s)", ref.Kind, ref.Name, ref.Kind, prev.doc.Metadata.Name, prev.doc.Pos)
			} else {
				folded[key] = p
			}
		case KindScimProvisioning, KindSamlServiceProvider:
			if prev, ok := first[ref.Kind]; ok {
				l.errs.add(p.doc.Pos, "kind", fmt.Sprintf("at most one %s is allowed (first defined at %s)", ref.Kind, prev.doc.Pos))
				continue
			}
			first[ref.Kind] = p
		}
		l.byRef[ref] = p
		kept = append(kept, p)
	}
	l.docs = kept
}

// resolve checks each kind in dependency order.
func (l *loader) resolve() {
	for _, p := range l.docs {
		l.checkName(p)
	}
	for _, p := range l.docs {
		switch s := p.doc.Spec.(type) {
		case *ScimProvisioning:
			l.resolveScim(p, s)
		case *Certificate:
			l.resolveCertificate(p, s)
		case *Application:
			l.checkApplication(p, s)
		case *Role:
			l.checkRole(p, s)
		}
	}
	// These refer to the documents checked above.
	for _, p := range l.docs {
		switch s := p.doc.Spec.(type) {
		case *SamlServiceProvider:
			l.resolveSAML(p, s)
		case *AccessAssignment:
			l.checkAssignment(p, s)
		case *Gateway:
			l.resolveGateway(p, s)
		}
	}
	l.checkScimPaths()
	l.checkGatewayPaths()
}

func (l *loader) checkName(p *parsedDoc) {
	name := p.doc.Metadata.Name
	switch {
	case !utf8.ValidString(name):
		// Only a document built in code can hold one (YAML is UTF-8):
		// shown with each bad byte replaced, it would name another.
		l.fail(p, "metadata.name", "must be valid UTF-8, got %q", name)
	case strings.TrimSpace(name) != name:
		l.fail(p, "metadata.name", "must not start or end with spaces")
	case strings.ContainsFunc(name, unicode.IsControl):
		l.fail(p, "metadata.name", "must not contain control characters")
	case strings.ContainsFunc(name, invisible):
		// "Administrator\u200b" reads as the builtin role everywhere it
		// is shown.
		l.fail(p, "metadata.name", "must not contain invisible characters (zero-width spaces and joiners, direction marks, soft hyphens: Unicode format characters), got %q", name)
	case len(name) > 256:
		l.fail(p, "metadata.name", "must be at most 256 characters")
	}
}

// invisible reports whether r is a Unicode format character (category
// Cf), which takes no room where a name is shown.
func invisible(r rune) bool { return unicode.Is(unicode.Cf, r) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var kindOrder = func() map[string]int {
	m := make(map[string]int, len(Kinds))
	for i, k := range Kinds {
		m[k] = i
	}
	return m
}()

func sortDocs(docs []*Document) {
	slices.SortFunc(docs, func(a, b *Document) int {
		return cmp.Or(cmp.Compare(kindOrder[a.Kind], kindOrder[b.Kind]), cmp.Compare(a.Metadata.Name, b.Metadata.Name))
	})
}

// revision hashes the canonical JSON of the resolved documents. Secrets
// appear only as hashes (token SHA-256, key fingerprints), and positions are
// left out, so moving a document between files keeps the revision.
func revision(docs []*Document) (string, error) {
	h := sha256.New()
	enc := json.NewEncoder(h)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return "", fmt.Errorf("render %s: %w", d.Ref(), err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
