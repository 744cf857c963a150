package scim

import "sync"

// maxCursors bounds the cursors a Server keeps. A client that asks for
// many pages only pushes out older cursors: the page after one of those is
// found by counting again, slower but the same page.
const maxCursors = 1024

// cursors remembers where the pages of unfiltered lists ended, so the next
// page starts there instead of counting every resource before it: a
// client paging through a million users reads each page in time that
// depends on the page's size, not on its position. A cursor is the last id
// a page showed (unfiltered lists are in id order); the page that follows
// starts after it whatever was created or deleted since, which spares a
// client paging while Entra writes the duplicates and gaps that counting
// positions again would give it.
type cursors struct {
	mu   sync.Mutex
	last map[cursorKey]string
	ring []cursorKey // oldest first, for eviction
	next int
}

// cursorKey is the page a cursor starts: a resource type's list at
// startIndex.
type cursorKey struct {
	resourceType string
	start        int
}

// after returns the id after which the page at k starts, if a page ended
// there.
func (c *cursors) after(k cursorKey) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.last[k]
	return id, ok
}

// remember records that the page before k ended with id.
func (c *cursors) remember(k cursorKey, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = make(map[cursorKey]string)
	}
	if _, ok := c.last[k]; !ok {
		if len(c.ring) < maxCursors {
			c.ring = append(c.ring, k)
		} else {
			delete(c.last, c.ring[c.next])
			c.ring[c.next] = k
			c.next = (c.next + 1) % maxCursors
		}
	}
	c.last[k] = id
}
