package cluster_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/internal/testcluster"
)

var gossipKey = []byte("0123456789abcdef0123456789abcdef")

type gossipNode struct {
	node    *cluster.Node
	members *cluster.Membership
	fwd     *cluster.Forwarder
}

// startGossipNode starts a node with no Raft state, its forwarder's
// node-to-node endpoints on real HTTP, and gossip joining seeds.
func startGossipNode(t *testing.T, dir, id string, expect int, seeds []string) *gossipNode {
	return startGossipNodeAt(t, dir, id, "127.0.0.1:0", expect, seeds)
}

func startGossipNodeAt(t *testing.T, dir, id, gossipAddr string, expect int, seeds []string) *gossipNode {
	t.Helper()
	logger := testcluster.NewLogger(t, nil).With("node", id)
	n, err := cluster.New(cluster.Config{
		NodeID: id, DataDir: filepath.Join(dir, id), RaftAddr: "127.0.0.1:0", Logger: logger,
	}, newSetFSM())
	require.NoError(t, err)
	g := &gossipNode{node: n}
	g.fwd, err = cluster.NewForwarder(cluster.ForwarderConfig{
		Node: n, Secret: testSecret, Logger: logger,
		LeaderHTTPAddr: func(id string) (string, bool) { return g.members.HTTPAddr(id) },
		OnLeave:        func(id string) { g.members.MarkLeaving(id) },
	})
	require.NoError(t, err)
	srv := httptest.NewServer(g.fwd.Handler())
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	g.members, err = cluster.StartMembership(context.Background(), cluster.MembershipConfig{
		NodeID: id, Region: "us-east-1", RaftAddr: n.RaftAddr(), HTTPAddr: u.Host,
		GossipAddr: gossipAddr, Join: seeds, BootstrapExpect: expect, SecretKey: gossipKey,
		Logger: logger, Fast: true, ReconcileInterval: 100 * time.Millisecond, RejoinInterval: 200 * time.Millisecond,
	}, n)
	require.NoError(t, err)
	t.Cleanup(func() { g.stop() })
	return g
}

// leave is what kmsd does on SIGTERM.
func (g *gossipNode) leave(t *testing.T) {
	require.NoError(t, g.members.Leave(10*time.Second, g.fwd.Leave))
}

func (g *gossipNode) stop() {
	g.members.Shutdown()
	g.node.Shutdown()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testcluster.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

func voterIDs(t *testing.T, n *cluster.Node) []string {
	ps, err := n.Voters()
	if err != nil {
		return nil
	}
	var ids []string
	for _, p := range ps {
		if p.Suffrage == "Voter" {
			ids = append(ids, p.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func leaderOf(nodes []*gossipNode) *gossipNode {
	for _, g := range nodes {
		if g.node.IsLeader() {
			return g
		}
	}
	return nil
}

// TestGossipBootstrapJoinLeave: three nodes with bootstrap-expect 3 form one
// cluster with no further action; a fourth is added as a voter when gossip
// reports it; a graceful leave removes it again.
func TestGossipBootstrapJoinLeave(t *testing.T) {
	dir := t.TempDir()
	first := startGossipNode(t, dir, "n1", 3, nil)
	seed := []string{first.members.GossipAddr()}
	nodes := []*gossipNode{first}
	for i := 2; i <= 3; i++ {
		nodes = append(nodes, startGossipNode(t, dir, fmt.Sprintf("n%d", i), 3, seed))
	}
	waitFor(t, "a leader with three voters", func() bool {
		l := leaderOf(nodes)
		return l != nil && slices.Equal(voterIDs(t, l.node), []string{"n1", "n2", "n3"})
	})
	for _, g := range nodes {
		waitFor(t, g.node.ID()+" has raft state", g.node.HasState)
	}
	// A write through the leader reaches every node.
	l := leaderOf(nodes)
	_, idx, err := l.node.Propose(context.Background(), []byte("k1"))
	require.NoError(t, err)
	for _, g := range nodes {
		require.NoError(t, g.node.WaitForApplied(testCtx(t), idx))
	}

	// A later node (same expect, but a cluster exists) is added by the leader.
	n4 := startGossipNode(t, dir, "n4", 3, seed)
	waitFor(t, "n4 added as a voter", func() bool {
		l := leaderOf(nodes)
		return l != nil && slices.Equal(voterIDs(t, l.node), []string{"n1", "n2", "n3", "n4"})
	})
	require.NoError(t, n4.node.WaitForApplied(testCtx(t), idx))
	for _, m := range n4.members.Members() {
		require.True(t, m.Alive, "member %s", m.NodeID)
	}
	_, ok := n4.members.HTTPAddr("n1")
	require.True(t, ok)

	// Graceful leave removes it.
	n4.leave(t)
	waitFor(t, "n4 removed", func() bool {
		l := leaderOf(nodes)
		return l != nil && slices.Equal(voterIDs(t, l.node), []string{"n1", "n2", "n3"})
	})
}

// TestGossipLeaderLeaves: the leader hands over leadership before leaving,
// and the survivors remove it and keep a working two-voter cluster.
func TestGossipLeaderLeaves(t *testing.T) {
	dir := t.TempDir()
	first := startGossipNode(t, dir, "n1", 3, nil)
	seed := []string{first.members.GossipAddr()}
	nodes := []*gossipNode{first}
	for i := 2; i <= 3; i++ {
		nodes = append(nodes, startGossipNode(t, dir, fmt.Sprintf("n%d", i), 3, seed))
	}
	waitFor(t, "a leader with three voters", func() bool {
		l := leaderOf(nodes)
		return l != nil && len(voterIDs(t, l.node)) == 3
	})
	old := leaderOf(nodes)
	old.leave(t)
	old.stop()
	var rest []*gossipNode
	for _, g := range nodes {
		if g != old {
			rest = append(rest, g)
		}
	}
	waitFor(t, "the old leader removed", func() bool {
		l := leaderOf(rest)
		return l != nil && len(voterIDs(t, l.node)) == 2 && !slices.Contains(voterIDs(t, l.node), old.node.ID())
	})
	_, _, err := leaderOf(rest).node.Propose(context.Background(), []byte("after-leave"))
	require.NoError(t, err)
}

// TestGossipStartBeforeSeeds: a node whose seed is not up yet keeps
// retrying and joins once it is; bootstrap-expect 2 then forms the cluster.
func TestGossipStartBeforeSeeds(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	seedAddr := ln.Addr().String()
	require.NoError(t, ln.Close())

	n2 := startGossipNode(t, dir, "n2", 2, []string{seedAddr})
	n1 := startGossipNodeAt(t, dir, "n1", seedAddr, 2, []string{seedAddr})
	nodes := []*gossipNode{n1, n2}
	waitFor(t, "two voters", func() bool {
		l := leaderOf(nodes)
		return l != nil && slices.Equal(voterIDs(t, l.node), []string{"n1", "n2"})
	})
}

func TestMembershipConfigValidate(t *testing.T) {
	good := cluster.MembershipConfig{NodeID: "n1", Region: "r", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2",
		GossipAddr: "127.0.0.1:3", SecretKey: gossipKey}
	require.NoError(t, good.Validate())
	for name, mut := range map[string]func(*cluster.MembershipConfig){
		"no id":       func(c *cluster.MembershipConfig) { c.NodeID = "" },
		"no region":   func(c *cluster.MembershipConfig) { c.Region = "" },
		"bad gossip":  func(c *cluster.MembershipConfig) { c.GossipAddr = "nope" },
		"short key":   func(c *cluster.MembershipConfig) { c.SecretKey = gossipKey[:10] },
		"neg. expect": func(c *cluster.MembershipConfig) { c.BootstrapExpect = -1 },
	} {
		c := good
		mut(&c)
		require.Error(t, c.Validate(), name)
	}
}
