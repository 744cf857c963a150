package etcdtest

import "testing"

// TestStopWithAMemberNotReady: a member restarted just before the test
// ends, whose peers the cleanup closes before it could become ready, must
// not hold the cleanup forever (embed's Close waits for a member's client
// servers, which start only once it is ready).
func TestStopWithAMemberNotReady(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		c := Start(t, 3)
		c.Kill(1)
		c.Kill(2)
		c.Restart(t, 1) // member 0 is closed first: 1 never gets a quorum
	})
}
