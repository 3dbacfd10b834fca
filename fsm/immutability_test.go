package fsm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// The *Key values the FSM hands out are shared, read-only values (see the
// package doc): what the FSM guarantees is that Apply never changes a Key a
// reader holds, it stores a modified copy. Everything else the accessors
// return is the caller's own copy.

func keyJSON(t *testing.T, k *Key) string {
	t.Helper()
	b, err := json.Marshal(k)
	require.NoError(t, err)
	return string(b)
}

func TestHeldKeyUnchangedByLaterCommands(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), createAlias("alias/a", "k1", t0))
	held := e.mustKey("k1")
	heldJSON := keyJSON(t, held)
	heldTags := held.Tags
	heldVersions := held.Versions
	listed, _ := e.f.ListKeys("", 10)

	e.mustApply(
		updateDescription("k1", "changed"),
		setEnabled("k1", false),
		tagResource("k1", map[string]string{"new": "tag", "env": "prod"}),
		untagResource("k1", "env"),
		scheduleDeletion("k1", t0+7*day, 7),
		cancelDeletion("k1"),
		updateAlias("alias/a", "k2", t0+1),
		scheduleDeletion("k1", t0+7*day, 7),
		deleteKey("k1", t0+7*day),
		createKey(testKey("k1")), // same id, new value
		tagResource("k1", map[string]string{"x": "y"}),
	)
	// Failed commands work on a copy too.
	e.applyErr(tagResource("k2", nTags("t", MaxTagsPerKey+1)), ErrLimitExceeded)

	require.Equal(t, heldJSON, keyJSON(t, held))
	require.Equal(t, map[string]string{"env": "test"}, heldTags)
	require.Equal(t, testKey("k1").Versions, heldVersions)
	require.Equal(t, heldJSON, keyJSON(t, listed[0]))
	require.Equal(t, map[string]string{"env": "test", "x": "y"}, e.mustKey("k1").Tags)
	require.Equal(t, map[string]string{"env": "test"}, e.mustKey("k2").Tags)
}

// TestReadersRaceApply lets the race detector catch any in-place change of
// a Key, alias or slice that readers or a snapshot may be looking at.
func TestReadersRaceApply(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createAlias("alias/a", "k1", t0), addDomainKey("dk-1", []byte("w1"), t0))
	held := e.mustKey("k1")
	snap, err := e.f.Snapshot()
	require.NoError(t, err)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	read := func(fn func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					fn()
				}
			}
		}()
	}
	read(func() { // a reader keeps using the pointer it got before
		for k, v := range held.Tags {
			_, _ = k, v
		}
		_ = held.SortedTagKeys()
		_, _ = held.CurrentVersion()
		_ = held.Description + held.State
	})
	read(func() {
		if k, ok := e.f.Key("k1"); ok {
			_ = len(k.Tags) + len(k.Versions)
			_ = k.State
		}
		_, _ = e.f.ListKeys("", 10)
		_, _ = e.f.ListAliases("", "", 10)
		_, _ = e.f.Alias("alias/a")
		_, _ = e.f.CurrentDomainKey()
		_, _ = e.f.DomainKey("dk-1")
		_ = e.f.KeysDueForDeletion(math.MaxInt64)
		_ = e.f.KeyCount()
		_, _ = e.f.ResultOf("req-1")
		_ = e.f.GrantsForKey("k1", nil)
		_ = e.f.Grants(nil)
	})
	read(func() {
		_, err := e.f.StateHash()
		if err != nil {
			panic(err)
		}
	})

	// Writer: the test goroutine, applying like Raft's FSM goroutine does,
	// while an earlier snapshot is persisted concurrently.
	persisted := make(chan []byte)
	go func() {
		var sink memSink
		if err := snap.Persist(&sink); err != nil {
			panic(err)
		}
		persisted <- sink.Bytes()
	}()
	for i := range 100 {
		e.mustApply(
			tagResource("k1", map[string]string{"n": string(rune('a' + i%26))}),
			untagResource("k1", "env"),
			updateDescription("k1", "d"),
			setEnabled("k1", i%2 == 0),
			updateAlias("alias/a", "k1", t0+int64(i)),
		)
		if i%2 == 0 { // enabled: grants can be made
			e.mustApply(createGrant(testGrant(byte(i+1), "k1", "")))
		}
		if i%6 == 0 {
			e.mustApply(removeGrant("k1", grantID(byte(i+1))))
		}
	}
	// And in batches, as raft hands a batching FSM its entries.
	var batch []*raft.Log
	for i := range 50 {
		batch = append(batch, &raft.Log{Type: raft.LogCommand, Index: e.next,
			Data: e.encode(updateDescription("k1", fmt.Sprintf("batched %d", i)))})
		e.next++
	}
	for _, r := range e.f.ApplyBatch(batch) {
		require.Nil(t, r.(*Result).Err)
	}
	snapBytes := <-persisted
	close(stop)
	wg.Wait()

	require.Equal(t, "key k1", held.Description)
	f := New()
	_, err = restore(f, snapBytes)
	require.NoError(t, err)
	k, _ := f.Key("k1")
	require.Equal(t, keyJSON(t, held), keyJSON(t, k), "the snapshot holds the state at Snapshot time")
}

func TestAccessorResultsAreCopies(t *testing.T) {
	e := populated(t)
	before := e.hash()
	beforeView := readView(t, e.f, populatedDomainKeys...)

	// ListKeys: the slice is the caller's.
	keys, _ := e.f.ListKeys("", 10)
	keys[0] = &Key{KeyID: "evil"}
	_ = append(keys[:1], &Key{KeyID: "evil2"})

	// Alias and ListAliases return values.
	a, ok := e.f.Alias("alias/one")
	require.True(t, ok)
	a.TargetKeyID, a.Name, a.UpdatedAt = "k2", "alias/evil", 1
	aliases, _ := e.f.ListAliases("", "", 10)
	aliases[0].TargetKeyID = "k2"
	aliases[1] = Alias{Name: "alias/evil"}
	filtered, _ := e.f.ListAliases("k1", "", 10)
	filtered[0].TargetKeyID = "k3"

	// Domain keys are values too.
	dk, ok := e.f.DomainKey("dk-1")
	require.True(t, ok)
	dk.ID, dk.CreatedAt = "dk-evil", 1
	cur, ok := e.f.CurrentDomainKey()
	require.True(t, ok)
	cur.ID, cur.Wrapped = "dk-evil", []byte("replaced")

	// Slices of ids.
	due := e.f.KeysDueForDeletion(math.MaxInt64)
	require.Equal(t, []string{"k4"}, due)
	due[0] = "k1"

	// Remembered results are built per call.
	res, ok := e.f.ResultOf("req-1")
	require.True(t, ok)
	res.Duplicate = true
	res.Err = &Error{Kind: ErrNotFound, Message: "evil"}
	var failedID string
	for _, entry := range e.f.st.Recent {
		if entry.ErrCode != "" {
			failedID = entry.RequestID
			break
		}
	}
	failed, ok := e.f.ResultOf(failedID)
	require.True(t, ok)
	wantFailed := *failed.Err
	failed.Err.Message, failed.Err.Kind = "evil", ErrPrecondition

	// Sorted tag keys are a new slice.
	k1 := e.mustKey("k1")
	sorted := k1.SortedTagKeys()
	require.Equal(t, []string{"cost-center", "env", "team"}, sorted)
	sorted[0] = "zzz"

	require.Equal(t, before, e.hash())
	require.Equal(t, beforeView, readView(t, e.f, populatedDomainKeys...))
	res, _ = e.f.ResultOf("req-1")
	require.Equal(t, &Result{}, res)
	failed, _ = e.f.ResultOf(failedID)
	require.Equal(t, &wantFailed, failed.Err)
	require.Equal(t, []string{"cost-center", "env", "team"}, k1.SortedTagKeys())
}

func TestApplyResultIsCallersCopy(t *testing.T) {
	e := newEnv(t)
	res := e.apply(withRequestID(updateDescription("k1", "d"), "req-nf"))
	requireErrKind(t, res, ErrNotFound)
	msg := res.Err.Message
	res.Err.Message, res.Err.Kind = "evil", ErrPrecondition

	got, _ := e.f.ResultOf("req-nf")
	require.Equal(t, &Error{Kind: ErrNotFound, Message: msg}, got.Err)
	dup := e.apply(withRequestID(updateDescription("k1", "d"), "req-nf"))
	require.True(t, dup.Duplicate)
	require.Equal(t, &Error{Kind: ErrNotFound, Message: msg}, dup.Err)
}

func TestStateDoesNotAliasLogData(t *testing.T) {
	// Raft may reuse a log entry's buffer: nothing applied may point into it.
	e := newEnv(t)
	cmds := []*Command{
		addDomainKey("dk-1", []byte("wrapped-domain-key"), t0),
		createKey(testKey("k1")),
		tagResource("k1", map[string]string{"team": "crypto"}),
		createAlias("alias/a", "k1", t0),
	}
	for _, c := range cmds {
		data := e.encode(c)
		log := &raft.Log{Type: raft.LogCommand, Index: e.next, Data: data}
		e.next++
		res := e.f.Apply(log).(*Result)
		require.Nil(t, res.Err)
		for i := range data {
			data[i] = 'x'
		}
	}
	k := e.mustKey("k1")
	want := testKey("k1")
	want.Tags["team"] = "crypto"
	require.Equal(t, &want, k)
	dk, _ := e.f.DomainKey("dk-1")
	require.Equal(t, []byte("wrapped-domain-key"), dk.Wrapped)
	a, _ := e.f.Alias("alias/a")
	require.Equal(t, "k1", a.TargetKeyID)
	res, ok := e.f.ResultOf(cmds[0].RequestID)
	require.True(t, ok)
	require.Nil(t, res.Err)
}

func TestSnapshotIsolatedFromLaterApplies(t *testing.T) {
	e := populated(t)
	atSnapshot := e.hash()
	snap, err := e.f.Snapshot()
	require.NoError(t, err)

	// Change every part of the state before persisting.
	e.mustApply(
		createKey(testKey("k9")),
		updateDescription("k1", "after snapshot"),
		tagResource("k1", map[string]string{"late": "1"}),
		deleteAlias("alias/one"),
		updateAlias("alias/two", "k2", t0+99),
		addDomainKey("dk-3", []byte("w3"), t0+3*day),
		deleteKey("k4", t0+7*day),
	)
	require.NotEqual(t, atSnapshot, e.hash())

	var sink memSink
	require.NoError(t, snap.Persist(&sink))
	snap.Release()

	f := New()
	_, err = restore(f, sink.Bytes())
	require.NoError(t, err)
	got, err := f.StateHash()
	require.NoError(t, err)
	require.Equal(t, atSnapshot, got)
	_, ok := f.Key("k9")
	require.False(t, ok)
	require.True(t, bytes.Contains(sink.Bytes(), []byte("primary key")))
}
