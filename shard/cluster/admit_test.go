package cluster_test

import (
	"slices"
	"testing"
	"time"
)

// TestRogueMemberStaysOutOfTheRing: a process with its own CA joins the
// gossip (unencrypted, as by default) with the heaviest weight; the
// cluster's nodes see it in gossip but never put it in their ring, since
// it cannot prove a cluster certificate for its name.
func TestRogueMemberStaysOutOfTheRing(t *testing.T) {
	ca, caKey := devCA(t)
	evilCA, evilKey := devCA(t)
	n1 := startNode(t, "n1", ca, caKey, "")
	n2 := startNode(t, "n2", ca, caKey, n1.gossip)
	waitRing(t, []*testNode{n1.testNode, n2.testNode}, 2)
	startNode(t, "rogue", evilCA, evilKey, n1.gossip)
	deadline := time.Now().Add(15 * time.Second)
	for {
		seen := slices.Contains(n1.GossipMembers(), "rogue") && slices.Contains(n2.GossipMembers(), "rogue")
		if seen && n1.Refused("rogue") != nil && n2.Refused("rogue") != nil {
			break
		}
		for _, n := range []*testNode{n1.testNode, n2.testNode} {
			if slices.Contains(n.Ring().Nodes(), "rogue") {
				t.Fatalf("%s put the rogue in its ring: %v", n.Name(), n.Ring().Nodes())
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rogue was neither seen nor refused: gossip %v, ring %v", n1.GossipMembers(), n1.Ring().Nodes())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, n := range []*testNode{n1.testNode, n2.testNode} {
		if got := n.Ring().Nodes(); !slices.Equal(got, []string{"n1", "n2"}) {
			t.Fatalf("%s's ring %v", n.Name(), got)
		}
	}
}
