package chaos

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Failpoint is one fault schedule: it injects faults into the cluster and
// returns once every node it touched runs again and is ready.
type Failpoint interface {
	Name() string
	Inject(ctx context.Context, c *Cluster) error
}

// DefaultPause is how long a killed node stays down: long enough for an
// election (heartbeat timeout 500ms-1s) and for writes to go on without it.
const DefaultPause = time.Second

// Failpoints returns every failpoint, in a fixed order, with pause as the
// time a killed node stays down (0: DefaultPause).
func Failpoints(pause time.Duration) []Failpoint {
	return []Failpoint{
		KillLeader{Pause: pause},
		KillFollower{Pause: pause},
		KillFollowersInTurn{Pause: pause},
		RestartAll{Pause: pause},
		RollingRestart{Pause: pause},
	}
}

func pauseOr(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultPause
	}
	return d
}

// down keeps a killed node down for pause (a fault-schedule choice, not a
// synchronisation: nothing waits for a condition here).
func down(ctx context.Context, pause time.Duration) error {
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// restart starts a killed node again and waits until it is ready.
func (c *Cluster) restart(ctx context.Context, n *Node) error {
	c.event("restart %s", n.ID)
	if err := n.Start(); err != nil {
		return err
	}
	if err := n.WaitReady(ctx); err != nil {
		return err
	}
	c.event("%s ready", n.ID)
	return nil
}

func (c *Cluster) kill(n *Node, role string) {
	c.event("SIGKILL %s (%s, pid %d)", n.ID, role, n.Pid())
	n.Kill()
}

func (c *Cluster) event(format string, args ...any) {
	what := fmt.Sprintf(format, args...)
	c.Logf("chaos: %s", what)
	if c.rec != nil {
		c.rec.Event(what)
	}
}

// Event records a fault or phase boundary in the history (if any) and logs it.
func (c *Cluster) Event(format string, args ...any) { c.event(format, args...) }

// KillLeader SIGKILLs the leader, measures the failover (until a CreateKey
// through a survivor succeeds), keeps the node down for Pause, and restarts
// it.
type KillLeader struct{ Pause time.Duration }

func (KillLeader) Name() string { return "kill-leader" }

func (f KillLeader) Inject(ctx context.Context, c *Cluster) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	killedAt := time.Now()
	c.kill(leader, "leader")
	d, err := c.MeasureFailover(ctx, leader, killedAt)
	if err != nil {
		return err
	}
	c.event("failover after killing %s: %v", leader.ID, d)
	if err := down(ctx, pauseOr(f.Pause)-time.Since(killedAt)); err != nil {
		return err
	}
	return c.restart(ctx, leader)
}

// KillFollower SIGKILLs a random follower, keeps it down for Pause and
// restarts it.
type KillFollower struct{ Pause time.Duration }

func (KillFollower) Name() string { return "kill-follower" }

func (f KillFollower) Inject(ctx context.Context, c *Cluster) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	fs := c.Followers(leader)
	if len(fs) == 0 {
		return errors.New("chaos: no follower to kill")
	}
	n := fs[rand.IntN(len(fs))]
	c.kill(n, "follower")
	if err := down(ctx, pauseOr(f.Pause)); err != nil {
		return err
	}
	return c.restart(ctx, n)
}

// KillFollowersInTurn SIGKILLs two followers one at a time: each is
// restarted and ready before the next is killed.
type KillFollowersInTurn struct{ Pause time.Duration }

func (KillFollowersInTurn) Name() string { return "kill-followers-in-turn" }

func (f KillFollowersInTurn) Inject(ctx context.Context, c *Cluster) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	fs := c.Followers(leader)
	if len(fs) > 2 {
		fs = fs[:2]
	}
	for _, n := range fs {
		c.kill(n, "follower")
		if err := down(ctx, pauseOr(f.Pause)); err != nil {
			return err
		}
		if err := c.restart(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// RestartAll SIGKILLs every node at once (a whole-cluster crash), keeps
// them down for Pause, and starts them all again.
type RestartAll struct{ Pause time.Duration }

func (RestartAll) Name() string { return "restart-all" }

func (f RestartAll) Inject(ctx context.Context, c *Cluster) error {
	var wg sync.WaitGroup
	for _, n := range c.Running() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.kill(n, "all")
		}()
	}
	wg.Wait()
	if err := down(ctx, pauseOr(f.Pause)/2); err != nil {
		return err
	}
	for _, n := range c.nodes {
		c.event("restart %s", n.ID)
		if err := n.Start(); err != nil {
			return err
		}
	}
	if err := c.WaitReady(ctx); err != nil {
		return err
	}
	c.event("all nodes ready")
	return nil
}

// RollingRestart SIGKILLs and restarts every node in turn (followers
// first, the leader last), each ready before the next goes down.
type RollingRestart struct{ Pause time.Duration }

func (RollingRestart) Name() string { return "rolling-restart" }

func (f RollingRestart) Inject(ctx context.Context, c *Cluster) error {
	leader, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	order := append(c.Followers(leader), leader)
	for _, n := range order {
		role := "follower"
		if n == leader {
			role = "leader"
		}
		c.kill(n, role)
		if err := down(ctx, pauseOr(f.Pause)/2); err != nil {
			return err
		}
		if err := c.restart(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// probeClientBase is the first porcupine client id of failover probes (one
// per node); writers use 0..Writers-1. Porcupine draws one lane per id up to
// the largest.
const probeClientBase = 8

var corrSeq atomic.Uint64

// NextCorr returns a fresh CreateKey correlation id with prefix.
func NextCorr(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, corrSeq.Add(1))
}

// MeasureFailover sends CreateKeys through every survivor of killed, back to
// back (each attempt bounded by a second), until one succeeds, and returns
// the time from killedAt to that success. The result is also kept for
// Failovers.
func (c *Cluster) MeasureFailover(ctx context.Context, killed *Node, killedAt time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	won := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		if n == killed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := n.Client().WithID(probeClientBase + i)
			for ctx.Err() == nil {
				actx, acancel := context.WithTimeout(ctx, time.Second)
				_, op := cl.CreateKey(actx, NextCorr("probe"))
				acancel()
				if op.Outcome == OK {
					select {
					case won <- time.Since(killedAt):
					default:
					}
					cancel()
					return
				}
				// Pace retries against a node that answers at once.
				t := time.NewTimer(20 * time.Millisecond)
				select {
				case <-ctx.Done():
				case <-t.C:
				}
				t.Stop()
			}
		}()
	}
	wg.Wait()
	select {
	case d := <-won:
		c.mu.Lock()
		c.failovers = append(c.failovers, d)
		c.mu.Unlock()
		return d, nil
	default:
		return 0, fmt.Errorf("chaos: no CreateKey succeeded through a survivor within 30s of killing %s", killed.ID)
	}
}

// Failovers returns every failover time measured so far.
func (c *Cluster) Failovers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.failovers...)
}
