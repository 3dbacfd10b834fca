package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// workload is a fixed mix of successful and failing commands touching every
// part of the state. Many keys make map iteration order matter if anything
// depended on it.
func workload() []*Command {
	var cmds []*Command
	cmds = append(cmds, addDomainKey("dk-1", []byte("w1"), t0))
	for i := range 40 {
		cmds = append(cmds, createKey(testKey(fmt.Sprintf("k%02d", i))))
	}
	for i := range 40 {
		id := fmt.Sprintf("k%02d", i)
		switch i % 5 {
		case 0:
			cmds = append(cmds, tagResource(id, map[string]string{"i": fmt.Sprint(i), "x": "y"}))
		case 1:
			cmds = append(cmds, createAlias("alias/"+id, id, t0+int64(i)))
		case 2:
			cmds = append(cmds, scheduleDeletion(id, t0+int64(i)*day, 7))
		case 3:
			cmds = append(cmds, setEnabled(id, false), cancelDeletion(id)) // the second fails
		case 4:
			cmds = append(cmds, updateDescription(id, "desc "+id), createKey(testKey(id))) // the second fails
		}
	}
	cmds = append(cmds,
		addDomainKey("dk-2", []byte("w2"), t0+day),
		deleteKey("k02", t0+2*day),
		deleteKey("k07", t0+2*day), // not yet due
		updateAlias("alias/k01", "k00", t0+day),
		untagResource("k00", "x"),
	)
	return cmds
}

func runWorkload(t *testing.T, cmds []*Command) *env {
	e := newEnv(t)
	for _, c := range cmds {
		e.apply(c)
	}
	return e
}

func TestDeterminism(t *testing.T) {
	a := runWorkload(t, workload())
	b := runWorkload(t, workload())
	require.Equal(t, a.hash(), b.hash())
	require.Equal(t, a.hash(), a.hash(), "StateHash is stable")
	require.Equal(t, snapshotBytes(t, a.f), snapshotBytes(t, b.f))
	require.Equal(t, readView(t, a.f, "dk-1", "dk-2"), readView(t, b.f, "dk-1", "dk-2"))
}

func TestDeterminismResultsMatch(t *testing.T) {
	// Every replica returns the same Result for every entry.
	a, b := newEnv(t), newEnv(t)
	for _, c := range workload() {
		data := a.encode(c)
		require.Equal(t, a.applyData(data), b.applyData(data))
	}
}

func TestDifferentSequencesDifferentHashes(t *testing.T) {
	base := workload()
	baseHash := runWorkload(t, base).hash()

	variants := map[string]func([]*Command) []*Command{
		"one argument differs": func(c []*Command) []*Command {
			c[len(c)-1] = untagResource("k00", "i")
			return c
		},
		"one command fewer": func(c []*Command) []*Command { return c[:len(c)-1] },
		"one command more": func(c []*Command) []*Command {
			return append(c, updateDescription("k04", "extra"))
		},
		"two commands swapped": func(c []*Command) []*Command {
			// Deleting k02 before scheduling it fails instead of succeeding.
			i, j := indexOf(t, c, CmdScheduleKeyDeletion), indexOf(t, c, CmdDeleteKey)
			c[i], c[j] = c[j], c[i]
			return c
		},
		"failed command in place of success": func(c []*Command) []*Command {
			c[len(c)-2] = updateAlias("alias/k01", "nope", t0+day)
			return c
		},
		"different clock value": func(c []*Command) []*Command {
			c[len(c)-2] = updateAlias("alias/k01", "k00", t0+day+1)
			return c
		},
	}
	for name, mutate := range variants {
		t.Run(name, func(t *testing.T) {
			require.NotEqual(t, baseHash, runWorkload(t, mutate(workload())).hash())
		})
	}

	// Only the dedupe window differs: still a different state, since the
	// window is replicated (a retry must be recognised on every replica).
	t.Run("different request id", func(t *testing.T) {
		c := workload()
		c[0].RequestID = "another-id"
		require.NotEqual(t, baseHash, runWorkload(t, c).hash())
	})
}

func indexOf(t *testing.T, cmds []*Command, typ string) int {
	t.Helper()
	for i, c := range cmds {
		if c.Type == typ {
			return i
		}
	}
	t.Fatalf("no %s command", typ)
	return -1
}
