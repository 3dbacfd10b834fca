// Package testcluster starts in-process kmsd Raft clusters for tests: real
// Raft over loopback TCP, real BoltDB in t.TempDir(), logs to t.Log. Use it
// only from _test.go files.
package testcluster

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/kmsd/kmsd/cluster"
)

// Timeout bounds every wait in this package (leader election, replication).
// It is generous because tests run with -race on small machines.
var Timeout = 30 * time.Second

// Option changes how Start configures the cluster.
type Option func(*options)

type options struct {
	configure func(i int, cfg *cluster.Config)
	level     slog.Leveler
}

// WithConfig lets the test adjust node i's configuration before it starts
// (timeouts, snapshot thresholds...). NodeID, DataDir, RaftAddr, Bootstrap
// and Logger are already set.
func WithConfig(f func(i int, cfg *cluster.Config)) Option {
	return func(o *options) { o.configure = f }
}

// WithLogLevel sets the minimum level logged to t.Log (default Info; use
// slog.LevelDebug or cluster.LevelTrace to see more of raft).
func WithLogLevel(l slog.Leveler) Option {
	return func(o *options) { o.level = l }
}

// Cluster is a set of in-process nodes. Node i has ID "node<i>"; indexes are
// stable across Stop and Restart.
type Cluster struct {
	t       testing.TB
	newFSM  func() raft.FSM
	opts    options
	logger  *slog.Logger
	baseDir string

	mu      sync.Mutex
	members []*member
}

type member struct {
	cfg     cluster.Config
	node    *cluster.Node
	fsm     raft.FSM
	running bool
}

// Start starts n nodes: node 0 bootstraps a single-voter configuration, the
// others start empty and are added as voters by the leader. It returns once
// every node knows the leader. Nodes are shut down on t.Cleanup.
func Start(t testing.TB, n int, newFSM func() raft.FSM, opts ...Option) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("testcluster: need at least one node, got %d", n)
	}
	c := &Cluster{t: t, newFSM: newFSM, opts: options{level: slog.LevelInfo}}
	for _, o := range opts {
		o(&c.opts)
	}
	// Cleanups run last-registered first: nodes shut down, then logging
	// stops, then the data directories go.
	c.baseDir = t.TempDir()
	c.logger = NewLogger(t, c.opts.level)
	t.Cleanup(c.shutdownAll)

	c.startMember(t, true)
	c.WaitForLeader(t)
	for i := 1; i < n; i++ {
		c.AddNode(t)
	}
	c.WaitForLeader(t)
	return c
}

func (c *Cluster) startMember(t testing.TB, bootstrap bool) *member {
	t.Helper()
	c.mu.Lock()
	i := len(c.members)
	c.mu.Unlock()
	id := fmt.Sprintf("node%d", i)
	cfg := cluster.Config{
		NodeID:    id,
		DataDir:   filepath.Join(c.baseDir, id),
		RaftAddr:  "127.0.0.1:0",
		Bootstrap: bootstrap,
		Logger:    c.logger.With("member", id),
	}
	if c.opts.configure != nil {
		c.opts.configure(i, &cfg)
	}
	m := &member{cfg: cfg, fsm: c.newFSM()}
	node, err := cluster.New(cfg, m.fsm)
	if err != nil {
		t.Fatalf("testcluster: start %s: %v", id, err)
	}
	m.node, m.running = node, true
	// Restarts reuse the port the node got.
	m.cfg.RaftAddr = node.RaftAddr()
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	return m
}

// AddNode starts a new empty node and has the leader add it as a voter.
func (c *Cluster) AddNode(t testing.TB) *cluster.Node {
	t.Helper()
	leader := c.WaitForLeader(t) // before the new node, which knows no leader yet
	m := c.startMember(t, false)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := leader.AddVoter(ctx, m.node.ID(), m.node.RaftAddr()); err != nil {
		t.Fatalf("testcluster: add voter %s: %v", m.node.ID(), err)
	}
	return m.node
}

// Nodes returns every node by index, including stopped ones (whose methods
// return cluster.ErrShutdown).
func (c *Cluster) Nodes() []*cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*cluster.Node, len(c.members))
	for i, m := range c.members {
		out[i] = m.node
	}
	return out
}

// Running returns the nodes that are not stopped.
func (c *Cluster) Running() []*cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*cluster.Node
	for _, m := range c.members {
		if m.running {
			out = append(out, m.node)
		}
	}
	return out
}

// Node returns node i.
func (c *Cluster) Node(i int) *cluster.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].node
}

// FSM returns node i's current state machine (a new one after Restart).
func (c *Cluster) FSM(i int) raft.FSM {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.members[i].fsm
}

// Index returns the index of node, or -1.
func (c *Cluster) Index(node *cluster.Node) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.node == node {
			return i
		}
	}
	return -1
}

// Leader returns the running node that believes it is the leader, or nil.
func (c *Cluster) Leader() *cluster.Node {
	for _, n := range c.Running() {
		if n.IsLeader() {
			return n
		}
	}
	return nil
}

// Followers returns the running nodes that are not the leader.
func (c *Cluster) Followers() []*cluster.Node {
	var out []*cluster.Node
	for _, n := range c.Running() {
		if !n.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// WaitForLeader waits until a running node is the leader and every running
// node names it as the leader, and returns it.
func (c *Cluster) WaitForLeader(t testing.TB) *cluster.Node {
	t.Helper()
	var leader *cluster.Node
	c.poll(t, "a leader all running nodes agree on", func() bool {
		leader = c.Leader()
		if leader == nil {
			return false
		}
		for _, n := range c.Running() {
			if id, _ := n.LeaderID(); id != leader.ID() {
				return false
			}
		}
		return true
	})
	return leader
}

// WaitForApplied waits until every running node's FSM has applied index.
func (c *Cluster) WaitForApplied(t testing.TB, index uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	for _, n := range c.Running() {
		if err := n.WaitForApplied(ctx, index); err != nil {
			t.Fatalf("testcluster: %s: %v", n.ID(), err)
		}
	}
}

// Stop shuts node i down; its data directory stays for Restart.
func (c *Cluster) Stop(t testing.TB, i int) {
	t.Helper()
	c.mu.Lock()
	m := c.members[i]
	m.running = false
	c.mu.Unlock()
	if err := m.node.Shutdown(); err != nil {
		t.Fatalf("testcluster: stop %s: %v", m.cfg.NodeID, err)
	}
}

// Restart starts stopped node i again on the same data directory and Raft
// address, with a fresh FSM (see FSM) that raft refills from the snapshot
// and log.
func (c *Cluster) Restart(t testing.TB, i int) *cluster.Node {
	t.Helper()
	c.mu.Lock()
	m := c.members[i]
	if m.running {
		c.mu.Unlock()
		t.Fatalf("testcluster: restart %s: still running", m.cfg.NodeID)
	}
	c.mu.Unlock()
	fsm := c.newFSM()
	node, err := cluster.New(m.cfg, fsm)
	if err != nil {
		t.Fatalf("testcluster: restart %s: %v", m.cfg.NodeID, err)
	}
	c.mu.Lock()
	m.node, m.fsm, m.running = node, fsm, true
	c.mu.Unlock()
	return node
}

func (c *Cluster) shutdownAll() {
	for i, n := range c.Nodes() {
		if err := n.Shutdown(); err != nil {
			c.t.Errorf("testcluster: shut down node%d: %v", i, err)
		}
	}
}

// poll checks cond every few milliseconds until it holds or Timeout passes.
func (c *Cluster) poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			t.Fatalf("testcluster: no %s after %s; status:\n%s", what, Timeout, c.statusDump())
		case <-tick.C:
		}
	}
}

func (c *Cluster) statusDump() string {
	var b strings.Builder
	for _, n := range c.Running() {
		fmt.Fprintf(&b, "  %+v\n", n.Status())
	}
	return b.String()
}

// NewLogger returns a logger that writes text lines to t.Log at level and
// above. Lines logged after t's cleanup has begun (raft goroutines winding
// down) are dropped instead of making the testing package panic.
func NewLogger(t testing.TB, level slog.Leveler) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu     sync.Mutex
	t      testing.TB
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}
