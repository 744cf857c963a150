package source

// Revision is one fetched state of the spec tree, whichever source it came
// from (Dir, Git or Push).
type Revision struct {
	// ID is the full commit SHA, or "" for a folder (plain or pushed), whose
	// content revision the loader computes.
	ID string
	// Dir is the spec root on disk.
	Dir string
	// Name is how people name the revision: "<branch or tag>@sha1:<commit>"
	// (as `flux get sources git` shows it), "sha1:<commit>" for a pinned
	// commit, "" for a folder.
	Name string
}

// gitName is the Name of commit sha reached through ref ("" for a pinned
// commit).
func gitName(ref, sha string) string {
	if ref == "" {
		return "sha1:" + sha
	}
	return ref + "@sha1:" + sha
}
