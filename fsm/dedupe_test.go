package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDuplicateSuccessAppliesOnce(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")))

	// A retried proposal is a second log entry with the same bytes.
	data := e.encode(withRequestID(tagResource("k1", map[string]string{"a": "1"}), "retry-me"))
	first := e.applyData(data)
	require.Nil(t, first.Err)
	require.False(t, first.Duplicate)
	afterFirst := e.hash()
	k := e.mustKey("k1")

	second := e.applyData(data)
	require.True(t, second.Duplicate)
	require.Nil(t, second.Err)
	require.Equal(t, afterFirst, e.hash(), "a duplicate changed the state")
	require.Same(t, k, e.mustKey("k1"))

	res, ok := e.f.ResultOf("retry-me")
	require.True(t, ok)
	require.Equal(t, &Result{}, res)
}

func TestDuplicateWithDifferentPayloadIsNotApplied(t *testing.T) {
	// The request id alone identifies a request: whatever the second entry
	// carries, the first outcome stands and nothing is applied.
	e := newEnv(t)
	e.mustApply(withRequestID(createKey(testKey("k1")), "req-x"))
	before := e.hash()

	res := e.apply(withRequestID(createKey(testKey("k2")), "req-x"))
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err)
	_, ok := e.f.Key("k2")
	require.False(t, ok)
	require.Equal(t, before, e.hash())
}

// A counter-style command shows "applied once" best: CreateKey twice would
// fail the second time anyway, but a duplicate must instead repeat success.
func TestDuplicateNotReappliedAsNewCommand(t *testing.T) {
	e := newEnv(t)
	c := withRequestID(createKey(testKey("k1")), "create-k1")
	data := e.encode(c)
	require.Nil(t, e.applyData(data).Err)
	res := e.applyData(data)
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err, "a retried CreateKey must report its first success, not AlreadyExists")
	require.Equal(t, 1, e.f.KeyCount())
}

func TestDuplicateBusinessErrorIsRemembered(t *testing.T) {
	kinds := []struct {
		kind  error
		setup []*Command
		cmd   *Command
	}{
		{ErrNotFound, nil, updateDescription("k9", "d")},
		{ErrAlreadyExists, []*Command{createKey(testKey("k1"))}, createKey(testKey("k1"))},
		{ErrInvalidState, []*Command{createKey(testKey("k1"))}, cancelDeletion("k1")},
		{ErrDisabled, []*Command{createKey(keyInState("k1", StateDisabled))}, enableRotation("k1", 365, t0)},
		{ErrLimitExceeded, []*Command{createKey(testKey("k1"))}, tagResource("k1", nTags("t", MaxTagsPerKey+1))},
		{ErrPrecondition, []*Command{createKey(testKey("k1"))}, deleteKey("k1", t0)},
		{ErrIncorrectKeyMaterial, []*Command{createKey(externalKey("k1")), putParams(importParams(1, "k1", t0)),
			importForever("k1", 1, 1, t0)}, importForever("k1", 1, 2, t0)},
		{ErrInvalidImportToken, []*Command{createKey(externalKey("k1"))}, importForever("k1", 9, 1, t0)},
		{ErrExpiredImportToken, []*Command{createKey(externalKey("k1")), putParams(importParams(1, "k1", t0))},
			importForever("k1", 1, 1, t0+2*day)},
	}
	require.Len(t, kinds, len(errorCodes), "every business error kind is covered")
	for _, tc := range kinds {
		t.Run(tc.kind.Error(), func(t *testing.T) {
			e := newEnv(t)
			e.mustApply(tc.setup...)
			data := e.encode(withRequestID(tc.cmd, "req-fails"))
			first := e.applyData(data)
			requireErrKind(t, first, tc.kind)
			require.False(t, first.Duplicate)
			before := e.hash()

			second := e.applyData(data)
			require.True(t, second.Duplicate)
			requireErrKind(t, second, tc.kind)
			require.Equal(t, first.Err, second.Err)
			require.Equal(t, before, e.hash())

			res, ok := e.f.ResultOf("req-fails")
			require.True(t, ok)
			require.False(t, res.Duplicate)
			require.Equal(t, first.Err, res.Err)
		})
	}
}

func TestDuplicateKeepsFirstOutcomeAfterStateChanged(t *testing.T) {
	// First attempt fails (no such key); the key is created meanwhile; the
	// retry must still report the failure and not apply.
	e := newEnv(t)
	data := e.encode(withRequestID(updateDescription("k1", "retried"), "req-r"))
	requireErrKind(t, e.applyData(data), ErrNotFound)
	e.mustApply(createKey(testKey("k1")))

	res := e.applyData(data)
	require.True(t, res.Duplicate)
	requireErrKind(t, res, ErrNotFound)
	require.Equal(t, "key k1", e.mustKey("k1").Description)

	// And the other way round: first success, then a state in which the
	// command would fail; the retry still reports success.
	data = e.encode(withRequestID(setEnabled("k1", false), "req-s"))
	require.Nil(t, e.applyData(data).Err)
	e.mustApply(scheduleDeletion("k1", t0+7*day, 7))
	res = e.applyData(data)
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err)
	require.Equal(t, StatePendingDeletion, e.mustKey("k1").State)
}

// outcomeCmd returns command i of a stream whose outcomes alternate and are
// all distinguishable: even i succeed, odd i fail with a message naming i.
// A dedupe table that mixed up indexes would return the wrong outcome.
func outcomeCmd(i int) *Command {
	var c *Command
	if i%2 == 0 {
		c = updateDescription("k1", fmt.Sprintf("d%d", i))
	} else {
		c = updateDescription(fmt.Sprintf("missing-%d", i), "d")
	}
	return withRequestID(c, fmt.Sprintf("id-%d", i))
}

func requireOutcome(t *testing.T, f *FSM, i int) {
	t.Helper()
	res, ok := f.ResultOf(fmt.Sprintf("id-%d", i))
	require.Truef(t, ok, "id-%d forgotten", i)
	require.False(t, res.Duplicate)
	if i%2 == 0 {
		require.Nilf(t, res.Err, "id-%d", i)
		return
	}
	requireErrKind(t, res, ErrNotFound)
	require.Contains(t, res.Err.Message, fmt.Sprintf("'missing-%d'", i))
}

func requireForgotten(t *testing.T, f *FSM, i int) {
	t.Helper()
	_, ok := f.ResultOf(fmt.Sprintf("id-%d", i))
	require.Falsef(t, ok, "id-%d still remembered", i)
}

func TestDedupeWindowEviction(t *testing.T) {
	const window = 4
	e := newEnv(t)
	e.f.window = window
	e.mustApply(withRequestID(createKey(testKey("k1")), "setup"))

	for i := range 13 {
		res := e.apply(outcomeCmd(i))
		require.False(t, res.Duplicate)
		// Exactly the last `window` ids are remembered, with their outcomes.
		for j := 0; j <= i; j++ {
			if j > i-window {
				requireOutcome(t, e.f, j)
			} else {
				requireForgotten(t, e.f, j)
			}
		}
		require.LessOrEqual(t, len(e.f.st.Recent), window)
		require.LessOrEqual(t, len(e.f.recent), window)
	}
	_, ok := e.f.ResultOf("setup")
	require.False(t, ok)

	// A forgotten id is applied again as a new request (the window is what
	// bounds the retry horizon); a remembered one is still a duplicate.
	res := e.apply(outcomeCmd(12))
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err)

	e.mustApply(setEnabled("k1", false))
	res = e.apply(withRequestID(setEnabled("k1", true), "id-0"))
	require.False(t, res.Duplicate, "id-0 was evicted, so it is new")
	require.Nil(t, res.Err)
	require.Equal(t, StateEnabled, e.mustKey("k1").State)
	requireOutcome(t, e.f, 0) // now remembered as a success again
}

func TestDedupeWindowOfOne(t *testing.T) {
	e := newEnv(t)
	e.f.window = 1
	e.mustApply(createKey(testKey("k1")))
	for i := range 5 {
		e.apply(outcomeCmd(i))
		requireOutcome(t, e.f, i)
		if i > 0 {
			requireForgotten(t, e.f, i-1)
		}
	}
}

func TestDedupeSurvivesSnapshotRestore(t *testing.T) {
	src := populated(t)
	src.mustApply(createKey(testKey("kd")))
	okData := src.encode(withRequestID(updateDescription("kd", "once"), "req-ok"))
	require.Nil(t, src.applyData(okData).Err)
	errData := src.encode(withRequestID(cancelDeletion("kd"), "req-err"))
	first := src.applyData(errData)
	requireErrKind(t, first, ErrInvalidState)

	snap := snapshotBytes(t, src.f)
	dst := &env{t: t, f: New(), next: src.next}
	_, err := restore(dst.f, snap)
	require.NoError(t, err)
	before := dst.hash()
	require.Equal(t, src.hash(), before)

	// Retries arriving after the restore are still recognised.
	res := dst.applyData(okData)
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err)
	res = dst.applyData(errData)
	require.True(t, res.Duplicate)
	require.Equal(t, first.Err, res.Err)
	require.Equal(t, before, dst.hash())

	// Every remembered outcome came across, including populated's own.
	for _, entry := range src.f.st.Recent {
		want, ok := src.f.ResultOf(entry.RequestID)
		require.True(t, ok)
		got, ok := dst.f.ResultOf(entry.RequestID)
		require.True(t, ok, entry.RequestID)
		require.Equal(t, want, got)
	}
}

func TestDedupeEvictionContinuesAfterRestore(t *testing.T) {
	const window = 5
	src := newEnv(t)
	src.f.window = window
	src.mustApply(withRequestID(createKey(testKey("k1")), "setup"))
	for i := range 12 { // src has dropped entries: its index offset is not zero
		src.apply(outcomeCmd(i))
	}
	require.NotZero(t, src.f.dropped)

	dst := &env{t: t, f: New(), next: src.next}
	dst.f.window = window
	_, err := restore(dst.f, snapshotBytes(t, src.f))
	require.NoError(t, err)
	for i := 12 - window; i < 12; i++ {
		requireOutcome(t, dst.f, i)
	}
	requireForgotten(t, dst.f, 12-window-1)

	// Both FSMs go on with the same entries and must agree, id by id.
	for i := 12; i < 25; i++ {
		require.Equal(t, src.apply(outcomeCmd(i)), dst.apply(outcomeCmd(i)))
		for j := 0; j <= i; j++ {
			if j > i-window {
				requireOutcome(t, dst.f, j)
			} else {
				requireForgotten(t, dst.f, j)
			}
		}
		require.Equal(t, src.hash(), dst.hash())
	}
}

func TestRestoreIntoSmallerWindow(t *testing.T) {
	// A snapshot from a node remembering more than this one: the extra
	// entries are trimmed, oldest first, on the next Apply.
	src := newEnv(t)
	src.mustApply(withRequestID(createKey(testKey("k1")), "setup"))
	for i := range 10 {
		src.apply(outcomeCmd(i))
	}
	dst := &env{t: t, f: New(), next: src.next}
	dst.f.window = 3
	_, err := restore(dst.f, snapshotBytes(t, src.f))
	require.NoError(t, err)
	for i := range 10 {
		requireOutcome(t, dst.f, i)
	}
	dst.apply(outcomeCmd(10))
	for i := range 11 {
		if i >= 8 {
			requireOutcome(t, dst.f, i)
		} else {
			requireForgotten(t, dst.f, i)
		}
	}
}

func TestRestoreReplacesDedupeMemory(t *testing.T) {
	// Ids the target remembered before the restore but the snapshot does
	// not hold are forgotten.
	src := newEnv(t)
	src.mustApply(withRequestID(createKey(testKey("k1")), "in-snapshot"))
	dst := newEnv(t)
	dst.mustApply(withRequestID(createKey(testKey("k2")), "only-in-target"))
	_, err := restore(dst.f, snapshotBytes(t, src.f))
	require.NoError(t, err)
	_, ok := dst.f.ResultOf("only-in-target")
	require.False(t, ok)
	_, ok = dst.f.ResultOf("in-snapshot")
	require.True(t, ok)
	_, ok = dst.f.Key("k2")
	require.False(t, ok)
}

func TestDedupeWindowMemoryBounded(t *testing.T) {
	const window = 64
	e := newEnv(t)
	e.f.window = window
	e.mustApply(createKey(testKey("k1")))
	for i := range 50 * window {
		e.apply(outcomeCmd(i))
		require.LessOrEqual(t, len(e.f.st.Recent), window)
		require.LessOrEqual(t, cap(e.f.st.Recent), 4*window, "the window's backing array keeps growing")
	}
	require.Len(t, e.f.recent, window)
	for i := 50*window - window; i < 50*window; i++ {
		requireOutcome(t, e.f, i)
	}
	requireForgotten(t, e.f, 50*window-window-1)
}
