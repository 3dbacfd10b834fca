package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

const (
	raftDirName  = "raft"
	raftDBName   = "raft.db"
	snapshotsDir = "snapshots" // created by raft's FileSnapshotStore under raft/
	logCacheSize = 512

	// boltOpenTimeout bounds waiting for BoltDB's file lock, so a second
	// process on the same data dir fails instead of hanging.
	boltOpenTimeout = 2 * time.Second

	pollInterval = 5 * time.Millisecond
	// maxTransparentScan bounds how many trailing no-op/barrier entries
	// AppliedIndex looks at past the FSM's last applied entry.
	maxTransparentScan = 64
)

// Peer is one server of the Raft configuration.
type Peer struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`               // Raft address
	Suffrage string `json:"suffrage,omitempty"` // "Voter", "Nonvoter" or "Staging"; empty means Voter in Config.BootstrapPeers
}

// Status is a point-in-time view of the node, for /v1/status and readiness.
type Status struct {
	NodeID       string `json:"node_id"`
	RaftAddr     string `json:"raft_addr"`
	State        string `json:"state"` // "Leader", "Follower", "Candidate" or "Shutdown"
	LeaderID     string `json:"leader_id"`
	LeaderAddr   string `json:"leader_addr"`
	Term         uint64 `json:"term"`
	AppliedIndex uint64 `json:"applied_index"` // applied by the FSM (see Node.AppliedIndex)
	CommitIndex  uint64 `json:"commit_index"`
	LastLogIndex uint64 `json:"last_log_index"`
	// LastContact is when this follower last heard from the leader; zero if
	// never (and for the leader itself).
	LastContact time.Time `json:"last_contact,omitzero"`
	Peers       []Peer    `json:"peers"`
}

// Node is one Raft server. All methods are safe for concurrent use.
type Node struct {
	cfg    Config
	logger *slog.Logger

	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	logs      raft.LogStore // LogCache over store
	applied   *appliedTracker

	closed     atomic.Bool
	shutdownCh chan struct{}
	shutdown   sync.Once
	shutErr    error
	wg         sync.WaitGroup

	subsMu   sync.Mutex
	subs     map[*leaderSub]struct{}
	isLeader bool // last value seen on raft's LeaderCh, under subsMu
	subsDone bool // set at Shutdown, under subsMu
}

type leaderSub struct{ ch chan bool }

// New opens (or creates) the Raft state under cfg.DataDir, starts Raft with
// fsm as the state machine, and bootstraps a configuration if cfg.Bootstrap
// is set and there is no existing state. On restart, raft restores the
// newest snapshot into fsm and replays the committed log after it once the
// commit index is known (for a single node: once it is leader again).
func New(cfg Config, fsm raft.FSM) (*Node, error) {
	if fsm == nil {
		return nil, errors.New("cluster: nil FSM")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	n := &Node{
		cfg:        cfg,
		logger:     cfg.Logger.With("component", "cluster", "node_id", cfg.NodeID),
		applied:    newAppliedTracker(),
		shutdownCh: make(chan struct{}),
		subs:       map[*leaderSub]struct{}{},
	}
	if err := n.start(fsm); err != nil {
		n.closeOnFailure()
		return nil, err
	}
	n.wg.Add(1)
	go n.watchLeadership()
	return n, nil
}

func (n *Node) start(fsm raft.FSM) error {
	raftDir := filepath.Join(n.cfg.DataDir, raftDirName)
	for _, dir := range []string{raftDir, filepath.Join(raftDir, snapshotsDir)} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("cluster: create %s: %w", dir, err)
		}
		// Tighten a directory that already existed with a looser mode.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("cluster: chmod %s: %w", dir, err)
		}
	}

	hl := newHCLogger(n.cfg.Logger.With("node_id", n.cfg.NodeID), "raft")

	boltOpts := *bbolt.DefaultOptions
	boltOpts.Timeout = boltOpenTimeout
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(raftDir, raftDBName),
		BoltOptions: &boltOpts,
		NoSync:      false, // fsync every log append and stable-store write
	})
	if err != nil {
		return fmt.Errorf("cluster: open %s: %w", filepath.Join(raftDir, raftDBName), err)
	}
	n.store = store
	logs, err := raft.NewLogCache(logCacheSize, store)
	if err != nil {
		return fmt.Errorf("cluster: log cache: %w", err)
	}
	n.logs = logs

	fileSnaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, n.cfg.SnapshotRetain, hl.Named("snapshot"))
	if err != nil {
		return fmt.Errorf("cluster: snapshot store: %w", err)
	}
	snaps := &privateSnapshotStore{FileSnapshotStore: fileSnaps, dir: filepath.Join(raftDir, "snapshots")}

	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return fmt.Errorf("cluster: check existing raft state: %w", err)
	}

	trans, err := newTransport(n.cfg, hl.Named("net"))
	if err != nil {
		return err
	}
	n.transport = trans

	rc := n.cfg.raftConfig()
	rc.Logger = hl
	r, err := raft.NewRaft(rc, wrapFSM(fsm, n.applied, n.cfg.ObserveApply), logs, store, snaps, trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.raft = r
	n.logger.Info("raft started", "raft_addr", n.RaftAddr(), "existing_state", existing,
		"applied_index", n.AppliedIndex(), "last_index", r.LastIndex())

	switch {
	case !n.cfg.Bootstrap:
	case existing:
		n.logger.Info("existing raft state found, not bootstrapping")
	default:
		conf := n.bootstrapConfiguration()
		if err := r.BootstrapCluster(conf).Error(); err != nil {
			return fmt.Errorf("cluster: bootstrap: %w", err)
		}
		n.logger.Info("bootstrapped raft configuration", "servers", len(conf.Servers))
	}
	return nil
}

func (n *Node) bootstrapConfiguration() raft.Configuration {
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: n.transport.LocalAddr()}
	conf := raft.Configuration{Servers: []raft.Server{self}}
	for _, p := range n.cfg.BootstrapPeers {
		if p.ID == n.cfg.NodeID {
			continue
		}
		suffrage := raft.Voter
		if p.Suffrage == raft.Nonvoter.String() {
			suffrage = raft.Nonvoter
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: suffrage, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	return conf
}

// closeOnFailure releases whatever start managed to open.
func (n *Node) closeOnFailure() {
	n.closed.Store(true)
	close(n.shutdownCh)
	switch {
	case n.raft != nil:
		_ = n.raft.Shutdown().Error() // also closes the transport
	case n.transport != nil:
		_ = n.transport.Close()
	}
	if n.store != nil {
		_ = n.store.Close()
	}
}

// Shutdown stops Raft, then closes the transport and the BoltDB store. It is
// idempotent: later calls return the first call's result. Leadership
// subscriptions are closed.
func (n *Node) Shutdown() error {
	n.shutdown.Do(func() {
		n.closed.Store(true)
		close(n.shutdownCh)
		var errs []error
		if err := n.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft: %w", err))
		}
		n.wg.Wait()
		n.subsMu.Lock()
		n.subsDone = true
		for s := range n.subs {
			close(s.ch)
			delete(n.subs, s)
		}
		n.subsMu.Unlock()
		if err := n.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bolt store: %w", err))
		}
		if len(errs) > 0 {
			n.shutErr = fmt.Errorf("cluster: shutdown: %w", errors.Join(errs...))
		}
		n.logger.Info("raft shut down")
	})
	return n.shutErr
}

// ID returns this node's ID.
func (n *Node) ID() string { return n.cfg.NodeID }

// RaftAddr returns the address other nodes reach this node's Raft transport
// at (the bound address, or RaftAdvertiseAddr).
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// IsLeader reports whether this node currently believes it is the leader.
func (n *Node) IsLeader() bool { return n.raft.State() == raft.Leader }

// LeaderID returns the current leader's ID and Raft address, empty if no
// leader is known.
func (n *Node) LeaderID() (id string, raftAddr string) {
	addr, sid := n.raft.LeaderWithID()
	return string(sid), string(addr)
}

func (n *Node) notLeader(cause error) error {
	id, addr := n.LeaderID()
	if id == n.cfg.NodeID {
		// During a leadership transfer or step-down raft may still name us;
		// don't send a forwarder back to ourselves.
		id, addr = "", ""
	}
	return &NotLeaderError{LeaderID: id, LeaderAddr: addr, Cause: cause}
}

// WaitForLeader blocks until some leader (possibly this node) is known.
func (n *Node) WaitForLeader(ctx context.Context) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		if n.closed.Load() {
			return ErrShutdown
		}
		if id, _ := n.LeaderID(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for a leader: %w", ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		case <-t.C:
		}
	}
}

// AppliedIndex returns the highest log index whose effects this node's FSM
// reflects: every entry up to it has been applied by the FSM (or is covered
// by a restored snapshot, or never reaches the FSM: no-ops and barriers).
// Unlike raft's AppliedIndex it never runs ahead of the FSM.
func (n *Node) AppliedIndex() uint64 {
	idx, _ := n.applied.get()
	if n.closed.Load() {
		return idx
	}
	dispatched := n.raft.AppliedIndex()
	if idx >= dispatched {
		return idx
	}
	// A snapshot's index never exceeds what the FSM has applied or been
	// restored to: local snapshots are taken of the FSM's state, and raft
	// records an installed snapshot's index after Restore returns. This
	// covers restores, which the FSM wrapper cannot see the index of; only
	// a restore with nothing applied since can put the FSM past idx.
	if n.applied.restoredSinceApply() {
		if s := n.lastSnapshotIndex(); s > idx {
			idx = min(s, dispatched)
		}
	}
	// Entries after idx that raft has dispatched and that never reach the
	// FSM (the leader's no-op, barriers) do not change its state.
	for i := idx + 1; i <= dispatched && i <= idx+maxTransparentScan; i++ {
		var l raft.Log
		if err := n.logs.GetLog(i, &l); err != nil || !transparent(l.Type) {
			break
		}
		idx = i
	}
	return idx
}

func (n *Node) lastSnapshotIndex() uint64 {
	v, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	return v
}

// WaitForApplied blocks until AppliedIndex() >= index: this node's FSM
// reflects every entry up to index (read-your-writes on a follower).
func (n *Node) WaitForApplied(ctx context.Context, index uint64) error {
	var tick <-chan time.Time
	for {
		if n.closed.Load() {
			return ErrShutdown
		}
		cur, advanced := n.applied.get()
		if cur >= index || n.AppliedIndex() >= index {
			return nil
		}
		if tick == nil {
			// Progress through entries that never reach the FSM is not
			// signalled: poll for it.
			t := time.NewTicker(pollInterval)
			defer t.Stop()
			tick = t.C
		}
		select {
		case <-advanced:
		case <-tick:
		case <-ctx.Done():
			return fmt.Errorf("cluster: waiting for applied index %d (at %d): %w", index, n.AppliedIndex(), ctx.Err())
		case <-n.shutdownCh:
			return ErrShutdown
		}
	}
}

// Status returns a snapshot of this node's Raft state.
func (n *Node) Status() Status {
	leaderAddr, leaderID := n.raft.LeaderWithID()
	s := Status{
		NodeID:       n.cfg.NodeID,
		RaftAddr:     n.RaftAddr(),
		State:        n.raft.State().String(),
		LeaderID:     string(leaderID),
		LeaderAddr:   string(leaderAddr),
		Term:         n.raft.CurrentTerm(),
		AppliedIndex: n.AppliedIndex(),
		CommitIndex:  n.raft.CommitIndex(),
		LastLogIndex: n.raft.LastIndex(),
		Peers:        []Peer{},
	}
	if n.closed.Load() {
		s.State = raft.Shutdown.String()
	}
	if s.State != raft.Leader.String() {
		s.LastContact = n.raft.LastContact()
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			s.Peers = append(s.Peers, Peer{ID: string(srv.ID), Addr: string(srv.Address), Suffrage: srv.Suffrage.String()})
		}
	}
	return s
}

// Snapshot makes raft take a snapshot now and compact the log (tests,
// operators). It returns raft.ErrNothingNewToSnapshot, wrapped, if nothing
// was applied since the last one.
func (n *Node) Snapshot() error {
	if n.closed.Load() {
		return ErrShutdown
	}
	if err := n.raft.Snapshot().Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return ErrShutdown
		}
		return fmt.Errorf("cluster: snapshot: %w", err)
	}
	return nil
}

// LeaderCh returns a new subscription to this node's leadership (see
// SubscribeLeadership) that lasts until Shutdown. Call it once per consumer.
func (n *Node) LeaderCh() <-chan bool {
	ch, _ := n.SubscribeLeadership()
	return ch
}

// SubscribeLeadership returns a channel that first receives whether this
// node is the leader now, then every change: true on gaining leadership,
// false on losing it. Only the latest value is buffered, so a slow reader may
// see true twice in a row, meaning leadership was lost and regained in
// between: restart leader-only work (and Barrier) on every true. The
// channel is closed by cancel and by Shutdown.
func (n *Node) SubscribeLeadership() (ch <-chan bool, cancel func()) {
	s := &leaderSub{ch: make(chan bool, 1)}
	n.subsMu.Lock()
	defer n.subsMu.Unlock()
	if n.subsDone {
		close(s.ch)
		return s.ch, func() {}
	}
	n.subs[s] = struct{}{}
	s.ch <- n.isLeader
	return s.ch, func() {
		n.subsMu.Lock()
		defer n.subsMu.Unlock()
		if _, ok := n.subs[s]; ok {
			delete(n.subs, s)
			close(s.ch)
		}
	}
}

// watchLeadership is the only reader of raft's LeaderCh; it fans changes out
// to subscribers.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	for {
		select {
		case v := <-n.raft.LeaderCh():
			if v {
				n.logger.Info("gained leadership")
			} else {
				n.logger.Info("lost leadership")
			}
			n.subsMu.Lock()
			n.isLeader = v
			for s := range n.subs {
				// Keep only the latest value (subsMu excludes other senders).
				select {
				case <-s.ch:
				default:
				}
				s.ch <- v
			}
			n.subsMu.Unlock()
		case <-n.shutdownCh:
			return
		}
	}
}
