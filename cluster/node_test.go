package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/internal/testcluster"
)

// testCtx returns a context bounded by testcluster.Timeout.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testcluster.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// devNode is a single-node (dev mode) setup whose data dir and address
// survive restarts.
type devNode struct {
	t      *testing.T
	cfg    cluster.Config
	node   *cluster.Node
	fsm    *listFSM
	stopFn []func()
}

func newDevNode(t *testing.T) *devNode {
	dir := t.TempDir() // registered first, so removed after the node stops
	d := &devNode{t: t, cfg: cluster.Config{
		NodeID:    "dev",
		DataDir:   dir,
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: true,
		Logger:    testcluster.NewLogger(t, slog.LevelInfo).With("member", "dev"),
	}}
	t.Cleanup(func() {
		if d.node != nil {
			assert.NoError(t, d.node.Shutdown())
		}
	})
	d.start()
	return d
}

func (d *devNode) start() {
	d.t.Helper()
	d.fsm = &listFSM{}
	n, err := cluster.New(d.cfg, d.fsm)
	require.NoError(d.t, err)
	d.node = n
	d.cfg.RaftAddr = n.RaftAddr() // come back on the same address
}

func (d *devNode) restart() {
	d.t.Helper()
	require.NoError(d.t, d.node.Shutdown())
	d.start()
}

func propose(t *testing.T, n *cluster.Node, cmd string) (appliedEntry, uint64) {
	t.Helper()
	resp, idx, err := n.Propose(testCtx(t), []byte(cmd))
	require.NoError(t, err)
	e, ok := resp.(appliedEntry)
	require.Truef(t, ok, "response %T %v", resp, resp)
	require.Equal(t, idx, e.Index)
	return e, idx
}

func TestSingleNodeProposeAndWait(t *testing.T) {
	t.Parallel()
	d := newDevNode(t)
	n := d.node
	ctx := testCtx(t)
	leadership := n.LeaderCh()

	require.NoError(t, n.WaitForLeader(ctx))
	require.True(t, n.IsLeader())
	id, addr := n.LeaderID()
	assert.Equal(t, "dev", id)
	assert.Equal(t, n.RaftAddr(), addr)
	assert.True(t, strings.HasPrefix(n.RaftAddr(), "127.0.0.1:") && !strings.HasSuffix(n.RaftAddr(), ":0"), n.RaftAddr())
	waitLeadership(t, leadership, true)
	require.NoError(t, n.Barrier(ctx))

	e1, i1 := propose(t, n, "a")
	assert.Equal(t, 1, e1.Len)
	e2, i2 := propose(t, n, "b")
	assert.Equal(t, 2, e2.Len)
	assert.Greater(t, i2, i1)

	// An FSM's error result is a response, passed through untouched.
	resp, i3, err := n.Propose(ctx, []byte("reject"))
	require.NoError(t, err)
	assert.Same(t, errRejected, resp)
	assert.Greater(t, i3, i2)

	require.NoError(t, n.WaitForApplied(ctx, i3))
	assert.GreaterOrEqual(t, n.AppliedIndex(), i3)
	assert.Equal(t, []string{"a", "b"}, d.fsm.Entries())

	// Entries that never reach the FSM (barrier, no-op) count as applied.
	require.NoError(t, n.Barrier(ctx))
	st := n.Status()
	assert.Equal(t, "Leader", st.State)
	assert.Equal(t, "dev", st.NodeID)
	assert.Equal(t, "dev", st.LeaderID)
	assert.Equal(t, n.RaftAddr(), st.LeaderAddr)
	assert.Equal(t, st.LastLogIndex, st.CommitIndex)
	assert.Equal(t, []cluster.Peer{{ID: "dev", Addr: n.RaftAddr(), Suffrage: "Voter"}}, st.Peers)
	// The trailing barrier is not a command: it is "applied" as soon as
	// raft has handed it over, which can be just after Barrier returns.
	require.NoError(t, n.WaitForApplied(ctx, st.CommitIndex))
	assert.GreaterOrEqual(t, n.AppliedIndex(), st.CommitIndex)

	// A context that is already done: nothing is attempted.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = n.Propose(cctx, []byte("c"))
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, cluster.ErrOutcomeUnknown)

	// Waiting for an index that will not come ends with the context.
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer wcancel()
	require.ErrorIs(t, n.WaitForApplied(wctx, st.LastLogIndex+100), context.DeadlineExceeded)

	// Directory layout and modes.
	for _, dir := range []string{"raft", "raft/snapshots"} {
		fi, err := os.Stat(filepath.Join(d.cfg.DataDir, dir))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm(), dir)
	}
	_, err = os.Stat(filepath.Join(d.cfg.DataDir, "raft", "raft.db"))
	require.NoError(t, err)
}

func TestRestartReplaysLog(t *testing.T) {
	t.Parallel()
	d := newDevNode(t)
	ctx := testCtx(t)
	require.NoError(t, d.node.WaitForLeader(ctx))
	var want []string
	var last uint64
	for i := range 10 {
		cmd := fmt.Sprintf("cmd-%d", i)
		_, last = propose(t, d.node, cmd)
		want = append(want, cmd)
	}
	_, wantIdx, _ := d.fsm.state()

	d.restart() // Bootstrap is still set: existing state must win
	require.NoError(t, d.node.WaitForLeader(ctx))
	require.NoError(t, d.node.WaitForApplied(ctx, last))
	entries, indexes, restores := d.fsm.state()
	assert.Equal(t, want, entries)
	assert.Equal(t, wantIdx, indexes)
	assert.Zero(t, restores)
	assert.Len(t, d.node.Status().Peers, 1)

	_, idx := propose(t, d.node, "after")
	assert.Greater(t, idx, last)
}

func TestRestartFromSnapshot(t *testing.T) {
	t.Parallel()
	d := newDevNode(t)
	ctx := testCtx(t)
	require.NoError(t, d.node.WaitForLeader(ctx))
	var want []string
	var snapIdx, last uint64
	for i := range 15 {
		cmd := fmt.Sprintf("cmd-%d", i)
		_, last = propose(t, d.node, cmd)
		want = append(want, cmd)
		if i == 9 {
			require.NoError(t, d.node.Snapshot())
			snapIdx = last
		}
	}

	d.restart()
	// The snapshot is restored while New runs, before any leader exists;
	// AppliedIndex must already cover it.
	entries, _, restores := d.fsm.state()
	assert.Equal(t, 1, restores)
	assert.Equal(t, want[:10], entries)
	assert.GreaterOrEqual(t, d.node.AppliedIndex(), snapIdx)
	require.NoError(t, d.node.WaitForApplied(ctx, snapIdx))

	// The log after the snapshot is replayed once the node leads again.
	require.NoError(t, d.node.WaitForLeader(ctx))
	require.NoError(t, d.node.WaitForApplied(ctx, last))
	entries, _, restores = d.fsm.state()
	assert.Equal(t, want, entries)
	assert.Equal(t, 1, restores)
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	d := newDevNode(t)
	n := d.node
	ctx := testCtx(t)
	require.NoError(t, n.WaitForLeader(ctx))
	sub, cancel := n.SubscribeLeadership()
	defer cancel()

	require.NoError(t, n.Shutdown())
	require.NoError(t, n.Shutdown())

	_, _, err := n.Propose(ctx, []byte("x"))
	require.ErrorIs(t, err, cluster.ErrShutdown)
	require.ErrorIs(t, n.Barrier(ctx), cluster.ErrShutdown)
	require.ErrorIs(t, n.WaitForLeader(ctx), cluster.ErrShutdown)
	require.ErrorIs(t, n.WaitForApplied(ctx, 1<<40), cluster.ErrShutdown)
	require.ErrorIs(t, n.AddVoter(ctx, "x", "127.0.0.1:1"), cluster.ErrShutdown)
	require.ErrorIs(t, n.RemoveServer(ctx, "x"), cluster.ErrShutdown)
	require.ErrorIs(t, n.Snapshot(), cluster.ErrShutdown)
	assert.Equal(t, "Shutdown", n.Status().State)

	for range sub { // drains the buffered value, then sees the close
	}
	_, ok := <-n.LeaderCh()
	assert.False(t, ok, "subscriptions after shutdown are closed")
}

func TestNotLeaderWithoutConfiguration(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n, err := cluster.New(cluster.Config{
		NodeID: "lonely", DataDir: dir, RaftAddr: "127.0.0.1:0",
		Logger: testcluster.NewLogger(t, slog.LevelInfo),
	}, &listFSM{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Shutdown()) })

	_, _, err = n.Propose(testCtx(t), []byte("x"))
	require.ErrorIs(t, err, cluster.ErrNotLeader)
	var nle *cluster.NotLeaderError
	require.ErrorAs(t, err, &nle)
	assert.Empty(t, nle.LeaderID)
	assert.Empty(t, nle.LeaderAddr)
	require.ErrorIs(t, n.AddVoter(testCtx(t), "b", "127.0.0.1:1"), cluster.ErrNotLeader)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, n.WaitForLeader(ctx), context.DeadlineExceeded)
	assert.Empty(t, n.Status().Peers)
}

func TestThreeNodes(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, newListFSM)
	ctx := testCtx(t)
	leader := c.WaitForLeader(t)
	require.Equal(t, c.Node(0), leader, "the bootstrap node leads until something fails")

	st := leader.Status()
	require.Len(t, st.Peers, 3)
	for _, p := range st.Peers {
		assert.Equal(t, "Voter", p.Suffrage)
	}

	// AddVoter again with the same address is a no-op: no new entry.
	for _, f := range c.Followers() {
		require.NoError(t, leader.AddVoter(ctx, f.ID(), f.RaftAddr()))
	}
	st2 := leader.Status()
	assert.Equal(t, st.Peers, st2.Peers)
	assert.Equal(t, st.LastLogIndex, st2.LastLogIndex)

	subs := map[string]<-chan bool{}
	for _, n := range c.Nodes() {
		subs[n.ID()] = n.LeaderCh()
	}

	var last uint64
	for i := range 5 {
		_, last = propose(t, leader, fmt.Sprintf("cmd-%d", i))
	}
	c.WaitForApplied(t, last)
	want := c.FSM(0).(*listFSM).Entries()
	require.Len(t, want, 5)
	for i := range c.Nodes() {
		entries, indexes, _ := c.FSM(i).(*listFSM).state()
		assert.Equal(t, want, entries, "node%d", i)
		assert.Len(t, indexes, 5)
	}

	// A follower refuses and names the leader.
	for _, f := range c.Followers() {
		_, _, err := f.Propose(ctx, []byte("nope"))
		require.ErrorIs(t, err, cluster.ErrNotLeader)
		var nle *cluster.NotLeaderError
		require.ErrorAs(t, err, &nle)
		assert.Equal(t, leader.ID(), nle.LeaderID)
		assert.Equal(t, leader.RaftAddr(), nle.LeaderAddr)
		require.ErrorIs(t, f.Barrier(ctx), cluster.ErrNotLeader)
		require.ErrorIs(t, f.AddVoter(ctx, "x", "127.0.0.1:1"), cluster.ErrNotLeader)
		assert.Equal(t, "Follower", f.Status().State)
	}

	// Fail the leader: one of the others takes over.
	oldIdx := c.Index(leader)
	waitLeadership(t, subs[leader.ID()], true)
	c.Stop(t, oldIdx)
	for range subs[leader.ID()] { // closed by Shutdown
	}
	for _, n := range c.Running() {
		require.NoError(t, n.WaitForLeader(ctx))
	}
	newLeader := c.WaitForLeader(t)
	require.NotEqual(t, leader.ID(), newLeader.ID())
	waitLeadership(t, subs[newLeader.ID()], true)

	_, idx := propose(t, newLeader, "after-failover")
	c.WaitForApplied(t, idx)
	want = append(want, "after-failover")
	for _, n := range c.Running() {
		assert.Equal(t, want, c.FSM(c.Index(n)).(*listFSM).Entries(), n.ID())
	}

	// The old leader comes back as a follower and catches up.
	back := c.Restart(t, oldIdx)
	require.NoError(t, back.WaitForApplied(ctx, idx))
	assert.Equal(t, want, c.FSM(oldIdx).(*listFSM).Entries())
	assert.Equal(t, newLeader, c.WaitForLeader(t))
}

func TestAddVoterReplaceAndRemove(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 3, newListFSM)
	ctx := testCtx(t)
	leader := c.WaitForLeader(t)
	n2 := c.Node(2)
	peerAddr := func(id string) string {
		for _, p := range leader.Status().Peers {
			if p.ID == id {
				return p.Addr
			}
		}
		return ""
	}

	// Same ID, other address: replaced.
	require.NoError(t, leader.AddVoter(ctx, n2.ID(), "127.0.0.1:1"))
	assert.Equal(t, "127.0.0.1:1", peerAddr(n2.ID()))
	require.NoError(t, leader.AddVoter(ctx, n2.ID(), n2.RaftAddr()))
	assert.Equal(t, n2.RaftAddr(), peerAddr(n2.ID()))
	_, idx := propose(t, leader, "one")
	c.WaitForApplied(t, idx)

	// Remove, twice.
	require.NoError(t, leader.RemoveServer(ctx, n2.ID()))
	require.NoError(t, leader.RemoveServer(ctx, n2.ID()))
	assert.Len(t, leader.Status().Peers, 2)
	assert.Empty(t, peerAddr(n2.ID()))
	_, idx = propose(t, leader, "two")
	require.NoError(t, c.Node(1).WaitForApplied(ctx, idx))
	assert.NotEqual(t, "Shutdown", n2.Status().State, "a removed node keeps running")

	// And back: it catches up.
	require.NoError(t, leader.AddVoter(ctx, n2.ID(), n2.RaftAddr()))
	_, idx = propose(t, leader, "three")
	c.WaitForApplied(t, idx)
	assert.Equal(t, []string{"one", "two", "three"}, c.FSM(2).(*listFSM).Entries())
	assert.Len(t, leader.Status().Peers, 3)
}

func TestProposeOutcomeUnknownWithoutQuorum(t *testing.T) {
	t.Parallel()
	// A long lease, so the leader keeps believing it leads while the
	// followers are gone.
	c := testcluster.Start(t, 3, newListFSM, testcluster.WithConfig(func(_ int, cfg *cluster.Config) {
		cfg.HeartbeatTimeout = time.Second
		cfg.ElectionTimeout = time.Second
		cfg.LeaderLeaseTimeout = time.Second
	}))
	leader := c.WaitForLeader(t)
	_, idx := propose(t, leader, "committed")
	c.WaitForApplied(t, idx)
	for _, f := range c.Followers() {
		c.Stop(t, c.Index(f))
	}

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, _, err := leader.Propose(ctx, []byte("lost"))
	require.ErrorIs(t, err, cluster.ErrOutcomeUnknown)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// The lease runs out, the leader steps down; now requests are refused
	// up front.
	leadership, cancelSub := leader.SubscribeLeadership()
	defer cancelSub()
	waitLeadership(t, leadership, false)
	_, _, err = leader.Propose(testCtx(t), []byte("refused"))
	require.ErrorIs(t, err, cluster.ErrNotLeader)
}

func TestFollowerCatchesUpBySnapshot(t *testing.T) {
	t.Parallel()
	c := testcluster.Start(t, 1, newListFSM, testcluster.WithConfig(func(_ int, cfg *cluster.Config) {
		cfg.TrailingLogs = 2
	}))
	leader := c.WaitForLeader(t)
	var want []string
	var last uint64
	for i := range 20 {
		cmd := fmt.Sprintf("cmd-%d", i)
		_, last = propose(t, leader, cmd)
		want = append(want, cmd)
	}
	require.NoError(t, leader.Snapshot()) // and compact the log down to 2 entries

	newbie := c.AddNode(t)
	require.NoError(t, newbie.WaitForApplied(testCtx(t), last))
	entries, _, restores := c.FSM(1).(*listFSM).state()
	assert.Equal(t, want, entries)
	assert.Equal(t, 1, restores, "caught up by snapshot install")

	_, idx := propose(t, leader, "more")
	c.WaitForApplied(t, idx)
	assert.Equal(t, append(want, "more"), c.FSM(1).(*listFSM).Entries())
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	ok := cluster.Config{NodeID: "n1", DataDir: "/tmp/x", RaftAddr: "127.0.0.1:0"}
	require.NoError(t, ok.Validate())
	for name, tc := range map[string]struct {
		mutate func(*cluster.Config)
		want   string
	}{
		"no id":         {func(c *cluster.Config) { c.NodeID = "" }, "NodeID"},
		"id with space": {func(c *cluster.Config) { c.NodeID = "a b" }, "NodeID"},
		"no dir":        {func(c *cluster.Config) { c.DataDir = "" }, "DataDir"},
		"no addr":       {func(c *cluster.Config) { c.RaftAddr = "" }, "RaftAddr"},
		"bad addr":      {func(c *cluster.Config) { c.RaftAddr = "localhost" }, "RaftAddr"},
		"bad port":      {func(c *cluster.Config) { c.RaftAddr = "127.0.0.1:99999" }, "RaftAddr"},
		"any addr":      {func(c *cluster.Config) { c.RaftAddr = "0.0.0.0:8300" }, "RaftAdvertiseAddr"},
		"any advertise": {func(c *cluster.Config) { c.RaftAdvertiseAddr = "0.0.0.0:8300" }, "RaftAdvertiseAddr"},
		"lease > hb":    {func(c *cluster.Config) { c.LeaderLeaseTimeout = time.Second }, "LeaderLeaseTimeout"},
		"election < hb": {func(c *cluster.Config) { c.ElectionTimeout = 100 * time.Millisecond }, "ElectionTimeout"},
		"negative":      {func(c *cluster.Config) { c.ApplyTimeout = -1 }, "ApplyTimeout"},
		"retain":        {func(c *cluster.Config) { c.SnapshotRetain = -1 }, "SnapshotRetain"},
		"batch < 0":     {func(c *cluster.Config) { c.MaxAppendEntries = -1 }, "MaxAppendEntries"},
		"batch > 1024":  {func(c *cluster.Config) { c.MaxAppendEntries = 1025 }, "MaxAppendEntries"},
		"dup peers": {func(c *cluster.Config) {
			c.BootstrapPeers = []cluster.Peer{{ID: "b", Addr: "h:1"}, {ID: "b", Addr: "h:2"}}
		}, "duplicate"},
		"peer without addr": {func(c *cluster.Config) { c.BootstrapPeers = []cluster.Peer{{ID: "b"}} }, "BootstrapPeers[0].Addr"},
	} {
		t.Run(name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			_, err = cluster.New(c, &listFSM{})
			require.Error(t, err)
		})
	}
	withAdvertise := ok
	withAdvertise.RaftAddr, withAdvertise.RaftAdvertiseAddr = "0.0.0.0:8300", "10.0.0.1:8300"
	require.NoError(t, withAdvertise.Validate())
	largestBatch := ok
	largestBatch.MaxAppendEntries = 1024
	require.NoError(t, largestBatch.Validate())
}

// waitLeadership reads a leadership subscription until it yields want.
func waitLeadership(t *testing.T, ch <-chan bool, want bool) {
	t.Helper()
	deadline := time.NewTimer(testcluster.Timeout)
	defer deadline.Stop()
	for {
		select {
		case v, ok := <-ch:
			require.True(t, ok, "leadership channel closed")
			if v == want {
				return
			}
		case <-deadline.C:
			t.Fatalf("leadership never became %v", want)
		}
	}
}

var _ raft.FSM = (*listFSM)(nil)

// The bootstrap-expect shape: one node bootstraps a configuration naming
// another, which starts empty and learns it from the leader.
func TestBootstrapPeers(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	logger := testcluster.NewLogger(t, slog.LevelInfo)
	start := func(id string, bootstrap bool, peers []cluster.Peer) *cluster.Node {
		n, err := cluster.New(cluster.Config{
			NodeID: id, DataDir: filepath.Join(base, id), RaftAddr: "127.0.0.1:0",
			Bootstrap: bootstrap, BootstrapPeers: peers, Logger: logger.With("member", id),
		}, &listFSM{})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, n.Shutdown()) })
		return n
	}
	a := start("a", false, nil)
	b := start("b", true, []cluster.Peer{{ID: "a", Addr: a.RaftAddr()}, {ID: "b", Addr: "replaced:1"}})
	ctx := testCtx(t)
	require.NoError(t, a.WaitForLeader(ctx))
	require.NoError(t, b.WaitForLeader(ctx))
	leader := a
	if b.IsLeader() {
		leader = b
	}
	_, idx := propose(t, leader, "x")
	require.NoError(t, a.WaitForApplied(ctx, idx))
	require.NoError(t, b.WaitForApplied(ctx, idx))
	want := []cluster.Peer{{ID: "b", Addr: b.RaftAddr(), Suffrage: "Voter"}, {ID: "a", Addr: a.RaftAddr(), Suffrage: "Voter"}}
	assert.Equal(t, want, a.Status().Peers)
	assert.Equal(t, want, b.Status().Peers)
}
