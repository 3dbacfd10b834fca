package cluster

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// AddVoter makes the server id, reachable at Raft address addr, a voter;
// this node must be the leader. It waits until the configuration change is
// committed. It is idempotent: if id is already a voter at addr nothing
// happens; a non-voter with that id is promoted; if id is known at another
// address, the old entry is removed and id added back at addr. A different
// server recorded at the same address (a node rebuilt with a new ID) is
// removed first. Errors are those of Propose.
func (n *Node) AddVoter(ctx context.Context, id, addr string) error {
	if err := validateID(id); err != nil {
		return fmt.Errorf("cluster: add voter: id: %w", err)
	}
	if _, err := splitHostPort(addr); err != nil {
		return fmt.Errorf("cluster: add voter %s: address %q: %w", id, addr, err)
	}
	if err := n.preflight(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()

	conf, err := n.configuration()
	if err != nil {
		return err
	}
	for _, s := range conf.Servers {
		if string(s.ID) == id && string(s.Address) == addr && s.Suffrage == raft.Voter {
			return nil
		}
	}
	for _, s := range conf.Servers {
		stale := string(s.Address) == addr && string(s.ID) != id
		// Raft can update a follower's address in place, but that races
		// with the follower's replication goroutine (hashicorp/raft#681,
		// #682, unfixed in v1.8.0): remove it and add it back instead.
		// The leader itself has no replication goroutine.
		moved := string(s.ID) == id && string(s.Address) != addr && id != n.cfg.NodeID
		if !stale && !moved {
			continue
		}
		n.logger.Info("removing server before adding voter", "old_id", s.ID, "old_addr", s.Address, "id", id, "addr", addr)
		if err := n.await(ctx, n.raft.RemoveServer(s.ID, 0, enqueueTimeout(ctx))); err != nil {
			return n.mapError("add voter: remove old entry", err)
		}
	}
	if err := n.await(ctx, n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, enqueueTimeout(ctx))); err != nil {
		return n.mapError("add voter", err)
	}
	n.logger.Info("added voter", "id", id, "addr", addr)
	return nil
}

// RemoveServer removes the server id from the configuration; this node must
// be the leader. Removing an unknown id is a no-op. A leader may remove
// itself: it steps down once the change is committed. Errors are those of
// Propose.
func (n *Node) RemoveServer(ctx context.Context, id string) error {
	if err := n.preflight(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ApplyTimeout)
	defer cancel()

	conf, err := n.configuration()
	if err != nil {
		return err
	}
	found := false
	for _, s := range conf.Servers {
		found = found || string(s.ID) == id
	}
	if !found {
		return nil
	}
	if err := n.await(ctx, n.raft.RemoveServer(raft.ServerID(id), 0, enqueueTimeout(ctx))); err != nil {
		return n.mapError("remove server", err)
	}
	n.logger.Info("removed server", "id", id)
	return nil
}

// configuration returns the latest (possibly uncommitted) configuration.
func (n *Node) configuration() (raft.Configuration, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrRaftShutdown) {
			return raft.Configuration{}, ErrShutdown
		}
		return raft.Configuration{}, fmt.Errorf("cluster: get configuration: %w", err)
	}
	return f.Configuration(), nil
}

// HasState reports whether this node has Raft state: it bootstrapped, was
// added to a cluster, or restored a snapshot. Gossip bootstraps a new cluster
// only when no node it sees has state.
func (n *Node) HasState() bool {
	return n.raft.LastIndex() > 0 || n.lastSnapshotIndex() > 0
}

// BootstrapWith creates the initial configuration (this node plus peers,
// all voters) if the node has no Raft state yet. Every node of a new cluster
// must bootstrap the same set; gossip's bootstrap-expect logic ensures that.
// Bootstrapping a node that already has state is a no-op.
func (n *Node) BootstrapWith(peers []Peer) error {
	if n.closed.Load() {
		return ErrShutdown
	}
	self := raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(n.cfg.NodeID), Address: n.transport.LocalAddr()}
	conf := raft.Configuration{Servers: []raft.Server{self}}
	for _, p := range peers {
		if p.ID == n.cfg.NodeID {
			continue
		}
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
	}
	err := n.raft.BootstrapCluster(conf).Error()
	switch {
	case errors.Is(err, raft.ErrCantBootstrap):
		return nil
	case err != nil:
		return fmt.Errorf("cluster: bootstrap: %w", err)
	}
	n.logger.Info("bootstrapped raft configuration", "servers", len(conf.Servers))
	return nil
}

// TransferLeadership asks raft to hand leadership to another voter and waits
// for the outcome (a node about to leave does this so that its removal is
// committed by its successor). It fails if this node is not the leader or
// there is no other voter.
func (n *Node) TransferLeadership(ctx context.Context) error {
	if err := n.preflight(ctx); err != nil {
		return err
	}
	if err := n.await(ctx, n.raft.LeadershipTransfer()); err != nil {
		return n.mapError("leadership transfer", err)
	}
	return nil
}

// Voters returns the IDs and addresses of the latest configuration's servers.
func (n *Node) Voters() ([]Peer, error) {
	conf, err := n.configuration()
	if err != nil {
		return nil, err
	}
	out := make([]Peer, 0, len(conf.Servers))
	for _, s := range conf.Servers {
		out = append(out, Peer{ID: string(s.ID), Addr: string(s.Address), Suffrage: s.Suffrage.String()})
	}
	return out, nil
}
