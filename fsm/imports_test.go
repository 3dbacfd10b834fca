package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

// externalKey returns a key with Origin EXTERNAL awaiting its material.
func externalKey(id string) Key {
	k := testKey(id)
	k.Origin = OriginExternal
	k.State = StatePendingImport
	k.Versions = nil
	return k
}

// tokenID returns a 32-hex-digit import token id made of tag.
func tokenID(tag byte) string { return fmt.Sprintf("%032x", tag) }

func importParams(tag byte, key string, now int64) ImportParams {
	return ImportParams{
		TokenID:           tokenID(tag),
		KeyID:             key,
		WrappingKeySpec:   "RSA_2048",
		WrappingAlgorithm: "RSAES_OAEP_SHA_256",
		DomainKeyID:       "dk-1",
		WrappedPrivateKey: []byte{0x70, tag},
		CreatedAt:         now,
		ValidTo:           now + day,
	}
}

func putParams(p ImportParams) *Command {
	return &Command{Type: CmdPutImportParams, Time: p.CreatedAt, PutImportParams: &PutImportParamsCmd{Params: p}}
}

// importVersion is imported material fp (fingerprint {fp}, version id {0xf0, fp}).
func importCmd(key string, tok, fp byte, model string, validTo, now int64) *Command {
	return &Command{Type: CmdImportKeyMaterial, Time: now, ImportKeyMaterial: &ImportKeyMaterialCmd{
		KeyID:   key,
		TokenID: tokenID(tok),
		Version: KeyVersion{VersionID: [16]byte{0xf0, fp}, DomainKeyID: "dk-1",
			WrappedMaterial: []byte{0xee, fp, byte(now - t0)}, CreatedAt: now},
		Fingerprint:     []byte{0xf1, fp},
		ExpirationModel: model,
		ValidTo:         validTo,
	}}
}

func importForever(key string, tok, fp byte, now int64) *Command {
	return importCmd(key, tok, fp, ExpirationKeyMaterialDoesNotExpire, 0, now)
}

func deleteMaterial(key string, expired bool, now int64) *Command {
	return &Command{Type: CmdDeleteImportedKeyMaterial, Time: now,
		DeleteImportedKeyMaterial: &DeleteImportedKeyMaterialCmd{KeyID: key, Expired: expired}}
}

func stateIs(id, want string) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		require.Equal(t, want, e.mustKey(id).State)
	}
}

func TestApplyPutImportParams(t *testing.T) {
	ext := func() *Command { return createKey(externalKey("k1")) }
	runApplyCases(t, []applyCase{
		{
			name:  "store",
			setup: []*Command{ext()},
			cmd:   putParams(importParams(1, "k1", t0)),
			check: func(t *testing.T, e *env) {
				p, ok := e.f.ImportParams(tokenID(1))
				require.True(t, ok)
				require.Equal(t, importParams(1, "k1", t0), p)
				require.Equal(t, 1, e.f.ImportParamsCount())
			},
		},
		{name: "not found", cmd: putParams(importParams(1, "k1", t0)), wantErr: ErrNotFound, wantMsg: "k1"},
		{
			name:    "AWS_KMS origin",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     putParams(importParams(1, "k1", t0)),
			wantErr: ErrPrecondition,
			wantMsg: "origin is AWS_KMS",
		},
		{
			name:    "pending deletion",
			setup:   []*Command{ext(), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     putParams(importParams(1, "k1", t0)),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
		},
		{
			name:    "token id taken",
			setup:   []*Command{ext(), putParams(importParams(1, "k1", t0))},
			cmd:     putParams(importParams(1, "k1", t0+1)),
			wantErr: ErrAlreadyExists,
		},
		{
			name:  "enabled key with material: parameters for a reimport",
			setup: []*Command{ext(), putParams(importParams(1, "k1", t0)), importForever("k1", 1, 1, t0)},
			cmd:   putParams(importParams(2, "k1", t0+1)),
		},
		{
			name:  "expired parameters are forgotten",
			setup: []*Command{ext(), putParams(importParams(1, "k1", t0)), putParams(importParams(2, "k1", t0+day/2))},
			cmd:   putParams(importParams(3, "k1", t0+day+1)),
			check: func(t *testing.T, e *env) {
				_, ok := e.f.ImportParams(tokenID(1))
				require.False(t, ok)
				_, ok = e.f.ImportParams(tokenID(2))
				require.True(t, ok)
				require.Equal(t, 2, e.f.ImportParamsCount())
			},
		},
	})
}

func TestApplyPutImportParamsLimit(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(externalKey("k1")), createKey(externalKey("k2")), putParams(importParams(200, "k2", t0)))
	for i := range MaxImportParamsPerKey + 2 {
		e.mustApply(putParams(importParams(byte(i+1), "k1", t0+int64(i))))
	}
	// The two oldest of k1 are gone; k2's stays.
	for tag, want := range map[byte]bool{1: false, 2: false, 3: true, MaxImportParamsPerKey + 2: true, 200: true} {
		_, ok := e.f.ImportParams(tokenID(tag))
		require.Equal(t, want, ok, "token %d", tag)
	}
	require.Equal(t, MaxImportParamsPerKey+1, e.f.ImportParamsCount())
}

func TestApplyImportKeyMaterial(t *testing.T) {
	ext := func() *Command { return createKey(externalKey("k1")) }
	p1 := func() *Command { return putParams(importParams(1, "k1", t0)) }
	runApplyCases(t, []applyCase{
		{
			name:  "first import enables the key",
			setup: []*Command{ext(), p1()},
			cmd:   importForever("k1", 1, 7, t0+5),
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, StateEnabled, k.State)
				require.True(t, k.HasMaterial())
				require.Equal(t, []KeyVersion{{VersionID: [16]byte{0xf0, 7}, DomainKeyID: "dk-1",
					WrappedMaterial: []byte{0xee, 7, 5}, CreatedAt: t0 + 5}}, k.Versions)
				require.Equal(t, []byte{0xf1, 7}, k.MaterialFingerprint)
				require.Equal(t, ExpirationKeyMaterialDoesNotExpire, k.ExpirationModel)
				require.Zero(t, k.ValidTo)
			},
		},
		{
			name:  "expiring material",
			setup: []*Command{ext(), p1()},
			cmd:   importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, t0+30*day, t0),
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, ExpirationKeyMaterialExpires, k.ExpirationModel)
				require.Equal(t, t0+30*day, k.ValidTo)
				require.Equal(t, []string{"k1"}, e.f.KeysWithExpiredMaterial(t0+30*day))
				require.Empty(t, e.f.KeysWithExpiredMaterial(t0+30*day-1))
			},
		},
		{name: "not found", setup: []*Command{p1Key(), p1()}, cmd: importForever("k9", 1, 7, t0), wantErr: ErrNotFound},
		{
			name:    "AWS_KMS origin",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     importForever("k1", 1, 7, t0),
			wantErr: ErrPrecondition,
		},
		{
			name:    "unknown token",
			setup:   []*Command{ext(), p1()},
			cmd:     importForever("k1", 2, 7, t0),
			wantErr: ErrInvalidImportToken,
			check:   stateIs("k1", StatePendingImport),
		},
		{
			name:    "token of another key",
			setup:   []*Command{ext(), createKey(externalKey("k2")), putParams(importParams(2, "k2", t0))},
			cmd:     importForever("k1", 2, 7, t0),
			wantErr: ErrInvalidImportToken,
		},
		{
			name:    "expired token",
			setup:   []*Command{ext(), p1()},
			cmd:     importForever("k1", 1, 7, t0+day+1),
			wantErr: ErrExpiredImportToken,
		},
		{
			name:  "token valid through its last instant",
			setup: []*Command{ext(), p1()},
			cmd:   importForever("k1", 1, 7, t0+day),
			check: stateIs("k1", StateEnabled),
		},
		{
			name:    "pending deletion",
			setup:   []*Command{ext(), p1(), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     importForever("k1", 1, 7, t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
		},
		{
			name:  "reimport of the same material after deletion",
			setup: []*Command{ext(), p1(), importForever("k1", 1, 7, t0+1), deleteMaterial("k1", false, t0+2)},
			cmd:   importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, t0+9*day, t0+3),
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, StateEnabled, k.State)
				require.Len(t, k.Versions, 1)
				require.Equal(t, [16]byte{0xf0, 7}, k.Versions[0].VersionID)
				require.Equal(t, t0+1, k.Versions[0].CreatedAt, "the same material version")
				require.Equal(t, []byte{0xee, 7, 3}, k.Versions[0].WrappedMaterial)
				require.Equal(t, t0+9*day, k.ValidTo)
			},
		},
		{
			name:  "reimport of the same material into a disabled key keeps it disabled",
			setup: []*Command{ext(), p1(), importForever("k1", 1, 7, t0+1), setEnabled("k1", false)},
			cmd:   importForever("k1", 1, 7, t0+3),
			check: stateIs("k1", StateDisabled),
		},
		{
			name:    "other material",
			setup:   []*Command{ext(), p1(), importForever("k1", 1, 7, t0+1), deleteMaterial("k1", false, t0+2)},
			cmd:     importForever("k1", 1, 8, t0+3),
			wantErr: ErrIncorrectKeyMaterial,
			check:   stateIs("k1", StatePendingImport),
		},
		{
			name:    "same fingerprint, other version id",
			setup:   []*Command{ext(), p1(), importForever("k1", 1, 7, t0+1)},
			cmd:     withVersionID(importForever("k1", 1, 7, t0+3), 9),
			wantErr: ErrIncorrectKeyMaterial,
		},
		{
			name:    "expiring without ValidTo",
			setup:   []*Command{ext(), p1()},
			cmd:     importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, 0, t0),
			wantErr: ErrPrecondition,
		},
		{
			name:    "ValidTo without expiry",
			setup:   []*Command{ext(), p1()},
			cmd:     importCmd("k1", 1, 7, ExpirationKeyMaterialDoesNotExpire, t0+day, t0),
			wantErr: ErrPrecondition,
		},
	})
}

// p1Key creates an unrelated external key so that "not found" has company.
func p1Key() *Command { return createKey(externalKey("k1")) }

func withVersionID(c *Command, tag byte) *Command {
	c.ImportKeyMaterial.Version.VersionID = [16]byte{0xf0, tag}
	return c
}

func TestApplyDeleteImportedKeyMaterial(t *testing.T) {
	imported := func() []*Command {
		return []*Command{createKey(externalKey("k1")), putParams(importParams(1, "k1", t0)),
			importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, t0+10*day, t0)}
	}
	gone := func(state string) func(t *testing.T, e *env) {
		return func(t *testing.T, e *env) {
			k := e.mustKey("k1")
			require.Equal(t, state, k.State)
			require.False(t, k.HasMaterial())
			require.Len(t, k.Versions, 1)
			require.Equal(t, [16]byte{0xf0, 7}, k.Versions[0].VersionID, "the version id stays for a reimport")
			require.Empty(t, k.Versions[0].DomainKeyID)
			require.Empty(t, k.ExpirationModel)
			require.Zero(t, k.ValidTo)
			require.Equal(t, []byte{0xf1, 7}, k.MaterialFingerprint)
			require.Empty(t, e.f.KeysWithExpiredMaterial(t0+100*day))
		}
	}
	runApplyCases(t, []applyCase{
		{name: "enabled", setup: imported(), cmd: deleteMaterial("k1", false, t0+1), check: gone(StatePendingImport)},
		{
			name:  "disabled",
			setup: append(imported(), setEnabled("k1", false)),
			cmd:   deleteMaterial("k1", false, t0+1),
			check: gone(StatePendingImport),
		},
		{
			name:  "pending deletion stays pending deletion",
			setup: append(imported(), scheduleDeletion("k1", t0+7*day, 7)),
			cmd:   deleteMaterial("k1", false, t0+1),
			check: gone(StatePendingDeletion),
		},
		{
			name:  "pending import: no effect",
			setup: []*Command{createKey(externalKey("k1"))},
			cmd:   deleteMaterial("k1", false, t0+1),
			check: stateIs("k1", StatePendingImport),
		},
		{name: "not found", cmd: deleteMaterial("k1", false, t0), wantErr: ErrNotFound},
		{
			name:    "AWS_KMS origin",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     deleteMaterial("k1", false, t0),
			wantErr: ErrPrecondition,
		},
		{name: "expiry when due", setup: imported(), cmd: deleteMaterial("k1", true, t0+10*day), check: gone(StatePendingImport)},
		{
			name:    "expiry not yet due",
			setup:   imported(),
			cmd:     deleteMaterial("k1", true, t0+10*day-1),
			wantErr: ErrPrecondition,
			check:   stateIs("k1", StateEnabled),
		},
		{
			name:    "expiry of material that does not expire",
			setup:   []*Command{createKey(externalKey("k1")), putParams(importParams(1, "k1", t0)), importForever("k1", 1, 7, t0)},
			cmd:     deleteMaterial("k1", true, t0+1000*day),
			wantErr: ErrPrecondition,
		},
		{
			name:    "expiry after reimport with a later date",
			setup:   append(imported(), importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, t0+20*day, t0+1)),
			cmd:     deleteMaterial("k1", true, t0+10*day),
			wantErr: ErrPrecondition,
		},
		{
			name:  "cancelling the deletion of a key without material: PendingImport",
			setup: append(imported(), scheduleDeletion("k1", t0+7*day, 7), deleteMaterial("k1", false, t0+1)),
			cmd:   cancelDeletion("k1"),
			check: stateIs("k1", StatePendingImport),
		},
		{
			name:  "cancelling the deletion of a key with material: Disabled",
			setup: append(imported(), scheduleDeletion("k1", t0+7*day, 7)),
			cmd:   cancelDeletion("k1"),
			check: stateIs("k1", StateDisabled),
		},
	})
}

func TestDeleteKeyDropsImportParams(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(externalKey("k1")), createKey(externalKey("k2")),
		putParams(importParams(1, "k1", t0)), putParams(importParams(2, "k2", t0)),
		scheduleDeletion("k1", t0+7*day, 7), deleteKey("k1", t0+7*day))
	_, ok := e.f.ImportParams(tokenID(1))
	require.False(t, ok)
	_, ok = e.f.ImportParams(tokenID(2))
	require.True(t, ok)
}

func TestImportStateSurvivesSnapshot(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(externalKey("k1")), createKey(externalKey("k2")),
		putParams(importParams(1, "k1", t0)), putParams(importParams(2, "k2", t0)),
		importCmd("k1", 1, 7, ExpirationKeyMaterialExpires, t0+10*day, t0), deleteMaterial("k2", false, t0))
	b := snapshotBytes(t, e.f)
	g := New()
	_, err := restore(g, b)
	require.NoError(t, err)
	h, err := g.StateHash()
	require.NoError(t, err)
	require.Equal(t, e.hash(), h)
	require.Equal(t, e.mustKey("k1"), func() *Key { k, _ := g.Key("k1"); return k }())
	p, ok := g.ImportParams(tokenID(2))
	require.True(t, ok)
	require.Equal(t, importParams(2, "k2", t0), p)
	require.Equal(t, []string{"k1"}, g.KeysWithExpiredMaterial(t0+10*day))
}

// TestSnapshotWithoutImportsUnchanged: state without imports encodes without
// the new fields, so hashes of existing states do not change.
func TestSnapshotWithoutImportsUnchanged(t *testing.T) {
	e := populated(t)
	b, err := encodeState(e.f.copyState())
	require.NoError(t, err)
	for _, field := range []string{"import_params", "material_fingerprint", "expiration_model", "valid_to"} {
		require.NotContains(t, string(b), field)
	}
}
