package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/chaos"
)

// startCluster starts a 3-node kmsd cluster of real processes (the design's
// bootstrap-expect contract: identical -join lists, one root key file) and
// waits until every node is ready. Every client call is recorded in the
// returned history. The nodes are SIGKILLed when the test ends; if it
// failed, their logs are copied out of the temp dir and their tails shown.
func startCluster(t *testing.T, extraArgs ...string) (*chaos.Cluster, *chaos.History) {
	t.Helper()
	c, err := chaos.New(chaos.Options{Bin: kmsdBin, Dir: t.TempDir(), Logf: t.Logf, ExtraArgs: extraArgs})
	require.NoError(t, err)
	h := chaos.NewHistory()
	c.SetHistory(h)
	t.Cleanup(func() {
		c.Close()
		if t.Failed() {
			showLogs(t, c)
		}
	})
	for _, n := range c.Nodes() {
		require.NoError(t, n.Start())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.WaitReady(ctx))
	if u := c.Unexpected(); len(u) > 0 {
		t.Fatalf("nodes exited: %v", u)
	}
	return c, h
}

// showLogs copies every node's log to a directory that outlives the test
// and shows each log's tail.
func showLogs(t *testing.T, c *chaos.Cluster) {
	dir, err := os.MkdirTemp("", "kmsd-e2e-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
	if err != nil {
		t.Logf("keeping logs: %v", err)
		dir = ""
	}
	for _, n := range c.Nodes() {
		if dir != "" {
			if b, err := os.ReadFile(n.LogPath); err == nil {
				os.WriteFile(filepath.Join(dir, n.ID+".log"), b, 0o644)
			}
		}
		t.Logf("----- %s log tail (%s) -----\n%s", n.ID, n.LogPath, n.LogTail(80))
	}
	if dir != "" {
		t.Logf("full node logs (-log-level debug) kept in %s", dir)
	}
}

// within returns a context that ends after d and with the test.
func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// mustOK fails the test unless op was acknowledged and answered by the node
// it was sent to.
func mustOK(t *testing.T, op chaos.Op) {
	t.Helper()
	require.Equal(t, chaos.OK, op.Outcome, "%s at %s: %s %s", op.Kind, op.Node, op.Error, op.Message)
	require.Equal(t, op.Node, op.ServedBy, "X-Kmsd-Served-By of %s at %s", op.Kind, op.Node)
}

// createKey creates a key through n and returns its id.
func createKey(t *testing.T, ctx context.Context, n *chaos.Node) string {
	t.Helper()
	id, op := n.Client().CreateKey(ctx, chaos.NextCorr("e2e-"+n.ID))
	mustOK(t, op)
	return id
}

// waitVisible polls DescribeKey (a local read) at n until it finds id.
func waitVisible(ctx context.Context, n *chaos.Node, id string) error {
	cl := n.PlainClient()
	return chaos.Poll(ctx, 5*time.Millisecond, func() (bool, error) {
		op := cl.DescribeKey(ctx, id, false)
		if op.Outcome == chaos.OK && op.ServedBy != n.ID {
			return false, fmt.Errorf("DescribeKey at %s served by %q", n.ID, op.ServedBy)
		}
		return op.Outcome == chaos.OK, nil
	}, func() string { return "key " + id + " visible at " + n.ID })
}

// loadGen runs writers that create keys through random nodes until stopped.
type loadGen struct {
	stop chan struct{}
	wg   sync.WaitGroup
}

func startLoad(c *chaos.Cluster, writers int) *loadGen {
	l := &loadGen{stop: make(chan struct{})}
	nodes := c.Nodes()
	for i := range writers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				cl := nodes[mrand.IntN(len(nodes))].Client().WithID(i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, op := cl.CreateKey(ctx, chaos.NextCorr(fmt.Sprintf("load%d", i)))
				cancel()
				// A small load: a few writes per second per writer.
				pause := 50 * time.Millisecond
				if op.Outcome != chaos.OK {
					pause = 20 * time.Millisecond
				}
				t := time.NewTimer(pause)
				select {
				case <-l.stop:
				case <-t.C:
				}
				t.Stop()
			}
		}()
	}
	return l
}

func (l *loadGen) Stop() {
	close(l.stop)
	l.wg.Wait()
}

// ackedKeys returns every key whose CreateKey was acknowledged.
func ackedKeys(h *chaos.History) []string {
	var ids []string
	for _, op := range h.Ops() {
		if op.Kind == chaos.OpCreateKey && op.Outcome == chaos.OK {
			ids = append(ids, op.KeyID)
		}
	}
	return ids
}

// requireKeysEverywhere checks with DescribeKey that every id exists at
// every node.
func requireKeysEverywhere(t *testing.T, ctx context.Context, c *chaos.Cluster, ids []string) {
	t.Helper()
	for _, n := range c.Nodes() {
		cl := n.PlainClient()
		for _, id := range ids {
			op := cl.DescribeKey(ctx, id, false)
			require.Equal(t, chaos.OK, op.Outcome, "acknowledged key %s at %s: %s %s", id, n.ID, op.Error, op.Message)
			require.Equal(t, "Enabled", op.State, "key %s at %s", id, n.ID)
		}
	}
}

// requireConverged waits until every node reports the same state hash at
// the same applied index, with every node a voter, and logs the figures.
func requireConverged(t *testing.T, ctx context.Context, c *chaos.Cluster) []*chaos.Status {
	t.Helper()
	sts, err := c.Converged(ctx, 30*time.Second)
	require.NoError(t, err)
	t.Logf("converged: %s", chaos.DescribeStatuses(sts))
	return sts
}

// TestClusterReplicationAndFailover starts three real nodes and checks:
// a key created through any node is visible at every node within 2s;
// Encrypt at one node and Decrypt at another works; X-Kmsd-Served-By names
// the node asked, on answers and on errors; after SIGKILL of the leader
// under a small write load, a CreateKey through a survivor succeeds within
// 3s; the killed node restarts and catches up (same state hash at the same
// applied index everywhere) and every acknowledged key is at every node.
func TestClusterReplicationAndFailover(t *testing.T) {
	c, h := startCluster(t)
	ctx := within(t, 3*time.Minute)
	nodes := c.Nodes()

	// Replication: created anywhere, visible everywhere within 2s.
	var worst time.Duration
	keys := map[string]string{} // node id -> key created through it
	for _, n := range nodes {
		id := createKey(t, ctx, n)
		keys[n.ID] = id
		created := time.Now()
		vctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		for _, m := range nodes {
			require.NoError(t, waitVisible(vctx, m, id), "key created at %s", n.ID)
		}
		cancel()
		worst = max(worst, time.Since(created))
	}
	t.Logf("a key created at one node was visible at all three within %v", worst.Round(time.Microsecond))

	// Encrypt at one node, Decrypt at each other one.
	for i, n := range nodes {
		pt := make([]byte, 64)
		rand.Read(pt)
		ct, op := n.Client().Encrypt(ctx, keys[n.ID], pt)
		mustOK(t, op)
		for j := 1; j < len(nodes); j++ {
			m := nodes[(i+j)%len(nodes)]
			got, op := m.Client().Decrypt(ctx, keys[n.ID], ct)
			mustOK(t, op)
			require.True(t, bytes.Equal(pt, got), "Encrypt at %s, Decrypt at %s", n.ID, m.ID)
		}
	}

	// X-Kmsd-Served-By on errors too (and on strong reads).
	for _, n := range nodes {
		op := n.Client().DescribeKey(ctx, "00000000-0000-4000-8000-000000000000", true)
		require.Equal(t, "NotFoundException", op.Error)
		require.Equal(t, n.ID, op.ServedBy)
		op = n.Client().DescribeKey(ctx, keys[nodes[0].ID], true)
		mustOK(t, op)
	}

	// SIGKILL the leader under a small write load.
	load := startLoad(c, 2)
	require.NoError(t, chaos.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		return h.AckedSince(h.Now()-int64(time.Second)) >= 4, nil
	}, func() string { return "load running" }))
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	killedAt := time.Now()
	c.Event("SIGKILL leader %s", leader.ID)
	leader.Kill()
	failover, err := c.MeasureFailover(ctx, leader, killedAt)
	require.NoError(t, err)
	t.Logf("failover: SIGKILL of leader %s -> first successful CreateKey through a survivor: %v", leader.ID, failover.Round(time.Millisecond))
	require.Less(t, failover, 3*time.Second, "failover time")
	newLeader, err := c.Leader(ctx)
	require.NoError(t, err)
	require.NotEqual(t, leader.ID, newLeader.ID)

	// Restart the killed node with the same flags: it rejoins and catches up.
	c.Event("restart %s", leader.ID)
	require.NoError(t, leader.Start())
	require.NoError(t, leader.WaitReady(ctx))
	require.NoError(t, chaos.Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		return h.AckedSince(h.Now()-int64(500*time.Millisecond)) >= 2, nil
	}, func() string { return "writes after the restart" }))
	load.Stop()
	requireConverged(t, ctx, c)
	acked := ackedKeys(h)
	requireKeysEverywhere(t, ctx, c, acked)
	t.Logf("%d acknowledged keys present at every node; history: %+v", len(acked), h.Count())
	require.Empty(t, c.Unexpected())
}

// TestClusterWipedNodeRejoins SIGKILLs a follower, wipes its data dir,
// writes more while it is down, and restarts it with the same flags: the
// leader adds it back, its applied index reaches the leader's, it has the
// same state hash, and the keys and ciphertexts made before are there
// (DescribeKey, Decrypt at that node).
func TestClusterWipedNodeRejoins(t *testing.T) {
	c, _ := startCluster(t)
	ctx := within(t, 3*time.Minute)
	nodes := c.Nodes()

	type sealed struct {
		key    string
		pt, ct []byte
	}
	var all []sealed
	var keys []string
	write := func(through []*chaos.Node, n int) {
		for i := range n {
			node := through[i%len(through)]
			id := createKey(t, ctx, node)
			keys = append(keys, id)
			pt := make([]byte, 32+i)
			rand.Read(pt)
			ct, op := node.Client().Encrypt(ctx, id, pt)
			mustOK(t, op)
			all = append(all, sealed{id, pt, ct})
		}
	}
	write(nodes, 6)

	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	f := c.Followers(leader)[0]
	before, err := f.Status(ctx)
	require.NoError(t, err)
	c.Event("SIGKILL %s and wipe %s", f.ID, f.DataDir)
	f.Kill()
	require.NoError(t, f.Wipe())
	write(c.Running(), 6)

	c.Event("restart %s with an empty data dir", f.ID)
	require.NoError(t, f.Start())
	require.NoError(t, f.WaitReady(ctx))
	// Its applied index reaches the leader's.
	var fs, ls *chaos.Status
	require.NoError(t, chaos.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if ls, err = leader.Status(ctx); err != nil {
			return false, nil
		}
		if fs, err = f.Status(ctx); err != nil {
			return false, nil
		}
		return fs.AppliedIndex >= ls.AppliedIndex && fs.AppliedIndex > before.AppliedIndex, nil
	}, func() string { return f.ID + " catching up" }))
	t.Logf("%s applied index %d before the wipe, %d after rejoining (leader %s at %d)", f.ID, before.AppliedIndex, fs.AppliedIndex, leader.ID, ls.AppliedIndex)
	require.True(t, ls.HasVoter(f.ID), "leader's configuration: %+v", ls.Peers)
	requireConverged(t, ctx, c)

	// Everything made before (and while it was away) is there.
	fc := f.Client()
	for _, id := range keys {
		op := fc.DescribeKey(ctx, id, false)
		mustOK(t, op)
		require.Equal(t, "Enabled", op.State)
	}
	for _, s := range all {
		got, op := fc.Decrypt(ctx, s.key, s.ct)
		mustOK(t, op)
		require.True(t, bytes.Equal(s.pt, got))
	}
	// It serves writes too.
	createKey(t, ctx, f)
	logCatchUp(t, f)
	require.Empty(t, c.Unexpected())
}

// logCatchUp says how a node with a wiped data dir caught up, from its
// debug log: by installing a snapshot or by log replay.
func logCatchUp(t *testing.T, n *chaos.Node) {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return
	}
	last := b[bytes.LastIndex(b, []byte("===== chaos: starting")):]
	how := "log replay (the leader had not compacted its log: kmsd snapshots only after 8192 entries)"
	if bytes.Contains(last, []byte("snapshot")) && bytes.Contains(bytes.ToLower(last), []byte("install")) {
		how = "snapshot install"
	}
	t.Logf("%s caught up by %s", n.ID, how)
}

// TestClusterGracefulLeave sends SIGTERM to a follower: it exits 0 and the
// leader removes it from the Raft configuration (/v1/status peers); the
// remaining two nodes keep serving writes; restarted with the same flags,
// the node is added back as a voter and catches up.
func TestClusterGracefulLeave(t *testing.T) {
	c, _ := startCluster(t)
	ctx := within(t, 3*time.Minute)

	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	f := c.Followers(leader)[0]
	st, err := leader.Status(ctx)
	require.NoError(t, err)
	require.True(t, st.HasVoter(f.ID))

	c.Event("SIGTERM %s", f.ID)
	require.NoError(t, f.Stop(20*time.Second))
	require.NoError(t, chaos.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		st, err = leader.Status(ctx)
		return err == nil && !st.HasPeer(f.ID), nil
	}, func() string { return f.ID + " removed from the leader's peers" }))
	t.Logf("after SIGTERM of %s the leader's peers are %+v", f.ID, st.Peers)

	// Two nodes still make a quorum of the two-node configuration.
	id := createKey(t, ctx, leader)

	c.Event("restart %s", f.ID)
	require.NoError(t, f.Start())
	require.NoError(t, f.WaitReady(ctx))
	require.NoError(t, chaos.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		st, err = leader.Status(ctx)
		return err == nil && st.HasVoter(f.ID), nil
	}, func() string { return f.ID + " back among the leader's voters" }))
	t.Logf("after the restart the leader's peers are %+v", st.Peers)
	requireConverged(t, ctx, c)
	op := f.Client().DescribeKey(ctx, id, false)
	mustOK(t, op)
	require.Empty(t, c.Unexpected())
}

// TestClusterMutationRightAfterCreate checks the design's "mutations are
// linearizable" for the commonest client pattern: CreateKey through one
// node, then at once DisableKey/EnableKey through another. A follower
// resolves a mutation's key in its local state before forwarding it; one
// that has not applied the CreateKey yet must catch up with the leader
// before answering NotFoundException (it once did not: 30 of 30 failed).
// A strong DescribeKey is checked too.
func TestClusterMutationRightAfterCreate(t *testing.T) {
	c, _ := startCluster(t)
	ctx := within(t, time.Minute)
	leader, err := c.Leader(ctx)
	require.NoError(t, err)
	fs := c.Followers(leader)
	var notFound []string
	for i := range 30 {
		id := createKey(t, ctx, leader)
		f := fs[i%len(fs)]
		op := f.Client().DescribeKey(ctx, id, true)
		mustOK(t, op)
		id = createKey(t, ctx, leader)
		op = f.Client().SetEnabled(ctx, id, i%2 == 0)
		if op.Outcome != chaos.OK {
			notFound = append(notFound, fmt.Sprintf("%s %s at %s: %s", op.Kind, id, f.ID, op.Error))
		}
	}
	require.Empty(t, notFound, "mutations at a follower right after an acknowledged CreateKey at the leader")
}

// TestClusterWipedNodeRejoinsBySnapshot is TestClusterWipedNodeRejoins on
// the snapshot path. The nodes snapshot after 64 entries (checked every
// 0.5-1s) and keep 32 after a snapshot (kmsd's defaults are 8192 and 10240,
// which take minutes to reach), so once the log is longer than that and the
// leader has snapshotted, a follower whose data dir was wiped can only catch
// up by snapshot install. The test checks it does and has everything.
func TestClusterWipedNodeRejoinsBySnapshot(t *testing.T) {
	const (
		threshold = 64
		trailing  = 32
		entries   = 300 // well past threshold + trailing
	)
	c, _ := startCluster(t, "-raft-snapshot-threshold", strconv.Itoa(threshold),
		"-raft-snapshot-interval", "500ms", "-raft-trailing-logs", strconv.Itoa(trailing))
	ctx := within(t, 8*time.Minute)
	leader, err := c.Leader(ctx)
	require.NoError(t, err)

	type sealed struct {
		key    string
		pt, ct []byte
	}
	var all []sealed
	for i := range 5 {
		n := c.Nodes()[i%3]
		id := createKey(t, ctx, n)
		pt := make([]byte, 40)
		rand.Read(pt)
		ct, op := n.Client().Encrypt(ctx, id, pt)
		mustOK(t, op)
		all = append(all, sealed{id, pt, ct})
	}

	// Fill the log: every strong read at the leader appends a barrier.
	start := time.Now()
	var wg sync.WaitGroup
	fill, stopFill := context.WithCancel(ctx)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := leader.PlainClient()
			for fill.Err() == nil {
				cl.DescribeKey(fill, all[0].key, true)
			}
		}()
	}
	err = chaos.Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		st, err := leader.Status(ctx)
		return err == nil && st.LastLogIndex >= entries, nil
	}, func() string { return "a long log" })
	if err != nil {
		stopFill()
		wg.Wait()
		require.NoError(t, err)
	}
	t.Logf("appended %d entries in %v", entries, time.Since(start).Round(time.Second))

	// Wait for the leader's snapshot past the entries written. The fill
	// goes on meanwhile: a snapshot is taken only once -raft-snapshot-
	// threshold entries follow the previous one, and batched writes can
	// reach the entry count just after a snapshot, with too few entries
	// left to trigger the next one.
	snapDir := filepath.Join(leader.DataDir, "raft", "snapshots")
	err = chaos.Poll(ctx, time.Second, func() (bool, error) {
		ents, _ := os.ReadDir(snapDir)
		for _, e := range ents {
			var term, index, ts uint64
			if _, err := fmt.Sscanf(e.Name(), "%d-%d-%d", &term, &index, &ts); err == nil && index > entries && !strings.HasSuffix(e.Name(), ".tmp") {
				t.Logf("leader %s snapshot %s after %v", leader.ID, e.Name(), time.Since(start).Round(time.Second))
				return true, nil
			}
		}
		return false, nil
	}, func() string { return "a snapshot on the leader" })
	stopFill()
	wg.Wait()
	require.NoError(t, err)

	f := c.Followers(leader)[0]
	c.Event("SIGKILL %s and wipe %s", f.ID, f.DataDir)
	f.Kill()
	require.NoError(t, f.Wipe())
	late := createKey(t, ctx, leader)
	require.NoError(t, f.Start())
	require.NoError(t, f.WaitReady(ctx))
	requireConverged(t, ctx, c)
	b, err := os.ReadFile(f.LogPath)
	require.NoError(t, err)
	last := b[bytes.LastIndex(b, []byte("===== chaos: starting")):]
	require.Contains(t, string(last), "Installed remote snapshot", "%s should catch up by snapshot", f.ID)
	for _, s := range all {
		op := f.Client().DescribeKey(ctx, s.key, false)
		mustOK(t, op)
		got, op := f.Client().Decrypt(ctx, s.key, s.ct)
		mustOK(t, op)
		require.True(t, bytes.Equal(s.pt, got))
	}
	mustOK(t, f.Client().DescribeKey(ctx, late, false))
	require.Empty(t, c.Unexpected())
}
