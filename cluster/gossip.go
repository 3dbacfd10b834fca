package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
)

// Gossip tunables (zero fields of MembershipConfig take these).
const (
	// DefaultReconcileInterval: the leader compares gossip membership with
	// the Raft configuration this often, besides on every membership event.
	DefaultReconcileInterval = time.Second
	// DefaultRejoinInterval: while some seed or some known node is not
	// alive, a node tries to (re)join them this often, so a node started
	// before its seeds, or a partition that outlived memberlist's memory of
	// dead nodes, heals by itself.
	DefaultRejoinInterval = 2 * time.Second

	// gossipLabel keeps kmsd's gossip apart from any other memberlist
	// traffic on the same network; the encryption key (derived from the
	// region root key) keeps regions and strangers apart.
	gossipLabel = "kmsd"
)

// MembershipConfig configures gossip membership.
type MembershipConfig struct {
	NodeID   string
	Region   string
	RaftAddr string // this node's Raft address as peers dial it
	HTTPAddr string // this node's HTTP API address as peers dial it
	// GossipAddr is host:port to bind memberlist's UDP and TCP listeners;
	// it is also advertised, so it must be reachable by peers (port 0
	// picks a free port, for tests).
	GossipAddr string
	// Join lists gossip seeds (host:port). This node's own address may be
	// among them (every node can get the same list). Joining is retried in
	// the background until a seed answers.
	Join []string
	// BootstrapExpect > 1: bootstrap a new cluster once this many nodes of
	// the region, none with Raft state, see each other. 0 or 1: never
	// bootstrap from gossip (a single node bootstraps itself in New; a node
	// joining an existing cluster is added by its leader).
	BootstrapExpect int
	// SecretKey encrypts gossip (AES-GCM; 16, 24 or 32 bytes). It is copied.
	SecretKey []byte
	Logger    *slog.Logger

	ReconcileInterval time.Duration
	RejoinInterval    time.Duration
	// Fast shortens memberlist's failure detection for loopback tests.
	Fast bool
}

// Member is one node as gossip sees it.
type Member struct {
	NodeID     string `json:"node_id"`
	Region     string `json:"region"`
	RaftAddr   string `json:"raft_addr"`
	HTTPAddr   string `json:"http_addr"`
	GossipAddr string `json:"gossip_addr"`
	Alive      bool   `json:"alive"`
	Left       bool   `json:"left"` // left gracefully (SIGTERM); dead otherwise when !Alive
}

// nodeMeta is what a node gossips about itself.
type nodeMeta struct {
	NodeID          string `json:"id"`
	Region          string `json:"r"`
	RaftAddr        string `json:"raft"`
	HTTPAddr        string `json:"http"`
	BootstrapExpect int    `json:"bx,omitempty"`
	HasState        bool   `json:"st,omitempty"`
	// Leaving is gossiped just before a graceful leave. memberlist's leave
	// events do not say whether a node left or failed, so the node says so
	// itself while it still can.
	Leaving bool `json:"lv,omitempty"`
}

// Membership runs memberlist for a Node: it bootstraps a new cluster with
// bootstrap-expect, and on the leader keeps the Raft configuration in step
// with gossip (alive nodes become voters; nodes that left are removed).
type Membership struct {
	cfg    MembershipConfig
	node   *Node
	logger *slog.Logger
	list   *memberlist.Memberlist

	mu       sync.Mutex
	members  map[string]*Member // by node id, including dead and left ones
	metas    map[string]nodeMeta
	leaving  map[string]bool // asked the leader to remove them (MarkLeaving)
	selfMeta nodeMeta
	left     bool

	// updateMu serialises memberlist.UpdateNode and Leave: a newer
	// broadcast about this node replaces an older one still queued, so an
	// unrelated meta refresh must not cancel the leave announcement.
	updateMu sync.Mutex

	kick   chan struct{} // wakes the loop after a membership event
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Validate reports a configuration membership cannot run with.
func (c MembershipConfig) Validate() error {
	var errs []error
	if err := validateID(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("node id: %w", err))
	}
	if c.Region == "" {
		errs = append(errs, errors.New("region is empty"))
	}
	for name, a := range map[string]string{"raft address": c.RaftAddr, "http address": c.HTTPAddr, "gossip address": c.GossipAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", name, a, err))
		}
	}
	switch len(c.SecretKey) {
	case 16, 24, 32:
	default:
		errs = append(errs, fmt.Errorf("secret key has %d bytes, want 16, 24 or 32", len(c.SecretKey)))
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d is negative", c.BootstrapExpect))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cluster: membership config: %w", err)
	}
	return nil
}

// StartMembership starts gossip for node and returns once memberlist
// listens. Joining the seeds, bootstrapping and reconciling run in the
// background until Shutdown (or ctx ends).
func StartMembership(ctx context.Context, cfg MembershipConfig, node *Node) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ReconcileInterval <= 0 {
		cfg.ReconcileInterval = DefaultReconcileInterval
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = DefaultRejoinInterval
	}
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	m := &Membership{
		cfg:     cfg,
		node:    node,
		logger:  cfg.Logger.With("component", "gossip", "node_id", cfg.NodeID),
		members: map[string]*Member{},
		metas:   map[string]nodeMeta{},
		leaving: map[string]bool{},
		kick:    make(chan struct{}, 1),
	}
	m.selfMeta = nodeMeta{NodeID: cfg.NodeID, Region: cfg.Region, RaftAddr: cfg.RaftAddr,
		HTTPAddr: cfg.HTTPAddr, BootstrapExpect: cfg.BootstrapExpect, HasState: node.HasState()}

	host, portStr, _ := net.SplitHostPort(cfg.GossipAddr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("cluster: gossip port %q: %w", portStr, err)
	}
	mc := memberlist.DefaultLANConfig()
	if cfg.Fast {
		mc = memberlist.DefaultLocalConfig()
	}
	mc.Name = cfg.NodeID
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertiseAddr, mc.AdvertisePort = host, port
	mc.Label = gossipLabel
	mc.SecretKey = cfg.SecretKey
	mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	mc.Delegate = (*metaDelegate)(m)
	mc.Events = (*eventDelegate)(m)
	// A node restarted at a new address may take its name back after this
	// long instead of being refused as a conflict.
	mc.DeadNodeReclaimTime = 10 * time.Second
	mc.Logger = newHCLogger(cfg.Logger.With("node_id", cfg.NodeID), "memberlist").
		StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start gossip on %s: %w", cfg.GossipAddr, err)
	}
	m.list = list
	if port == 0 {
		// Advertise the port actually bound (tests).
		ln := list.LocalNode()
		m.cfg.GossipAddr = net.JoinHostPort(host, strconv.Itoa(int(ln.Port)))
	}
	m.logger.Info("gossip started", "gossip_addr", m.cfg.GossipAddr, "seeds", cfg.Join,
		"bootstrap_expect", cfg.BootstrapExpect, "has_state", m.selfMeta.HasState)

	ctx, m.cancel = context.WithCancel(ctx)
	m.wg.Add(1)
	go m.loop(ctx)
	return m, nil
}

// GossipAddr returns the address this node gossips on.
func (m *Membership) GossipAddr() string { return m.cfg.GossipAddr }

// HTTPAddr returns the HTTP address gossip knows for nodeID (alive or not).
func (m *Membership) HTTPAddr(nodeID string) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mem, ok := m.members[nodeID]; ok && mem.HTTPAddr != "" {
		return mem.HTTPAddr, true
	}
	return "", false
}

// Members returns every node gossip has heard of, sorted by id.
func (m *Membership) Members() []Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		out = append(out, *mem)
	}
	slices.SortFunc(out, func(a, b Member) int {
		switch {
		case a.NodeID < b.NodeID:
			return -1
		case a.NodeID > b.NodeID:
			return 1
		}
		return 0
	})
	return out
}

// Leave leaves the cluster gracefully. It gossips that this node is
// leaving (so no leader adds it back), calls removeSelf (which asks the
// leader to remove this node from the Raft configuration, handing over
// leadership first if needed: Forwarder.Leave), then leaves gossip. The
// whole takes at most timeout.
func (m *Membership) Leave(timeout time.Duration, removeSelf func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	m.mu.Lock()
	m.left = true
	m.selfMeta.Leaving = true
	m.mu.Unlock()
	if err := m.list.UpdateNode(timeout / 4); err != nil {
		m.logger.Warn("gossiping the leave", "err", err)
	}
	var errs []error
	if removeSelf != nil {
		if err := removeSelf(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.list.Leave(timeout / 4); err != nil {
		errs = append(errs, fmt.Errorf("cluster: gossip leave: %w", err))
	}
	return errors.Join(errs...)
}

// MarkLeaving records that nodeID asked the leader to remove it, so that
// reconciliation does not add it back while gossip still reports it alive.
// The mark is dropped once gossip reports the node gone: if it comes back
// later, it is a restart and is added again.
func (m *Membership) MarkLeaving(nodeID string) {
	m.mu.Lock()
	m.leaving[nodeID] = true
	m.mu.Unlock()
}

// Shutdown stops gossip without leaving (peers see the node as failed).
func (m *Membership) Shutdown() error {
	var err error
	m.once.Do(func() {
		m.cancel()
		m.wg.Wait()
		err = m.list.Shutdown()
	})
	return err
}

// loop joins the seeds, then bootstraps or reconciles on every event and tick.
func (m *Membership) loop(ctx context.Context) {
	defer m.wg.Done()
	leaderCh, cancelSub := m.node.SubscribeLeadership()
	defer cancelSub()
	reconcile := time.NewTicker(m.cfg.ReconcileInterval)
	defer reconcile.Stop()
	rejoin := time.NewTimer(0)
	defer rejoin.Stop()
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			return
		case <-rejoin.C:
			if m.rejoin() {
				backoff = m.cfg.RejoinInterval
			} else {
				backoff = min(2*backoff, m.cfg.RejoinInterval)
			}
			rejoin.Reset(backoff)
		case _, ok := <-leaderCh:
			if !ok {
				return
			}
		case <-m.kick:
		case <-reconcile.C:
		}
		m.refreshMeta()
		m.maybeBootstrap()
		m.reconcile(ctx)
	}
}

// rejoin tries the seeds and every known node that is not alive; it
// reports whether nothing needed joining or a join succeeded.
func (m *Membership) rejoin() bool {
	m.mu.Lock()
	left := m.left
	var addrs []string
	for _, mem := range m.members {
		if !mem.Alive && !mem.Left && mem.GossipAddr != "" {
			addrs = append(addrs, mem.GossipAddr)
		}
	}
	known := map[string]bool{}
	for _, mem := range m.members {
		if mem.Alive {
			known[mem.GossipAddr] = true
		}
	}
	m.mu.Unlock()
	if left {
		return true
	}
	for _, s := range m.cfg.Join {
		if s != m.cfg.GossipAddr && !known[s] && !slices.Contains(addrs, s) {
			addrs = append(addrs, s)
		}
	}
	if len(addrs) == 0 {
		return true
	}
	n, err := m.list.Join(addrs)
	if n > 0 {
		m.logger.Debug("joined gossip", "contacted", n, "of", addrs)
		return true
	}
	m.logger.Debug("gossip join failed; retrying", "addrs", addrs, "err", err)
	return false
}

// refreshMeta gossips HasState once this node has Raft state.
func (m *Membership) refreshMeta() {
	has := m.node.HasState()
	m.updateMu.Lock()
	defer m.updateMu.Unlock()
	m.mu.Lock()
	changed := has != m.selfMeta.HasState && !m.selfMeta.Leaving
	m.selfMeta.HasState = has
	m.mu.Unlock()
	if changed {
		if err := m.list.UpdateNode(time.Second); err != nil {
			m.logger.Debug("gossip meta update", "err", err)
		}
	}
}

// maybeBootstrap bootstraps a new cluster once BootstrapExpect nodes of
// this region that expect the same number, none with Raft state, are alive.
// Every such node computes the same set (the first BootstrapExpect ids in
// order), so they all bootstrap the same configuration; a node outside that
// set waits to be added by the leader.
func (m *Membership) maybeBootstrap() {
	if m.cfg.BootstrapExpect <= 1 || m.node.HasState() {
		return
	}
	m.mu.Lock()
	var cands []Peer
	for _, mem := range m.members {
		if !mem.Alive || mem.Region != m.cfg.Region {
			continue
		}
		meta := m.metaOfLocked(mem.NodeID)
		if meta.HasState {
			m.mu.Unlock()
			return // a cluster exists: its leader adds us
		}
		if meta.BootstrapExpect != m.cfg.BootstrapExpect {
			continue
		}
		cands = append(cands, Peer{ID: mem.NodeID, Addr: mem.RaftAddr})
	}
	m.mu.Unlock()
	if len(cands) < m.cfg.BootstrapExpect {
		return
	}
	slices.SortFunc(cands, func(a, b Peer) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	cands = cands[:m.cfg.BootstrapExpect]
	if !slices.ContainsFunc(cands, func(p Peer) bool { return p.ID == m.cfg.NodeID }) {
		return
	}
	m.logger.Info("bootstrap-expect reached; bootstrapping", "servers", cands)
	if err := m.node.BootstrapWith(cands); err != nil {
		m.logger.Error("bootstrap", "err", err)
	}
}

// reconcile (leader only) adds alive members of the region as voters and
// removes members that left gracefully. Failed (dead) members stay: they
// are expected back, and removing them would shrink the quorum silently.
func (m *Membership) reconcile(ctx context.Context) {
	if !m.node.IsLeader() {
		return
	}
	m.mu.Lock()
	members := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		members = append(members, *mem)
	}
	leaving := maps.Clone(m.leaving)
	m.mu.Unlock()
	voters, err := m.node.Voters()
	if err != nil {
		return
	}
	inConf := map[string]string{}
	for _, v := range voters {
		if v.Suffrage == "Voter" {
			inConf[v.ID] = v.Addr
		}
	}
	for _, mem := range members {
		if mem.Region != m.cfg.Region || mem.NodeID == m.cfg.NodeID {
			continue
		}
		switch {
		case mem.Left:
			if _, ok := inConf[mem.NodeID]; ok {
				m.logger.Info("removing node that left", "id", mem.NodeID)
				if err := m.node.RemoveServer(ctx, mem.NodeID); err != nil {
					m.logger.Warn("remove server", "id", mem.NodeID, "err", err)
				}
			}
		case mem.Alive && !leaving[mem.NodeID]:
			if addr, ok := inConf[mem.NodeID]; !ok || addr != mem.RaftAddr {
				m.logger.Info("adding voter", "id", mem.NodeID, "raft_addr", mem.RaftAddr)
				if err := m.node.AddVoter(ctx, mem.NodeID, mem.RaftAddr); err != nil {
					m.logger.Warn("add voter", "id", mem.NodeID, "err", err)
				}
			}
		}
	}
}

// metaOfLocked returns the last gossiped meta of a member (m.mu held).
func (m *Membership) metaOfLocked(id string) nodeMeta {
	if id == m.cfg.NodeID {
		return m.selfMeta
	}
	return m.metas[id]
}

// observe records a memberlist node (called from memberlist's callbacks,
// which hold memberlist's lock: only record and signal here).
func (m *Membership) observe(n *memberlist.Node, alive bool) {
	var meta nodeMeta
	if err := json.Unmarshal(n.Meta, &meta); err != nil || meta.NodeID != n.Name {
		m.logger.Warn("ignoring gossip member with bad metadata", "name", n.Name)
		return
	}
	m.logger.Debug("gossip member", "id", n.Name, "alive", alive, "leaving", meta.Leaving)
	m.mu.Lock()
	m.metas[n.Name] = meta
	if !alive {
		delete(m.leaving, n.Name)
	}
	m.members[n.Name] = &Member{
		NodeID:     meta.NodeID,
		Region:     meta.Region,
		RaftAddr:   meta.RaftAddr,
		HTTPAddr:   meta.HTTPAddr,
		GossipAddr: net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port))),
		Alive:      alive && !meta.Leaving,
		Left:       meta.Leaving,
	}
	m.mu.Unlock()
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

type eventDelegate Membership

func (d *eventDelegate) NotifyJoin(n *memberlist.Node)   { (*Membership)(d).observe(n, true) }
func (d *eventDelegate) NotifyLeave(n *memberlist.Node)  { (*Membership)(d).observe(n, false) }
func (d *eventDelegate) NotifyUpdate(n *memberlist.Node) { (*Membership)(d).observe(n, true) }

type metaDelegate Membership

func (d *metaDelegate) NodeMeta(limit int) []byte {
	m := (*Membership)(d)
	m.mu.Lock()
	b, _ := json.Marshal(m.selfMeta)
	m.mu.Unlock()
	if len(b) > limit {
		m.logger.Error("gossip metadata too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (d *metaDelegate) NotifyMsg([]byte)                    {}
func (d *metaDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *metaDelegate) LocalState(bool) []byte              { return nil }
func (d *metaDelegate) MergeRemoteState(buf []byte, _ bool) {}
