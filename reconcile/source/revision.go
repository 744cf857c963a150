package source

// Revision is one fetched state of the spec tree, whichever source it came
// from (Dir, Git or Push).
type Revision struct {
	// ID is the full commit SHA, or "" for a folder (plain or pushed), whose
	// content revision the loader computes.
	ID string
	// Dir is the spec root on disk.
	Dir string
}
