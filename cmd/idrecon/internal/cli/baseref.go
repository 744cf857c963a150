package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/idrecon/idrecon/reconcile/source"
	"github.com/idrecon/idrecon/spec"
)

// maxBaseAncestors bounds how far back plan --base-ref looks for a spec
// that loads when the base's does not: each try checks out a tree, and a
// base broken for longer than this is better planned against nothing than
// against a revision a daemon has long stopped serving.
const maxBaseAncestors = 100

// loadBaseRef loads the spec as it was at ref in the git repository that
// holds dir. When it does not load (a broken main that the change planned
// fixes), it loads the newest first-parent ancestor whose spec does: what a
// daemon following that branch still serves, as it keeps the last good
// revision; failing that, an empty spec. note says which, in one line, or
// is "" when the spec at ref loaded.
func loadBaseRef(ctx context.Context, env Env, dir, ref string, lim *specLimits) (set *spec.Set, note string, cleanup func(), err error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", nil, err
	}
	top, err := gitTopLevel(ctx, abs)
	if err != nil {
		return nil, "", nil, err
	}
	rel, err := filepath.Rel(top, abs)
	if err != nil {
		return nil, "", nil, err
	}
	tmp, err := os.MkdirTemp("", "idrecon-base-")
	if err != nil {
		return nil, "", nil, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	load := func(rev string, n int) (*spec.Set, string, error) {
		r, err := source.Checkout(ctx, top, rev, filepath.Join(tmp, fmt.Sprint(n)))
		if err != nil {
			return nil, "", fmt.Errorf("check out %s: %w", ref, err)
		}
		baseDir := filepath.Join(r.Dir, rel)
		if _, err := os.Stat(baseDir); errors.Is(err, os.ErrNotExist) {
			// The spec folder is new since then: the base is empty.
			return &spec.Set{}, r.ID, nil
		}
		set, err := loadSpec(ctx, env, baseDir, lim)
		return set, r.ID, err
	}
	set, id, loadErr := load(ref, 0)
	if id == "" {
		cleanup()
		return nil, "", nil, loadErr
	}
	if loadErr == nil {
		return set, "", cleanup, nil
	}
	if err := ctx.Err(); err != nil {
		cleanup()
		return nil, "", nil, err
	}
	at := fmt.Sprintf("the spec at %s (%s) does not load (%s)", ref, short(id), firstProblem(loadErr))
	good, tried, err := lastGoodAncestor(ctx, top, rel, id, func(rev string, n int) (*spec.Set, error) {
		set, _, err := load(rev, n)
		return set, err
	})
	switch {
	case err != nil:
		cleanup()
		return nil, "", nil, fmt.Errorf("%s, and its ancestors could not be read: %w", at, err)
	case good != nil:
		return good.set, fmt.Sprintf("%s; planning against %s, its newest ancestor whose spec loads, which a daemon following %s keeps serving",
			at, short(good.id), ref), cleanup, nil
	case tried == maxBaseAncestors:
		return &spec.Set{}, fmt.Sprintf("%s, nor does it in the %d commits before it; planning against an empty state", at, tried), cleanup, nil
	}
	return &spec.Set{}, fmt.Sprintf("%s, nor in any commit before it; planning against an empty state", at), cleanup, nil
}

// goodBase is an ancestor whose spec loaded.
type goodBase struct {
	id  string
	set *spec.Set
}

// lastGoodAncestor walks the first parents of commit id, at most
// maxBaseAncestors of them, and returns the first whose spec load loads
// (nil when none does) and how many commits it walked. A commit whose spec
// folder is the same tree as one that did not load is not loaded again.
func lastGoodAncestor(ctx context.Context, top, rel, id string, load func(rev string, n int) (*spec.Set, error)) (*goodBase, int, error) {
	repo, err := git.PlainOpenWithOptions(top, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, 0, err
	}
	c, err := repo.CommitObject(plumbing.NewHash(id))
	if err != nil {
		return nil, 0, err
	}
	bad := map[plumbing.Hash]bool{}
	if h, ok := specTree(c, rel); ok {
		bad[h] = true
	}
	tried := 0
	for tried < maxBaseAncestors && c.NumParents() > 0 {
		if err := ctx.Err(); err != nil {
			return nil, tried, err
		}
		if c, err = c.Parent(0); err != nil {
			return nil, tried, err
		}
		tried++
		h, ok := specTree(c, rel)
		if ok && bad[h] {
			continue
		}
		set, err := load(c.Hash.String(), tried)
		if err == nil {
			return &goodBase{id: c.Hash.String(), set: set}, tried, nil
		}
		if ok {
			bad[h] = true
		}
	}
	return nil, tried, nil
}

// specTree returns the hash of the tree at rel in c, when there is one.
func specTree(c *object.Commit, rel string) (plumbing.Hash, bool) {
	t, err := c.Tree()
	if err != nil {
		return plumbing.ZeroHash, false
	}
	if rel != "." {
		if t, err = t.Tree(filepath.ToSlash(rel)); err != nil {
			return plumbing.ZeroHash, false
		}
	}
	return t.Hash, true
}

// firstProblem is the first of a spec's load errors, with how many more
// there are, to fit one line.
func firstProblem(err error) string {
	var list spec.ErrorList
	if errors.As(err, &list) && len(list) > 0 {
		s := list[0].Error()
		if n := len(list) - 1; n > 0 {
			s += fmt.Sprintf(", and %d more %s", n, map[bool]string{true: "problem", false: "problems"}[n == 1])
		}
		return s
	}
	return firstLine(err.Error())
}
