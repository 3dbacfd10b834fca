package fsm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// Fixed clock values: Apply never reads a clock, so tests never do either.
const (
	t0  int64 = 1_700_000_000_000_000_000 // 2023-11-14T22:13:20Z in unix nanoseconds
	day int64 = 24 * 60 * 60 * 1_000_000_000
)

const testAccount = "111122223333"

func testARN(id string) string {
	return "arn:aws:kms:us-east-1:" + testAccount + ":key/" + id
}

// testKey returns a fully populated, enabled key with one material version.
func testKey(id string) Key {
	return Key{
		KeyID:       id,
		ARN:         testARN(id),
		AccountID:   testAccount,
		CreatedAt:   t0,
		Description: "key " + id,
		KeyUsage:    "ENCRYPT_DECRYPT",
		KeySpec:     "SYMMETRIC_DEFAULT",
		Origin:      "AWS_KMS",
		KeyManager:  "CUSTOMER",
		State:       StateEnabled,
		Policy:      `{"Version":"2012-10-17","Statement":[]}`,
		Tags:        map[string]string{"env": "test"},
		Versions: []KeyVersion{{
			VersionID:       [16]byte{1, 2, 3},
			DomainKeyID:     "dk-1",
			WrappedMaterial: []byte{0xaa, 0xbb, 0xcc},
			CreatedAt:       t0,
		}},
	}
}

func keyInState(id, st string) Key {
	k := testKey(id)
	k.State = st
	return k
}

// Command constructors. RequestID is left empty: env.apply fills it in.

func createKey(k Key) *Command {
	return &Command{Type: CmdCreateKey, Time: k.CreatedAt, CreateKey: &CreateKeyCmd{Key: k}}
}

func updateDescription(id, desc string) *Command {
	return &Command{Type: CmdUpdateKeyDescription, Time: t0,
		UpdateKeyDescription: &UpdateKeyDescriptionCmd{KeyID: id, Description: desc}}
}

func setEnabled(id string, enabled bool) *Command {
	return &Command{Type: CmdSetKeyEnabled, Time: t0, SetKeyEnabled: &SetKeyEnabledCmd{KeyID: id, Enabled: enabled}}
}

func scheduleDeletion(id string, date int64, days int32) *Command {
	return &Command{Type: CmdScheduleKeyDeletion, Time: t0,
		ScheduleKeyDeletion: &ScheduleKeyDeletionCmd{KeyID: id, DeletionDate: date, WindowDays: days}}
}

func cancelDeletion(id string) *Command {
	return &Command{Type: CmdCancelKeyDeletion, Time: t0, KeyRef: &KeyRefCmd{KeyID: id}}
}

func deleteKey(id string, now int64) *Command {
	return &Command{Type: CmdDeleteKey, Time: now, KeyRef: &KeyRefCmd{KeyID: id}}
}

func createAlias(name, target string, now int64) *Command {
	return &Command{Type: CmdCreateAlias, Time: now, Alias: &AliasCmd{Name: name, TargetKeyID: target}}
}

func updateAlias(name, target string, now int64) *Command {
	return &Command{Type: CmdUpdateAlias, Time: now, Alias: &AliasCmd{Name: name, TargetKeyID: target}}
}

func deleteAlias(name string) *Command {
	return &Command{Type: CmdDeleteAlias, Time: t0, Alias: &AliasCmd{Name: name}}
}

func tagResource(id string, tags map[string]string) *Command {
	return &Command{Type: CmdTagResource, Time: t0, TagResource: &TagResourceCmd{KeyID: id, Tags: tags}}
}

func untagResource(id string, keys ...string) *Command {
	return &Command{Type: CmdUntagResource, Time: t0, UntagResource: &UntagResourceCmd{KeyID: id, TagKeys: keys}}
}

func addDomainKey(id string, wrapped []byte, now int64) *Command {
	return &Command{Type: CmdAddDomainKey, Time: now, AddDomainKey: &DomainKey{ID: id, Wrapped: wrapped, CreatedAt: now}}
}

func enableRotation(id string, days int32, now int64) *Command {
	return &Command{Type: CmdSetKeyRotation, Time: now, SetKeyRotation: &SetKeyRotationCmd{KeyID: id, Enabled: true, PeriodDays: days}}
}

func disableRotation(id string, now int64) *Command {
	return &Command{Type: CmdSetKeyRotation, Time: now, SetKeyRotation: &SetKeyRotationCmd{KeyID: id}}
}

// rotationVersion is a material version with id {tag} made at now.
func rotationVersion(tag byte, typ string, now int64) KeyVersion {
	return KeyVersion{VersionID: [16]byte{tag}, DomainKeyID: "dk-1", WrappedMaterial: []byte{tag, 0xee}, CreatedAt: now, RotationType: typ}
}

func rotateKey(id string, tag byte, typ string, now int64) *Command {
	return &Command{Type: CmdRotateKeyMaterial, Time: now,
		RotateKeyMaterial: &RotateKeyMaterialCmd{KeyID: id, Version: rotationVersion(tag, typ, now)}}
}

func withRequestID(c *Command, id string) *Command {
	c.RequestID = id
	return c
}

// nTags returns n distinct tags named prefix0, prefix1, ...
func nTags(prefix string, n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("%s%d", prefix, i)] = fmt.Sprintf("v%d", i)
	}
	return m
}

// env drives one FSM the way Raft does: every command is encoded and applied
// as a LogCommand entry with an increasing index.
type env struct {
	t    *testing.T
	f    *FSM
	next uint64 // index of the next log entry
}

func newEnv(t *testing.T) *env {
	return &env{t: t, f: New(), next: 1}
}

// encode encodes c, first giving it request id "req-<index>" when it has none.
func (e *env) encode(c *Command) []byte {
	e.t.Helper()
	if c.RequestID == "" {
		c.RequestID = fmt.Sprintf("req-%d", e.next)
	}
	b, err := Encode(c)
	require.NoError(e.t, err)
	return b
}

// apply applies c and returns Apply's *Result.
func (e *env) apply(c *Command) *Result {
	e.t.Helper()
	return e.applyData(e.encode(c))
}

func (e *env) applyData(b []byte) *Result {
	e.t.Helper()
	out := e.f.Apply(&raft.Log{Type: raft.LogCommand, Index: e.next, Term: 1, Data: b})
	e.next++
	res, ok := out.(*Result)
	require.Truef(e.t, ok, "Apply returned %T, want *Result", out)
	require.NotNil(e.t, res)
	return res
}

// mustApply applies c and requires a fresh success.
func (e *env) mustApply(cmds ...*Command) {
	e.t.Helper()
	for _, c := range cmds {
		res := e.apply(c)
		require.Nilf(e.t, res.Err, "%s %s failed: %v", c.Type, c.RequestID, res.Err)
		require.False(e.t, res.Duplicate, "%s %s reported as duplicate", c.Type, c.RequestID)
	}
}

// applyErr applies c and requires a fresh business error of the given kind.
func (e *env) applyErr(c *Command, kind error) *Error {
	e.t.Helper()
	res := e.apply(c)
	requireErrKind(e.t, res, kind)
	require.False(e.t, res.Duplicate)
	return res.Err
}

func requireErrKind(t *testing.T, res *Result, kind error) {
	t.Helper()
	require.NotNil(t, res.Err, "want %v, got success", kind)
	require.ErrorIs(t, res.Err, kind)
	require.Same(t, kind, res.Err.Kind)
	require.NotEmpty(t, res.Err.Message)
	require.Equal(t, kind.Error()+": "+res.Err.Message, res.Err.Error())
	// Every business kind has a dedupe code, or it could not be remembered.
	require.Contains(t, errorCodes, kind)
}

// mustKey returns the key, which must exist.
func (e *env) mustKey(id string) *Key {
	e.t.Helper()
	k, ok := e.f.Key(id)
	require.Truef(e.t, ok, "key %s not found", id)
	return k
}

func (e *env) hash() [32]byte {
	e.t.Helper()
	h, err := e.f.StateHash()
	require.NoError(e.t, err)
	return h
}

// businessState is the canonical encoding of everything but the request-id
// dedupe window: a failed command must leave it byte-for-byte unchanged.
func businessState(t *testing.T, f *FSM) string {
	t.Helper()
	st := f.copyState()
	st.Recent = nil
	b, err := json.Marshal(st)
	require.NoError(t, err)
	return string(b)
}

// view is everything the read accessors expose, for comparing two FSMs.
type view struct {
	Keys       []*Key
	Aliases    []Alias
	DomainKeys []DomainKey
	Current    DomainKey
	HasCurrent bool
	Count      int
	Due        []string
	DueRotate  []string
}

func readView(t *testing.T, f *FSM, domainKeyIDs ...string) view {
	t.Helper()
	keys, more := f.ListKeys("", math.MaxInt)
	require.False(t, more)
	aliases, more := f.ListAliases("", "", math.MaxInt)
	require.False(t, more)
	v := view{Keys: keys, Aliases: aliases, Count: f.KeyCount(), Due: f.KeysDueForDeletion(math.MaxInt64),
		DueRotate: f.KeysDueForRotation(math.MaxInt64)}
	for _, id := range domainKeyIDs {
		dk, ok := f.DomainKey(id)
		require.Truef(t, ok, "domain key %s", id)
		v.DomainKeys = append(v.DomainKeys, dk)
	}
	v.Current, v.HasCurrent = f.CurrentDomainKey()
	return v
}

// memSink is a raft.SnapshotSink writing to memory.
type memSink struct {
	bytes.Buffer
	closed, cancelled bool
	failWrites        bool
}

var _ raft.SnapshotSink = (*memSink)(nil)

var errSinkWrite = errors.New("sink: disk full")

func (s *memSink) Write(p []byte) (int, error) {
	if s.failWrites {
		return 0, errSinkWrite
	}
	return s.Buffer.Write(p)
}
func (s *memSink) ID() string    { return "mem-snapshot" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	require.NoError(t, err)
	defer snap.Release()
	var sink memSink
	require.NoError(t, snap.Persist(&sink))
	require.True(t, sink.closed)
	require.False(t, sink.cancelled)
	return sink.Bytes()
}

// trackingReader is the io.ReadCloser Restore gets; it records Close.
type trackingReader struct {
	io.Reader
	closed bool
}

func (r *trackingReader) Close() error { r.closed = true; return nil }

func restore(f *FSM, b []byte) (closed bool, err error) {
	r := &trackingReader{Reader: bytes.NewReader(b)}
	err = f.Restore(r)
	return r.closed, err
}

// frame builds a snapshot stream by hand, following the layout documented
// in snapshot.go: magic | version (u32 BE) | body length (u64 BE) | body | sha256(body).
func frame(magic string, version uint32, body []byte) []byte {
	var b []byte
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	sum := sha256.Sum256(body)
	return append(b, sum[:]...)
}

// populated returns an env whose FSM holds keys in every state, aliases,
// tags, domain keys and both successful and failed requests.
func populated(t *testing.T) *env {
	e := newEnv(t)
	e.mustApply(
		addDomainKey("dk-1", []byte("wrapped-dk-1"), t0),
		addDomainKey("dk-2", []byte("wrapped-dk-2"), t0+day),
		createKey(testKey("k1")),
		createKey(testKey("k2")),
		createKey(keyInState("k3", StatePendingImport)),
		createKey(testKey("k4")),
		setEnabled("k2", false),
		scheduleDeletion("k4", t0+7*day, 7),
		updateDescription("k1", "primary key"),
		tagResource("k1", map[string]string{"team": "crypto", "cost-center": "42"}),
		tagResource("k2", map[string]string{"a": "1", "b": "2"}),
		untagResource("k2", "a", "env"),
		createAlias("alias/one", "k1", t0+1),
		createAlias("alias/two", "k2", t0+2),
		updateAlias("alias/two", "k1", t0+3),
		enableRotation("k1", 90, t0),
		rotateKey("k1", 0x51, RotationOnDemand, t0+day),
		rotateKey("k1", 0x52, RotationAutomatic, t0+90*day),
	)
	e.applyErr(createKey(testKey("k1")), ErrAlreadyExists)
	e.applyErr(updateDescription("missing", "x"), ErrNotFound)
	return e
}

var populatedDomainKeys = []string{"dk-1", "dk-2"}

// encodeState is the canonical encoding of st, in memory.
func encodeState(st *state) ([]byte, error) {
	var b bytes.Buffer
	err := encodeStateTo(&b, st)
	return b.Bytes(), err
}
