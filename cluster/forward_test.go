package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/internal/testcluster"
)

// setFSM is a minimal state machine: a set of strings, each Apply
// answering whether the string was new.
type setFSM struct {
	mu  sync.Mutex
	set map[string]bool
}

func newSetFSM() raft.FSM { return &setFSM{set: map[string]bool{}} }

func (f *setFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := string(l.Data)
	isNew := !f.set[k]
	f.set[k] = true
	return isNew
}

func (f *setFSM) has(k string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.set[k]
}

func (f *setFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("no snapshots in this test")
}
func (f *setFSM) Restore(io.ReadCloser) error { return errors.New("no snapshots in this test") }

var testSecret = bytes.Repeat([]byte{7}, 32)

// forwardingCluster starts 3 nodes, each with a Forwarder whose internal
// endpoints are served over real HTTP.
func forwardingCluster(t *testing.T) (*testcluster.Cluster, []*cluster.Forwarder, map[string]string) {
	c := testcluster.Start(t, 3, newSetFSM)
	c.WaitForLeader(t)
	addrs := map[string]string{}
	var mu sync.Mutex
	lookup := func(id string) (string, bool) {
		mu.Lock()
		defer mu.Unlock()
		a, ok := addrs[id]
		return a, ok
	}
	var fwds []*cluster.Forwarder
	for _, n := range c.Nodes() {
		f, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: n, LeaderHTTPAddr: lookup, Secret: testSecret,
			Logger: testcluster.NewLogger(t, nil)})
		require.NoError(t, err)
		srv := httptest.NewServer(f.Handler())
		t.Cleanup(srv.Close)
		u, _ := url.Parse(srv.URL)
		mu.Lock()
		addrs[n.ID()] = u.Host
		mu.Unlock()
		fwds = append(fwds, f)
	}
	return c, fwds, addrs
}

func TestForwarderProposesFromAnyNode(t *testing.T) {
	c, fwds, _ := forwardingCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, f := range fwds {
		cmd := []byte{byte('a' + i)}
		resp, index, err := f.Propose(ctx, cmd)
		require.NoError(t, err)
		require.NotZero(t, index)
		if f.IsLeader() {
			require.Equal(t, true, resp, "the leader returns the FSM's answer")
			require.Zero(t, f.Forwarded())
		} else {
			require.Nil(t, resp, "a follower's answer stays on the leader")
			require.EqualValues(t, 1, f.Forwarded())
		}
		// Read-your-writes: the proposing node has applied the entry.
		require.True(t, c.FSM(i).(*setFSM).has(string(cmd)), "node %d has not applied its own write", i)
		require.GreaterOrEqual(t, c.Node(i).AppliedIndex(), index)
	}
	// A read barrier on a follower covers every write committed before it.
	leader := c.Leader()
	_, idx, err := leader.Propose(ctx, []byte("late"))
	require.NoError(t, err)
	for i, f := range fwds {
		require.NoError(t, f.ReadBarrier(ctx))
		require.GreaterOrEqual(t, c.Node(i).AppliedIndex(), idx)
		require.True(t, c.FSM(i).(*setFSM).has("late"))
	}
}

func TestForwarderRejectsUnauthenticatedPeers(t *testing.T) {
	c, _, addrs := forwardingCluster(t)
	leader := c.Leader()
	target := "http://" + addrs[leader.ID()] + cluster.ProposePath
	cases := map[string]func(*http.Request){
		"no auth header": func(*http.Request) {},
		"garbage":        func(r *http.Request) { r.Header.Set("X-Kmsd-Node-Auth", "v1 ts=1,mac=00") },
	}
	// A peer holding another secret signs correctly but with the wrong key.
	other, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: leader, Secret: bytes.Repeat([]byte{8}, 32)})
	require.NoError(t, err)
	wrongSecret := httptest.NewServer(other.Handler())
	defer wrongSecret.Close()
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, target, bytes.NewReader([]byte("evil")))
			mutate(req)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
		})
	}
	for i := range c.Nodes() {
		require.False(t, c.FSM(i).(*setFSM).has("evil"))
	}
	// Forwarding from a follower configured with the wrong secret fails and
	// changes nothing.
	follower := c.Followers()[0]
	bad, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, Secret: bytes.Repeat([]byte{9}, 32),
		LeaderHTTPAddr: func(id string) (string, bool) { a, ok := addrs[id]; return a, ok }})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _, err = bad.Propose(ctx, []byte("evil2"))
	require.Error(t, err)
	require.False(t, slices.ContainsFunc(c.Nodes(), func(n *cluster.Node) bool { return c.FSM(c.Index(n)).(*setFSM).has("evil2") }))
}

func TestForwarderRetriesAcrossLeaderChange(t *testing.T) {
	c, fwds, _ := forwardingCluster(t)
	old := c.Leader()
	oldIdx := c.Index(old)
	c.Stop(t, oldIdx)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A surviving node proposes right away: the first attempt may hit the
	// dead leader; the retry after a new election succeeds.
	survivor := (oldIdx + 1) % 3
	_, index, err := fwds[survivor].Propose(ctx, []byte("after failover"))
	require.NoError(t, err)
	require.NotZero(t, index)
	require.True(t, c.FSM(survivor).(*setFSM).has("after failover"))
}

// rewriteTransport changes requests on their way (a tampering middlebox)
// and records the caller header it saw.
type rewriteTransport struct {
	mu      sync.Mutex
	callers []string
	rewrite func(*http.Request)
}

func (rt *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rt.mu.Lock()
	rt.callers = append(rt.callers, r.Header.Get(cluster.HeaderCaller))
	rt.mu.Unlock()
	if rt.rewrite != nil {
		rt.rewrite(r)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestForwarderCarriesAuthenticatedCaller: a forwarded proposal carries the
// caller's identity, and the identity is covered by the node authentication.
func TestForwarderCarriesAuthenticatedCaller(t *testing.T) {
	c, _, addrs := forwardingCluster(t)
	follower := c.Followers()[0]
	lookup := func(id string) (string, bool) { a, ok := addrs[id]; return a, ok }
	type callerKey struct{}
	callerOf := func(ctx context.Context) string { s, _ := ctx.Value(callerKey{}).(string); return s }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = context.WithValue(ctx, callerKey{}, "arn:aws:iam::111122223333:user/alice\n")

	honest := &rewriteTransport{}
	f, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, Secret: testSecret, LeaderHTTPAddr: lookup,
		Caller: callerOf, Client: &http.Client{Transport: honest}})
	require.NoError(t, err)
	_, _, err = f.Propose(ctx, []byte("by-alice"))
	require.NoError(t, err)
	require.Equal(t, []string{"arn:aws:iam::111122223333:user/alice"}, honest.callers, "sent, without control characters")

	tampered := &rewriteTransport{rewrite: func(r *http.Request) {
		r.Header.Set(cluster.HeaderCaller, "arn:aws:iam::111122223333:root")
	}}
	f2, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, Secret: testSecret, LeaderHTTPAddr: lookup,
		Caller: callerOf, Client: &http.Client{Transport: tampered}})
	require.NoError(t, err)
	_, _, err = f2.Propose(ctx, []byte("by-mallory"))
	require.Error(t, err)
	for i := range c.Nodes() {
		require.False(t, c.FSM(i).(*setFSM).has("by-mallory"))
	}
}

// TestForwarderReusesConnections: concurrent forwards from a follower reuse
// pooled connections to the leader instead of dialing one per request
// (net/http keeps only 2 idle connections per host by default).
func TestForwarderReusesConnections(t *testing.T) {
	c := testcluster.Start(t, 3, newSetFSM)
	leader := c.WaitForLeader(t)
	var newConns atomic.Int64
	srv := httptest.NewUnstartedServer(nil)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	leaderFwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: leader, Secret: testSecret,
		Logger: testcluster.NewLogger(t, nil)})
	require.NoError(t, err)
	// One command per request (as to a leader without batched forwarding),
	// each of which should find a pooled connection.
	internal := leaderFwd.Handler()
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == cluster.ProposeBatchPath {
			http.NotFound(w, r)
			return
		}
		internal.ServeHTTP(w, r)
	})
	srv.Start()
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	lookup := func(id string) (string, bool) { return u.Host, id == leader.ID() }
	follower := c.Followers()[0]
	fwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, LeaderHTTPAddr: lookup, Secret: testSecret,
		Logger: testcluster.NewLogger(t, nil)})
	require.NoError(t, err)

	const callers, rounds = 32, 5
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for r := range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, callers)
		for i := range callers {
			wg.Go(func() {
				_, _, err := fwd.Propose(ctx, fmt.Appendf(nil, "r%d-c%d", r, i))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			require.NoError(t, err)
		}
	}
	require.EqualValues(t, callers*rounds, fwd.Forwarded())
	// The first round may dial one connection per caller; later rounds find
	// them idle in the pool. Slack for connections returned to the pool
	// only after the next round's request started dialing; with 2 idle
	// connections per host this would be about callers*rounds.
	require.LessOrEqual(t, newConns.Load(), int64(2*callers), "new connections to the leader for %d forwards", callers*rounds)
}

// leaderBehind serves leaderFwd's internal endpoints from an httptest server
// wrapped by wrap, and returns a forwarder on a follower that sends to it,
// and that follower's index.
func leaderBehind(t *testing.T, c *testcluster.Cluster, wrap func(http.Handler) http.Handler) (*cluster.Forwarder, int) {
	leader := c.WaitForLeader(t)
	leaderFwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: leader, Secret: testSecret,
		Logger: testcluster.NewLogger(t, nil)})
	require.NoError(t, err)
	srv := httptest.NewServer(wrap(leaderFwd.Handler()))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	lookup := func(id string) (string, bool) { return u.Host, id == leader.ID() }
	follower := c.Followers()[0]
	fwd, err := cluster.NewForwarder(cluster.ForwarderConfig{Node: follower, LeaderHTTPAddr: lookup, Secret: testSecret,
		Logger: testcluster.NewLogger(t, nil), Caller: func(context.Context) string { return "arn:test" }})
	require.NoError(t, err)
	return fwd, c.Index(follower)
}

// proposeConcurrently proposes n distinct commands at once through fwd and
// checks each committed and is applied on the proposing node.
func proposeConcurrently(t *testing.T, c *testcluster.Cluster, fwd *cluster.Forwarder, node int, prefix string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			cmd := fmt.Sprintf("%s-%d", prefix, i)
			resp, index, err := fwd.Propose(ctx, []byte(cmd))
			switch {
			case err != nil:
				errs <- err
			case resp != nil || index == 0:
				errs <- fmt.Errorf("%s: resp %v index %d", cmd, resp, index)
			case !c.FSM(node).(*setFSM).has(cmd):
				errs <- fmt.Errorf("%s committed at %d but not applied on the proposing node", cmd, index)
			case c.Node(node).AppliedIndex() < index:
				errs <- fmt.Errorf("%s: applied index below %d", cmd, index)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

// TestForwarderBatchesConcurrentProposals: a follower's concurrent writers
// share requests to the leader, and each still gets its own committed
// index.
func TestForwarderBatchesConcurrentProposals(t *testing.T) {
	c := testcluster.Start(t, 3, newSetFSM)
	var batches, singles atomic.Int64
	fwd, node := leaderBehind(t, c, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case cluster.ProposeBatchPath:
				batches.Add(1)
			case cluster.ProposePath:
				singles.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	const n = 64
	proposeConcurrently(t, c, fwd, node, "batched", n)
	require.EqualValues(t, n, fwd.Forwarded())
	require.Less(t, batches.Load()+singles.Load(), int64(n), "requests to the leader for %d concurrent forwards", n)
	require.Positive(t, batches.Load())
}

// TestForwarderWithoutBatchEndpoint: a leader that does not know
// ProposeBatchPath (an older version) gets one request per command.
func TestForwarderWithoutBatchEndpoint(t *testing.T) {
	c := testcluster.Start(t, 3, newSetFSM)
	var refused, singles atomic.Int64
	fwd, node := leaderBehind(t, c, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case cluster.ProposeBatchPath:
				refused.Add(1)
				http.NotFound(w, r)
				return
			case cluster.ProposePath:
				singles.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	const n = 32
	proposeConcurrently(t, c, fwd, node, "old-leader", n)
	require.EqualValues(t, n, fwd.Forwarded())
	require.EqualValues(t, n, singles.Load())
	// Once refused, the follower stops trying batches for a while.
	require.LessOrEqual(t, refused.Load(), int64(4), "batches sent to a leader that refused them")
	proposeConcurrently(t, c, fwd, node, "old-leader-again", n)
	require.EqualValues(t, 2*n, singles.Load())
}
