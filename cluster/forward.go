package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Node-to-node endpoints served by every node (mounted next to the API).
const (
	ProposePath   = "/internal/v1/propose"
	ReadIndexPath = "/internal/v1/read-index"
	LeavePath     = "/internal/v1/leave"

	headerNodeAuth = "X-Kmsd-Node-Auth"
	// HeaderCaller carries the original caller's identity on a forwarded
	// request, for the leader's logs.
	HeaderCaller = "X-Kmsd-Caller"

	forwardAuthLabel  = "kmsd-forward-v1"
	forwardClockSkew  = time.Minute
	maxForwardedBytes = 4 << 20

	// forwardTimeout bounds one forwarded call when ForwarderConfig.Client
	// is nil.
	forwardTimeout = 15 * time.Second
	// ForwardMaxIdleConnsPerHost is how many idle connections to the leader
	// a forwarder keeps. Every concurrent forwarded request holds its own
	// HTTP/1.1 connection; net/http's default of 2 idle per host means that
	// with more than 2 callers most forwards dial a new TCP (or TLS)
	// connection and the leader accepts and later closes it: measured at
	// about a fifth of the cluster's CPU per CreateKey at 64 callers. It is
	// sized for several hundred concurrent writers per node; idle
	// connections are closed after forwardIdleConnTimeout.
	ForwardMaxIdleConnsPerHost = 256
	forwardIdleConnTimeout     = 90 * time.Second
)

// NewForwardTransport returns the HTTP transport a Forwarder uses to reach
// the leader: net/http's defaults (proxy from the environment, HTTP/2 when
// TLS negotiates it) but with a connection pool deep enough that
// concurrent forwards reuse connections (ForwardMaxIdleConnsPerHost).
// tlsCfg is the client TLS configuration for https peers; nil for plain
// HTTP or the system roots.
func NewForwardTransport(tlsCfg *tls.Config) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.MaxIdleConnsPerHost = ForwardMaxIdleConnsPerHost
	// The per-host limit is the one that matters (a forwarder talks to one
	// leader at a time); the total only has to let it apply.
	tr.MaxIdleConns = 4 * ForwardMaxIdleConnsPerHost
	tr.IdleConnTimeout = forwardIdleConnTimeout
	return tr
}

// ForwarderConfig configures a Forwarder.
type ForwarderConfig struct {
	Node *Node
	// LeaderHTTPAddr maps a node id to that node's HTTP address (from
	// gossip). Nil on a single node: it never needs to forward.
	LeaderHTTPAddr func(nodeID string) (string, bool)
	// Secret authenticates node-to-node requests (HMAC-SHA256); every node
	// of a region derives the same one from the region root key.
	Secret []byte
	// Client sends forwarded requests; nil: a client with
	// NewForwardTransport(nil) and a 15 s timeout. A custom client should
	// pool connections the same way (see ForwardMaxIdleConnsPerHost).
	Client *http.Client
	Logger *slog.Logger
	// Scheme of peer HTTP addresses ("http" unless TLS is configured).
	Scheme string
	// RequireClientCert makes the handler refuse requests that did not
	// come over TLS with a verified client certificate (mutual TLS between
	// nodes: the server must verify client certificates against the
	// cluster CA, see ClusterTLS), in addition to the HMAC.
	RequireClientCert bool
	// OnLeave, if set, is told on the leader which node asked to leave
	// before it is removed (gossip must not add it back meanwhile).
	OnLeave func(nodeID string)
	// Caller, if set, names the client on whose behalf ctx proposes (for
	// example its principal ARN). It travels to the leader with a forwarded
	// proposal, covered by the node authentication, and the leader logs it.
	Caller func(ctx context.Context) string
}

// Forwarder lets any node propose: on the leader it proposes directly; on
// a follower it sends the command to the leader and waits until this
// node's own state machine has applied it, so the caller reads its own
// write at the node it talks to.
type Forwarder struct {
	cfg       ForwarderConfig
	log       *slog.Logger
	forwarded atomic.Uint64
	macs      sync.Pool // of HMAC-SHA256 keyed with cfg.Secret
	batch     batcher   // a follower's queue of commands for the leader
}

// NewForwarder checks the configuration.
func NewForwarder(cfg ForwarderConfig) (*Forwarder, error) {
	if cfg.Node == nil {
		return nil, errors.New("cluster: forwarder needs a node")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("cluster: forwarder secret must be at least 32 bytes")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: forwardTimeout, Transport: NewForwardTransport(nil)}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Scheme == "" {
		cfg.Scheme = "http"
	}
	cfg.Secret = bytes.Clone(cfg.Secret)
	f := &Forwarder{cfg: cfg, log: cfg.Logger}
	f.macs.New = func() any { return hmac.New(sha256.New, f.cfg.Secret) }
	return f, nil
}

// IsLeader reports whether this node leads.
func (f *Forwarder) IsLeader() bool { return f.cfg.Node.IsLeader() }

// Forwarded counts commands this node sent to the leader.
func (f *Forwarder) Forwarded() uint64 { return f.forwarded.Load() }

// Propose commits cmd through the leader. On the leader it returns the
// FSM's response; on a follower resp is nil (the response stays on the
// leader) and the caller reads the outcome from its own state machine,
// which has applied index when Propose returns. Across a leader change it
// retries once with the same bytes: the FSM deduplicates by request id.
func (f *Forwarder) Propose(ctx context.Context, cmd []byte) (resp any, index uint64, err error) {
	for attempt := 0; ; attempt++ {
		failedLeader, _ := f.cfg.Node.LeaderID()
		resp, index, err = f.proposeOnce(ctx, cmd)
		if err == nil || attempt == 1 || ctx.Err() != nil || !retryable(err) {
			return resp, index, err
		}
		f.log.Debug("retrying proposal after leader change", "failed_leader", failedLeader, "err", err)
		f.waitForLeaderChange(ctx, failedLeader)
	}
}

func retryable(err error) bool {
	return errors.Is(err, ErrNotLeader) || errors.Is(err, ErrOutcomeUnknown)
}

func (f *Forwarder) proposeOnce(ctx context.Context, cmd []byte) (any, uint64, error) {
	n := f.cfg.Node
	if n.IsLeader() {
		return n.Propose(ctx, cmd)
	}
	index, err := f.forwardQueued(ctx, cmd)
	if err != nil {
		return nil, 0, err
	}
	f.forwarded.Add(1)
	if err := n.WaitForApplied(ctx, index); err != nil {
		return nil, 0, fmt.Errorf("%w: committed at %d but not applied here: %v", ErrOutcomeUnknown, index, err)
	}
	return nil, index, nil
}

// ReadBarrier returns once this node's state machine holds every write
// committed before the call (a linearizable read point): the leader
// confirms its leadership with a barrier; a follower asks the leader for
// that index and waits to apply it.
func (f *Forwarder) ReadBarrier(ctx context.Context) error {
	n := f.cfg.Node
	if n.IsLeader() {
		return n.Barrier(ctx)
	}
	var out struct {
		Index uint64 `json:"index"`
	}
	if err := f.callLeader(ctx, ReadIndexPath, f.callerOf(ctx), nil, &out); err != nil {
		return err
	}
	return n.WaitForApplied(ctx, out.Index)
}

// Leave removes this node from the Raft configuration (a graceful
// shutdown): a leader first hands leadership to another voter; then the
// node asks the leader to remove it, retrying once across a leader change.
// It is a no-op for the only voter.
func (f *Forwarder) Leave(ctx context.Context) error {
	n := f.cfg.Node
	voters, err := n.Voters()
	if err != nil {
		return err
	}
	if len(voters) <= 1 {
		return nil
	}
	if n.IsLeader() {
		if err := n.TransferLeadership(ctx); err != nil {
			return fmt.Errorf("cluster: leave: %w", err)
		}
		f.waitForLeaderChange(ctx, n.ID())
	}
	for attempt := 0; ; attempt++ {
		failedLeader, _ := n.LeaderID()
		err = f.callLeader(ctx, LeavePath, f.callerOf(ctx), []byte(n.ID()), nil)
		if err == nil || attempt == 1 || ctx.Err() != nil || !retryable(err) {
			if err != nil {
				return fmt.Errorf("cluster: leave: %w", err)
			}
			f.log.Info("removed from the cluster by the leader")
			return nil
		}
		f.waitForLeaderChange(ctx, failedLeader)
	}
}

// leaderChangeWait bounds how long a retry waits for another leader: a few
// election timeouts. If the same leader is still there afterwards (the
// failure was transient), the retry goes to it again.
const leaderChangeWait = 3 * time.Second

// waitForLeaderChange waits until a leader other than failed is known. A
// follower keeps believing in a dead leader until its election timeout, so
// retrying at once would reach the same dead node.
func (f *Forwarder) waitForLeaderChange(ctx context.Context, failed string) {
	deadline := time.NewTimer(leaderChangeWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, _ := f.cfg.Node.LeaderID(); id != "" && id != failed {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

var errLeaderChanged = errors.New("leader changed while forwarding")

// abortOnLeaderChange cancels ctx when this node's view of the leader moves
// away from leaderID (to another node, not to "unknown": that happens
// briefly during any election).
func (f *Forwarder) abortOnLeaderChange(ctx context.Context, cancel context.CancelCauseFunc, leaderID string) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if id, _ := f.cfg.Node.LeaderID(); id != "" && id != leaderID {
				cancel(errLeaderChanged)
				return
			}
		}
	}
}

// callerOf names the client on whose behalf ctx acts (ForwarderConfig.Caller),
// made safe for a header and a log line.
func (f *Forwarder) callerOf(ctx context.Context) string {
	if f.cfg.Caller == nil {
		return ""
	}
	return sanitizeCaller(f.cfg.Caller(ctx))
}

// errNoBatchEndpoint: the leader does not serve ProposeBatchPath (a version
// without batched forwarding).
var errNoBatchEndpoint = errors.New("cluster: the leader does not take batched proposals")

// callLeader POSTs body to the leader's path on behalf of caller (already
// sanitized) and decodes its JSON answer.
func (f *Forwarder) callLeader(ctx context.Context, path, caller string, body []byte, out any) error {
	leaderID, leaderRaft := f.cfg.Node.LeaderID()
	if leaderID == "" {
		return &NotLeaderError{}
	}
	if f.cfg.LeaderHTTPAddr == nil {
		return &NotLeaderError{LeaderID: leaderID, LeaderAddr: leaderRaft}
	}
	addr, ok := f.cfg.LeaderHTTPAddr(leaderID)
	if !ok {
		return &NotLeaderError{LeaderID: leaderID, LeaderAddr: leaderRaft, Cause: errors.New("leader's HTTP address unknown")}
	}
	// A leader that dies or freezes mid-request leaves the call hanging
	// until the caller's deadline. Once this node learns of another leader
	// (an election timeout later) the answer can no longer matter: abort,
	// and the caller retries at the new leader with the same request id.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go f.abortOnLeaderChange(ctx, cancel, leaderID)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.Scheme+"://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if caller != "" {
		req.Header.Set(HeaderCaller, caller)
	}
	req.Header.Set(headerNodeAuth, f.sign(http.MethodPost, path, caller, time.Now(), body))
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errLeaderChanged) {
			return fmt.Errorf("%w: %w", ErrOutcomeUnknown, cause)
		}
		// The request may have reached the leader: outcome unknown.
		return fmt.Errorf("%w: forwarding to %s: %v", ErrOutcomeUnknown, leaderID, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%w: reading %s's answer: %v", ErrOutcomeUnknown, leaderID, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if out == nil {
			return nil
		}
		return json.Unmarshal(raw, out)
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		if path == ProposeBatchPath {
			// Nothing was proposed: an older leader's mux refused the path.
			return errNoBatchEndpoint
		}
	}
	return statusError(resp.StatusCode, "leader "+leaderID, strings.TrimSpace(string(raw)))
}

// statusError is the error the leader's answer status (statusFor) means for
// a forwarded command, nil for 200; leader names the leader, msg is its
// message. A batch's items (itemError) are mapped by it too, so that a
// command's outcome reads the same however it travelled.
func statusError(status int, leader, msg string) error {
	switch status {
	case http.StatusOK:
		return nil
	case http.StatusMisdirectedRequest:
		return &NotLeaderError{Cause: fmt.Errorf("%s is no longer the leader: %s", leader, msg)}
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%w: %s: %s", ErrOutcomeUnknown, leader, msg)
	default:
		return fmt.Errorf("cluster: %s answered %d: %s", leader, status, msg)
	}
}

// sign authenticates a node-to-node request: HMAC-SHA256 over a label,
// the method, the path, a timestamp and the body's hash.
func (f *Forwarder) sign(method, path, caller string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "v1 ts=" + ts + ",mac=" + hex.EncodeToString(f.mac(method, path, caller, ts, body))
}

// mac is HMAC-SHA256(secret, label \n method \n path \n ts \n caller \n
// hex(sha256(body))). The HMAC states are pooled: a forwarded proposal
// computes one on each side.
func (f *Forwarder) mac(method, path, caller, ts string, body []byte) []byte {
	sum := sha256.Sum256(body)
	m := f.macs.Get().(hash.Hash)
	defer f.macs.Put(m)
	m.Reset()
	var hexSum [2 * sha256.Size]byte
	hex.Encode(hexSum[:], sum[:])
	for _, part := range [...]string{forwardAuthLabel, method, path, ts, caller} {
		io.WriteString(m, part)
		m.Write([]byte{'\n'})
	}
	m.Write(hexSum[:])
	return m.Sum(nil)
}

// sanitizeCaller keeps a caller name printable and bounded, as it goes
// into a header and the leader's log.
func sanitizeCaller(s string) string {
	if len(s) > 512 {
		s = s[:512]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// verify checks a node-to-node request's authentication header. Replays
// within the skew window are harmless: a replayed proposal carries the same
// request id and the state machine applies it once.
func (f *Forwarder) verify(r *http.Request, body []byte, now time.Time) error {
	h := r.Header.Get(headerNodeAuth)
	rest, ok := strings.CutPrefix(h, "v1 ts=")
	if !ok {
		return errors.New("missing or malformed node authentication")
	}
	ts, macHex, ok := strings.Cut(rest, ",mac=")
	if !ok {
		return errors.New("malformed node authentication")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return errors.New("malformed node authentication timestamp")
	}
	if d := now.Sub(time.Unix(sec, 0)); d > forwardClockSkew || d < -forwardClockSkew {
		return errors.New("node authentication timestamp out of range")
	}
	got, err := hex.DecodeString(macHex)
	if err != nil || !hmac.Equal(got, f.mac(r.Method, r.URL.Path, r.Header.Get(HeaderCaller), ts, body)) {
		return errors.New("bad node authentication")
	}
	return nil
}

// Handler serves the node-to-node endpoints: the leader's side of Propose
// and ReadBarrier.
func (f *Forwarder) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+ProposePath, func(w http.ResponseWriter, r *http.Request) {
		body, ok := f.readAuthenticated(w, r)
		if !ok {
			return
		}
		_, index, err := f.cfg.Node.Propose(r.Context(), body)
		f.log.Debug("forwarded proposal", "from", r.RemoteAddr, "caller", r.Header.Get(HeaderCaller), "index", index, "err", err)
		f.answer(w, index, err)
	})
	mux.HandleFunc("POST "+ProposeBatchPath, f.serveProposeBatch)
	mux.HandleFunc("POST "+ReadIndexPath, func(w http.ResponseWriter, r *http.Request) {
		if _, ok := f.readAuthenticated(w, r); !ok {
			return
		}
		// A barrier proves leadership and makes everything committed
		// before it applied here; the applied index is then the read point.
		err := f.cfg.Node.Barrier(r.Context())
		f.answer(w, f.cfg.Node.AppliedIndex(), err)
	})
	mux.HandleFunc("POST "+LeavePath, func(w http.ResponseWriter, r *http.Request) {
		body, ok := f.readAuthenticated(w, r)
		if !ok {
			return
		}
		id := string(body)
		if err := validateID(id); err != nil {
			http.Error(w, "bad node id", http.StatusBadRequest)
			return
		}
		if !f.cfg.Node.IsLeader() {
			f.answer(w, 0, f.cfg.Node.notLeader(nil))
			return
		}
		if f.cfg.OnLeave != nil {
			f.cfg.OnLeave(id)
		}
		f.log.Info("node asked to leave", "id", id)
		f.answer(w, 0, f.cfg.Node.RemoveServer(r.Context(), id))
	})
	return mux
}

func (f *Forwarder) readAuthenticated(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if f.cfg.RequireClientCert && !HasVerifiedClientCert(r) {
		f.log.Warn("rejected node-to-node request without a verified client certificate", "remote", r.RemoteAddr, "path", r.URL.Path)
		http.Error(w, "forbidden: client certificate required", http.StatusForbidden)
		return nil, false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxForwardedBytes))
	if err != nil {
		http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
		return nil, false
	}
	if err := f.verify(r, body, time.Now()); err != nil {
		f.log.Warn("rejected node-to-node request", "remote", r.RemoteAddr, "path", r.URL.Path, "err", err)
		http.Error(w, "forbidden", http.StatusForbidden)
		return nil, false
	}
	return body, true
}

func (f *Forwarder) answer(w http.ResponseWriter, index uint64, err error) {
	if status := statusFor(err); status != http.StatusOK {
		http.Error(w, err.Error(), status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]uint64{"index": index})
}
