package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/chaos"
)

// TestChaos runs a 3-node cluster of real processes under a workload of
// writers (CreateKey, DisableKey, EnableKey, strong DescribeKey, Encrypt,
// Decrypt through random nodes, every call recorded) while failpoints kill
// and restart nodes. By default it runs one round: every failpoint once
// (part of make test); KMSD_CHAOS_ROUNDS=N runs N rounds of a random
// failpoint each (make chaos ROUNDS=N). After each failpoint the cluster
// must acknowledge writes again within 20s. At the end: every node runs and
// is ready; every acknowledged CreateKey exists at every node, exactly once
// (and no failed one took effect); every acknowledged ciphertext decrypts at
// every node; replicas report the same state hash at the same applied
// index; the key-state history is linearizable (porcupine). On failure a
// report directory is written (see chaos.WriteReport) and its path logged.
// New keys are used at once through other nodes (KMSD_CHAOS_FRESH_KEYS=0
// waits until every node serves a key before sharing it).
func TestChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("chaos: not in -short mode")
	}
	var schedule []chaos.Failpoint
	random := false
	if v, err := strconv.Atoi(os.Getenv("KMSD_CHAOS_ROUNDS")); err == nil && v > 0 {
		// Random failpoints with random pauses (300ms-2s), drawn as
		// shuffled blocks of all of them so that every kind recurs.
		random = true
		for len(schedule) < v {
			n := len(chaos.Failpoints(0))
			for _, i := range rand.Perm(n) {
				pause := 300*time.Millisecond + rand.N(1700*time.Millisecond)
				schedule = append(schedule, chaos.Failpoints(pause)[i])
			}
		}
		schedule = schedule[:v]
	} else {
		schedule = chaos.Failpoints(0)
	}
	start := time.Now()
	deadline := 10*time.Minute + time.Duration(len(schedule))*time.Minute
	if d, ok := t.Deadline(); ok {
		deadline = min(deadline, time.Until(d)-30*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()

	c, err := chaos.New(chaos.Options{Bin: kmsdBin, Dir: t.TempDir(), Logf: t.Logf})
	require.NoError(t, err)
	h := chaos.NewHistory()
	c.SetHistory(h)
	t.Cleanup(c.Close)
	sum := &chaos.Summary{Rounds: len(schedule)}
	reported := false
	report := func() {
		reported = true
		dir, err := chaos.WriteReport(c, h, sum)
		if err != nil {
			t.Logf("writing the chaos report: %v", err)
		}
		t.Logf("chaos report: %s", dir)
	}
	// Also when the test stops early (a node that never gets ready...).
	t.Cleanup(func() {
		if t.Failed() && !reported {
			report()
		}
	})

	for _, n := range c.Nodes() {
		require.NoError(t, n.Start())
	}
	require.NoError(t, c.WaitReady(ctx))

	w := &chaos.Workload{C: c, Writers: 4, FreshKeys: os.Getenv("KMSD_CHAOS_FRESH_KEYS") != "0"}
	w.Start()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			w.Stop()
		}
	}
	defer stop()
	progress := func(what string) error {
		mark := h.Now()
		pctx, pcancel := context.WithTimeout(ctx, 20*time.Second)
		defer pcancel()
		return chaos.Poll(pctx, 10*time.Millisecond, func() (bool, error) {
			return h.AckedSince(mark) >= 5, nil
		}, func() string { return "5 acknowledged writes " + what })
	}
	if err := progress("before the first failpoint"); err != nil {
		sum.Problems = append(sum.Problems, err.Error())
	}
	for i, fp := range schedule {
		if len(sum.Problems) > 0 {
			break
		}
		c.Event("round %d/%d: %s %+v", i+1, len(schedule), fp.Name(), fp)
		sum.Failpoints = append(sum.Failpoints, fp.Name())
		if err := fp.Inject(ctx, c); err != nil {
			sum.Problems = append(sum.Problems, fp.Name()+": "+err.Error())
			break
		}
		if err := progress("after " + fp.Name()); err != nil {
			sum.Problems = append(sum.Problems, err.Error())
		}
	}
	stop()
	c.Event("workload stopped")

	vctx, vcancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer vcancel()
	checkTimeout := time.Minute
	if random {
		checkTimeout = 5 * time.Minute
	}
	chaos.Verify(vctx, c, h, sum, checkTimeout)
	sum.Violations = w.Violations()
	for _, v := range sum.Violations {
		sum.Problems = append(sum.Problems, "writer saw: "+v)
	}
	sum.Took = time.Since(start)
	t.Log(sum.Line())
	t.Logf("failovers: %v; maybe-applied CreateKeys that made a key: %d", sum.Failovers, sum.MaybeKeys)
	t.Logf("unacknowledged calls: %s", sum.ErrorBreakdown())
	if !sum.OK() || t.Failed() || os.Getenv("KMSD_CHAOS_REPORT") == "always" {
		report()
	}
	if !sum.OK() || t.Failed() {
		for _, p := range sum.Problems {
			t.Errorf("chaos: %s", p)
		}
		require.Zero(t, sum.Lost, "acknowledged writes lost")
		require.NotEqual(t, "no", sum.Linearizable(), "key-state history linearizable")
		t.FailNow()
	}
}
