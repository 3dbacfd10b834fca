package fsm

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// rotationIs checks a key's automatic rotation settings.
func rotationIs(enabled bool, days int32, next int64) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		k := e.mustKey("k1")
		require.Equal(t, enabled, k.RotationEnabled, "RotationEnabled")
		require.Equal(t, days, k.RotationPeriodDays, "RotationPeriodDays")
		require.Equal(t, next, k.NextRotation, "NextRotation")
	}
}

func TestApplySetKeyRotation(t *testing.T) {
	k1 := createKey(testKey("k1"))
	runApplyCases(t, []applyCase{
		{
			name:  "enable",
			setup: []*Command{k1},
			cmd:   enableRotation("k1", 365, t0+day),
			check: rotationIs(true, 365, t0+366*day),
		},
		{
			name:  "enable with the shortest period",
			setup: []*Command{k1},
			cmd:   enableRotation("k1", MinRotationPeriodDays, t0),
			check: rotationIs(true, 90, t0+90*day),
		},
		{
			name:  "enable with the longest period",
			setup: []*Command{k1},
			cmd:   enableRotation("k1", MaxRotationPeriodDays, t0),
			check: rotationIs(true, 2560, t0+2560*day),
		},
		{
			name:  "enable again keeps the schedule",
			setup: []*Command{k1, enableRotation("k1", 365, t0)},
			cmd:   enableRotation("k1", 365, t0+100*day),
			check: rotationIs(true, 365, t0+365*day),
		},
		{
			name:  "shorter period moves the next date back",
			setup: []*Command{k1, enableRotation("k1", 365, t0)},
			cmd:   enableRotation("k1", 180, t0+10*day),
			check: rotationIs(true, 180, t0+180*day),
		},
		{
			name:  "longer period after an automatic rotation counts from it",
			setup: []*Command{k1, enableRotation("k1", 90, t0), rotateKey("k1", 9, RotationAutomatic, t0+91*day)},
			cmd:   enableRotation("k1", 200, t0+100*day),
			check: rotationIs(true, 200, t0+291*day),
		},
		{
			name:  "disable",
			setup: []*Command{k1, enableRotation("k1", 365, t0)},
			cmd:   disableRotation("k1", t0+day),
			check: rotationIs(false, 0, 0),
		},
		{
			name:  "disable when not enabled",
			setup: []*Command{k1},
			cmd:   disableRotation("k1", t0),
			check: rotationIs(false, 0, 0),
		},
		{
			name:  "re-enable starts a new schedule",
			setup: []*Command{k1, enableRotation("k1", 365, t0), disableRotation("k1", t0+day)},
			cmd:   enableRotation("k1", 100, t0+2*day),
			check: rotationIs(true, 100, t0+102*day),
		},
		{
			name:    "not found",
			cmd:     enableRotation("k1", 365, t0),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "enable on a disabled key",
			setup:   []*Command{k1, setEnabled("k1", false)},
			cmd:     enableRotation("k1", 365, t0),
			wantErr: ErrDisabled,
			wantMsg: testARN("k1") + " is disabled.",
			check:   rotationIs(false, 0, 0),
		},
		{
			name:    "disable on a disabled key",
			setup:   []*Command{k1, enableRotation("k1", 365, t0), setEnabled("k1", false)},
			cmd:     disableRotation("k1", t0),
			wantErr: ErrDisabled,
			wantMsg: "is disabled",
			check:   rotationIs(true, 365, t0+365*day),
		},
		{
			name:    "enable pending deletion",
			setup:   []*Command{k1, scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     enableRotation("k1", 365, t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
		},
		{
			name:    "disable pending deletion",
			setup:   []*Command{k1, enableRotation("k1", 365, t0), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     disableRotation("k1", t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   rotationIs(true, 365, t0+365*day),
		},
		{
			name:    "pending import",
			setup:   []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:     enableRotation("k1", 365, t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending import",
		},
		{
			name:    "period too short",
			setup:   []*Command{k1},
			cmd:     enableRotation("k1", MinRotationPeriodDays-1, t0),
			wantErr: ErrPrecondition,
			wantMsg: "89",
		},
		{
			name:    "period too long",
			setup:   []*Command{k1},
			cmd:     enableRotation("k1", MaxRotationPeriodDays+1, t0),
			wantErr: ErrPrecondition,
			wantMsg: "2561",
		},
		{
			name:    "no period",
			setup:   []*Command{k1},
			cmd:     enableRotation("k1", 0, t0),
			wantErr: ErrPrecondition,
		},
	})
}

// versionsAre checks the rotation types of a key's versions, oldest first,
// and that the last one is current.
func versionsAre(types ...string) func(t *testing.T, e *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		k := e.mustKey("k1")
		got := make([]string, len(k.Versions))
		for i, v := range k.Versions {
			got[i] = v.RotationType
		}
		require.Equal(t, types, got)
		cur, ok := k.CurrentVersion()
		require.True(t, ok)
		require.Equal(t, k.Versions[len(k.Versions)-1], cur)
	}
}

func TestApplyRotateKeyMaterial(t *testing.T) {
	k1 := createKey(testKey("k1"))
	onDemand := func(n int) []*Command {
		cmds := []*Command{k1}
		for i := range n {
			cmds = append(cmds, rotateKey("k1", byte(0x80+i), RotationOnDemand, t0+int64(i)))
		}
		return cmds
	}
	both := func(checks ...func(*testing.T, *env)) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			for _, c := range checks {
				c(t, e)
			}
		}
	}
	runApplyCases(t, []applyCase{
		{
			name:  "on demand",
			setup: []*Command{k1},
			cmd:   rotateKey("k1", 9, RotationOnDemand, t0+day),
			check: both(versionsAre("", RotationOnDemand), rotationIs(false, 0, 0), func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, rotationVersion(9, RotationOnDemand, t0+day), k.Versions[1])
				// The old version is still there to decrypt with.
				v, ok := k.Version([16]byte{1, 2, 3})
				require.True(t, ok)
				require.Equal(t, testKey("k1").Versions[0], v)
				require.Equal(t, 1, k.OnDemandRotations())
			}),
		},
		{
			name:  "on demand does not move the automatic schedule",
			setup: []*Command{k1, enableRotation("k1", 365, t0)},
			cmd:   rotateKey("k1", 9, RotationOnDemand, t0+day),
			check: both(versionsAre("", RotationOnDemand), rotationIs(true, 365, t0+365*day)),
		},
		{
			name:  "the 25th on-demand rotation",
			setup: onDemand(MaxOnDemandRotations - 1),
			cmd:   rotateKey("k1", 9, RotationOnDemand, t0+day),
			check: func(t *testing.T, e *env) {
				require.Equal(t, MaxOnDemandRotations, e.mustKey("k1").OnDemandRotations())
				require.Len(t, e.mustKey("k1").Versions, MaxOnDemandRotations+1)
			},
		},
		{
			name:    "the 26th on-demand rotation",
			setup:   onDemand(MaxOnDemandRotations),
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0+day),
			wantErr: ErrLimitExceeded,
			wantMsg: "25",
		},
		{
			name:  "automatic rotations do not count against the limit",
			setup: append(onDemand(MaxOnDemandRotations), enableRotation("k1", 90, t0)),
			cmd:   rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			check: rotationIs(true, 90, t0+180*day),
		},
		{
			name:  "automatic when due exactly",
			setup: []*Command{k1, enableRotation("k1", 90, t0)},
			cmd:   rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			check: both(versionsAre("", RotationAutomatic), rotationIs(true, 90, t0+180*day)),
		},
		{
			name:  "automatic when overdue counts the next period from now",
			setup: []*Command{k1, enableRotation("k1", 90, t0)},
			cmd:   rotateKey("k1", 9, RotationAutomatic, t0+200*day),
			check: both(versionsAre("", RotationAutomatic), rotationIs(true, 90, t0+290*day)),
		},
		{
			name:    "automatic before it is due",
			setup:   []*Command{k1, enableRotation("k1", 90, t0)},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+90*day-1),
			wantErr: ErrPrecondition,
			wantMsg: "not due",
			check:   both(versionsAre(""), rotationIs(true, 90, t0+90*day)),
		},
		{
			name:    "automatic without rotation enabled",
			setup:   []*Command{k1},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+1000*day),
			wantErr: ErrPrecondition,
		},
		{
			name:    "automatic after rotation was disabled meanwhile",
			setup:   []*Command{k1, enableRotation("k1", 90, t0), disableRotation("k1", t0+day)},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			wantErr: ErrPrecondition,
		},
		{
			name:    "automatic on a disabled key",
			setup:   []*Command{k1, enableRotation("k1", 90, t0), setEnabled("k1", false)},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			wantErr: ErrPrecondition,
			check:   rotationIs(true, 90, t0+90*day),
		},
		{
			name:    "automatic on a key pending deletion",
			setup:   []*Command{k1, enableRotation("k1", 90, t0), scheduleDeletion("k1", t0+100*day, 30)},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			wantErr: ErrPrecondition,
		},
		{
			name:    "automatic twice for one due date",
			setup:   []*Command{k1, enableRotation("k1", 90, t0), rotateKey("k1", 8, RotationAutomatic, t0+90*day)},
			cmd:     rotateKey("k1", 9, RotationAutomatic, t0+90*day),
			wantErr: ErrPrecondition,
			check:   versionsAre("", RotationAutomatic),
		},
		{
			name:    "on demand not found",
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "on demand on a disabled key",
			setup:   []*Command{k1, setEnabled("k1", false)},
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0),
			wantErr: ErrDisabled,
			wantMsg: "is disabled",
		},
		{
			name:    "on demand pending deletion",
			setup:   []*Command{k1, scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
		},
		{
			name:    "on demand pending import",
			setup:   []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0),
			wantErr: ErrInvalidState,
			wantMsg: "pending import",
		},
		{
			name:    "version id taken",
			setup:   []*Command{k1, rotateKey("k1", 9, RotationOnDemand, t0)},
			cmd:     rotateKey("k1", 9, RotationOnDemand, t0+day),
			wantErr: ErrAlreadyExists,
			check:   versionsAre("", RotationOnDemand),
		},
		{
			name:    "version id of the first material",
			setup:   []*Command{k1},
			cmd:     &Command{Type: CmdRotateKeyMaterial, Time: t0, RotateKeyMaterial: &RotateKeyMaterialCmd{KeyID: "k1", Version: testKey("k1").Versions[0]}},
			wantErr: ErrPrecondition, // no rotation type
		},
		{
			name:  "first material id with a rotation type",
			setup: []*Command{k1},
			cmd: &Command{Type: CmdRotateKeyMaterial, Time: t0, RotateKeyMaterial: &RotateKeyMaterialCmd{KeyID: "k1",
				Version: KeyVersion{VersionID: [16]byte{1, 2, 3}, RotationType: RotationOnDemand}}},
			wantErr: ErrAlreadyExists,
		},
		{
			name:    "unknown rotation type",
			setup:   []*Command{k1},
			cmd:     rotateKey("k1", 9, "MANUAL", t0),
			wantErr: ErrPrecondition,
			wantMsg: "MANUAL",
		},
	})
}

func TestRotationStatusSurvivesDeletionAndDisable(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), enableRotation("k1", 90, t0))
	// Pending deletion keeps the settings (GetKeyRotationStatus reports
	// false meanwhile) and a cancel brings them back, on a disabled key.
	e.mustApply(scheduleDeletion("k1", t0+30*day, 30), cancelDeletion("k1"))
	rotationIs(true, 90, t0+90*day)(t, e)
	// A disabled key is not due; once enabled again it is due at once when
	// its date has passed.
	require.Empty(t, e.f.KeysDueForRotation(t0+100*day))
	e.mustApply(setEnabled("k1", true))
	require.Equal(t, []string{"k1"}, e.f.KeysDueForRotation(t0+100*day))
	e.mustApply(rotateKey("k1", 9, RotationAutomatic, t0+100*day))
	require.Empty(t, e.f.KeysDueForRotation(t0+190*day-1))
	require.Equal(t, []string{"k1"}, e.f.KeysDueForRotation(t0+190*day))
}

func TestKeysDueForRotation(t *testing.T) {
	e := newEnv(t)
	e.mustApply(
		createKey(testKey("k3")), createKey(testKey("k1")), createKey(testKey("k2")),
		createKey(testKey("k4")), createKey(testKey("k5")), createKey(testKey("k6")),
		enableRotation("k3", 90, t0),
		enableRotation("k1", 90, t0),
		enableRotation("k2", 365, t0),
		enableRotation("k4", 90, t0), setEnabled("k4", false),
		enableRotation("k5", 90, t0), scheduleDeletion("k5", t0+30*day, 30),
		enableRotation("k6", 90, t0), disableRotation("k6", t0),
	)
	require.Empty(t, e.f.KeysDueForRotation(t0))
	require.Empty(t, e.f.KeysDueForRotation(t0+90*day-1))
	require.Equal(t, []string{"k1", "k3"}, e.f.KeysDueForRotation(t0+90*day))
	require.Equal(t, []string{"k1", "k2", "k3"}, e.f.KeysDueForRotation(math.MaxInt64))
	e.mustApply(rotateKey("k1", 9, RotationAutomatic, t0+90*day))
	require.Equal(t, []string{"k3"}, e.f.KeysDueForRotation(t0+90*day))
	require.Empty(t, New().KeysDueForRotation(math.MaxInt64))
}

func TestDuplicateRotationAppliesOnce(t *testing.T) {
	for _, typ := range []string{RotationOnDemand, RotationAutomatic} {
		t.Run(typ, func(t *testing.T) {
			e := newEnv(t)
			e.mustApply(createKey(testKey("k1")), enableRotation("k1", 90, t0))
			data := e.encode(withRequestID(rotateKey("k1", 9, typ, t0+90*day), "rotate-once"))
			first := e.applyData(data)
			require.Nil(t, first.Err)
			require.False(t, first.Duplicate)
			after := e.hash()

			// The retried entry reports the first success and adds nothing,
			// although the version id would now be taken (and an automatic
			// rotation no longer due).
			second := e.applyData(data)
			require.True(t, second.Duplicate)
			require.Nil(t, second.Err)
			require.Equal(t, after, e.hash())
			require.Len(t, e.mustKey("k1").Versions, 2)

			enable := e.encode(withRequestID(enableRotation("k1", 180, t0+91*day), "enable-once"))
			require.Nil(t, e.applyData(enable).Err)
			next := e.mustKey("k1").NextRotation
			res := e.applyData(enable)
			require.True(t, res.Duplicate)
			require.Equal(t, next, e.mustKey("k1").NextRotation, "a duplicate period change moved the date again")
		})
	}
}

func TestRotationSnapshotRestoreAndHash(t *testing.T) {
	build := func(t *testing.T, period int32, typ string) *env {
		e := newEnv(t)
		e.mustApply(createKey(testKey("k1")), enableRotation("k1", period, t0), rotateKey("k1", 9, typ, t0+180*day))
		return e
	}
	a := build(t, 90, RotationAutomatic)
	dst := New()
	_, err := restore(dst, snapshotBytes(t, a.f))
	require.NoError(t, err)
	got, ok := dst.Key("k1")
	require.True(t, ok)
	require.Equal(t, a.mustKey("k1"), got)
	require.True(t, got.RotationEnabled)
	require.Equal(t, int32(90), got.RotationPeriodDays)
	require.Equal(t, t0+270*day, got.NextRotation)
	require.Equal(t, RotationAutomatic, got.Versions[1].RotationType)
	h, err := dst.StateHash()
	require.NoError(t, err)
	require.Equal(t, a.hash(), h)

	// StateHash covers every rotation field.
	for name, other := range map[string]*env{
		"period":        build(t, 91, RotationAutomatic),
		"rotation type": build(t, 90, RotationOnDemand),
	} {
		require.NotEqual(t, a.hash(), other.hash(), name)
	}
	// Same log length and outcomes; only the rotation settings differ.
	disabled := build(t, 90, RotationAutomatic)
	disabled.mustApply(disableRotation("k1", t0+200*day))
	unchanged := build(t, 90, RotationAutomatic)
	unchanged.mustApply(updateDescription("k1", "key k1"))
	require.Equal(t, businessState(t, a.f), businessState(t, unchanged.f))
	require.NotEqual(t, unchanged.hash(), disabled.hash())
}

func TestRotationDeterminism(t *testing.T) {
	run := func() *env {
		e := newEnv(t)
		for i := range 20 {
			id := fmt.Sprintf("k%02d", i)
			e.apply(createKey(testKey(id)))
			e.apply(enableRotation(id, int32(90+i), t0+int64(i)))
			e.apply(rotateKey(id, byte(i), RotationOnDemand, t0+int64(i)*day))
			e.apply(rotateKey(id, byte(100+i), RotationAutomatic, t0+100*day)) // due for i <= 9
		}
		return e
	}
	a, b := run(), run()
	require.Equal(t, a.hash(), b.hash())
	require.Equal(t, snapshotBytes(t, a.f), snapshotBytes(t, b.f))
	require.Len(t, a.mustKey("k09").Versions, 3)
	require.Len(t, a.mustKey("k10").Versions, 2)
}
