package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// fullWorkload touches every command type and part of the state, with
// failures, repeated request ids (dedupe, including a repeat inside what
// will be one batch) and non-command entries, as raft log entries.
func fullWorkload(t *testing.T) []*raft.Log {
	t.Helper()
	cmds := workload()
	cmds = append(cmds,
		createKey(testKey("g1")),
		createGrant(testGrant(1, "g1", "")),
		createGrant(testGrant(2, "g1", "named")),
		createGrant(testGrant(3, "g1", "named")), // same name and parameters: idempotent
		createGrant(testGrant(4, "missing", "")), // fails
		removeGrant("g1", grantID(1)),
		putPolicy("g1", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow"}]}`),
		createKey(externalKey("x1")),
		putParams(importParams(1, "x1", t0)),
		putParams(importParams(2, "x1", t0+1)),
		importForever("x1", 1, 1, t0+2),
		importForever("x1", 9, 1, t0+3), // unknown token: fails
		deleteMaterial("x1", false, t0+4),
		enableRotation("g1", 90, t0),
		rotateKey("g1", 0x61, RotationOnDemand, t0+day),
		rotateKey("g1", 0x62, RotationAutomatic, t0+day), // not due: fails
		disableRotation("g1", t0+2*day),
		scheduleDeletion("g1", t0+3*day, 7),
		deleteKey("g1", t0+3*day), // drops its grants
		createKey(testKey("g2")),
		createGrant(testGrant(5, "g2", "")),
	)
	var logs []*raft.Log
	add := func(l *raft.Log) {
		l.Index, l.Term = uint64(len(logs)+1), 1
		logs = append(logs, l)
	}
	for i, c := range cmds {
		c.RequestID = fmt.Sprintf("req-%d", i)
		data, err := Encode(c)
		require.NoError(t, err)
		add(&raft.Log{Type: raft.LogCommand, Data: data})
		switch i % 7 {
		case 2:
			add(&raft.Log{Type: raft.LogCommand, Data: data}) // an immediate retry
		case 4:
			add(&raft.Log{Type: raft.LogNoop})
		case 5:
			add(&raft.Log{Type: raft.LogConfiguration, Data: []byte{0xff}})
		}
		if i%11 == 10 {
			// A late retry of an earlier request, with a different payload.
			late := updateDescription("k00", "late retry")
			late.RequestID = fmt.Sprintf("req-%d", i-9)
			lateData, err := Encode(late)
			require.NoError(t, err)
			add(&raft.Log{Type: raft.LogCommand, Data: lateData})
		}
	}
	return logs
}

func TestApplyBatchEqualsApplyOneByOne(t *testing.T) {
	logs := fullWorkload(t)
	one := New()
	var want []any
	for _, l := range logs {
		want = append(want, one.Apply(l))
	}
	wantHash, err := one.StateHash()
	require.NoError(t, err)
	wantSnap := snapshotBytes(t, one)

	// The workload has every outcome: successes, business errors,
	// duplicates (success and error remembered) and non-command entries.
	var ok, bizErr, dup, none int
	for _, r := range want {
		switch r := r.(type) {
		case nil:
			none++
		case *Result:
			switch {
			case r.Duplicate:
				dup++
			case r.Err != nil:
				bizErr++
			default:
				ok++
			}
		}
	}
	require.Positive(t, ok)
	require.Positive(t, bizErr)
	require.Positive(t, dup)
	require.Positive(t, none)

	for _, size := range []int{1, 2, 3, 7, 64, len(logs)} {
		t.Run(fmt.Sprintf("batches of %d", size), func(t *testing.T) {
			f := New()
			var got []any
			for start := 0; start < len(logs); start += size {
				batch := logs[start:min(start+size, len(logs))]
				out := f.ApplyBatch(batch)
				require.Len(t, out, len(batch))
				got = append(got, out...)
			}
			require.Equal(t, want, got, "every result")
			h, err := f.StateHash()
			require.NoError(t, err)
			require.Equal(t, wantHash, h)
			require.Equal(t, wantSnap, snapshotBytes(t, f))
			require.Equal(t, readView(t, one, "dk-1", "dk-2"), readView(t, f, "dk-1", "dk-2"))
		})
	}
}

func TestApplyBatchEmpty(t *testing.T) {
	e := populated(t)
	before := e.hash()
	require.Empty(t, e.f.ApplyBatch(nil))
	require.Equal(t, before, e.hash())
}

func TestApplyBatchPanicsLikeApplyOnUndecodableEntry(t *testing.T) {
	e := populated(t)
	good := func(id, desc string) *raft.Log {
		return &raft.Log{Type: raft.LogCommand, Data: e.encode(withRequestID(updateDescription(id, desc), "req-"+desc))}
	}
	bad := &raft.Log{Type: raft.LogCommand, Index: 42, Data: []byte("not a command")} // mustPanicValue names index 42
	batch := []*raft.Log{good("k1", "first"), good("k2", "second"), bad, good("k1", "after")}

	ref := populated(t)
	require.PanicsWithValue(t, mustPanicValue(t, bad.Data), func() { ref.f.Apply(bad) })

	require.PanicsWithValue(t, mustPanicValue(t, bad.Data), func() { e.f.ApplyBatch(batch) })
	// The entries before the bad one were applied, as Apply one by one
	// would have; the one after was not.
	require.Equal(t, "first", e.mustKey("k1").Description)
	require.Equal(t, "second", e.mustKey("k2").Description)
	_, ok := e.f.ResultOf("req-after")
	require.False(t, ok)
	// The lock was released.
	e.mustApply(updateDescription("k1", "after panic"))
	require.Equal(t, "after panic", e.mustKey("k1").Description)
}

// requireGrantIndexConsistent checks the derived per-key grant index
// against the grants themselves, and GrantsForKey against Grants.
func requireGrantIndexConsistent(t *testing.T, f *FSM) {
	t.Helper()
	f.mu.RLock()
	want := newGrantIndex(f.st.Grants)
	got := f.grantsByKey
	keyIDs := make(map[string]bool)
	for _, g := range f.st.Grants {
		keyIDs[g.KeyID] = true
	}
	for id := range f.st.Keys {
		keyIDs[id] = true
	}
	f.mu.RUnlock()
	require.Equal(t, len(want), len(got))
	for k, m := range want {
		require.Equal(t, m, got[k], "grants of %s", k)
	}
	for k := range keyIDs {
		all := f.Grants(func(g *Grant) bool { return g.KeyID == k })
		require.Equal(t, all, f.GrantsForKey(k, nil))
		named := func(g *Grant) bool { return g.Name != "" }
		require.Equal(t, f.Grants(func(g *Grant) bool { return g.KeyID == k && named(g) }), f.GrantsForKey(k, named))
	}
}

func TestGrantIndexFollowsEveryChange(t *testing.T) {
	f := New()
	sawGrants := false
	for _, l := range fullWorkload(t) {
		f.Apply(l)
		requireGrantIndexConsistent(t, f)
		sawGrants = sawGrants || f.GrantCount() > 0
	}
	require.True(t, sawGrants)
	// Restored and batch-applied FSMs build the same index.
	g := New()
	_, err := restore(g, snapshotBytes(t, f))
	require.NoError(t, err)
	requireGrantIndexConsistent(t, g)
	require.NotEmpty(t, g.GrantsForKey("g2", nil))
	h := New()
	h.ApplyBatch(fullWorkload(t))
	requireGrantIndexConsistent(t, h)
	require.Equal(t, f.GrantsForKey("g2", nil), h.GrantsForKey("g2", nil))
}
