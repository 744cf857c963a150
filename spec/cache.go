package spec

import (
	"crypto/sha256"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// Cache remembers the last Load of a spec root together with a fingerprint
// of everything it read: the YAML files, the files documents refer to,
// secret files and environment variables, and the day (expiry warnings
// change with it); a load is not reused past the moment its IdP metadata or
// signing certificates expire or become valid. A later Load through the same
// Cache re-reads those inputs and, when none changed, returns the previous
// Set (or error) without parsing: a daemon that re-checks its spec every
// tick pays for reading files, not for YAML. The returned Set is shared and
// must not be modified.
// A Cache is safe for concurrent use.
type Cache struct {
	mu     sync.Mutex
	root   string
	inputs *inputs
	sum    [sha256.Size]byte
	// until is when the cached verdict may change without any input
	// changing (IdP metadata expiring); zero is never.
	until time.Time
	set   *Set
	err   error
}

// inputs records what one load read, in order. A nil *inputs records nothing.
type inputs struct {
	list []input
}

type input struct {
	kind string // "spec" (a YAML file), "repo", "abs" (a secret file), "env"
	name string
	sum  [sha256.Size]byte
}

func (in *inputs) add(kind, name string, sum []byte) {
	if in == nil {
		return
	}
	in.list = append(in.list, input{kind: kind, name: name, sum: [sha256.Size]byte(sum)})
}

func (in *inputs) addValue(kind, name, value string) {
	if in == nil {
		return
	}
	sum := sha256.Sum256([]byte(value))
	in.add(kind, name, sum[:])
}

// fingerprint hashes the recorded inputs with the load's day.
func (in *inputs) fingerprint(opts LoadOptions) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(opts.Now.UTC().Truncate(24 * time.Hour).Format(time.DateOnly)))
	for _, i := range in.list {
		h.Write([]byte{0})
		h.Write([]byte(i.kind))
		h.Write([]byte{0})
		h.Write([]byte(i.name))
		h.Write(i.sum[:])
	}
	return [sha256.Size]byte(h.Sum(nil))
}

func (c *Cache) store(root string, in *inputs, opts LoadOptions, until time.Time, set *Set, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.root, c.inputs, c.sum, c.until, c.set, c.err = root, in, in.fingerprint(opts), until, set, err
}

// lookup re-reads the inputs of the cached load and returns its result when
// they are all unchanged. Any read failure is a miss: the full load will
// report it properly.
func (c *Cache) lookup(fsys *files, root string, files []string, opts LoadOptions) (*Set, error, bool) {
	c.mu.Lock()
	prev, prevRoot := c.inputs, c.root
	c.mu.Unlock()
	if prev == nil || prevRoot != root {
		return nil, nil, false
	}
	// The YAML files must be the same list, in the same order.
	var specNames []string
	for _, i := range prev.list {
		if i.kind == "spec" {
			specNames = append(specNames, i.name)
		}
	}
	if !slices.Equal(specNames, files) {
		return nil, nil, false
	}
	now := &inputs{list: make([]input, 0, len(prev.list))}
	for _, i := range prev.list {
		var data []byte
		var err error
		switch i.kind {
		case "spec":
			data, err = fsys.repo(i.name, maxSpecFileSize)
		case "repo":
			data, err = fsys.repo(filepath.FromSlash(i.name), maxReferencedFile)
			if err != nil {
				data, err = nil, nil // a missing file was recorded as empty
			}
		case "abs":
			data, err = fsys.abs(i.name, maxSecretFileSize)
			if err != nil {
				data, err = nil, nil
			}
		case "env":
			data = []byte(opts.Getenv(i.name))
		}
		if err != nil {
			return nil, nil, false
		}
		now.addValue(i.kind, i.name, string(data))
	}
	sum := now.fingerprint(opts)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inputs != prev || sum != c.sum || !c.until.IsZero() && !opts.Now.Before(c.until) {
		return nil, nil, false
	}
	return c.set, c.err, true
}
