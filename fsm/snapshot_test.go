package fsm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	src := populated(t)
	snap := snapshotBytes(t, src.f)

	dst := New()
	closed, err := restore(dst, snap)
	require.NoError(t, err)
	require.True(t, closed, "Restore must close its reader")

	h, err := dst.StateHash()
	require.NoError(t, err)
	require.Equal(t, src.hash(), h)
	require.Equal(t, readView(t, src.f, populatedDomainKeys...), readView(t, dst, populatedDomainKeys...))
	for _, id := range []string{"k1", "k2", "k3", "k4"} {
		want, _ := src.f.Key(id)
		got, ok := dst.Key(id)
		require.True(t, ok, id)
		require.Equal(t, want, got)
	}
	for _, name := range []string{"alias/one", "alias/two"} {
		want, _ := src.f.Alias(name)
		got, ok := dst.Alias(name)
		require.True(t, ok)
		require.Equal(t, want, got)
	}
	for _, entry := range src.f.st.Recent {
		want, _ := src.f.ResultOf(entry.RequestID)
		got, ok := dst.ResultOf(entry.RequestID)
		require.True(t, ok)
		require.Equal(t, want, got)
	}

	// A snapshot of the restored FSM is byte-for-byte the same.
	require.Equal(t, snap, snapshotBytes(t, dst))

	// Both go on identically.
	next := &env{t: t, f: dst, next: src.next}
	for _, c := range []func() *Command{
		func() *Command { return createKey(testKey("k5")) },
		func() *Command { return deleteKey("k4", t0+7*day) },
		func() *Command { return tagResource("k2", map[string]string{"z": "26"}) },
		func() *Command { return createAlias("alias/one", "k2", t0) }, // fails: exists
	} {
		require.Equal(t, src.apply(c()), next.apply(c()))
	}
	require.Equal(t, src.hash(), next.hash())
}

func TestSnapshotOfEmptyFSM(t *testing.T) {
	empty := New()
	snap := snapshotBytes(t, empty)
	want, err := empty.StateHash()
	require.NoError(t, err)

	// Restoring an empty snapshot clears a populated FSM.
	e := populated(t)
	_, err = restore(e.f, snap)
	require.NoError(t, err)
	got := e.hash()
	require.Equal(t, want, got)
	require.Equal(t, readView(t, empty), readView(t, e.f))
	_, ok := e.f.ResultOf("req-1")
	require.False(t, ok)

	// And the FSM is fully usable afterwards.
	e.mustApply(createKey(testKey("k1")), createAlias("alias/a", "k1", t0), addDomainKey("dk-1", nil, t0))
	require.Equal(t, 1, e.f.KeyCount())
}

func TestSnapshotStreamLayout(t *testing.T) {
	e := populated(t)
	snap := snapshotBytes(t, e.f)
	body, err := json.Marshal(e.f.copyState())
	require.NoError(t, err)
	require.Equal(t, frame(snapshotMagic, snapshotVersion, body), snap)
	require.Equal(t, "KMSDSNAP", string(snap[:8]))
	require.Equal(t, uint32(1), binary.BigEndian.Uint32(snap[8:12]))
	require.Equal(t, uint64(len(body)), binary.BigEndian.Uint64(snap[12:20]))
}

func TestPersistCancelsOnWriteError(t *testing.T) {
	e := populated(t)
	snap, err := e.f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	sink := &memSink{failWrites: true}
	err = snap.Persist(sink)
	require.ErrorIs(t, err, errSinkWrite)
	require.True(t, sink.cancelled)
	require.False(t, sink.closed)
}

func TestSnapshotCanBePersistedTwice(t *testing.T) {
	e := populated(t)
	snap, err := e.f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var a, b memSink
	require.NoError(t, snap.Persist(&a))
	require.NoError(t, snap.Persist(&b))
	require.Equal(t, a.Bytes(), b.Bytes())
}

func TestRestoreAcceptsNullCollections(t *testing.T) {
	// A body whose maps are missing or null still gives a usable FSM.
	for _, body := range []string{`{}`, `{"keys":null,"aliases":null,"domain_keys":null,"recent":null}`} {
		t.Run(body, func(t *testing.T) {
			e := populated(t)
			_, err := restore(e.f, frame(snapshotMagic, snapshotVersion, []byte(body)))
			require.NoError(t, err)
			require.Zero(t, e.f.KeyCount())
			require.Equal(t, readView(t, New()), readView(t, e.f))
			want, err := New().StateHash()
			require.NoError(t, err)
			require.Equal(t, want, e.hash())
			e.mustApply(createKey(testKey("k1")), createAlias("alias/a", "k1", t0))
			_, ok := e.f.Alias("alias/a")
			require.True(t, ok)
		})
	}
}

// requireRestoreRejected restores bad into a populated FSM and checks that
// it fails with ErrBadSnapshot and leaves the FSM exactly as it was.
func requireRestoreRejected(t *testing.T, e *env, bad []byte) {
	t.Helper()
	beforeHash := e.hash()
	beforeView := readView(t, e.f, populatedDomainKeys...)
	closed, err := restore(e.f, bad)
	require.ErrorIs(t, err, ErrBadSnapshot)
	require.True(t, closed, "Restore must close its reader, even on error")
	require.Equal(t, beforeHash, e.hash())
	require.Equal(t, beforeView, readView(t, e.f, populatedDomainKeys...))
	res, ok := e.f.ResultOf("req-1")
	require.True(t, ok, "dedupe memory lost by a failed restore")
	require.Nil(t, res.Err)
}

func TestRestoreRejectsCorruptSnapshots(t *testing.T) {
	good := snapshotBytes(t, populated(t).f)
	body := good[20 : len(good)-32]
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x01
		return b
	}
	withLength := func(n uint64) []byte {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[12:20], n)
		return b
	}
	cases := map[string][]byte{
		"empty":                    {},
		"magic only":               []byte(snapshotMagic),
		"header only":              good[:20],
		"no checksum":              good[:len(good)-32],
		"short checksum":           good[:len(good)-1],
		"flipped magic":            flip(0),
		"flipped version":          flip(11),
		"flipped length":           flip(19),
		"flipped body":             flip(20 + len(body)/2),
		"flipped checksum":         flip(len(good) - 1),
		"wrong magic":              frame("KMSDSNAQ", snapshotVersion, body),
		"lower-case magic":         frame("kmsdsnap", snapshotVersion, body),
		"version 0":                frame(snapshotMagic, 0, body),
		"version 2":                frame(snapshotMagic, snapshotVersion+1, body),
		"max version":              frame(snapshotMagic, math.MaxUint32, body),
		"length beyond limit":      withLength(maxSnapshotBody + 1),
		"max length":               withLength(math.MaxUint64),
		"length one short":         withLength(uint64(len(body) - 1)),
		"length one long":          withLength(uint64(len(body) + 1)),
		"zero length":              withLength(0),
		"checksummed non-json":     frame(snapshotMagic, snapshotVersion, []byte("not json")),
		"checksummed empty body":   frame(snapshotMagic, snapshotVersion, nil),
		"checksummed wrong types":  frame(snapshotMagic, snapshotVersion, []byte(`{"keys":5}`)),
		"checksummed json array":   frame(snapshotMagic, snapshotVersion, []byte(`[]`)),
		"checksummed partial json": frame(snapshotMagic, snapshotVersion, body[:len(body)-1]),
		"command instead":          mustEncode(t, sampleCommands()[0]),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			requireRestoreRejected(t, populated(t), bad)
		})
	}
}

func mustEncode(t *testing.T, c *Command) []byte {
	t.Helper()
	b, err := Encode(c)
	require.NoError(t, err)
	return b
}

// TestRestoreRejectsEveryCorruption flips every byte and cuts the stream at
// every length: no single corruption gets through.
func TestRestoreRejectsEveryCorruption(t *testing.T) {
	src := newEnv(t)
	src.mustApply(createKey(testKey("k1")), createAlias("alias/a", "k1", t0), addDomainKey("dk-1", []byte("w"), t0))
	good := snapshotBytes(t, src.f)

	target := populated(t)
	beforeHash := target.hash()
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		_, err := restore(target.f, b)
		require.ErrorIsf(t, err, ErrBadSnapshot, "flipped byte %d accepted", i)
	}
	for n := range len(good) {
		_, err := restore(target.f, good[:n])
		require.ErrorIsf(t, err, ErrBadSnapshot, "stream cut at %d accepted", n)
	}
	require.Equal(t, beforeHash, target.hash())

	_, err := restore(target.f, good)
	require.NoError(t, err)
	require.Equal(t, src.hash(), target.hash())
}

func TestRestoreErrorMessages(t *testing.T) {
	// The message says what is wrong; errors.Is still finds the sentinel.
	good := snapshotBytes(t, New())
	body := good[20 : len(good)-32]
	badSum := frame(snapshotMagic, snapshotVersion, []byte("{"))
	copy(badSum[len(badSum)-32:], make([]byte, 32))
	for _, tc := range []struct {
		want string
		bad  []byte
	}{
		{"bad magic", frame("XXXXXXXX", snapshotVersion, body)},
		{"unknown version 7", frame(snapshotMagic, 7, body)},
		{"header", good[:10]},
		{"body", good[:len(good)-40]},
		{"checksum", good[:len(good)-5]},
		{"checksum mismatch", badSum},
		{"decode", frame(snapshotMagic, snapshotVersion, []byte("{"))},
	} {
		t.Run(tc.want, func(t *testing.T) {
			_, err := restore(New(), tc.bad)
			require.ErrorIs(t, err, ErrBadSnapshot)
			require.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestStateHashMatchesAfterEveryRestore(t *testing.T) {
	// Snapshot after every command of a long run; each restores to an FSM
	// with the same hash and the same accessor results.
	e := newEnv(t)
	e.f.window = 7
	cmds := []*Command{
		addDomainKey("dk-1", []byte("w1"), t0),
		createKey(testKey("k1")),
		createKey(keyInState("k2", StatePendingImport)),
		createAlias("alias/a", "k1", t0),
		tagResource("k1", nTags("t", 10)),
		untagResource("k1", "t3", "env"),
		setEnabled("k1", false),
		createKey(testKey("k1")), // fails
		scheduleDeletion("k2", t0+7*day, 7),
		updateAlias("alias/a", "k2", t0), // fails: pending deletion
		addDomainKey("dk-2", []byte("w2"), t0+day),
		deleteKey("k2", t0+7*day),
		updateDescription("k1", "last"),
	}
	for i, c := range cmds {
		e.apply(c)
		t.Run(fmt.Sprintf("after %d %s", i, c.Type), func(t *testing.T) {
			f := New()
			_, err := restore(f, snapshotBytes(t, e.f))
			require.NoError(t, err)
			h, err := f.StateHash()
			require.NoError(t, err)
			require.Equal(t, e.hash(), h)
			require.Equal(t, readView(t, e.f), readView(t, f))
		})
	}
}
