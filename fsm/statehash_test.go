package fsm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"unsafe"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// freshHash is StateHash computed from nothing remembered.
func freshHash(t *testing.T, f *FSM) [32]byte {
	t.Helper()
	var h stateHasher
	sum, err := h.hash(f)
	require.NoError(t, err)
	return sum
}

func TestStateHashIncrementalEqualsFresh(t *testing.T) {
	// After every entry of a workload that adds, changes and deletes keys,
	// aliases, grants and import parameters, the hash kept up to date call
	// by call equals one computed from scratch: no change goes unseen.
	f := New()
	for i, l := range fullWorkload(t) {
		f.Apply(l)
		got, err := f.StateHash()
		require.NoError(t, err)
		require.Equalf(t, freshHash(t, f), got, "after entry %d", i)
	}
}

func TestStateHashSkippingCallsEqualsFresh(t *testing.T) {
	// Many changes between two calls, including an entry changed and then
	// deleted, and a deleted id created again.
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), createAlias("alias/a", "k1", t0))
	first := e.hash()
	e.mustApply(
		updateDescription("k1", "changed"),
		scheduleDeletion("k2", t0, 7),
		deleteKey("k2", t0),
		createKey(testKey("k2")),
		updateAlias("alias/a", "k2", t0+1),
		createKey(testKey("k3")),
	)
	require.NotEqual(t, first, e.hash())
	require.Equal(t, freshHash(t, e.f), e.hash())
	// Back to the first state's keys and alias (the request window
	// differs): the digests of the maps match those of a replica that only
	// applied the first three commands.
	e.mustApply(updateDescription("k1", "key k1"), updateAlias("alias/a", "k1", t0),
		scheduleDeletion("k3", t0, 7), deleteKey("k3", t0))
	g := newEnv(t)
	g.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), createAlias("alias/a", "k1", t0))
	_, _ = g.hash(), e.hash()
	require.Equal(t, g.f.hasher.keys.sum, e.f.hasher.keys.sum)
	require.Equal(t, g.f.hasher.aliases.sum, e.f.hasher.aliases.sum)
	require.NotEqual(t, g.hash(), e.hash())
	require.Equal(t, freshHash(t, e.f), e.hash())
}

func TestStateHashCoversEveryPart(t *testing.T) {
	// Changing any one part of the state changes the hash, remembered
	// digests or not.
	base := func(t *testing.T) *env {
		e := populated(t)
		e.mustApply(createGrant(testGrant(1, "k1", "")), createKey(externalKey("x1")), putParams(importParams(1, "x1", t0)))
		return e
	}
	changes := map[string]func(f *FSM){
		"key field":      func(f *FSM) { k := f.st.Keys["k1"].clone(); k.Description = "other"; f.st.Keys["k1"] = k },
		"key added":      func(f *FSM) { k := testKey("k9"); f.st.Keys["k9"] = &k },
		"key removed":    func(f *FSM) { delete(f.st.Keys, "k2") },
		"key id":         func(f *FSM) { f.st.Keys["k1x"] = f.st.Keys["k1"]; delete(f.st.Keys, "k1") },
		"alias":          func(f *FSM) { a := *f.st.Aliases["alias/one"]; a.TargetKeyID = "k2"; f.st.Aliases["alias/one"] = &a },
		"grant":          func(f *FSM) { delete(f.st.Grants, grantID(1)) },
		"import params":  func(f *FSM) { delete(f.st.ImportParams, tokenID(1)) },
		"domain keys":    func(f *FSM) { f.st.DomainKeys = f.st.DomainKeys[:1] },
		"request window": func(f *FSM) { f.st.Recent = f.st.Recent[1:] },
		"request outcome": func(f *FSM) {
			f.st.Recent = append([]dedupeEntry(nil), f.st.Recent...)
			f.st.Recent[0].ErrCode = "NotFound"
		},
	}
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			e := base(t)
			before := e.hash()
			change(e.f)
			after := e.hash()
			require.NotEqual(t, before, after)
			require.Equal(t, freshHash(t, e.f), after)
		})
	}
}

func TestStateHashAfterRestoreOverDifferentState(t *testing.T) {
	// An FSM that hashed one state and then restored another hashes like a
	// fresh replica of the other.
	src := populated(t)
	dst := newEnv(t)
	dst.mustApply(createKey(testKey("other")), createAlias("alias/other", "other", t0))
	_ = dst.hash()
	_, err := restore(dst.f, snapshotBytes(t, src.f))
	require.NoError(t, err)
	require.Equal(t, src.hash(), dst.hash())
	require.Equal(t, freshHash(t, src.f), dst.hash())
}

// stateFieldTags lists the json tags of the state struct.
func stateFieldTags() []string {
	var tags []string
	typ := reflect.TypeFor[state]()
	for i := range typ.NumField() {
		tags = append(tags, typ.Field(i).Tag.Get("json"))
	}
	return tags
}

func TestStateEncodersKnowEveryField(t *testing.T) {
	// encodeStateTo and stateHasher name the state's fields one by one: a
	// new field must be added to both (then to this list).
	require.Equal(t, []string{"keys", "aliases", "domain_keys", "recent", "grants,omitempty", "import_params,omitempty"},
		stateFieldTags())
}

func TestEncodeStateEqualsJSONMarshal(t *testing.T) {
	tricky := testKey("k<&>\u2028")
	tricky.Description = "<script>&amp; \u2029 \xff invalid utf-8 \"quoted\" \\ \t\n"
	tricky.Tags = map[string]string{"b": "2", "a": "1", "<": ">", "é": "ü", "": "empty key"}
	tricky.Policy = `{"Statement":[{"Effect":"Allow","Condition":{"StringEquals":{"x":"<&>"}}}]}`

	states := map[string]func(t *testing.T) *state{
		"empty FSM": func(t *testing.T) *state { return New().copyState() },
		"populated": func(t *testing.T) *state { return populated(t).f.copyState() },
		"full workload": func(t *testing.T) *state {
			f := New()
			for _, l := range fullWorkload(t) {
				f.Apply(l)
			}
			require.NotEmpty(t, f.st.Grants)
			require.NotEmpty(t, f.st.ImportParams)
			return f.copyState()
		},
		"tricky strings": func(t *testing.T) *state {
			e := newEnv(t)
			e.mustApply(createKey(tricky), createAlias("alias/<&>", tricky.KeyID, t0))
			return e.f.copyState()
		},
		"nil and empty collections": func(t *testing.T) *state {
			return &state{Keys: nil, Aliases: map[string]*Alias{}, DomainKeys: []DomainKey{}, Recent: nil,
				Grants: map[string]*Grant{}, ImportParams: nil}
		},
		"nil values": func(t *testing.T) *state {
			return &state{Keys: map[string]*Key{"k": nil}, Aliases: map[string]*Alias{"a": nil}}
		},
	}
	for name, build := range states {
		t.Run(name, func(t *testing.T) {
			st := build(t)
			want, err := json.Marshal(st)
			require.NoError(t, err)
			got, err := encodeState(st)
			require.NoError(t, err)
			require.Equal(t, string(want), string(got))
		})
	}
}

func TestSnapshotOfManyKeysIsCanonical(t *testing.T) {
	// Enough keys that the body spans many buffer flushes.
	e := newEnv(t)
	for i := range 300 {
		k := testKey(fmt.Sprintf("key-%04d", i))
		k.Description = fmt.Sprintf("%0500d", i)
		e.mustApply(createKey(k))
	}
	body, err := json.Marshal(e.f.copyState())
	require.NoError(t, err)
	require.Greater(t, len(body), 200<<10)
	require.Equal(t, frame(snapshotMagic, snapshotVersion, body), snapshotBytes(t, e.f))
}

func stringData(s string) *byte { return unsafe.StringData(s) }

func TestKeysShareEqualStrings(t *testing.T) {
	// Each command decodes into its own strings; the FSM keeps one copy of
	// a policy (and the other strings most keys repeat) for all keys.
	e := newEnv(t)
	policy := `{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow"}]}`
	for _, id := range []string{"k1", "k2", "k3"} {
		k := testKey(id)
		k.Policy = policy
		e.mustApply(createKey(k))
	}
	e.mustApply(updateDescription("k2", "mutated copy"), rotateKey("k3", 0x51, RotationOnDemand, t0+day))
	k1, k2, k3 := e.mustKey("k1"), e.mustKey("k2"), e.mustKey("k3")
	for _, k := range []*Key{k2, k3} {
		require.Equal(t, policy, k.Policy)
		require.Same(t, stringData(k1.Policy), stringData(k.Policy))
		require.Same(t, stringData(k1.KeySpec), stringData(k.KeySpec))
		require.Same(t, stringData(k1.AccountID), stringData(k.AccountID))
		require.Same(t, stringData(k1.Versions[0].DomainKeyID), stringData(k.Versions[0].DomainKeyID))
	}
	require.Same(t, stringData(k1.Versions[0].DomainKeyID), stringData(k3.Versions[1].DomainKeyID))

	// So do keys restored from a snapshot.
	f := New()
	_, err := restore(f, snapshotBytes(t, e.f))
	require.NoError(t, err)
	r1, _ := f.Key("k1")
	r2, _ := f.Key("k2")
	require.Equal(t, policy, r2.Policy)
	require.Same(t, stringData(r1.Policy), stringData(r2.Policy))
	require.Equal(t, e.hash(), freshHash(t, f))
}

func TestInternerStaysBounded(t *testing.T) {
	// Distinct policies on every key: values stay right and the table does
	// not grow past its bounds.
	e := newEnv(t)
	for i := range internMaxEntries + 50 {
		k := testKey(fmt.Sprintf("k%d", i))
		k.Policy = fmt.Sprintf(`{"policy":%d}`, i)
		e.mustApply(createKey(k))
		require.LessOrEqual(t, len(e.f.strs.m), internMaxEntries)
		require.LessOrEqual(t, e.f.strs.bytes, internMaxBytes)
	}
	for _, i := range []int{0, 1, internMaxEntries - 1, internMaxEntries, internMaxEntries + 49} {
		require.Equal(t, fmt.Sprintf(`{"policy":%d}`, i), e.mustKey(fmt.Sprintf("k%d", i)).Policy)
	}
	huge := testKey("huge")
	huge.Policy = string(make([]byte, internMaxBytes/8))
	e.mustApply(createKey(huge))
	require.LessOrEqual(t, e.f.strs.bytes, internMaxBytes)
	require.Equal(t, huge.Policy, e.mustKey("huge").Policy)
}

func TestApplyBatchInterns(t *testing.T) {
	f := New()
	var logs []*raft.Log
	for i, id := range []string{"k1", "k2"} {
		c := withRequestID(createKey(testKey(id)), id)
		data, err := Encode(c)
		require.NoError(t, err)
		logs = append(logs, &raft.Log{Type: raft.LogCommand, Index: uint64(i + 1), Data: data})
	}
	f.ApplyBatch(logs)
	k1, _ := f.Key("k1")
	k2, _ := f.Key("k2")
	require.Same(t, stringData(k1.Policy), stringData(k2.Policy))
}
