package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/hashicorp/raft"
)

// Defaults for the zero fields of Config. They are tuned for a LAN (loopback
// to a few hundred microseconds of round trip, local SSDs).
const (
	// DefaultHeartbeatTimeout: a follower that hears nothing from the leader
	// for a random time in [t, 2t) starts an election. Leaders heartbeat
	// every t/10 (50ms). 500ms gives failover in about 0.5-1.5s while
	// tolerating GC pauses and fsync stalls of a few hundred ms; raft's 1s
	// default is tuned for WANs and busy shared hosts.
	DefaultHeartbeatTimeout = 500 * time.Millisecond
	// DefaultElectionTimeout: how long a candidate waits for votes before
	// starting another round (randomised the same way). Equal to the
	// heartbeat timeout, as raft requires it to be at least that.
	DefaultElectionTimeout = 500 * time.Millisecond
	// DefaultLeaderLeaseTimeout: a leader that cannot reach a quorum for
	// this long steps down, so clients of a partitioned leader get
	// ErrNotLeader quickly instead of timeouts. Half the heartbeat timeout,
	// the ratio Consul uses.
	DefaultLeaderLeaseTimeout = 250 * time.Millisecond
	// DefaultCommitTimeout: with no new entries, the leader still sends an
	// AppendEntries after a random time in [t, 2t) so followers learn the
	// new commit index. This bounds how long a follower lags behind an
	// acknowledged write (design section 4); raft's 50ms default would add
	// up to 100ms. The cost is a few hundred tiny RPCs per second per
	// follower when idle, negligible on a LAN.
	DefaultCommitTimeout = 5 * time.Millisecond
	// DefaultSnapshotThreshold and DefaultSnapshotInterval: every
	// interval (randomised up to 2x) raft snapshots if at least threshold
	// entries were appended since the last snapshot. KMS state is small, so
	// snapshots are cheap; these keep restart replay and log size bounded.
	DefaultSnapshotThreshold = 8192
	DefaultSnapshotInterval  = 60 * time.Second
	// DefaultTrailingLogs entries are kept after a snapshot so a briefly
	// lagging follower catches up from the log rather than by a snapshot.
	DefaultTrailingLogs = 10240
	// DefaultSnapshotRetain file snapshots are kept.
	DefaultSnapshotRetain = 2
	// DefaultApplyTimeout bounds Propose, Barrier and membership changes
	// when the caller's context has no earlier deadline.
	DefaultApplyTimeout = 5 * time.Second
	// DefaultTransportTimeout is the I/O deadline of Raft RPCs (snapshot
	// transfers scale it with their size).
	DefaultTransportTimeout = 10 * time.Second
	// DefaultTransportMaxPool is the number of pooled connections per peer.
	DefaultTransportMaxPool = 3
	// DefaultMaxAppendEntries bounds the group commit: the leader writes
	// (one fsync) and replicates up to this many proposals that arrived
	// while its previous write was in progress as one batch, and the FSM
	// applies up to this many committed entries per ApplyBatch. Raft's
	// default of 64 caps a batch at 64 concurrent writers; 256 lets a busier
	// leader amortise each fsync and round trip over more proposals, while
	// one AppendEntries RPC stays around half a megabyte with CreateKey
	// entries of about 2 KiB.
	DefaultMaxAppendEntries = 256
)

// Config configures a Node. Zero durations and counts take the Default*
// values above.
type Config struct {
	// NodeID identifies this node in the Raft configuration for all time.
	NodeID string
	// DataDir holds raft/raft.db and raft/snapshots/.
	DataDir string
	// RaftAddr is the host:port the Raft TCP transport binds. A zero port
	// ("127.0.0.1:0") picks a free one: Node.RaftAddr reports the result.
	RaftAddr string
	// RaftAdvertiseAddr is the address other nodes use to reach this one,
	// if it differs from RaftAddr (NAT, containers, binding 0.0.0.0).
	// Optional; required when RaftAddr's host is unspecified.
	RaftAdvertiseAddr string
	// Bootstrap makes the node create an initial configuration if it has
	// no existing Raft state: itself plus BootstrapPeers (voters unless a
	// peer's Suffrage is "Nonvoter"). With
	// existing state it is ignored, so it is safe to leave on across
	// restarts (dev mode).
	Bootstrap bool
	// BootstrapPeers are the other voters of the initial configuration
	// (bootstrap-expect: every node bootstraps the same set). An entry with
	// this node's ID is allowed and replaced by this node's own address.
	BootstrapPeers []Peer
	// Logger receives the node's and raft's logs. Nil discards them.
	Logger *slog.Logger
	// ObserveApply, if set, is called after the FSM applies each command
	// with how long Apply took (metrics).
	ObserveApply func(time.Duration)

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	SnapshotInterval   time.Duration
	TrailingLogs       uint64
	SnapshotRetain     int
	// MaxAppendEntries is the largest group commit (see
	// DefaultMaxAppendEntries); at most 1024.
	MaxAppendEntries int

	// ApplyTimeout bounds one Propose, Barrier or membership change when
	// the caller's context has no earlier deadline.
	ApplyTimeout time.Duration

	TransportTimeout time.Duration
	TransportMaxPool int

	// TLS, if set, runs Raft over mutual TLS (every peer's certificate
	// must chain to the cluster CA); nil means plain TCP.
	TLS *ClusterTLS
}

// withDefaults returns c with every zero tunable set to its default.
func (c Config) withDefaults() Config {
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	setDur(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDur(&c.ElectionTimeout, DefaultElectionTimeout)
	setDur(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	setDur(&c.CommitTimeout, DefaultCommitTimeout)
	setDur(&c.SnapshotInterval, DefaultSnapshotInterval)
	setDur(&c.ApplyTimeout, DefaultApplyTimeout)
	setDur(&c.TransportTimeout, DefaultTransportTimeout)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = DefaultSnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = DefaultTrailingLogs
	}
	if c.SnapshotRetain == 0 {
		c.SnapshotRetain = DefaultSnapshotRetain
	}
	if c.TransportMaxPool == 0 {
		c.TransportMaxPool = DefaultTransportMaxPool
	}
	if c.MaxAppendEntries == 0 {
		c.MaxAppendEntries = DefaultMaxAppendEntries
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports whether c (with defaults applied to its zero fields) can
// start a node. It does not touch the disk or the network.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if err := validateID(c.NodeID); err != nil {
		errs = append(errs, fmt.Errorf("NodeID: %w", err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("DataDir is required"))
	}
	if c.RaftAddr == "" {
		errs = append(errs, errors.New("RaftAddr is required"))
	} else if host, err := splitHostPort(c.RaftAddr); err != nil {
		errs = append(errs, fmt.Errorf("RaftAddr %q: %w", c.RaftAddr, err))
	} else if c.RaftAdvertiseAddr == "" && unspecifiedHost(host) {
		errs = append(errs, fmt.Errorf("RaftAddr %q binds every interface: set RaftAdvertiseAddr", c.RaftAddr))
	}
	if c.RaftAdvertiseAddr != "" {
		if err := validateAdvertise(c.RaftAdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("RaftAdvertiseAddr %q: %w", c.RaftAdvertiseAddr, err))
		}
	}
	seen := map[string]bool{}
	for i, p := range c.BootstrapPeers {
		if err := validateID(p.ID); err != nil {
			errs = append(errs, fmt.Errorf("BootstrapPeers[%d].ID: %w", i, err))
		}
		if seen[p.ID] {
			errs = append(errs, fmt.Errorf("BootstrapPeers[%d]: duplicate ID %q", i, p.ID))
		}
		seen[p.ID] = true
		if p.ID == c.NodeID {
			continue // replaced by this node's own address
		}
		if _, err := splitHostPort(p.Addr); err != nil {
			errs = append(errs, fmt.Errorf("BootstrapPeers[%d].Addr %q: %w", i, p.Addr, err))
		}
	}
	for name, d := range map[string]time.Duration{
		"HeartbeatTimeout":   c.HeartbeatTimeout,
		"ElectionTimeout":    c.ElectionTimeout,
		"LeaderLeaseTimeout": c.LeaderLeaseTimeout,
		"CommitTimeout":      c.CommitTimeout,
		"SnapshotInterval":   c.SnapshotInterval,
		"ApplyTimeout":       c.ApplyTimeout,
		"TransportTimeout":   c.TransportTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s must not be negative (got %s)", name, d))
		}
	}
	if c.SnapshotRetain < 1 {
		errs = append(errs, fmt.Errorf("SnapshotRetain must be at least 1 (got %d)", c.SnapshotRetain))
	}
	if c.TransportMaxPool < 1 {
		errs = append(errs, fmt.Errorf("TransportMaxPool must be at least 1 (got %d)", c.TransportMaxPool))
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		errs = append(errs, fmt.Errorf("MaxAppendEntries must be 1 to 1024 (got %d)", c.MaxAppendEntries))
	}
	if len(errs) == 0 {
		// raft's own rules (lease <= heartbeat <= election, minimums).
		if err := raft.ValidateConfig(c.raftConfig()); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cluster: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// raftConfig builds raft's configuration; c must have its defaults applied.
func (c Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.NodeID)
	rc.HeartbeatTimeout = c.HeartbeatTimeout
	rc.ElectionTimeout = c.ElectionTimeout
	rc.LeaderLeaseTimeout = c.LeaderLeaseTimeout
	rc.CommitTimeout = c.CommitTimeout
	rc.SnapshotThreshold = c.SnapshotThreshold
	rc.SnapshotInterval = c.SnapshotInterval
	rc.TrailingLogs = c.TrailingLogs
	// Group commit: proposals queue in a buffered channel (MaxAppendEntries
	// deep) while the leader loop writes the previous batch, instead of each
	// caller blocking on an unbuffered send, and the leader takes all that
	// queued as its next batch. Raft's note that this "breaks the timeout
	// guarantee on Apply" does not matter here: Propose bounds the wait
	// with its own context.
	rc.MaxAppendEntries = c.MaxAppendEntries
	rc.BatchApplyCh = true
	// A removed server stays up as a follower outside the configuration
	// (raft does not let it start elections), so it can be added back
	// without a restart and can leave gracefully.
	rc.ShutdownOnRemove = false
	rc.NoLegacyTelemetry = true
	return rc
}

func validateID(id string) error {
	if id == "" {
		return errors.New("must not be empty")
	}
	if len(id) > 128 {
		return errors.New("longer than 128 bytes")
	}
	if strings.IndexFunc(id, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return errors.New("must not contain spaces or control characters")
	}
	return nil
}

func splitHostPort(addr string) (host string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", fmt.Errorf("bad port %q", port)
	}
	return host, nil
}

func unspecifiedHost(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

func validateAdvertise(addr string) error {
	host, err := splitHostPort(addr)
	if err != nil {
		return err
	}
	if unspecifiedHost(host) {
		return errors.New("host must be a reachable address")
	}
	if strings.HasSuffix(addr, ":0") {
		return errors.New("port must not be 0")
	}
	return nil
}
