package store

import "fmt"

// How many groups and memberships the store holds is state, kept as
// users' is (their map's length): a bound on each is checked on every
// write that adds one, and counting rows one by one would make each such
// write cost the size of the table. The group count is a row of
// TableUserIndexes, the membership count part of the reverse membership
// index's row (memberOfIndex); both are derived, never journaled, and
// rebuilt by the start-up load as the rows are inserted.
const groupCountKey = "groupCount"

// GroupCount returns how many groups the transaction sees.
func (t *Txn) GroupCount() (int, error) {
	if t.groupsChanged {
		return t.groups, nil
	}
	return t.storedGroupCount()
}

func (t *Txn) storedGroupCount() (int, error) {
	n, err := storedIndex(t, groupCountKey, 0)
	if err != nil {
		return 0, fmt.Errorf("count groups: %w", err)
	}
	return n, nil
}

// countGroups adds d to the transaction's group count; flush stores it.
func (t *Txn) countGroups(d int) error {
	if !t.groupsChanged {
		n, err := t.storedGroupCount()
		if err != nil {
			return err
		}
		t.groups, t.groupsChanged = n, true
	}
	t.groups += d
	return nil
}

// flushGroupCount stores a changed group count.
func (t *Txn) flushGroupCount() error {
	if !t.groupsChanged {
		return nil
	}
	if err := t.Txn.Insert(TableUserIndexes, &indexRow[int]{Key: groupCountKey, m: t.groups}); err != nil {
		return fmt.Errorf("store group count: %w", err)
	}
	t.groupsChanged = false
	return nil
}

// MembershipCount returns how many direct memberships (a member in a
// group) the transaction sees.
func (t *Txn) MembershipCount() (int, error) {
	if t.memberOf != nil {
		return t.memberships, nil
	}
	stored, err := t.storedMemberOf()
	if err != nil {
		return 0, err
	}
	return stored.count, nil
}
