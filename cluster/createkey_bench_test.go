package cluster_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	clusterbench "github.com/kmsd/kmsd/bench/cluster"
	"github.com/kmsd/kmsd/cluster"
	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/internal/testcluster"
)

// These benchmarks propose CreateKey commands, shaped like the service's
// (bench/cluster), straight to the leader of a real 3-node cluster (Raft
// over loopback TCP, BoltDB with fsync in temp dirs, the real FSM) from
// concurrent callers: the Raft and FSM part of a CreateKey, without HTTP,
// SigV4 or forwarding.
//
//	go test -run '^$' -bench CreateKeyPropose -benchtime 20000x ./cluster/
//	KMSD_BENCH_KEYS=100000 go test -run '^$' -bench CreateKeyGrowth -benchtime 1x -v ./cluster/
//
// Environment: KMSD_BENCH_WORKERS concurrent callers (default 64);
// KMSD_BENCH_KEYS keys for CreateKeyGrowth (default 100000).

func benchEnvInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}

// proposeRun is the outcome of proposing n commands.
type proposeRun struct {
	latency []time.Duration // by command number
	done    []time.Time     // when the i-th completion (in completion order) happened
	start   time.Time
}

// proposeCreateKeys has workers callers propose n CreateKey commands to
// leader, each caller one at a time (a closed loop, like the load
// generator). Every command must be applied without a business error.
func proposeCreateKeys(b *testing.B, leader *cluster.Node, n, workers int, seed uint64) proposeRun {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	run := proposeRun{latency: make([]time.Duration, n), done: make([]time.Time, n)}
	var next, completed atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	run.start = time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gen := clusterbench.NewCreateKeys(seed + uint64(w))
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || failed.Load() != nil {
					return
				}
				cmd := gen.NextEncoded() // the service encodes before proposing too
				t := time.Now()
				resp, _, err := leader.Propose(ctx, cmd)
				if err == nil {
					if res, ok := resp.(*fsm.Result); !ok || res.Err != nil || res.Duplicate {
						err = fmt.Errorf("command %d: unexpected response %#v", i, resp)
					}
				}
				if err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
				now := time.Now()
				run.latency[i] = now.Sub(t)
				run.done[completed.Add(1)-1] = now
			}
		}()
	}
	wg.Wait()
	if errp := failed.Load(); errp != nil {
		b.Fatalf("propose: %v", *errp)
	}
	return run
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// cpuTime is the user+system CPU this process (all three nodes and the
// callers) has used: on a shared machine CPU per key is steadier than keys
// per second.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startBenchCluster(b *testing.B, opts ...testcluster.Option) (*testcluster.Cluster, *cluster.Node) {
	b.Helper()
	c := testcluster.Start(b, 3, func() raft.FSM { return fsm.New() },
		append([]testcluster.Option{testcluster.WithLogLevel(slog.LevelWarn)}, opts...)...)
	return c, c.WaitForLeader(b)
}

// BenchmarkCreateKeyPropose reports CreateKey commits per second and the
// latency percentiles of b.N proposals. In "compacting", every node
// snapshots and truncates its log every 2048 entries, as a long-running
// node does (every 8192 by default), so the log store keeps freeing and
// reusing pages.
func BenchmarkCreateKeyPropose(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchmarkCreateKeyPropose(b) })
	b.Run("compacting", func(b *testing.B) {
		benchmarkCreateKeyPropose(b, testcluster.WithConfig(func(_ int, cfg *cluster.Config) {
			cfg.SnapshotThreshold, cfg.SnapshotInterval, cfg.TrailingLogs = 2048, 100*time.Millisecond, 1024
		}))
	})
}

func benchmarkCreateKeyPropose(b *testing.B, opts ...testcluster.Option) {
	workers := benchEnvInt(b, "KMSD_BENCH_WORKERS", 64)
	_, leader := startBenchCluster(b, opts...)
	b.ResetTimer()
	cpu0 := cpuTime(b)
	run := proposeCreateKeys(b, leader, b.N, workers, 1)
	elapsed := time.Since(run.start)
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/key")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "keys/s")
	b.ReportMetric(ms(percentile(run.latency, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(run.latency, 0.99)), "p99-ms")
}

// BenchmarkCreateKeyGrowth creates KMSD_BENCH_KEYS keys and logs the
// throughput and latency of every tenth of them, to show whether a CreateKey
// gets slower as the key table grows. Run it with -benchtime 1x. At the end
// the three replicas must agree on the state hash.
func BenchmarkCreateKeyGrowth(b *testing.B) {
	workers := benchEnvInt(b, "KMSD_BENCH_WORKERS", 64)
	n := benchEnvInt(b, "KMSD_BENCH_KEYS", 100_000)
	for range b.N {
		c, leader := startBenchCluster(b)
		cpu0 := cpuTime(b)
		run := proposeCreateKeys(b, leader, n, workers, 1)
		elapsed := time.Since(run.start)
		b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(n), "cpu-µs/key")
		const segments = 10
		seg := max(1, n/segments)
		prev := run.start
		var first, last float64
		var table strings.Builder
		for s := 0; s*seg < n; s++ {
			end := min(n, (s+1)*seg)
			at := run.done[end-1]
			rate := float64(end-s*seg) / at.Sub(prev).Seconds()
			fmt.Fprintf(&table, "\nkeys %6d-%6d: %7.0f keys/s  p50 %6.2f ms  p99 %6.2f ms", s*seg, end, rate,
				ms(percentile(run.latency[s*seg:end], 0.50)), ms(percentile(run.latency[s*seg:end], 0.99)))
			if s == 0 {
				first = rate
			}
			last, prev = rate, at
		}
		// Printed, not logged: the testing package cuts benchmark logs short.
		fmt.Printf("%s: %d keys, %d callers%s\n", b.Name(), n, workers, table.String())
		b.ReportMetric(float64(n)/elapsed.Seconds(), "keys/s")
		b.ReportMetric(first, "first-tenth-keys/s")
		b.ReportMetric(last, "last-tenth-keys/s")
		b.ReportMetric(ms(percentile(run.latency, 0.99)), "p99-ms")

		b.StopTimer()
		c.WaitForApplied(b, leader.AppliedIndex())
		var want [32]byte
		for i := range 3 {
			f := c.FSM(i).(*fsm.FSM)
			if f.KeyCount() != n {
				b.Fatalf("node %d has %d keys, want %d", i, f.KeyCount(), n)
			}
			h, err := f.StateHash()
			if err != nil {
				b.Fatal(err)
			}
			if i == 0 {
				want = h
			} else if h != want {
				b.Fatalf("node %d state hash %x differs from node 0's %x", i, h, want)
			}
		}
		b.StartTimer()
	}
}
