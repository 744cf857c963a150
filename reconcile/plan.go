package reconcile

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/idrecon/idrecon/spec"
)

// Plan is what a reconcile changes, or would change, in the runtime. It is
// plain data so that a CLI can fetch it as JSON from the daemon and render it
// locally. Secret values appear only as shortened SHA-256 fingerprints.
type Plan struct {
	// Revision is the spec revision planned for.
	Revision string `json:"revision"`
	// Creates and Updates are in spec.Kinds order, then by name; Deletes are
	// in reverse kind order (what refers to others goes first), then by name.
	Creates []Change `json:"creates"`
	Updates []Change `json:"updates"`
	Deletes []Change `json:"deletes"`
	// Summary counts the changes as the text plan does (see Count).
	Summary PlanSummary `json:"summary"`
	// Refused says why Apply refuses this plan (see UnsafeError); "" when
	// it may be applied.
	Refused string `json:"refused,omitempty"`
	// Cautions are the changes Entra does not follow by itself: applied,
	// its provisioning or sign-ins fail until an admin changes Entra's
	// side too (a replaced token, a moved endpoint).
	Cautions []string `json:"cautions,omitempty"`
}

// Change is one resource to create, update or delete.
type Change struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Fields are the differing fields: for a create every field (After only),
	// for a delete every field (Before only).
	Fields []FieldChange `json:"fields"`
	// Drift marks a change that undoes an edit made outside git (the admin
	// API): the runtime no longer holds what the last applied revision wrote.
	Drift bool `json:"drift"`
	// Kept marks drift that is only reported and left in place (drift mode
	// report) because its spec did not change.
	Kept bool `json:"kept,omitempty"`
}

// FieldChange is one field of a Change. Before or After is "" when the field
// is absent on that side; present values are rendered (strings quoted), so
// they are never "".
type FieldChange struct {
	Path   string `json:"path"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
}

// Summary counts changes by action: those an apply made (a sync history's
// entry, Plan.Made) or those a reconcile left unmade (Status.PendingPlan,
// which counts kept drift in them). Drift counts those marked Drift.
type Summary struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Delete int `json:"delete"`
	Drift  int `json:"drift"`
}

// PlanSummary counts a plan's changes as its text does ("Plan: 0 to create,
// 0 to update, 0 to delete, 3 kept."): Create, Update and Delete are what
// Apply makes, Kept the drift drift mode report lists but leaves in place,
// so that a reader of the JSON (a CI bot) does not take kept drift for
// changes. Drift counts the changes marked Drift, kept or not. A refused
// plan counts what the spec asks for; Refused says that none of it is made.
type PlanSummary struct {
	Create int `json:"create"`
	Update int `json:"update"`
	Delete int `json:"delete"`
	Kept   int `json:"kept"`
	Drift  int `json:"drift"`
}

// Empty reports whether the plan changes nothing.
func (p *Plan) Empty() bool {
	return len(p.Creates) == 0 && len(p.Updates) == 0 && len(p.Deletes) == 0
}

// Kept returns the resources whose changes Apply leaves undone: the drift
// that drift mode report keeps in place. What Apply makes of them is what
// the store holds now, which the blast radius of the plan must use.
func (p *Plan) Kept() []spec.Ref {
	var out []spec.Ref
	for _, cs := range [][]Change{p.Creates, p.Updates, p.Deletes} {
		for _, c := range cs {
			if c.Kept {
				out = append(out, spec.Ref{Kind: c.Kind, Name: c.Name})
			}
		}
	}
	return out
}

// Made counts the changes Apply makes: the plan's less those it keeps
// (Kept). Drift counts the drift it corrects.
func (p *Plan) Made() Summary { return p.tally(false) }

// tally counts the changes that Apply keeps (kept) or makes (!kept).
func (p *Plan) tally(kept bool) Summary {
	var s Summary
	count := func(cs []Change, n *int) {
		for _, c := range cs {
			if c.Kept == kept {
				*n++
				if c.Drift {
					s.Drift++
				}
			}
		}
	}
	count(p.Creates, &s.Create)
	count(p.Updates, &s.Update)
	count(p.Deletes, &s.Delete)
	return s
}

// Changes reports whether Apply would change anything: a plan whose every
// change is kept drift changes nothing, though it lists the drift.
func (p *Plan) Changes() bool { return p.Made() != (Summary{}) }

// Drifted returns the changes that undo edits made outside git, creates
// first, then updates, then deletes.
func (p *Plan) Drifted() []Change {
	var out []Change
	for _, list := range [][]Change{p.Creates, p.Updates, p.Deletes} {
		for _, c := range list {
			if c.Drift {
				out = append(out, c)
			}
		}
	}
	return out
}

func (p *Plan) summarise() { p.Summary = p.Count() }

// Count returns the plan's summary computed from its changes. A client
// renders a plan a daemon sent by it rather than by the plan's Summary,
// which a daemon of an older version counted kept drift into.
func (p *Plan) Count() PlanSummary {
	m := p.Made()
	return PlanSummary{Create: m.Create, Update: m.Update, Delete: m.Delete, Kept: len(p.Kept()), Drift: len(p.Drifted())}
}

// WriteJSON writes the plan as indented JSON with stable field names.
func (p *Plan) WriteJSON(w io.Writer) error {
	out := *p
	out.Summary = p.Count()
	for _, l := range []*[]Change{&out.Creates, &out.Updates, &out.Deletes} {
		if *l == nil {
			*l = []Change{}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&out); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// WriteText writes the plan for people, in the style of a Terraform plan
// (drift is marked with a trailing "# drift: ..." note):
//
//	Revision 90b6454d
//
//	+ Role/Release Manager
//	    spec.permissions: ["version.create"]
//	~ Application/webgoat
//	    spec.versions: ["1.0"] → ["1.0", "2.0"]
//	- AccessAssignment/old-team
//	    spec.subject.group: "Old Team"
//
//	Plan: 1 to create, 1 to update, 1 to delete.
//
// The counts are of the changes Apply makes; drift that drift mode report
// keeps is listed, marked ", kept", and counted apart ("…, 3 kept.").
//
// A plan the guard refuses still lists the changes the spec asks for, so
// that the review sees what was refused, but says at its start and its end
// that none of them will be made, and why, instead of counting them as
// "to create".
func (p *Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	if p.Revision != "" {
		fmt.Fprintf(&b, "Revision %s\n\n", p.Revision)
	}
	if p.Empty() {
		b.WriteString("No changes. The runtime matches the spec.\n")
		if p.Refused != "" {
			fmt.Fprintf(&b, "\nRefused: nothing will be applied.\n")
			writeWhy(&b, p.Refused)
		}
		_, err := io.WriteString(w, b.String())
		return err
	}
	if p.Refused != "" {
		// A long plan scrolls: say before its first change that it is not
		// what will happen.
		b.WriteString("Refused: nothing below will be applied (why at the end).\n\n")
	}
	for _, c := range p.Creates {
		writeChange(&b, "+", c, "deleted outside git")
	}
	for _, c := range p.Updates {
		writeChange(&b, "~", c, "changed outside git")
	}
	for _, c := range p.Deletes {
		writeChange(&b, "-", c, "created or changed outside git")
	}
	// Counted from the changes, not taken from Summary: a plan a daemon
	// of an older version sent counts kept drift in its Summary. The
	// counts are what Apply makes, as its "Apply complete" line and the
	// audit log count them; kept drift is listed above but made by
	// nobody, so it is counted apart.
	s := p.Count()
	if p.Refused != "" {
		fmt.Fprintf(&b, "\nRefused: nothing will be applied (the spec asks for %d to create, %d to update, %d to delete%s).\n",
			s.Create, s.Update, s.Delete, keptNote(s.Kept))
		if s.Drift > 0 {
			fmt.Fprintf(&b, "Drift: %d %s changed outside git, not corrected by this plan.\n", s.Drift, plural(s.Drift, "resource", "resources"))
		}
		writeWhy(&b, p.Refused)
		_, err := io.WriteString(w, b.String())
		return err
	}
	if len(p.Cautions) > 0 {
		b.WriteString("\nEntra must follow, or its connection breaks at apply:\n")
		for _, c := range p.Cautions {
			fmt.Fprintf(&b, "  ! %s\n", printable(c))
		}
	}
	fmt.Fprintf(&b, "\nPlan: %d to create, %d to update, %d to delete%s.\n", s.Create, s.Update, s.Delete, keptNote(s.Kept))
	if s.Drift > 0 {
		fmt.Fprintf(&b, "Drift: %d %s changed outside git", s.Drift, plural(s.Drift, "resource", "resources"))
		switch s.Kept {
		case 0:
			b.WriteString(", corrected by this plan.\n")
		case s.Drift:
			b.WriteString(", reported and kept.\n")
		default:
			fmt.Fprintf(&b, ", %d reported and kept.\n", s.Kept)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// keptNote is the ", 3 kept" of a plan's counts, "" when nothing is kept.
func keptNote(kept int) string {
	if kept == 0 {
		return ""
	}
	return fmt.Sprintf(", %d kept", kept)
}

// writeWhy says why a refused plan will not be applied, last, where a CI
// log ends.
func writeWhy(b *strings.Builder, why string) {
	fmt.Fprintf(b, "Why: %s.\n", why)
}

func writeChange(b *strings.Builder, sym string, c Change, driftNote string) {
	fmt.Fprintf(b, "%s %s/%s", sym, printable(c.Kind), printable(c.Name))
	switch {
	case c.Drift && c.Kept:
		fmt.Fprintf(b, "  # drift: %s, kept", driftNote)
	case c.Drift:
		fmt.Fprintf(b, "  # drift: %s", driftNote)
	}
	b.WriteByte('\n')
	for _, f := range c.Fields {
		switch sym {
		case "+":
			fmt.Fprintf(b, "    %s: %s\n", printable(f.Path), f.After)
		case "-":
			fmt.Fprintf(b, "    %s: %s\n", printable(f.Path), f.Before)
		default:
			fmt.Fprintf(b, "    %s: %s → %s\n", printable(f.Path), orNone(f.Before), orNone(f.After))
		}
	}
}

// printable quotes a name that could break the plan's layout (a newline
// in a resource written through the admin API), so that no resource can
// forge lines of a plan.
func printable(s string) string {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

func orNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
