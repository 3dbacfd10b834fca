package cluster_test

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	clusterbench "github.com/kmsd/kmsd/bench/cluster"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/internal/testcluster"
)

// recordingFSM is the real FSM, recording the size of every batch raft
// hands it.
type recordingFSM struct {
	*fsm.FSM
	mu      sync.Mutex
	batches []int
}

func (r *recordingFSM) ApplyBatch(logs []*raft.Log) []any {
	r.mu.Lock()
	r.batches = append(r.batches, len(logs))
	r.mu.Unlock()
	return r.FSM.ApplyBatch(logs)
}

func (r *recordingFSM) largestBatch() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Max(append([]int{0}, r.batches...))
}

func requireSameState(t *testing.T, c *testcluster.Cluster, nodes int, keys int) {
	t.Helper()
	var want [32]byte
	for i := range nodes {
		f := c.FSM(i).(*recordingFSM)
		require.Equal(t, keys, f.KeyCount(), "node %d", i)
		h, err := f.StateHash()
		require.NoError(t, err)
		if i == 0 {
			want = h
		} else {
			require.Equal(t, want, h, "node %d state hash", i)
		}
	}
}

func TestConcurrentProposalsAreGroupCommitted(t *testing.T) {
	const callers, each = 64, 10
	var observed [3]atomic.Int64
	c := testcluster.Start(t, 3, func() raft.FSM { return &recordingFSM{FSM: fsm.New()} },
		testcluster.WithConfig(func(i int, cfg *cluster.Config) {
			cfg.ObserveApply = func(time.Duration) { observed[i].Add(1) }
		}))
	leader := c.WaitForLeader(t)
	ctx := testCtx(t)

	// Every caller proposes its commands one at a time, all callers at once;
	// caller 0 also sends its first command twice at once (a retry racing
	// the original).
	var mu sync.Mutex // guards results and last
	var results []*fsm.Result
	var last uint64
	var wg sync.WaitGroup
	record := func(resp any, idx uint64, err error) {
		if !assert.NoError(t, err) {
			return
		}
		res, ok := resp.(*fsm.Result)
		if !assert.Truef(t, ok, "response %T", resp) {
			return
		}
		mu.Lock()
		results = append(results, res)
		last = max(last, idx)
		mu.Unlock()
	}
	for w := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := clusterbench.NewCreateKeys(uint64(w + 1))
			for i := range each {
				cmd := gen.NextEncoded()
				if w == 0 && i == 0 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						record(leader.Propose(ctx, cmd))
					}()
				}
				record(leader.Propose(ctx, cmd))
			}
		}()
	}
	wg.Wait()

	require.Len(t, results, callers*each+1)
	var fresh, dup int
	for _, r := range results {
		require.Nil(t, r.Err)
		if r.Duplicate {
			dup++
		} else {
			fresh++
		}
	}
	require.Equal(t, callers*each, fresh)
	require.Equal(t, 1, dup, "the repeated request is applied once")

	c.WaitForApplied(t, last)
	requireSameState(t, c, 3, callers*each)
	// Raft grouped concurrent proposals: some batch reached the leader's
	// FSM with more than one entry.
	require.Greater(t, c.FSM(c.Index(leader)).(*recordingFSM).largestBatch(), 1)
	// ObserveApply still counts commands, not batches.
	for i := range 3 {
		require.Equal(t, int64(callers*each+1), observed[i].Load(), "node %d", i)
	}

	// A restarted follower replays the log through ApplyBatch into the
	// same state.
	follower := c.Index(c.Followers()[0])
	c.Stop(t, follower)
	c.Restart(t, follower)
	c.WaitForApplied(t, last)
	requireSameState(t, c, 3, callers*each)
}
