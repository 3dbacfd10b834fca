// Package chaos runs real kmsd processes as a cluster, injects faults into
// it (failpoints), records client histories and checks them: every
// acknowledged write survives, replicas converge, and key-state histories
// are linearizable (porcupine). Only tests import it (e2e/*_test.go).
//
// Nothing here calls t.Fatal: every helper returns an error, so it can run
// on any goroutine; the tests decide what is fatal.
package chaos

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms"
)

// Region is the region every test cluster serves.
const Region = "us-east-1"

// Options configures a Cluster.
type Options struct {
	// Bin is the kmsd binary (required).
	Bin string
	// Dir holds the root key, data dirs and logs (required; t.TempDir()).
	Dir string
	// Nodes is the cluster size (default 3).
	Nodes int
	// Addr returns a free loopback host:port for each listener (HTTP, Raft,
	// gossip). Default FreeAddr.
	Addr func() (string, error)
	// LogLevel of the kmsd processes (default "debug").
	LogLevel string
	// Logf receives progress lines (t.Logf); nil discards them.
	Logf func(format string, args ...any)
	// ReadyTimeout bounds waiting for a started node's /readyz (default 60s).
	ReadyTimeout time.Duration
	// ExtraArgs are appended to every node's command line.
	ExtraArgs []string
}

// Cluster is a set of kmsd processes started with identical -join lists and
// the same root key, as the design's bootstrap-expect contract says.
type Cluster struct {
	opts        Options
	rootKeyFile string
	nodes       []*Node
	http        *http.Client
	rec         *History // optional: clients record into it
	authArgs    []string

	mu         sync.Mutex
	unexpected []string // nodes that exited while they should have been running
	failovers  []time.Duration
}

// Node is one kmsd process slot: fixed id, addresses and data dir across
// restarts. Each start appends to the same log file.
type Node struct {
	ID         string
	HTTPAddr   string
	RaftAddr   string
	GossipAddr string
	DataDir    string
	LogPath    string
	Endpoint   string // http://HTTPAddr

	c      *Cluster
	client *kms.Client
	strong *kms.Client // same, with X-Kmsd-Consistency: strong

	mu sync.Mutex
	// extraArgs are this node's own flags, after the cluster's
	// (SetExtraArgs; n.mu).
	extraArgs []string
	cmd       *exec.Cmd
	done      chan struct{} // closed when the current process has exited
	killing   bool          // we sent a signal: an exit is expected
	starts    int
	lastExit  string
}

// New lays out a cluster (addresses, root key, data dirs) without starting it.
func New(opts Options) (*Cluster, error) {
	if opts.Bin == "" || opts.Dir == "" {
		return nil, errors.New("chaos: Options.Bin and Options.Dir are required")
	}
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.Addr == nil {
		opts.Addr = FreeAddr
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	c := &Cluster{opts: opts, http: newHTTPClient()}
	// Clients sign with made-up static credentials: a kmsd that knows
	// -insecure-no-auth needs it to accept them outside -dev.
	if hasFlag(opts.Bin, "insecure-no-auth") {
		c.authArgs = []string{"-insecure-no-auth"}
	}
	// The harness talks plain HTTP to its nodes on loopback, which a kmsd
	// that knows -insecure-plain-http refuses outside -dev without it.
	if hasFlag(opts.Bin, "insecure-plain-http") && !slices.Contains(opts.ExtraArgs, "-tls-cert") {
		c.authArgs = append(c.authArgs, "-insecure-plain-http")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	c.rootKeyFile = filepath.Join(opts.Dir, "root-key")
	if err := os.WriteFile(c.rootKeyFile, []byte(base64.StdEncoding.EncodeToString(raw)+"\n"), 0o600); err != nil {
		return nil, err
	}
	taken := map[string]bool{}
	addr := func() (string, error) {
		for range 20 {
			a, err := opts.Addr()
			if err != nil {
				return "", err
			}
			if !taken[a] {
				taken[a] = true
				return a, nil
			}
		}
		return "", errors.New("chaos: no distinct free address")
	}
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{ID: fmt.Sprintf("n%d", i), c: c}
		var err error
		for _, p := range []*string{&n.HTTPAddr, &n.RaftAddr, &n.GossipAddr} {
			if *p, err = addr(); err != nil {
				return nil, err
			}
		}
		n.DataDir = filepath.Join(opts.Dir, n.ID)
		n.LogPath = filepath.Join(opts.Dir, n.ID+".log")
		n.Endpoint = "http://" + n.HTTPAddr
		n.client = newKMSClient(n.Endpoint, c.http, false)
		n.strong = newKMSClient(n.Endpoint, c.http, true)
		c.nodes = append(c.nodes, n)
	}
	return c, nil
}

// Start lays out a cluster, starts every node and waits until all are ready.
// On error the processes already started are killed.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c, err := New(opts)
	if err != nil {
		return nil, err
	}
	for _, n := range c.nodes {
		if err := n.Start(); err != nil {
			c.Close()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Nodes returns every node slot, in id order.
func (c *Cluster) Nodes() []*Node { return slices.Clone(c.nodes) }

// Node returns the node with id, or nil.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Logf logs through Options.Logf.
func (c *Cluster) Logf(format string, args ...any) { c.opts.Logf(format, args...) }

// SetHistory makes every Client of the cluster record its calls into h.
func (c *Cluster) SetHistory(h *History) { c.rec = h }

// History returns the history clients record into (nil if none).
func (c *Cluster) History() *History { return c.rec }

// joinList is the same -join value for every node: all gossip addresses.
func (c *Cluster) joinList() string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.GossipAddr
	}
	return strings.Join(addrs, ",")
}

// Close SIGKILLs every running node and waits for them to exit.
func (c *Cluster) Close() {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.Kill()
		}()
	}
	wg.Wait()
	c.http.CloseIdleConnections()
}

// Unexpected returns the nodes that exited on their own (crashed) while
// they were supposed to run, with their exit status.
func (c *Cluster) Unexpected() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.unexpected)
}

// SetExtraArgs sets flags of this node alone, appended after the cluster's
// ExtraArgs from its next Start on (a rolling change of configuration).
func (n *Node) SetExtraArgs(args ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.extraArgs = slices.Clone(args)
}

// Args returns the command line the node is started with. n.mu is held.
func (n *Node) Args() []string {
	args := []string{
		"-node-id", n.ID, "-region", Region, "-data-dir", n.DataDir,
		"-http-addr", n.HTTPAddr, "-raft-addr", n.RaftAddr, "-gossip-addr", n.GossipAddr,
		"-bootstrap-expect", strconv.Itoa(len(n.c.nodes)), "-join", n.c.joinList(),
		"-root-key-file", n.c.rootKeyFile, "-log-level", n.c.opts.LogLevel,
	}
	args = append(args, n.c.authArgs...)
	args = append(args, n.c.opts.ExtraArgs...)
	return append(args, n.extraArgs...)
}

// hasFlag reports whether bin's usage (-h) lists -name.
func hasFlag(bin, name string) bool {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	return strings.Contains(string(out), "\n  -"+name+"\n") || strings.Contains(string(out), "\n  -"+name+" ")
}

// Start starts the node's process (it must not be running). It does not
// wait for readiness: see WaitReady.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("chaos: %s is already running", n.ID)
		}
	}
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor
	n.starts++
	fmt.Fprintf(logFile, "===== chaos: starting %s (start #%d) at %s: %s %s\n", n.ID, n.starts,
		time.Now().Format(time.RFC3339Nano), n.c.opts.Bin, strings.Join(n.Args(), " "))
	cmd := exec.Command(n.c.opts.Bin, n.Args()...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the test binary dies (panic, -timeout), take the nodes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chaos: start %s: %w", n.ID, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.killing = cmd, done, false
	go n.wait(cmd, done)
	return nil
}

func (n *Node) wait(cmd *exec.Cmd, done chan struct{}) {
	err := cmd.Wait()
	n.mu.Lock()
	expected := n.killing
	status := "exited"
	if err != nil {
		status = err.Error()
	}
	n.lastExit = status
	n.mu.Unlock()
	if f, ferr := os.OpenFile(n.LogPath, os.O_WRONLY|os.O_APPEND, 0o600); ferr == nil {
		fmt.Fprintf(f, "===== chaos: %s (pid %d) %s at %s\n", n.ID, cmd.Process.Pid, status, time.Now().Format(time.RFC3339Nano))
		f.Close()
	}
	if !expected {
		n.c.mu.Lock()
		n.c.unexpected = append(n.c.unexpected, fmt.Sprintf("%s (pid %d): %s", n.ID, cmd.Process.Pid, status))
		n.c.mu.Unlock()
		n.c.Logf("chaos: %s exited unexpectedly: %s", n.ID, status)
	}
	close(done)
}

// Running reports whether the node's process is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Pid returns the current process id (0 if never started).
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// Kill sends SIGKILL and waits until the process is gone (no-op if it is
// not running).
func (n *Node) Kill() {
	n.signal(syscall.SIGKILL, 0) //nolint:errcheck // SIGKILL cannot be refused
}

// Stop sends SIGTERM (a graceful leave) and waits up to timeout for the
// process to exit; it returns an error if it did not, or exited non-zero.
func (n *Node) Stop(timeout time.Duration) error {
	return n.signal(syscall.SIGTERM, timeout)
}

func (n *Node) signal(sig syscall.Signal, timeout time.Duration) error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	if cmd == nil {
		n.mu.Unlock()
		return nil
	}
	select {
	case <-done:
		n.mu.Unlock()
		return nil
	default:
	}
	n.killing = true
	n.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("chaos: signal %s: %w", n.ID, err)
	}
	if timeout == 0 {
		<-done
		return nil
	}
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("chaos: %s did not exit within %v of %v", n.ID, timeout, sig)
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("chaos: %s exited with %d after %v", n.ID, code, sig)
	}
	return nil
}

// Wipe deletes the node's data dir (the node must be stopped).
func (n *Node) Wipe() error {
	if n.Running() {
		return fmt.Errorf("chaos: wipe %s while it runs", n.ID)
	}
	return os.RemoveAll(n.DataDir)
}

// Client returns a KMS client for this node (recording into the cluster's
// history if one is set).
func (n *Node) Client() *Client { return &Client{Node: n, rec: n.c.rec} }

// PlainClient returns a KMS client for this node that records nothing.
func (n *Node) PlainClient() *Client { return &Client{Node: n} }

// SDK returns the raw AWS SDK client for this node; strong adds the
// X-Kmsd-Consistency: strong header to every request.
func (n *Node) SDK(strong bool) *kms.Client {
	if strong {
		return n.strong
	}
	return n.client
}

// Ready reports whether GET /readyz answers 200.
func (n *Node) Ready(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Endpoint+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := n.c.http.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitReady polls /readyz until it answers 200. It fails if the process
// exits, ctx ends or the cluster's ReadyTimeout passes.
func (n *Node) WaitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, n.c.opts.ReadyTimeout)
	defer cancel()
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	if done == nil {
		return fmt.Errorf("chaos: %s was never started", n.ID)
	}
	return poll(ctx, 25*time.Millisecond, func() (bool, error) {
		select {
		case <-done:
			return false, fmt.Errorf("chaos: %s exited before it was ready (%s); log tail:\n%s", n.ID, n.LastExit(), n.LogTail(40))
		default:
		}
		return n.Ready(ctx), nil
	}, func() string { return n.ID + " ready" })
}

// LastExit describes how the node's last process ended.
func (n *Node) LastExit() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lastExit
}

// LogTail returns the last lines of the node's log.
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Peer is one server of a node's Raft configuration (/v1/status).
type Peer struct {
	ID       string `json:"id"`
	Addr     string `json:"addr"`
	Suffrage string `json:"suffrage"`
}

// Member is one gossip member as a node sees it (/v1/status).
type Member struct {
	NodeID   string `json:"node_id"`
	HTTPAddr string `json:"http_addr"`
	Alive    bool   `json:"alive"`
	Left     bool   `json:"left"`
}

// Status is GET /v1/status.
type Status struct {
	NodeID       string   `json:"node_id"`
	Region       string   `json:"region"`
	State        string   `json:"state"`
	LeaderID     string   `json:"leader_id"`
	Term         uint64   `json:"term"`
	AppliedIndex uint64   `json:"applied_index"`
	CommitIndex  uint64   `json:"commit_index"`
	LastLogIndex uint64   `json:"last_log_index"`
	Peers        []Peer   `json:"peers"`
	Members      []Member `json:"members"`
	StateHash    string   `json:"state_hash"`
}

// HasVoter reports whether id is a voter of the node's configuration.
func (s *Status) HasVoter(id string) bool {
	return slices.ContainsFunc(s.Peers, func(p Peer) bool { return p.ID == id && p.Suffrage == "Voter" })
}

// HasPeer reports whether id is in the node's configuration at all.
func (s *Status) HasPeer(id string) bool {
	return slices.ContainsFunc(s.Peers, func(p Peer) bool { return p.ID == id })
}

// Status fetches GET /v1/status.
func (n *Node) Status(ctx context.Context) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, n.Endpoint+"/v1/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := n.c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("chaos: %s /v1/status: %s", n.ID, resp.Status)
	}
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("chaos: %s /v1/status: %w", n.ID, err)
	}
	if got := resp.Header.Get("X-Kmsd-Served-By"); got != n.ID {
		return nil, fmt.Errorf("chaos: %s /v1/status served by %q", n.ID, got)
	}
	return &s, nil
}

// Running returns the nodes whose processes run.
func (c *Cluster) Running() []*Node {
	var out []*Node
	for _, n := range c.nodes {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// WaitReady waits until every running node is ready.
func (c *Cluster) WaitReady(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(c.nodes))
	for i, n := range c.nodes {
		if !n.Running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.WaitReady(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Leader waits until the running nodes agree on a leader that is one of
// them and that considers itself the leader, and returns it.
func (c *Cluster) Leader(ctx context.Context) (*Node, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var leader *Node
	var last string
	err := poll(ctx, 20*time.Millisecond, func() (bool, error) {
		leader = nil
		running := c.Running()
		if len(running) == 0 {
			return false, errors.New("chaos: no node is running")
		}
		agreed := ""
		for _, n := range running {
			s, err := n.Status(ctx)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			if s.LeaderID == "" || (agreed != "" && s.LeaderID != agreed) {
				last = fmt.Sprintf("%s sees leader %q", n.ID, s.LeaderID)
				return false, nil
			}
			agreed = s.LeaderID
			if s.NodeID == s.LeaderID && s.State != "Leader" {
				last = fmt.Sprintf("%s is named leader but is %s", n.ID, s.State)
				return false, nil
			}
		}
		leader = c.Node(agreed)
		if leader == nil || !leader.Running() {
			last = fmt.Sprintf("leader %q is not a running node", agreed)
			return false, nil
		}
		return true, nil
	}, func() string { return "an agreed leader (" + last + ")" })
	return leader, err
}

// Followers returns the running nodes other than leader.
func (c *Cluster) Followers(leader *Node) []*Node {
	var out []*Node
	for _, n := range c.Running() {
		if n != leader {
			out = append(out, n)
		}
	}
	return out
}

// Converged polls until every node of the cluster runs and reports the same
// applied index and state hash, and every node's configuration lists every
// node as a voter; it returns the statuses.
func (c *Cluster) Converged(ctx context.Context, within time.Duration) ([]*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var sts []*Status
	var last string
	err := poll(ctx, 50*time.Millisecond, func() (bool, error) {
		sts = sts[:0]
		for _, n := range c.nodes {
			if !n.Running() {
				return false, fmt.Errorf("chaos: %s is not running", n.ID)
			}
			s, err := n.Status(ctx)
			if err != nil {
				last = err.Error()
				return false, nil
			}
			sts = append(sts, s)
		}
		last = DescribeStatuses(sts)
		for _, s := range sts {
			if s.AppliedIndex != sts[0].AppliedIndex || s.StateHash != sts[0].StateHash || s.StateHash == "" {
				return false, nil
			}
			for _, n := range c.nodes {
				if !s.HasVoter(n.ID) {
					return false, nil
				}
			}
		}
		return true, nil
	}, func() string { return "converged replicas: " + last })
	return sts, err
}

// DescribeStatuses renders statuses compactly for logs.
func DescribeStatuses(sts []*Status) string {
	var b strings.Builder
	for i, s := range sts {
		if i > 0 {
			b.WriteString("; ")
		}
		h := s.StateHash
		if len(h) > 12 {
			h = h[:12]
		}
		peers := make([]string, len(s.Peers))
		for j, p := range s.Peers {
			peers[j] = p.ID
			if p.Suffrage != "Voter" {
				peers[j] += "(" + p.Suffrage + ")"
			}
		}
		fmt.Fprintf(&b, "%s %s leader=%s term=%d applied=%d commit=%d hash=%s peers=%v",
			s.NodeID, s.State, s.LeaderID, s.Term, s.AppliedIndex, s.CommitIndex, h, peers)
	}
	return b.String()
}

// poll calls cond every interval until it reports true or an error, or ctx
// ends (then the error names what was awaited).
func poll(ctx context.Context, interval time.Duration, cond func() (bool, error), what func() string) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: timed out waiting for %s: %w", what(), ctx.Err())
		case <-t.C:
		}
	}
}

// Poll is poll for callers outside the package.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error), what func() string) error {
	return poll(ctx, interval, cond, what)
}

// FreeAddr returns a loopback address whose port is free for both TCP and
// UDP (memberlist uses both). Ports come from below Linux's ephemeral range
// (32768-60999): a node restarted on its old port must not find it taken by
// some client's outgoing connection, which a kernel-chosen port (":0")
// allows.
func FreeAddr() (string, error) {
	var b [2]byte
	for range 200 {
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		port := 20000 + (int(b[0])<<8|int(b[1]))%12000
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return addr, nil
	}
	return "", errors.New("chaos: no free port found")
}
