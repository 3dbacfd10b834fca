package cluster

import (
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport creates the Raft network transport. It is the only place that
// knows the transport is plain TCP: mutual TLS replaces the stream layer here
// (raft.NewNetworkTransportWithConfig with a TLS StreamLayer).
func newTransport(cfg Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	if cfg.RaftAdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: resolve raft advertise address %q: %w", cfg.RaftAdvertiseAddr, err)
		}
		advertise = a
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, advertise, cfg.TransportMaxPool, cfg.TransportTimeout, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	return t, nil
}
