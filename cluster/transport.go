package cluster

import (
	"fmt"
	"net"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// newTransport creates the Raft network transport: plain TCP, or mutual
// TLS (a TLS StreamLayer, see tls.go) when cfg.TLS is set.
func newTransport(cfg Config, logger hclog.Logger) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	if cfg.RaftAdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", cfg.RaftAdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: resolve raft advertise address %q: %w", cfg.RaftAdvertiseAddr, err)
		}
		advertise = a
	}
	if cfg.TLS != nil {
		stream, err := newTLSStreamLayer(cfg.RaftAddr, advertise, cfg.TLS, logger)
		if err != nil {
			return nil, fmt.Errorf("cluster: raft tls transport on %s: %w", cfg.RaftAddr, err)
		}
		return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  stream,
			MaxPool: cfg.TransportMaxPool,
			Timeout: cfg.TransportTimeout,
			Logger:  logger,
		}), nil
	}
	t, err := raft.NewTCPTransportWithLogger(cfg.RaftAddr, advertise, cfg.TransportMaxPool, cfg.TransportTimeout, logger)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", cfg.RaftAddr, err)
	}
	return t, nil
}
