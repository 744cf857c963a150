package store

import (
	"encoding/binary"
	"encoding/json"
	"iter"
	"slices"
	"strings"
)

// A user's work emails are one string, User.WorkEmail: for the one work
// email nearly every user has, the address itself (which the SCIM server
// shares with the user's attributes, so it costs nothing); for several, a
// list: workEmailList, then each address as its length (uvarint) and bytes.
// A single address that starts with workEmailList is kept as a list of one,
// so the two never mix up. The list costs an allocation, and only the users
// who have several work emails; the user, its record and the journals keep
// their layout.
const workEmailList = "\x00"

// JoinWorkEmails returns the User.WorkEmail of a user whose work emails are
// emails, in order: "" for none, the address for one, a list for several.
// Empty addresses are left out.
func JoinWorkEmails(emails ...string) string {
	n, size, only := 0, len(workEmailList), ""
	for _, e := range emails {
		if e != "" {
			n, only = n+1, e
			size += binary.MaxVarintLen64 + len(e)
		}
	}
	if n == 0 {
		return ""
	}
	if n == 1 && !strings.HasPrefix(only, workEmailList) {
		return only
	}
	b := make([]byte, 0, size)
	b = append(b, workEmailList...)
	for _, e := range emails {
		if e != "" {
			b = binary.AppendUvarint(b, uint64(len(e)))
			b = append(b, e...)
		}
	}
	return string(b)
}

// WorkEmails yields u's work emails (see JoinWorkEmails), in order.
func (u *User) WorkEmails() iter.Seq[string] {
	return func(yield func(string) bool) {
		if u == nil || u.WorkEmail == "" {
			return
		}
		rest, ok := strings.CutPrefix(u.WorkEmail, workEmailList)
		if !ok {
			yield(u.WorkEmail)
			return
		}
		for rest != "" {
			n, w := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
			if w <= 0 || n > uint64(len(rest)-w) {
				// Not a list JoinWorkEmails made: the rest as one address.
				yield(rest)
				return
			}
			if !yield(rest[w : w+int(n)]) {
				return
			}
			rest = rest[w+int(n):]
		}
	}
}

// severalWorkEmails reports whether u's WorkEmail is a list (it may hold
// one address, or several).
func severalWorkEmails(u *User) bool {
	return u != nil && strings.HasPrefix(u.WorkEmail, workEmailList)
}

// workEmailKeys returns u's keys in the work email index, sorted, in
// buf's storage while it fits: its folded work emails, each once, but for
// its userName's (in most tenants the two are one address, found through
// the userName index; see UsersByWorkEmail).
func workEmailKeys(u *User, buf []string) []string {
	keys := buf[:0]
	if !severalWorkEmails(u) {
		if k := workEmailKey(u); k != "" {
			keys = append(keys, k)
		}
		return keys
	}
	name := Fold(u.UserName)
	for e := range u.WorkEmails() {
		if k := Fold(e); k != "" && k != name {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// workEmailKey is the key of u in the work email index when u has one
// work email, not a list: "" (no entry) when u has none or it is u's
// userName.
func workEmailKey(u *User) string {
	if u == nil || u.WorkEmail == "" {
		return ""
	}
	if k := Fold(u.WorkEmail); k != Fold(u.UserName) {
		return k
	}
	return ""
}

// changeWorkEmails moves u's entries in the work email index from the keys
// of before (nil: none) to those of after (nil: none). A user with one work
// email before and after changes at most one key each way.
func (l *idLists) changeWorkEmails(id string, before, after *User) {
	if !severalWorkEmails(before) && !severalWorkEmails(after) {
		if b, a := workEmailKey(before), workEmailKey(after); b != a {
			l.change(b, id, false)
			l.change(a, id, true)
		}
		return
	}
	var bufB, bufA [4]string
	b, a := workEmailKeys(before, bufB[:0]), workEmailKeys(after, bufA[:0])
	for _, k := range b {
		if _, found := slices.BinarySearch(a, k); !found {
			l.change(k, id, false)
		}
	}
	for _, k := range a {
		if _, found := slices.BinarySearch(b, k); !found {
			l.change(k, id, true)
		}
	}
}

// hasWorkEmail reports whether one of u's work emails folds to key.
func hasWorkEmail(u *User, key string) bool {
	if !severalWorkEmails(u) {
		return u.WorkEmail != "" && Fold(u.WorkEmail) == key
	}
	for e := range u.WorkEmails() {
		if Fold(e) == key {
			return true
		}
	}
	return false
}

// withAllWorkEmails returns u, or a copy of u whose WorkEmail lists every
// work email its attributes hold (as the SCIM server sets it: the values of
// emails[type eq "work"], empty ones left out) when WorkEmail does not.
// An idrecon older than the work email list kept only the first work email
// in WorkEmail, and its users are still in state files, backups and etcd,
// and in the writes an older daemon sharing etcd makes: without this, their
// other work emails would be found only once each user is written again,
// and the index keys of what WorkEmail then lost could not be removed.
//
// A user whose WorkEmail is a list, or whose attributes name "work" fewer
// than twice, is returned without parsing them: a record with a single work
// email is what both old and new idrecon write, so only those with several
// can differ, and reading the JSON of every user at load would cost.
func withAllWorkEmails(u *User) *User {
	if u == nil || severalWorkEmails(u) || quotedWorkCount(u.Attributes) < 2 {
		return u
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(u.Attributes, &doc) != nil {
		return u
	}
	var emails []any
	if json.Unmarshal(doc["emails"], &emails) != nil {
		return u
	}
	var work []string
	for _, e := range emails {
		m, _ := e.(map[string]any)
		if t, _ := m["type"].(string); strings.EqualFold(t, "work") {
			if v, _ := m["value"].(string); v != "" {
				work = append(work, v)
			}
		}
	}
	all := JoinWorkEmails(work...)
	if all == u.WorkEmail {
		return u
	}
	c := *u
	c.WorkEmail = all
	return &c
}

// quotedWorkCount counts, up to two, the JSON strings "work" (in any case)
// in b.
func quotedWorkCount(b []byte) int {
	n := 0
	for i := 0; i+6 <= len(b) && n < 2; i++ {
		if b[i] == '"' && b[i+5] == '"' && strings.EqualFold(string(b[i+1:i+5]), "work") {
			n++
			i += 5
		}
	}
	return n
}
