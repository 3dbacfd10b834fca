package fsm

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func putPolicy(id, policy string) *Command {
	return &Command{Type: CmdPutKeyPolicy, Time: t0, PutKeyPolicy: &PutKeyPolicyCmd{KeyID: id, Policy: policy}}
}

// grantID returns a 64-hex-digit grant id made of tag.
func grantID(tag byte) string { return strings.Repeat(fmt.Sprintf("%02x", tag), 32) }

// testGrant returns a grant with id grantID(tag) on key with the given name.
func testGrant(tag byte, key, name string) Grant {
	return Grant{
		GrantID:           grantID(tag),
		KeyID:             key,
		Name:              name,
		CreatedAt:         t0 + int64(tag),
		GranteePrincipal:  "arn:aws:iam::111122223333:role/app",
		RetiringPrincipal: "arn:aws:iam::111122223333:role/ops",
		IssuingAccount:    "arn:aws:iam::111122223333:root",
		Operations:        []string{"Encrypt", "Decrypt"},
		Constraints:       &GrantConstraints{EncryptionContextSubset: map[string]string{"dept": "a"}},
	}
}

func createGrant(g Grant) *Command {
	return &Command{Type: CmdCreateGrant, Time: g.CreatedAt, CreateGrant: &CreateGrantCmd{Grant: g}}
}

func removeGrant(key, id string) *Command {
	return &Command{Type: CmdRemoveGrant, Time: t0, RemoveGrant: &RemoveGrantCmd{KeyID: key, GrantID: id}}
}

func policyIs(id, want string) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		require.Equal(t, want, e.mustKey(id).Policy)
	}
}

// grantIDsAre checks every grant id in the FSM, in listing order.
func grantIDsAre(ids ...string) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		var got []string
		for _, g := range e.f.Grants(nil) {
			got = append(got, g.GrantID)
		}
		require.Equal(t, ids, got)
		require.Equal(t, len(ids), e.f.GrantCount())
	}
}

func TestApplyPutKeyPolicy(t *testing.T) {
	const p = "{\n  \"Version\" : \"2012-10-17\",\n  \"Statement\" : [ ]\n}"
	cases := []applyCase{
		{name: "not found", cmd: putPolicy("k1", p), wantErr: ErrNotFound, wantMsg: "k1"},
	}
	for _, st := range []string{StateEnabled, StateDisabled, StatePendingDeletion, StatePendingImport} {
		k := keyInState("k1", st)
		if st == StatePendingDeletion {
			k.DeletionDate, k.PendingWindowDays = t0+7*day, 7
		}
		cases = append(cases, applyCase{
			name:  "in state " + st,
			setup: []*Command{createKey(k)},
			cmd:   putPolicy("k1", p),
			check: policyIs("k1", p),
		})
	}
	runApplyCases(t, cases)
}

func TestApplyCreateGrant(t *testing.T) {
	k1 := func() *Command { return createKey(testKey("k1")) }
	g1 := testGrant(1, "k1", "")
	named := testGrant(2, "k1", "app-grant")
	sameNamed := testGrant(3, "k1", "app-grant")
	sameNamed.Operations = []string{"Decrypt", "Encrypt", "Decrypt"} // same set
	otherNamed := testGrant(4, "k1", "app-grant")
	otherNamed.Constraints = nil
	otherKey := testGrant(5, "k2", "app-grant")
	runApplyCases(t, []applyCase{
		{
			name:  "create",
			setup: []*Command{k1()},
			cmd:   createGrant(g1),
			check: func(t *testing.T, e *env) {
				got, ok := e.f.Grant(grantID(1))
				require.True(t, ok)
				require.Equal(t, g1, got)
				grantIDsAre(grantID(1))(t, e)
			},
		},
		{
			name:    "not found",
			cmd:     createGrant(g1),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "disabled",
			setup:   []*Command{k1(), setEnabled("k1", false)},
			cmd:     createGrant(g1),
			wantErr: ErrDisabled,
			wantMsg: testARN("k1") + " is disabled.",
		},
		{
			name:    "pending deletion",
			setup:   []*Command{k1(), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     createGrant(g1),
			wantErr: ErrInvalidState,
			wantMsg: testARN("k1") + " is pending deletion.",
		},
		{
			name:    "pending import",
			setup:   []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:     createGrant(g1),
			wantErr: ErrInvalidState,
			wantMsg: "pending import",
		},
		{
			name:    "grant id taken",
			setup:   []*Command{k1(), createKey(testKey("k2")), createGrant(testGrant(1, "k2", ""))},
			cmd:     createGrant(g1),
			wantErr: ErrAlreadyExists,
		},
		{
			name:  "same name and parameters: the existing grant stands",
			setup: []*Command{k1(), createGrant(named)},
			cmd:   createGrant(sameNamed),
			check: func(t *testing.T, e *env) {
				grantIDsAre(grantID(2))(t, e)
				got, ok := e.f.NamedGrant(&sameNamed)
				require.True(t, ok)
				require.Equal(t, grantID(2), got.GrantID)
			},
		},
		{
			name:  "same name, other parameters: a new grant",
			setup: []*Command{k1(), createGrant(named)},
			cmd:   createGrant(otherNamed),
			check: grantIDsAre(grantID(2), grantID(4)),
		},
		{
			name:  "same name and parameters on another key: a new grant",
			setup: []*Command{k1(), createKey(testKey("k2")), createGrant(named)},
			cmd:   createGrant(otherKey),
			check: grantIDsAre(grantID(2), grantID(5)),
		},
		{
			name:  "no name: identical parameters make a new grant",
			setup: []*Command{k1(), createGrant(g1)},
			cmd:   createGrant(testGrant(6, "k1", "")),
			check: grantIDsAre(grantID(1), grantID(6)),
		},
	})
}

func TestApplyCreateGrantLimit(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createKey(testKey("k2")))
	// Fill the quota directly: applying 50,000 commands is slow under -race.
	e.f.st.Grants = map[string]*Grant{}
	for i := range MaxGrantsPerKey {
		g := testGrant(0, "k1", "")
		g.GrantID = fmt.Sprintf("%064x", i+1000)
		e.f.st.Grants[g.GrantID] = &g
	}
	e.f.grantsByKey = newGrantIndex(e.f.st.Grants) // as Restore does
	err := e.applyErr(createGrant(testGrant(1, "k1", "")), ErrLimitExceeded)
	require.Contains(t, err.Message, "50000")
	e.mustApply(createGrant(testGrant(1, "k2", ""))) // per key
	require.Equal(t, MaxGrantsPerKey+1, e.f.GrantCount())
}

func TestApplyRemoveGrant(t *testing.T) {
	// Fresh commands per case: env fills in request ids.
	k1 := func() *Command { return createKey(testKey("k1")) }
	g1 := func() *Command { return createGrant(testGrant(1, "k1", "")) }
	g2 := func() *Command { return createGrant(testGrant(2, "k1", "")) }
	runApplyCases(t, []applyCase{
		{
			name:  "remove",
			setup: []*Command{k1(), g1(), g2()},
			cmd:   removeGrant("k1", grantID(1)),
			check: grantIDsAre(grantID(2)),
		},
		{
			name:    "unknown grant",
			setup:   []*Command{k1(), g1()},
			cmd:     removeGrant("k1", grantID(9)),
			wantErr: ErrNotFound,
			wantMsg: grantID(9),
		},
		{
			name:    "grant of another key",
			setup:   []*Command{k1(), createKey(testKey("k2")), g1()},
			cmd:     removeGrant("k2", grantID(1)),
			wantErr: ErrNotFound,
			check:   grantIDsAre(grantID(1)),
		},
		{
			name:    "removed twice",
			setup:   []*Command{k1(), g1(), removeGrant("k1", grantID(1))},
			cmd:     removeGrant("k1", grantID(1)),
			wantErr: ErrNotFound,
		},
		{
			name:  "disabled key",
			setup: []*Command{k1(), g1(), setEnabled("k1", false)},
			cmd:   removeGrant("k1", grantID(1)),
			check: grantIDsAre(),
		},
		{
			name:  "key pending deletion",
			setup: []*Command{k1(), g1(), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:   removeGrant("k1", grantID(1)),
			check: grantIDsAre(),
		},
	})
}

func TestDeleteKeyDropsItsGrants(t *testing.T) {
	e := newEnv(t)
	e.mustApply(
		createKey(testKey("k1")), createKey(testKey("k2")),
		createGrant(testGrant(1, "k1", "")), createGrant(testGrant(2, "k2", "")), createGrant(testGrant(3, "k1", "n")),
		scheduleDeletion("k1", t0+7*day, 7),
	)
	grantIDsAre(grantID(1), grantID(2), grantID(3))(t, e)
	e.mustApply(deleteKey("k1", t0+7*day))
	grantIDsAre(grantID(2))(t, e)
	_, ok := e.f.Grant(grantID(1))
	require.False(t, ok)
}

func TestGrantsAccessorsReturnCopies(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createGrant(testGrant(1, "k1", "n")))
	g, ok := e.f.Grant(grantID(1))
	require.True(t, ok)
	g.Operations[0] = "Sign"
	g.Constraints.EncryptionContextSubset["dept"] = "changed"
	list := e.f.Grants(func(g *Grant) bool { return g.KeyID == "k1" })
	require.Len(t, list, 1)
	list[0].Operations[1] = "Verify"
	again, _ := e.f.Grant(grantID(1))
	require.Equal(t, testGrant(1, "k1", "n"), again)
	require.Empty(t, e.f.Grants(func(g *Grant) bool { return g.KeyID == "k2" }))
}

func TestDuplicateGrantCommandsApplyOnce(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")))
	data := e.encode(withRequestID(createGrant(testGrant(1, "k1", "")), "grant-once"))
	require.Nil(t, e.applyData(data).Err)
	h := e.hash()
	res := e.applyData(data)
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err, "the retry reports the first success, not AlreadyExists")
	require.Equal(t, h, e.hash())
	require.Equal(t, 1, e.f.GrantCount())

	rm := e.encode(withRequestID(removeGrant("k1", grantID(1)), "remove-once"))
	require.Nil(t, e.applyData(rm).Err)
	res = e.applyData(rm)
	require.True(t, res.Duplicate)
	require.Nil(t, res.Err, "the retry reports the first success, not NotFound")
	require.Zero(t, e.f.GrantCount())

	pol := e.encode(withRequestID(putPolicy("k1", "p1"), "policy-once"))
	require.Nil(t, e.applyData(pol).Err)
	e.mustApply(putPolicy("k1", "p2"))
	require.True(t, e.applyData(pol).Duplicate)
	require.Equal(t, "p2", e.mustKey("k1").Policy, "a retried PutKeyPolicy overwrote a later one")
}

func TestGrantsAndPolicySnapshotRestore(t *testing.T) {
	build := func(t *testing.T, extra ...*Command) *env {
		e := newEnv(t)
		e.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), putPolicy("k1", `{"Version":"2012-10-17"}`),
			createGrant(testGrant(1, "k1", "a")), createGrant(testGrant(2, "k2", "")))
		e.mustApply(extra...)
		return e
	}
	a := build(t)
	dst := New()
	_, err := restore(dst, snapshotBytes(t, a.f))
	require.NoError(t, err)
	require.Equal(t, a.f.Grants(nil), dst.Grants(nil))
	k, _ := dst.Key("k1")
	require.Equal(t, `{"Version":"2012-10-17"}`, k.Policy)
	h, err := dst.StateHash()
	require.NoError(t, err)
	require.Equal(t, a.hash(), h)
	// The restored FSM goes on applying grant commands like the original.
	for _, f := range []*FSM{a.f, dst} {
		e := &env{t: t, f: f, next: 100}
		e.mustApply(withRequestID(createGrant(testGrant(3, "k1", "a")), "after"), withRequestID(removeGrant("k2", grantID(2)), "after-2"))
	}
	h, _ = dst.StateHash()
	require.Equal(t, a.hash(), h)

	// StateHash covers grants and policies.
	otherOps := newEnv(t)
	otherOps.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), putPolicy("k1", `{"Version":"2012-10-17"}`),
		createGrant(testGrant(1, "k1", "a")), createGrant(func() Grant { g := testGrant(2, "k2", ""); g.Operations = []string{"Encrypt"}; return g }()))
	otherPolicy := newEnv(t)
	otherPolicy.mustApply(createKey(testKey("k1")), createKey(testKey("k2")), putPolicy("k1", `{"Version":"2008-10-17"}`),
		createGrant(testGrant(1, "k1", "a")), createGrant(testGrant(2, "k2", "")))
	fresh := build(t)
	require.Equal(t, fresh.hash(), build(t).hash())
	require.NotEqual(t, fresh.hash(), otherOps.hash())
	require.NotEqual(t, fresh.hash(), otherPolicy.hash())
}

func TestSnapshotWithoutGrantsHasNoGrantsMember(t *testing.T) {
	// Old snapshots (before grants) have no "grants" member: a state without
	// grants encodes the same way, and such a body restores.
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createGrant(testGrant(1, "k1", "")), removeGrant("k1", grantID(1)))
	body, err := encodeState(e.f.copyState())
	require.NoError(t, err)
	var top map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(body, &top))
	require.NotContains(t, top, "grants")

	old := []byte(`{"keys":{},"aliases":{},"domain_keys":null,"recent":[]}`)
	dst := New()
	_, err = restore(dst, frame(snapshotMagic, snapshotVersion, old))
	require.NoError(t, err)
	require.Zero(t, dst.GrantCount())
	env := &env{t: t, f: dst, next: 1}
	env.mustApply(createKey(testKey("k1")), createGrant(testGrant(1, "k1", "")))
	require.Equal(t, 1, dst.GrantCount())
}

func TestEncodeRejectsGrantCommandsWithoutPayload(t *testing.T) {
	for _, typ := range []string{CmdPutKeyPolicy, CmdCreateGrant, CmdRemoveGrant} {
		_, err := Encode(&Command{Type: typ, RequestID: "r"})
		require.Error(t, err, typ)
		require.Contains(t, err.Error(), "without its payload")
	}
	for _, c := range []*Command{putPolicy("k1", "p"), createGrant(testGrant(1, "k1", "n")), removeGrant("k1", grantID(1))} {
		c.RequestID = "r"
		b, err := Encode(c)
		require.NoError(t, err)
		got, err := Decode(b)
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
}
