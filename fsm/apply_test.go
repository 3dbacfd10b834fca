package fsm

import (
	"fmt"
	"math"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
)

// applyCase applies setup (each must succeed), then cmd, and checks cmd's
// outcome. A failing cmd must leave everything but the dedupe window as it
// was; check then inspects the state through the read accessors.
type applyCase struct {
	name    string
	setup   []*Command
	cmd     *Command
	wantErr error  // nil means success
	wantMsg string // substring of the error message, when wantErr is set
	check   func(t *testing.T, e *env)
}

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.mustApply(tc.setup...)
			before := businessState(t, e.f)

			res := e.apply(tc.cmd)
			require.False(t, res.Duplicate)
			if tc.wantErr == nil {
				require.Nil(t, res.Err, "unexpected error: %v", res.Err)
			} else {
				requireErrKind(t, res, tc.wantErr)
				require.Contains(t, res.Err.Message, tc.wantMsg)
				require.Equal(t, before, businessState(t, e.f), "a failed command changed the state")
			}

			// The outcome is remembered under the request id, as is.
			got, ok := e.f.ResultOf(tc.cmd.RequestID)
			require.True(t, ok)
			require.Equal(t, &Result{Err: res.Err}, got)

			if tc.check != nil {
				tc.check(t, e)
			}
		})
	}
}

func TestApplyCreateKey(t *testing.T) {
	pendingImport := keyInState("k1", StatePendingImport)
	pendingImport.Versions = nil
	twoVersions := testKey("k1")
	twoVersions.Versions = append(twoVersions.Versions, KeyVersion{
		VersionID: [16]byte{9}, DomainKeyID: "dk-2", WrappedMaterial: []byte{1}, CreatedAt: t0 + day,
	})
	duplicate := testKey("k1")
	duplicate.Description = "impostor"
	hmacKey := hmacTestKey("k1", "HMAC_384", 48)

	runApplyCases(t, []applyCase{
		{
			name: "success",
			cmd:  createKey(testKey("k1")),
			check: func(t *testing.T, e *env) {
				want := testKey("k1")
				require.Equal(t, &want, e.mustKey("k1"))
				require.Equal(t, 1, e.f.KeyCount())
				keys, more := e.f.ListKeys("", 10)
				require.False(t, more)
				require.Equal(t, []*Key{&want}, keys)
			},
		},
		{
			name: "pending import without material",
			cmd:  createKey(pendingImport),
			check: func(t *testing.T, e *env) {
				require.Equal(t, &pendingImport, e.mustKey("k1"))
				_, ok := e.mustKey("k1").CurrentVersion()
				require.False(t, ok)
			},
		},
		{
			name: "several versions",
			cmd:  createKey(twoVersions),
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, &twoVersions, k)
				cur, ok := k.CurrentVersion()
				require.True(t, ok)
				require.Equal(t, twoVersions.Versions[1], cur)
			},
		},
		{
			name: "HMAC key keeps its spec and usage",
			cmd:  createKey(hmacKey),
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, &hmacKey, k)
				require.Equal(t, "HMAC_384", k.KeySpec)
				require.Equal(t, "GENERATE_VERIFY_MAC", k.KeyUsage)
			},
		},
		{
			name:  "second key",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   createKey(testKey("k2")),
			check: func(t *testing.T, e *env) {
				require.Equal(t, 2, e.f.KeyCount())
				require.Equal(t, "key k1", e.mustKey("k1").Description)
				require.Equal(t, "key k2", e.mustKey("k2").Description)
			},
		},
		{
			name:    "already exists",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     createKey(duplicate),
			wantErr: ErrAlreadyExists,
			wantMsg: testARN("k1"),
			check: func(t *testing.T, e *env) {
				require.Equal(t, "key k1", e.mustKey("k1").Description)
				require.Equal(t, 1, e.f.KeyCount())
			},
		},
	})
}

func TestApplyUpdateKeyDescription(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:  "success",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   updateDescription("k1", "new description"),
			check: func(t *testing.T, e *env) {
				want := testKey("k1")
				want.Description = "new description"
				require.Equal(t, &want, e.mustKey("k1"))
			},
		},
		{
			name:  "empty description",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   updateDescription("k1", ""),
			check: func(t *testing.T, e *env) {
				require.Empty(t, e.mustKey("k1").Description)
			},
		},
		{
			name:  "disabled key",
			setup: []*Command{createKey(testKey("k1")), setEnabled("k1", false)},
			cmd:   updateDescription("k1", "d"),
			check: func(t *testing.T, e *env) {
				require.Equal(t, "d", e.mustKey("k1").Description)
				require.Equal(t, StateDisabled, e.mustKey("k1").State)
			},
		},
		{
			name:  "pending import key",
			setup: []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:   updateDescription("k1", "d"),
			check: func(t *testing.T, e *env) {
				require.Equal(t, "d", e.mustKey("k1").Description)
			},
		},
		{
			name:    "not found",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     updateDescription("k2", "d"),
			wantErr: ErrNotFound,
			wantMsg: "k2",
			check: func(t *testing.T, e *env) {
				_, ok := e.f.Key("k2")
				require.False(t, ok)
			},
		},
		{
			name:    "pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     updateDescription("k1", "d"),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check: func(t *testing.T, e *env) {
				require.Equal(t, "key k1", e.mustKey("k1").Description)
			},
		},
	})
}

func TestApplySetKeyEnabled(t *testing.T) {
	stateIs := func(want string) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			require.Equal(t, want, e.mustKey("k1").State)
		}
	}
	runApplyCases(t, []applyCase{
		{
			name:  "disable enabled key",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   setEnabled("k1", false),
			check: stateIs(StateDisabled),
		},
		{
			name:  "enable disabled key",
			setup: []*Command{createKey(testKey("k1")), setEnabled("k1", false)},
			cmd:   setEnabled("k1", true),
			check: stateIs(StateEnabled),
		},
		{
			name:  "enable enabled key",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   setEnabled("k1", true),
			check: stateIs(StateEnabled),
		},
		{
			name:  "disable disabled key",
			setup: []*Command{createKey(keyInState("k1", StateDisabled))},
			cmd:   setEnabled("k1", false),
			check: stateIs(StateDisabled),
		},
		{
			name:    "not found",
			cmd:     setEnabled("k1", true),
			wantErr: ErrNotFound,
			wantMsg: "k1",
			check: func(t *testing.T, e *env) {
				require.Zero(t, e.f.KeyCount())
			},
		},
		{
			name:    "enable pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     setEnabled("k1", true),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   stateIs(StatePendingDeletion),
		},
		{
			name:    "disable pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     setEnabled("k1", false),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   stateIs(StatePendingDeletion),
		},
		{
			name:    "enable pending import",
			setup:   []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:     setEnabled("k1", true),
			wantErr: ErrInvalidState,
			wantMsg: "pending import",
			check:   stateIs(StatePendingImport),
		},
		{
			name:    "disable pending import",
			setup:   []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:     setEnabled("k1", false),
			wantErr: ErrInvalidState,
			wantMsg: "pending import",
			check:   stateIs(StatePendingImport),
		},
	})
}

func TestApplyScheduleKeyDeletion(t *testing.T) {
	date := t0 + 30*day
	scheduled := func(t *testing.T, e *env) {
		k := e.mustKey("k1")
		require.Equal(t, StatePendingDeletion, k.State)
		require.Equal(t, date, k.DeletionDate)
		require.Equal(t, int32(30), k.PendingWindowDays)
		require.Equal(t, []string{"k1"}, e.f.KeysDueForDeletion(date))
		require.Empty(t, e.f.KeysDueForDeletion(date-1))
	}
	runApplyCases(t, []applyCase{
		{
			name:  "enabled key",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   scheduleDeletion("k1", date, 30),
			check: scheduled,
		},
		{
			name:  "disabled key",
			setup: []*Command{createKey(testKey("k1")), setEnabled("k1", false)},
			cmd:   scheduleDeletion("k1", date, 30),
			check: scheduled,
		},
		{
			name:  "pending import key",
			setup: []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:   scheduleDeletion("k1", date, 30),
			check: scheduled,
		},
		{
			name:  "rescheduled after cancel",
			setup: []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7), cancelDeletion("k1")},
			cmd:   scheduleDeletion("k1", date, 30),
			check: scheduled,
		},
		{
			name:    "not found",
			cmd:     scheduleDeletion("k1", date, 30),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "already pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     scheduleDeletion("k1", date, 30),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check: func(t *testing.T, e *env) {
				k := e.mustKey("k1")
				require.Equal(t, t0+7*day, k.DeletionDate)
				require.Equal(t, int32(7), k.PendingWindowDays)
			},
		},
	})
}

func TestApplyCancelKeyDeletion(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:  "success",
			setup: []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:   cancelDeletion("k1"),
			check: func(t *testing.T, e *env) {
				want := testKey("k1")
				want.State = StateDisabled // AWS leaves a cancelled key disabled
				require.Equal(t, &want, e.mustKey("k1"))
				require.Empty(t, e.f.KeysDueForDeletion(math.MaxInt64))
			},
		},
		{
			name:    "not found",
			cmd:     cancelDeletion("k1"),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "enabled key",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     cancelDeletion("k1"),
			wantErr: ErrInvalidState,
			wantMsg: "not pending deletion",
			check: func(t *testing.T, e *env) {
				require.Equal(t, StateEnabled, e.mustKey("k1").State)
			},
		},
		{
			name:    "disabled key",
			setup:   []*Command{createKey(testKey("k1")), setEnabled("k1", false)},
			cmd:     cancelDeletion("k1"),
			wantErr: ErrInvalidState,
			wantMsg: "not pending deletion",
		},
		{
			name:    "already cancelled",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7), cancelDeletion("k1")},
			cmd:     cancelDeletion("k1"),
			wantErr: ErrInvalidState,
			wantMsg: "not pending deletion",
		},
	})
}

func TestApplyDeleteKey(t *testing.T) {
	date := t0 + 7*day
	setup := []*Command{
		createKey(testKey("k1")),
		createKey(testKey("k2")),
		createAlias("alias/a", "k1", t0),
		createAlias("alias/b", "k1", t0),
		createAlias("alias/other", "k2", t0),
		scheduleDeletion("k1", date, 7),
	}
	deleted := func(t *testing.T, e *env) {
		_, ok := e.f.Key("k1")
		require.False(t, ok)
		require.Equal(t, 1, e.f.KeyCount())
		require.Empty(t, e.f.KeysDueForDeletion(math.MaxInt64))
		// The key's aliases go with it; other aliases stay.
		for _, name := range []string{"alias/a", "alias/b"} {
			_, ok := e.f.Alias(name)
			require.False(t, ok, name)
		}
		aliases, _ := e.f.ListAliases("", "", 10)
		require.Equal(t, []Alias{{Name: "alias/other", TargetKeyID: "k2", CreatedAt: t0, UpdatedAt: t0}}, aliases)
		aliases, _ = e.f.ListAliases("k1", "", 10)
		require.Empty(t, aliases)
	}
	runApplyCases(t, []applyCase{
		{
			name:  "due exactly at deletion date",
			setup: setup,
			cmd:   deleteKey("k1", date),
			check: deleted,
		},
		{
			name:  "overdue",
			setup: setup,
			cmd:   deleteKey("k1", date+day),
			check: deleted,
		},
		{
			name:    "not found",
			setup:   setup,
			cmd:     deleteKey("k9", date),
			wantErr: ErrNotFound,
			wantMsg: "k9",
		},
		{
			name:    "not yet due",
			setup:   setup,
			cmd:     deleteKey("k1", date-1),
			wantErr: ErrPrecondition,
			wantMsg: "not due",
			check: func(t *testing.T, e *env) {
				require.Equal(t, StatePendingDeletion, e.mustKey("k1").State)
				_, ok := e.f.Alias("alias/a")
				require.True(t, ok)
			},
		},
		{
			name:    "not pending deletion",
			setup:   setup,
			cmd:     deleteKey("k2", date),
			wantErr: ErrPrecondition,
			wantMsg: "not due",
		},
		{
			name:    "deletion cancelled meanwhile",
			setup:   append(append([]*Command{}, setup...), cancelDeletion("k1")),
			cmd:     deleteKey("k1", date),
			wantErr: ErrPrecondition,
			wantMsg: "not due",
			check: func(t *testing.T, e *env) {
				require.Equal(t, StateDisabled, e.mustKey("k1").State)
			},
		},
	})
}

func TestApplyCreateAlias(t *testing.T) {
	created := func(t *testing.T, e *env) {
		want := Alias{Name: "alias/a", TargetKeyID: "k1", CreatedAt: t0 + 5, UpdatedAt: t0 + 5}
		got, ok := e.f.Alias("alias/a")
		require.True(t, ok)
		require.Equal(t, want, got)
		list, more := e.f.ListAliases("k1", "", 10)
		require.False(t, more)
		require.Equal(t, []Alias{want}, list)
	}
	runApplyCases(t, []applyCase{
		{
			name:  "success",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   createAlias("alias/a", "k1", t0+5),
			check: created,
		},
		{
			name:  "disabled target",
			setup: []*Command{createKey(keyInState("k1", StateDisabled))},
			cmd:   createAlias("alias/a", "k1", t0+5),
			check: created,
		},
		{
			name:  "pending import target",
			setup: []*Command{createKey(keyInState("k1", StatePendingImport))},
			cmd:   createAlias("alias/a", "k1", t0+5),
			check: created,
		},
		{
			name:    "already exists",
			setup:   []*Command{createKey(testKey("k1")), createKey(testKey("k2")), createAlias("alias/a", "k1", t0)},
			cmd:     createAlias("alias/a", "k2", t0+5),
			wantErr: ErrAlreadyExists,
			wantMsg: "alias/a",
			check: func(t *testing.T, e *env) {
				got, _ := e.f.Alias("alias/a")
				require.Equal(t, Alias{Name: "alias/a", TargetKeyID: "k1", CreatedAt: t0, UpdatedAt: t0}, got)
			},
		},
		{
			name:    "already exists wins over missing target",
			setup:   []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0)},
			cmd:     createAlias("alias/a", "nope", t0+5),
			wantErr: ErrAlreadyExists,
		},
		{
			name:    "target not found",
			setup:   []*Command{createKey(testKey("k1"))},
			cmd:     createAlias("alias/a", "k2", t0+5),
			wantErr: ErrNotFound,
			wantMsg: "k2",
			check: func(t *testing.T, e *env) {
				_, ok := e.f.Alias("alias/a")
				require.False(t, ok)
			},
		},
		{
			name:    "target pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     createAlias("alias/a", "k1", t0+5),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
		},
	})
}

func TestApplyUpdateAlias(t *testing.T) {
	setup := []*Command{createKey(testKey("k1")), createKey(testKey("k2")), createAlias("alias/a", "k1", t0)}
	unchanged := func(t *testing.T, e *env) {
		got, _ := e.f.Alias("alias/a")
		require.Equal(t, Alias{Name: "alias/a", TargetKeyID: "k1", CreatedAt: t0, UpdatedAt: t0}, got)
	}
	runApplyCases(t, []applyCase{
		{
			name:  "retarget",
			setup: setup,
			cmd:   updateAlias("alias/a", "k2", t0+day),
			check: func(t *testing.T, e *env) {
				got, ok := e.f.Alias("alias/a")
				require.True(t, ok)
				// CreatedAt is kept, UpdatedAt is the command's time.
				require.Equal(t, Alias{Name: "alias/a", TargetKeyID: "k2", CreatedAt: t0, UpdatedAt: t0 + day}, got)
				l, _ := e.f.ListAliases("k1", "", 10)
				require.Empty(t, l)
				l, _ = e.f.ListAliases("k2", "", 10)
				require.Equal(t, []Alias{got}, l)
			},
		},
		{
			name:  "same target",
			setup: setup,
			cmd:   updateAlias("alias/a", "k1", t0+day),
			check: func(t *testing.T, e *env) {
				got, _ := e.f.Alias("alias/a")
				require.Equal(t, Alias{Name: "alias/a", TargetKeyID: "k1", CreatedAt: t0, UpdatedAt: t0 + day}, got)
			},
		},
		{
			name:    "alias not found",
			setup:   setup,
			cmd:     updateAlias("alias/b", "k2", t0+day),
			wantErr: ErrNotFound,
			wantMsg: "alias/b",
			check: func(t *testing.T, e *env) {
				_, ok := e.f.Alias("alias/b")
				require.False(t, ok, "UpdateAlias must not create an alias")
			},
		},
		{
			name:    "target not found",
			setup:   setup,
			cmd:     updateAlias("alias/a", "k9", t0+day),
			wantErr: ErrNotFound,
			wantMsg: "k9",
			check:   unchanged,
		},
		{
			name:    "target pending deletion",
			setup:   append(append([]*Command{}, setup...), scheduleDeletion("k2", t0+7*day, 7)),
			cmd:     updateAlias("alias/a", "k2", t0+day),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   unchanged,
		},
	})
}

func TestApplyDeleteAlias(t *testing.T) {
	runApplyCases(t, []applyCase{
		{
			name:  "success",
			setup: []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0), createAlias("alias/b", "k1", t0)},
			cmd:   deleteAlias("alias/a"),
			check: func(t *testing.T, e *env) {
				_, ok := e.f.Alias("alias/a")
				require.False(t, ok)
				_, ok = e.f.Alias("alias/b")
				require.True(t, ok)
				e.mustKey("k1") // the key stays
			},
		},
		{
			name: "target pending deletion",
			setup: []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0),
				scheduleDeletion("k1", t0+7*day, 7)},
			cmd: deleteAlias("alias/a"),
			check: func(t *testing.T, e *env) {
				_, ok := e.f.Alias("alias/a")
				require.False(t, ok)
			},
		},
		{
			name:  "recreate after delete",
			setup: []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0), deleteAlias("alias/a")},
			cmd:   createAlias("alias/a", "k1", t0+day),
			check: func(t *testing.T, e *env) {
				got, _ := e.f.Alias("alias/a")
				require.Equal(t, Alias{Name: "alias/a", TargetKeyID: "k1", CreatedAt: t0 + day, UpdatedAt: t0 + day}, got)
			},
		},
		{
			name:    "not found",
			setup:   []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0)},
			cmd:     deleteAlias("alias/b"),
			wantErr: ErrNotFound,
			wantMsg: "alias/b",
		},
		{
			name:    "already deleted",
			setup:   []*Command{createKey(testKey("k1")), createAlias("alias/a", "k1", t0), deleteAlias("alias/a")},
			cmd:     deleteAlias("alias/a"),
			wantErr: ErrNotFound,
		},
	})
}

func TestApplyTagResource(t *testing.T) {
	noTags := testKey("k1")
	noTags.Tags = nil
	tagsAre := func(want map[string]string) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			require.Equal(t, want, e.mustKey("k1").Tags)
		}
	}
	full := nTags("t", MaxTagsPerKey)
	runApplyCases(t, []applyCase{
		{
			name:  "add",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   tagResource("k1", map[string]string{"a": "1", "b": "2"}),
			check: tagsAre(map[string]string{"env": "test", "a": "1", "b": "2"}),
		},
		{
			name:  "replace value",
			setup: []*Command{createKey(testKey("k1"))},
			cmd:   tagResource("k1", map[string]string{"env": "prod"}),
			check: tagsAre(map[string]string{"env": "prod"}),
		},
		{
			name:  "key without tags",
			setup: []*Command{createKey(noTags)},
			cmd:   tagResource("k1", map[string]string{"a": "1"}),
			check: tagsAre(map[string]string{"a": "1"}),
		},
		{
			name:  "disabled key",
			setup: []*Command{createKey(testKey("k1")), setEnabled("k1", false)},
			cmd:   tagResource("k1", map[string]string{"a": "1"}),
			check: tagsAre(map[string]string{"env": "test", "a": "1"}),
		},
		{
			name:  "exactly the limit",
			setup: []*Command{createKey(noTags)},
			cmd:   tagResource("k1", full),
			check: tagsAre(full),
		},
		{
			name:  "overwrite at the limit",
			setup: []*Command{createKey(noTags), tagResource("k1", full)},
			cmd:   tagResource("k1", map[string]string{"t0": "new", "t49": "new"}),
			check: func(t *testing.T, e *env) {
				tags := e.mustKey("k1").Tags
				require.Len(t, tags, MaxTagsPerKey)
				require.Equal(t, "new", tags["t0"])
				require.Equal(t, "new", tags["t49"])
				require.Equal(t, "v1", tags["t1"])
			},
		},
		{
			name:    "one over the limit at once",
			setup:   []*Command{createKey(noTags)},
			cmd:     tagResource("k1", nTags("t", MaxTagsPerKey+1)),
			wantErr: ErrLimitExceeded,
			wantMsg: fmt.Sprint(MaxTagsPerKey),
			check: func(t *testing.T, e *env) {
				require.Empty(t, e.mustKey("k1").Tags)
			},
		},
		{
			name:    "over the limit with existing tags",
			setup:   []*Command{createKey(testKey("k1")), tagResource("k1", nTags("t", MaxTagsPerKey-2))},
			cmd:     tagResource("k1", map[string]string{"x": "1", "y": "2"}),
			wantErr: ErrLimitExceeded,
			check: func(t *testing.T, e *env) {
				// No partial update: neither new tag is there.
				tags := e.mustKey("k1").Tags
				require.Len(t, tags, MaxTagsPerKey-1)
				require.NotContains(t, tags, "x")
				require.NotContains(t, tags, "y")
			},
		},
		{
			name:    "not found",
			cmd:     tagResource("k1", map[string]string{"a": "1"}),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "pending deletion",
			setup:   []*Command{createKey(testKey("k1")), scheduleDeletion("k1", t0+7*day, 7)},
			cmd:     tagResource("k1", map[string]string{"a": "1"}),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   tagsAre(map[string]string{"env": "test"}),
		},
	})
}

func TestApplyUntagResource(t *testing.T) {
	noTags := testKey("k1")
	noTags.Tags = nil
	tagged := []*Command{createKey(testKey("k1")), tagResource("k1", map[string]string{"a": "1", "b": "2"})}
	tagsAre := func(want map[string]string) func(*testing.T, *env) {
		return func(t *testing.T, e *env) {
			require.Equal(t, want, e.mustKey("k1").Tags)
		}
	}
	runApplyCases(t, []applyCase{
		{
			name:  "remove some",
			setup: tagged,
			cmd:   untagResource("k1", "a", "env"),
			check: tagsAre(map[string]string{"b": "2"}),
		},
		{
			name:  "remove absent tag",
			setup: tagged,
			cmd:   untagResource("k1", "zzz"),
			check: tagsAre(map[string]string{"env": "test", "a": "1", "b": "2"}),
		},
		{
			name:  "remove all",
			setup: tagged,
			cmd:   untagResource("k1", "a", "b", "env"),
			check: func(t *testing.T, e *env) {
				require.Empty(t, e.mustKey("k1").Tags)
				require.Empty(t, e.mustKey("k1").SortedTagKeys())
			},
		},
		{
			name:  "key without tags",
			setup: []*Command{createKey(noTags)},
			cmd:   untagResource("k1", "a"),
			check: func(t *testing.T, e *env) {
				require.Empty(t, e.mustKey("k1").Tags)
			},
		},
		{
			name:  "disabled key",
			setup: append(append([]*Command{}, tagged...), setEnabled("k1", false)),
			cmd:   untagResource("k1", "a"),
			check: tagsAre(map[string]string{"env": "test", "b": "2"}),
		},
		{
			name:    "not found",
			cmd:     untagResource("k1", "a"),
			wantErr: ErrNotFound,
			wantMsg: "k1",
		},
		{
			name:    "pending deletion",
			setup:   append(append([]*Command{}, tagged...), scheduleDeletion("k1", t0+7*day, 7)),
			cmd:     untagResource("k1", "a"),
			wantErr: ErrInvalidState,
			wantMsg: "pending deletion",
			check:   tagsAre(map[string]string{"env": "test", "a": "1", "b": "2"}),
		},
	})
}

func TestApplyAddDomainKey(t *testing.T) {
	dk1 := DomainKey{ID: "dk-1", Wrapped: []byte("wrapped-1"), CreatedAt: t0}
	dk2 := DomainKey{ID: "dk-2", Wrapped: []byte("wrapped-2"), CreatedAt: t0 + day}
	both := func(t *testing.T, e *env) {
		cur, ok := e.f.CurrentDomainKey()
		require.True(t, ok)
		require.Equal(t, dk2, cur)
		got, ok := e.f.DomainKey("dk-1")
		require.True(t, ok)
		require.Equal(t, dk1, got)
		got, ok = e.f.DomainKey("dk-2")
		require.True(t, ok)
		require.Equal(t, dk2, got)
	}
	runApplyCases(t, []applyCase{
		{
			name: "first",
			cmd:  addDomainKey("dk-1", []byte("wrapped-1"), t0),
			check: func(t *testing.T, e *env) {
				cur, ok := e.f.CurrentDomainKey()
				require.True(t, ok)
				require.Equal(t, dk1, cur)
				got, ok := e.f.DomainKey("dk-1")
				require.True(t, ok)
				require.Equal(t, dk1, got)
				_, ok = e.f.DomainKey("dk-2")
				require.False(t, ok)
			},
		},
		{
			name:  "second becomes current",
			setup: []*Command{addDomainKey("dk-1", []byte("wrapped-1"), t0)},
			cmd:   addDomainKey("dk-2", []byte("wrapped-2"), t0+day),
			check: both,
		},
		{
			name:    "current id again",
			setup:   []*Command{addDomainKey("dk-1", []byte("wrapped-1"), t0), addDomainKey("dk-2", []byte("wrapped-2"), t0+day)},
			cmd:     addDomainKey("dk-2", []byte("other"), t0+2*day),
			wantErr: ErrAlreadyExists,
			wantMsg: "dk-2",
			check:   both,
		},
		{
			name:    "older id again",
			setup:   []*Command{addDomainKey("dk-1", []byte("wrapped-1"), t0), addDomainKey("dk-2", []byte("wrapped-2"), t0+day)},
			cmd:     addDomainKey("dk-1", []byte("other"), t0+2*day),
			wantErr: ErrAlreadyExists,
			wantMsg: "dk-1",
			check:   both, // dk-1 must not become current again
		},
	})
}

func TestEmptyFSMAccessors(t *testing.T) {
	f := New()
	_, ok := f.Key("k1")
	require.False(t, ok)
	_, ok = f.Alias("alias/a")
	require.False(t, ok)
	_, ok = f.DomainKey("dk-1")
	require.False(t, ok)
	_, ok = f.CurrentDomainKey()
	require.False(t, ok)
	keys, more := f.ListKeys("", 10)
	require.Empty(t, keys)
	require.False(t, more)
	aliases, more := f.ListAliases("", "", 10)
	require.Empty(t, aliases)
	require.False(t, more)
	require.Empty(t, f.KeysDueForDeletion(math.MaxInt64))
	require.Zero(t, f.KeyCount())
	_, ok = f.ResultOf("req-1")
	require.False(t, ok)
}

func TestListKeysPagination(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"k3", "k1", "k5", "k2", "k4"} {
		e.mustApply(createKey(testKey(id)))
	}
	ids := func(keys []*Key) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.KeyID)
		}
		return out
	}

	keys, more := e.f.ListKeys("", 2)
	require.Equal(t, []string{"k1", "k2"}, ids(keys))
	require.True(t, more)
	keys, more = e.f.ListKeys("k2", 2)
	require.Equal(t, []string{"k3", "k4"}, ids(keys))
	require.True(t, more)
	keys, more = e.f.ListKeys("k4", 2)
	require.Equal(t, []string{"k5"}, ids(keys))
	require.False(t, more)
	keys, more = e.f.ListKeys("k5", 2)
	require.Empty(t, keys)
	require.False(t, more)

	keys, more = e.f.ListKeys("", 5)
	require.Equal(t, []string{"k1", "k2", "k3", "k4", "k5"}, ids(keys))
	require.False(t, more, "exactly limit keys: nothing more")
	keys, more = e.f.ListKeys("k0", 0)
	require.Empty(t, keys)
	require.True(t, more)
	// "after" need not be an existing id.
	keys, _ = e.f.ListKeys("k2a", 10)
	require.Equal(t, []string{"k3", "k4", "k5"}, ids(keys))

	// Listed keys are the ones Key returns.
	for _, k := range keys {
		require.Same(t, e.mustKey(k.KeyID), k)
	}
}

func TestListAliasesPaginationAndFilter(t *testing.T) {
	e := newEnv(t)
	e.mustApply(createKey(testKey("k1")), createKey(testKey("k2")))
	for i, name := range []string{"alias/d", "alias/a", "alias/c", "alias/b", "alias/e"} {
		target := "k1"
		if i%2 == 1 {
			target = "k2"
		}
		e.mustApply(createAlias(name, target, t0+int64(i)))
	}
	names := func(as []Alias) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.Name)
		}
		return out
	}

	all, more := e.f.ListAliases("", "", 10)
	require.False(t, more)
	require.Equal(t, []string{"alias/a", "alias/b", "alias/c", "alias/d", "alias/e"}, names(all))
	for _, a := range all {
		got, ok := e.f.Alias(a.Name)
		require.True(t, ok)
		require.Equal(t, got, a)
	}

	page, more := e.f.ListAliases("", "", 2)
	require.True(t, more)
	require.Equal(t, []string{"alias/a", "alias/b"}, names(page))
	page, more = e.f.ListAliases("", "alias/b", 2)
	require.True(t, more)
	require.Equal(t, []string{"alias/c", "alias/d"}, names(page))
	page, more = e.f.ListAliases("", "alias/d", 2)
	require.False(t, more)
	require.Equal(t, []string{"alias/e"}, names(page))

	// k1: alias/d, alias/c, alias/e. k2: alias/a, alias/b.
	page, more = e.f.ListAliases("k1", "", 10)
	require.False(t, more)
	require.Equal(t, []string{"alias/c", "alias/d", "alias/e"}, names(page))
	page, more = e.f.ListAliases("k1", "", 2)
	require.True(t, more)
	require.Equal(t, []string{"alias/c", "alias/d"}, names(page))
	page, more = e.f.ListAliases("k1", "alias/d", 2)
	require.False(t, more)
	require.Equal(t, []string{"alias/e"}, names(page))
	page, more = e.f.ListAliases("k2", "", 10)
	require.False(t, more)
	require.Equal(t, []string{"alias/a", "alias/b"}, names(page))
	page, _ = e.f.ListAliases("k9", "", 10)
	require.Empty(t, page)
}

func TestKeysDueForDeletion(t *testing.T) {
	e := newEnv(t)
	e.mustApply(
		createKey(testKey("k3")), createKey(testKey("k1")), createKey(testKey("k2")),
		createKey(testKey("k4")), createKey(keyInState("k5", StateDisabled)),
		scheduleDeletion("k3", t0+7*day, 7),
		scheduleDeletion("k1", t0+7*day, 7),
		scheduleDeletion("k2", t0+30*day, 30),
	)
	require.Empty(t, e.f.KeysDueForDeletion(t0))
	require.Empty(t, e.f.KeysDueForDeletion(t0+7*day-1))
	require.Equal(t, []string{"k1", "k3"}, e.f.KeysDueForDeletion(t0+7*day))
	require.Equal(t, []string{"k1", "k2", "k3"}, e.f.KeysDueForDeletion(t0+30*day))
	require.Equal(t, []string{"k1", "k2", "k3"}, e.f.KeysDueForDeletion(math.MaxInt64))

	e.mustApply(cancelDeletion("k3"), deleteKey("k1", t0+7*day))
	require.Equal(t, []string{"k2"}, e.f.KeysDueForDeletion(math.MaxInt64))
	require.Equal(t, 4, e.f.KeyCount())
}

// TestKeyLifecycle walks one key through its whole life, the way the service
// and the deletion sweeper drive it.
func TestKeyLifecycle(t *testing.T) {
	e := newEnv(t)
	e.mustApply(
		addDomainKey("dk-1", []byte("w"), t0),
		createKey(testKey("k1")),
		createAlias("alias/app", "k1", t0),
		setEnabled("k1", false),
		setEnabled("k1", true),
		scheduleDeletion("k1", t0+7*day, 7),
	)
	e.applyErr(deleteKey("k1", t0+6*day), ErrPrecondition)
	e.mustApply(cancelDeletion("k1"))
	require.Equal(t, StateDisabled, e.mustKey("k1").State)
	e.mustApply(setEnabled("k1", true), scheduleDeletion("k1", t0+14*day, 7))
	require.Equal(t, []string{"k1"}, e.f.KeysDueForDeletion(t0+14*day))
	e.mustApply(deleteKey("k1", t0+14*day))
	e.applyErr(deleteKey("k1", t0+14*day), ErrNotFound)
	e.applyErr(setEnabled("k1", true), ErrNotFound)
	e.applyErr(createAlias("alias/app", "k1", t0), ErrNotFound)
	// The id is free again.
	e.mustApply(createKey(testKey("k1")))
	require.Equal(t, StateEnabled, e.mustKey("k1").State)
	_, ok := e.f.Alias("alias/app")
	require.False(t, ok)
	require.Equal(t, 1, e.f.KeyCount())
}

func TestApplyIgnoresNonCommandEntries(t *testing.T) {
	e := populated(t)
	before := e.hash()
	valid, err := Encode(withRequestID(createKey(testKey("new")), "req-non-command"))
	require.NoError(t, err)

	for _, typ := range []raft.LogType{
		raft.LogNoop, raft.LogBarrier, raft.LogConfiguration,
		raft.LogAddPeerDeprecated, raft.LogRemovePeerDeprecated,
	} {
		for _, data := range [][]byte{nil, {0xff, 0x00}, valid} {
			t.Run(fmt.Sprintf("%v/%d bytes", typ, len(data)), func(t *testing.T) {
				require.NotPanics(t, func() {
					require.Nil(t, e.f.Apply(&raft.Log{Type: typ, Index: 1000, Data: data}))
				})
			})
		}
	}
	require.Equal(t, before, e.hash())
	_, ok := e.f.Key("new")
	require.False(t, ok)
	_, ok = e.f.ResultOf("req-non-command")
	require.False(t, ok)
}

func TestApplyPanicsOnUndecodableData(t *testing.T) {
	rawJSON := func(s string) []byte { return append([]byte{commandFormat}, s...) }
	cases := map[string][]byte{
		"nil":                   nil,
		"empty":                 {},
		"format byte only":      {commandFormat},
		"unknown format":        append([]byte{commandFormat + 1}, `{"type":"DeleteAlias","request_id":"r","alias":{"name":"alias/a"}}`...),
		"bare json":             []byte(`{"type":"DeleteAlias","request_id":"r","alias":{"name":"alias/a"}}`),
		"not json":              rawJSON("not json"),
		"truncated json":        rawJSON(`{"type":"DeleteAlias","request_id":"r","alias":{"name":`),
		"trailing garbage":      rawJSON(`{"type":"DeleteAlias","request_id":"r","alias":{"name":"alias/a"}} x`),
		"json null":             rawJSON("null"),
		"json array":            rawJSON("[]"),
		"wrong field type":      rawJSON(`{"type":"CreateKey","request_id":"r","time":"soon","create_key":{"key":{}}}`),
		"unknown type":          rawJSON(`{"type":"RotateKey","request_id":"r","key_ref":{"key_id":"k1"}}`),
		"no type":               rawJSON(`{"request_id":"r","key_ref":{"key_id":"k1"}}`),
		"missing payload":       rawJSON(`{"type":"CreateKey","request_id":"r"}`),
		"null payload":          rawJSON(`{"type":"DeleteKey","request_id":"r","key_ref":null}`),
		"payload of other type": rawJSON(`{"type":"CreateAlias","request_id":"r","key_ref":{"key_id":"k1"}}`),
		"missing request id":    rawJSON(`{"type":"DeleteAlias","alias":{"name":"alias/a"}}`),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			e := populated(t)
			before := e.hash()
			require.PanicsWithValue(t, mustPanicValue(t, data), func() {
				e.f.Apply(&raft.Log{Type: raft.LogCommand, Index: 42, Data: data})
			})
			require.Equal(t, before, e.hash())
			// The panic did not leave the lock held.
			e.mustApply(updateDescription("k1", "after panic"))
			require.Equal(t, "after panic", e.mustKey("k1").Description)
		})
	}
}

// mustPanicValue is the value Apply panics with for data: a message naming
// the log index and Decode's error.
func mustPanicValue(t *testing.T, data []byte) any {
	t.Helper()
	_, err := Decode(data)
	require.Error(t, err)
	return fmt.Sprintf("fsm: undecodable command at index 42: %v", err)
}

func TestEncodeRejectsInvalidCommands(t *testing.T) {
	cases := map[string]*Command{
		"unknown type":          {Type: "RotateKey", RequestID: "r", KeyRef: &KeyRefCmd{KeyID: "k1"}},
		"empty type":            {RequestID: "r", KeyRef: &KeyRefCmd{KeyID: "k1"}},
		"missing request id":    {Type: CmdDeleteKey, KeyRef: &KeyRefCmd{KeyID: "k1"}},
		"payload of other type": {Type: CmdCreateAlias, RequestID: "r", KeyRef: &KeyRefCmd{KeyID: "k1"}},
	}
	for _, typ := range allCommandTypes {
		cases["no payload "+typ] = &Command{Type: typ, RequestID: "r"}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			b, err := Encode(c)
			require.Error(t, err)
			require.Nil(t, b)
		})
	}
}

var allCommandTypes = []string{
	CmdCreateKey, CmdUpdateKeyDescription, CmdSetKeyEnabled, CmdScheduleKeyDeletion,
	CmdCancelKeyDeletion, CmdDeleteKey, CmdCreateAlias, CmdUpdateAlias, CmdDeleteAlias,
	CmdTagResource, CmdUntagResource, CmdAddDomainKey, CmdSetKeyRotation, CmdRotateKeyMaterial,
}

// sampleCommands returns one valid command of every type, with request ids.
func sampleCommands() []*Command {
	cmds := []*Command{
		createKey(testKey("k1")),
		updateDescription("k1", "d"),
		setEnabled("k1", true),
		scheduleDeletion("k1", t0+7*day, 7),
		cancelDeletion("k1"),
		deleteKey("k1", t0+8*day),
		createAlias("alias/a", "k1", t0),
		updateAlias("alias/a", "k2", t0+1),
		deleteAlias("alias/a"),
		tagResource("k1", map[string]string{"a": "1", "b": ""}),
		untagResource("k1", "a", "b"),
		addDomainKey("dk-1", []byte{0, 1, 2, 0xff}, t0),
		enableRotation("k1", 180, t0),
		rotateKey("k1", 7, RotationOnDemand, t0+day),
	}
	for i, c := range cmds {
		c.RequestID = fmt.Sprintf("sample-%d", i)
	}
	return cmds
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	cmds := sampleCommands()
	seen := map[string]bool{}
	for _, c := range cmds {
		seen[c.Type] = true
		t.Run(c.Type, func(t *testing.T) {
			b, err := Encode(c)
			require.NoError(t, err)
			require.Equal(t, commandFormat, b[0])
			got, err := Decode(b)
			require.NoError(t, err)
			require.Equal(t, c, got)
		})
	}
	for _, typ := range allCommandTypes {
		require.True(t, seen[typ], "sampleCommands lacks %s", typ)
	}
}

func TestKeyVersionLookups(t *testing.T) {
	k := testKey("k1")
	second := KeyVersion{VersionID: [16]byte{7}, DomainKeyID: "dk-2", WrappedMaterial: []byte{2}, CreatedAt: t0 + day}
	k.Versions = append(k.Versions, second)
	e := newEnv(t)
	e.mustApply(createKey(k))
	got := e.mustKey("k1")

	cur, ok := got.CurrentVersion()
	require.True(t, ok)
	require.Equal(t, second, cur, "the last version is current")
	v, ok := got.Version([16]byte{1, 2, 3})
	require.True(t, ok)
	require.Equal(t, k.Versions[0], v)
	v, ok = got.Version([16]byte{7})
	require.True(t, ok)
	require.Equal(t, second, v)
	_, ok = got.Version([16]byte{8})
	require.False(t, ok)

	empty := &Key{}
	_, ok = empty.CurrentVersion()
	require.False(t, ok)
	_, ok = empty.Version([16]byte{})
	require.False(t, ok)
	require.Empty(t, empty.SortedTagKeys())
}
