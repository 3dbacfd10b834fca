package service_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/fsm"
	"github.com/kmsd/kmsd/internal/testserver"
)

const rotDay = 24 * time.Hour

func rotationStatus(t testing.TB, c *kms.Client, ref string) *kms.GetKeyRotationStatusOutput {
	t.Helper()
	out, err := c.GetKeyRotationStatus(context.Background(), &kms.GetKeyRotationStatusInput{KeyId: aws.String(ref)})
	require.NoError(t, err, "GetKeyRotationStatus %s", ref)
	return out
}

func enableRotation(t testing.TB, c *kms.Client, ref string, days *int32) {
	t.Helper()
	_, err := c.EnableKeyRotation(context.Background(), &kms.EnableKeyRotationInput{KeyId: aws.String(ref), RotationPeriodInDays: days})
	require.NoError(t, err, "EnableKeyRotation %s", ref)
}

func rotateOnDemand(t testing.TB, c *kms.Client, ref string) {
	t.Helper()
	out, err := c.RotateKeyOnDemand(context.Background(), &kms.RotateKeyOnDemandInput{KeyId: aws.String(ref)})
	require.NoError(t, err, "RotateKeyOnDemand %s", ref)
	require.NotEmpty(t, aws.ToString(out.KeyId))
}

// listAllRotations follows markers with the given page size.
func listAllRotations(t testing.TB, c *kms.Client, ref string, limit *int32, include types.IncludeKeyMaterial) []types.RotationsListEntry {
	t.Helper()
	var all []types.RotationsListEntry
	var marker *string
	for range 1000 {
		out, err := c.ListKeyRotations(context.Background(), &kms.ListKeyRotationsInput{
			KeyId: aws.String(ref), Limit: limit, Marker: marker, IncludeKeyMaterial: include})
		require.NoError(t, err)
		if limit != nil {
			require.LessOrEqual(t, len(out.Rotations), int(*limit))
		}
		all = append(all, out.Rotations...)
		if !out.Truncated {
			require.Nil(t, out.NextMarker)
			return all
		}
		require.NotNil(t, out.NextMarker)
		marker = out.NextMarker
	}
	t.Fatal("ListKeyRotations never ended")
	return nil
}

func decryptOK(t testing.TB, c *kms.Client, blob []byte, want string) *kms.DecryptOutput {
	t.Helper()
	out, err := c.Decrypt(context.Background(), &kms.DecryptInput{CiphertextBlob: blob})
	require.NoError(t, err)
	require.Equal(t, want, string(out.Plaintext))
	return out
}

func TestRotationEnableDefaultAndCustomPeriod(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)

	st := rotationStatus(t, c, id)
	require.False(t, st.KeyRotationEnabled)
	require.Equal(t, id, aws.ToString(st.KeyId))
	require.Nil(t, st.RotationPeriodInDays)
	require.Nil(t, st.NextRotationDate)
	require.Nil(t, st.OnDemandRotationStartDate)

	// Default period: 365 days from the enable date. The key ARN works too.
	enabledAt := srv.Clock.Now()
	enableRotation(t, c, arn, nil)
	st = rotationStatus(t, c, arn)
	require.True(t, st.KeyRotationEnabled)
	require.Equal(t, int32(365), aws.ToInt32(st.RotationPeriodInDays))
	requireTimeNear(t, enabledAt.Add(365*rotDay), st.NextRotationDate, time.Second)

	// A new period on a rotating key keeps the schedule's start.
	srv.Clock.Advance(10 * rotDay)
	enableRotation(t, c, id, aws.Int32(90))
	st = rotationStatus(t, c, id)
	require.True(t, st.KeyRotationEnabled)
	require.Equal(t, int32(90), aws.ToInt32(st.RotationPeriodInDays))
	requireTimeNear(t, enabledAt.Add(90*rotDay), st.NextRotationDate, time.Second)

	// The bounds are accepted.
	enableRotation(t, c, id, aws.Int32(2560))
	require.Equal(t, int32(2560), aws.ToInt32(rotationStatus(t, c, id).RotationPeriodInDays))

	// Disable clears it; enabling again starts a new schedule.
	_, err := c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	st = rotationStatus(t, c, id)
	require.False(t, st.KeyRotationEnabled)
	require.Nil(t, st.RotationPeriodInDays)
	require.Nil(t, st.NextRotationDate)
	_, err = c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(id)})
	require.NoError(t, err, "disabling twice is fine")

	again := srv.Clock.Now()
	enableRotation(t, c, id, aws.Int32(180))
	requireTimeNear(t, again.Add(180*rotDay), rotationStatus(t, c, id).NextRotationDate, time.Second)

	// Other keys are untouched.
	other, _ := mkKey(t, c)
	require.False(t, rotationStatus(t, c, other).KeyRotationEnabled)
}

func TestRotationPeriodOutOfRange(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	for _, days := range []int32{89, 2561, 0, -1, 1} {
		_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(id), RotationPeriodInDays: aws.Int32(days)})
		requireCode(t, err, "ValidationException", "days %d", days)
		require.Contains(t, err.Error(), "rotationPeriodInDays", "days %d", days)
	}
	require.False(t, rotationStatus(t, c, id).KeyRotationEnabled)

	// The validation comes before the key lookup, as in AWS.
	_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String("00000000-0000-4000-8000-000000000000"), RotationPeriodInDays: aws.Int32(30)})
	requireCode(t, err, "ValidationException")

	// Raw: a wrong type, and a bad enum in ListKeyRotations.
	res := rawCall(t, srv, "EnableKeyRotation", map[string]any{"KeyId": id, "RotationPeriodInDays": "ninety"})
	requireRawError(t, res, "SerializationException")
	res = rawCall(t, srv, "ListKeyRotations", map[string]any{"KeyId": id, "IncludeKeyMaterial": "SOME"})
	requireRawError(t, res, "ValidationException")
	require.Contains(t, res.Message, "includeKeyMaterial")
	res = rawCall(t, srv, "ListKeyRotations", map[string]any{"KeyId": id, "Limit": 0})
	requireRawError(t, res, "ValidationException")
	require.Contains(t, res.Message, "limit")
}

func TestRotateOnDemandKeepsOldCiphertexts(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)
	ectx := map[string]string{"purpose": "rotation"}

	first := describe(t, c, id).CurrentKeyMaterialId
	require.Len(t, aws.ToString(first), 64)
	blob0 := encrypt(t, c, id, []byte("before"), ectx)

	out, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(arn)})
	require.NoError(t, err)
	require.Equal(t, id, aws.ToString(out.KeyId))

	second := describe(t, c, id).CurrentKeyMaterialId
	require.Len(t, aws.ToString(second), 64)
	require.NotEqual(t, aws.ToString(first), aws.ToString(second))
	st := rotationStatus(t, c, id)
	require.False(t, st.KeyRotationEnabled, "on-demand rotation does not enable automatic rotation")
	require.Nil(t, st.OnDemandRotationStartDate, "no rotation is left in progress")

	// New ciphertexts use the new version; old ones still decrypt under theirs.
	blob1 := encrypt(t, c, id, []byte("after"), ectx)
	dec0, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob0, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, "before", string(dec0.Plaintext))
	require.Equal(t, aws.ToString(first), aws.ToString(dec0.KeyMaterialId))
	dec1, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob1, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, "after", string(dec1.Plaintext))
	require.Equal(t, aws.ToString(second), aws.ToString(dec1.KeyMaterialId))
	gdk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(second), aws.ToString(gdk.KeyMaterialId))

	// ReEncrypt moves an old ciphertext to the current version.
	re, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob0, SourceEncryptionContext: ectx, DestinationKeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, aws.ToString(first), aws.ToString(re.SourceKeyMaterialId))
	require.Equal(t, aws.ToString(second), aws.ToString(re.DestinationKeyMaterialId))
	decryptOK(t, c, re.CiphertextBlob, "before")

	// A second rotation: three versions, all decrypt.
	rotateOnDemand(t, c, id)
	blob2 := encrypt(t, c, id, []byte("third"), nil)
	entries := listAllRotations(t, c, id, nil, "")
	require.Len(t, entries, 2)
	require.Equal(t, aws.ToString(second), aws.ToString(entries[0].KeyMaterialId))
	require.Equal(t, aws.ToString(describe(t, c, id).CurrentKeyMaterialId), aws.ToString(entries[1].KeyMaterialId))

	check := func() {
		t.Helper()
		for blob, want := range map[*[]byte]string{&blob0: "before", &blob1: "after", &blob2: "third"} {
			var ec map[string]string
			if want != "third" {
				ec = ectx
			}
			dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: *blob, EncryptionContext: ec})
			require.NoError(t, err)
			require.Equal(t, want, string(dec.Plaintext))
		}
		require.Equal(t, entries, listAllRotations(t, c, id, nil, ""))
		require.Equal(t, aws.ToString(entries[1].KeyMaterialId), aws.ToString(describe(t, c, id).CurrentKeyMaterialId))
	}
	check()

	// After a restart (log replay), and after one from a snapshot.
	srv.Restart()
	c = srv.Client
	check()
	require.NoError(t, srv.Node.Snapshot())
	srv.Restart()
	c = srv.Client
	check()
	decryptOK(t, c, encrypt(t, c, id, []byte("fresh"), nil), "fresh")
}

func TestRotateOnDemandLimitAndListing(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	other, _ := mkKey(t, c)
	blob := encrypt(t, c, id, []byte("v0"), nil)

	require.Empty(t, listAllRotations(t, c, id, nil, ""))
	start := srv.Clock.Now()
	for i := range fsm.MaxOnDemandRotations {
		srv.Clock.Advance(time.Hour)
		rotateOnDemand(t, c, id)
		if i == 0 {
			rotateOnDemand(t, c, other)
		}
	}
	_, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
	requireErrAs[*types.LimitExceededException](t, err)
	// The key still works, old material included, and other keys still rotate.
	decryptOK(t, c, blob, "v0")
	decryptOK(t, c, encrypt(t, c, id, []byte("v25"), nil), "v25")
	rotateOnDemand(t, c, other)

	// ROTATIONS_ONLY (the default): the 25 rotations, oldest first.
	all := listAllRotations(t, c, id, nil, "")
	require.Len(t, all, 25)
	seen := map[string]bool{}
	for i, e := range all {
		require.Equal(t, id, aws.ToString(e.KeyId))
		require.Equal(t, types.RotationTypeOnDemand, e.RotationType)
		requireTimeNear(t, start.Add(time.Duration(i+1)*time.Hour), e.RotationDate, time.Second, "entry %d", i)
		require.Len(t, aws.ToString(e.KeyMaterialId), 64)
		require.False(t, seen[aws.ToString(e.KeyMaterialId)], "material ids are distinct")
		seen[aws.ToString(e.KeyMaterialId)] = true
		want := types.KeyMaterialStateNonCurrent
		if i == len(all)-1 {
			want = types.KeyMaterialStateCurrent
		}
		require.Equal(t, want, e.KeyMaterialState, "entry %d", i)
		require.Empty(t, e.ImportState)
	}
	require.Equal(t, aws.ToString(all[24].KeyMaterialId), aws.ToString(describe(t, c, id).CurrentKeyMaterialId))
	require.Equal(t, all, listAllRotations(t, c, id, nil, types.IncludeKeyMaterialRotationsOnly))

	// Paging gives the same entries whatever the page size.
	for _, limit := range []int32{1, 7, 25, 26} {
		require.Equal(t, all, listAllRotations(t, c, id, aws.Int32(limit), ""), "limit %d", limit)
	}
	page, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id), Limit: aws.Int32(10)})
	require.NoError(t, err)
	require.Len(t, page.Rotations, 10)
	require.True(t, page.Truncated)
	require.NotNil(t, page.NextMarker)

	// ALL_KEY_MATERIAL adds the first material, without a rotation date or type.
	withFirst := listAllRotations(t, c, id, aws.Int32(4), types.IncludeKeyMaterialAllKeyMaterial)
	require.Len(t, withFirst, 26)
	require.Equal(t, all, withFirst[1:])
	dec := decryptOK(t, c, blob, "v0")
	require.Equal(t, aws.ToString(dec.KeyMaterialId), aws.ToString(withFirst[0].KeyMaterialId))
	require.Nil(t, withFirst[0].RotationDate)
	require.Empty(t, withFirst[0].RotationType)
	require.Equal(t, types.KeyMaterialStateNonCurrent, withFirst[0].KeyMaterialState)

	// A marker is bound to its key and listing.
	_, err = c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(other), Marker: page.NextMarker})
	requireErrAs[*types.InvalidMarkerException](t, err)
	_, err = c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id), Marker: aws.String("garbage")})
	requireErrAs[*types.InvalidMarkerException](t, err)
	keysPage, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1)})
	require.NoError(t, err)
	require.NotNil(t, keysPage.NextMarker)
	_, err = c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(id), Marker: keysPage.NextMarker})
	requireErrAs[*types.InvalidMarkerException](t, err)

	// The limit survives a restart.
	srv.Restart()
	_, err = srv.Client.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
	requireErrAs[*types.LimitExceededException](t, err)
	require.Len(t, listAllRotations(t, srv.Client, other, nil, ""), 2)
}

// runMaintenance runs the leader's maintenance loop until the test ends.
func runMaintenance(t *testing.T, srv *testserver.Server) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Service.RunMaintenance(ctx, 5*time.Millisecond)
	}()
	t.Cleanup(func() { cancel(); wg.Wait() }) // before the server stops
}

// waitRotations waits until a key lists n rotations, with a deadline.
func waitRotations(t *testing.T, c *kms.Client, id string, n int) []types.RotationsListEntry {
	t.Helper()
	var got []types.RotationsListEntry
	require.Eventuallyf(t, func() bool {
		out, err := c.ListKeyRotations(context.Background(), &kms.ListKeyRotationsInput{KeyId: aws.String(id)})
		if err != nil {
			return false
		}
		got = out.Rotations
		return len(got) >= n
	}, 20*time.Second, 10*time.Millisecond, "key %s never reached %d rotations", id, n)
	require.Len(t, got, n)
	return got
}

func TestAutomaticRotation(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	idle, _ := mkKey(t, c) // rotation never enabled
	paused, _ := mkKey(t, c)
	blob := encrypt(t, c, id, []byte("old"), nil)

	enabledAt := srv.Clock.Now()
	enableRotation(t, c, id, aws.Int32(90))
	enableRotation(t, c, paused, aws.Int32(90))
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(paused)})
	require.NoError(t, err)

	// Before the date nothing rotates; an on-demand rotation meanwhile does
	// not move the schedule.
	srv.Clock.Advance(89 * rotDay)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	require.Empty(t, listAllRotations(t, c, id, nil, ""))
	rotateOnDemand(t, c, id)
	requireTimeNear(t, enabledAt.Add(90*rotDay), rotationStatus(t, c, id).NextRotationDate, time.Second)

	// Past it, the leader's loop rotates the key.
	runMaintenance(t, srv)
	srv.Clock.Advance(rotDay + time.Minute)
	rotatedAt := srv.Clock.Now()
	entries := waitRotations(t, c, id, 2)
	require.Equal(t, types.RotationTypeOnDemand, entries[0].RotationType)
	require.Equal(t, types.RotationTypeAutomatic, entries[1].RotationType)
	requireTimeNear(t, rotatedAt, entries[1].RotationDate, time.Second)
	require.Equal(t, types.KeyMaterialStateCurrent, entries[1].KeyMaterialState)
	require.Equal(t, aws.ToString(entries[1].KeyMaterialId), aws.ToString(describe(t, c, id).CurrentKeyMaterialId))

	// Every period thereafter, counted from the rotation.
	st := rotationStatus(t, c, id)
	require.True(t, st.KeyRotationEnabled)
	requireTimeNear(t, rotatedAt.Add(90*rotDay), st.NextRotationDate, time.Second)
	decryptOK(t, c, blob, "old")
	decryptOK(t, c, encrypt(t, c, id, []byte("new"), nil), "new")

	// A key without rotation and a disabled key are left alone.
	require.Empty(t, listAllRotations(t, c, idle, nil, ""))
	require.Empty(t, listAllRotations(t, c, paused, nil, ""))
	require.True(t, rotationStatus(t, c, paused).KeyRotationEnabled, "disabling a key keeps its rotation status")

	// Re-enabled after its date, the disabled key rotates at once.
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(paused)})
	require.NoError(t, err)
	got := waitRotations(t, c, paused, 1)
	require.Equal(t, types.RotationTypeAutomatic, got[0].RotationType)

	// The next period brings the next automatic rotation.
	srv.Clock.Advance(90*rotDay + time.Minute)
	entries = waitRotations(t, c, id, 3)
	require.Equal(t, types.RotationTypeAutomatic, entries[2].RotationType)
	decryptOK(t, c, blob, "old")
}

// injectKey commits a key the API cannot create (imported material, HMAC)
// straight through Raft.
func injectKey(t *testing.T, srv *testserver.Server, k fsm.Key) {
	t.Helper()
	b, err := fsm.Encode(&fsm.Command{Type: fsm.CmdCreateKey, RequestID: "inject-" + k.KeyID, Time: time.Now().UnixNano(),
		CreateKey: &fsm.CreateKeyCmd{Key: k}})
	require.NoError(t, err)
	resp, _, err := srv.Node.Propose(context.Background(), b)
	require.NoError(t, err)
	res, ok := resp.(*fsm.Result)
	require.True(t, ok)
	require.Nil(t, res.Err)
}

func TestRotationKeyStates(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()

	type call struct {
		name string
		do   func(ref string) error
	}
	enable := call{"EnableKeyRotation", func(ref string) error {
		_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(ref)})
		return err
	}}
	disable := call{"DisableKeyRotation", func(ref string) error {
		_, err := c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(ref)})
		return err
	}}
	rotate := call{"RotateKeyOnDemand", func(ref string) error {
		_, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(ref)})
		return err
	}}
	status := call{"GetKeyRotationStatus", func(ref string) error {
		_, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(ref)})
		return err
	}}
	list := call{"ListKeyRotations", func(ref string) error {
		_, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(ref)})
		return err
	}}
	mutations := []call{enable, disable, rotate}
	reads := []call{status, list}

	// Disabled: DisabledException for the mutations; reads work and the
	// status is kept.
	dis, disARN := mkKey(t, c)
	enableRotation(t, c, dis, nil)
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(dis)})
	require.NoError(t, err)
	for _, m := range mutations {
		err := m.do(dis)
		e := requireErrAs[*types.DisabledException](t, err, m.name)
		require.Equal(t, disARN+" is disabled.", e.ErrorMessage(), m.name)
	}
	for _, r := range reads {
		require.NoError(t, r.do(dis), r.name)
	}
	require.True(t, rotationStatus(t, c, dis).KeyRotationEnabled)

	// Pending deletion: KMSInvalidStateException for the mutations; the
	// status reads false, and comes back when the deletion is cancelled.
	pd, pdARN := mkKey(t, c)
	enableRotation(t, c, pd, aws.Int32(100))
	rotateOnDemand(t, c, pd)
	scheduleDeletion(t, c, pd, 7)
	for _, m := range mutations {
		err := m.do(pd)
		e := requireErrAs[*types.KMSInvalidStateException](t, err, m.name)
		require.Equal(t, pdARN+" is pending deletion.", e.ErrorMessage(), m.name)
	}
	st := rotationStatus(t, c, pd)
	require.False(t, st.KeyRotationEnabled)
	require.Nil(t, st.NextRotationDate)
	require.Len(t, listAllRotations(t, c, pd, nil, ""), 1)
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(pd)})
	require.NoError(t, err)
	st = rotationStatus(t, c, pd)
	require.True(t, st.KeyRotationEnabled)
	require.Equal(t, int32(100), aws.ToInt32(st.RotationPeriodInDays))

	// Not found, and alias names (these operations take a key id or ARN).
	missing := "00000000-0000-4000-8000-000000000000"
	mkAlias(t, c, "alias/rot", dis)
	for _, op := range append(append([]call{}, mutations...), reads...) {
		requireErrAs[*types.NotFoundException](t, op.do(missing), op.name)
		requireErrAs[*types.NotFoundException](t, op.do(keyARNPfx+missing), op.name)
		requireErrAs[*types.NotFoundException](t, op.do("alias/rot"), op.name)
	}

	// Keys whose material cannot rotate: imported (EXTERNAL, pending
	// import) and HMAC keys get UnsupportedOperationException everywhere.
	external := fsm.Key{KeyID: "11111111-2222-4333-8444-555555555555", AccountID: testAccount, KeyUsage: "ENCRYPT_DECRYPT",
		KeySpec: "SYMMETRIC_DEFAULT", Origin: "EXTERNAL", KeyManager: "CUSTOMER", State: fsm.StatePendingImport, Policy: "{}"}
	external.ARN = keyARNPfx + external.KeyID
	hmac := fsm.Key{KeyID: "66666666-7777-4888-9999-aaaaaaaaaaaa", AccountID: testAccount, KeyUsage: "GENERATE_VERIFY_MAC",
		KeySpec: "HMAC_256", Origin: "AWS_KMS", KeyManager: "CUSTOMER", State: fsm.StateEnabled, Policy: "{}",
		Versions: []fsm.KeyVersion{{VersionID: [16]byte{1}, DomainKeyID: "none", WrappedMaterial: []byte{1}}}}
	hmac.ARN = keyARNPfx + hmac.KeyID
	injectKey(t, srv, external)
	injectKey(t, srv, hmac)
	for _, k := range []fsm.Key{external, hmac} {
		for _, op := range append(append([]call{}, mutations...), reads...) {
			requireErrAs[*types.UnsupportedOperationException](t, op.do(k.KeyID), "%s on %s", op.name, k.KeySpec)
		}
	}

	// The state rules come from the FSM as well: a rotation proposed for a
	// key that was disabled after the service checked it fails there.
	ok, _ := mkKey(t, c)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ok)})
	require.NoError(t, err)
	b, err := fsm.Encode(&fsm.Command{Type: fsm.CmdSetKeyRotation, RequestID: "raced", Time: time.Now().UnixNano(),
		SetKeyRotation: &fsm.SetKeyRotationCmd{KeyID: ok, Enabled: true, PeriodDays: 365}})
	require.NoError(t, err)
	resp, _, err := srv.Node.Propose(ctx, b)
	require.NoError(t, err)
	require.ErrorIs(t, resp.(*fsm.Result).Err, fsm.ErrDisabled)
}

func TestRotationWireShapes(t *testing.T) {
	srv := testserver.Start(t)
	id, _ := mkKey(t, srv.Client)

	res := rawCall(t, srv, "GetKeyRotationStatus", map[string]any{"KeyId": id})
	requireRawOK(t, res)
	require.Equal(t, map[string]any{"KeyId": id, "KeyRotationEnabled": false}, res.Body)

	res = rawCall(t, srv, "EnableKeyRotation", map[string]any{"KeyId": id, "RotationPeriodInDays": 120})
	requireRawOK(t, res)
	require.Empty(t, res.Body)
	res = rawCall(t, srv, "GetKeyRotationStatus", map[string]any{"KeyId": id})
	requireRawOK(t, res)
	require.Equal(t, true, res.Body["KeyRotationEnabled"])
	require.Equal(t, float64(120), res.Body["RotationPeriodInDays"])
	require.IsType(t, float64(0), res.Body["NextRotationDate"], "timestamps are epoch seconds")
	require.NotContains(t, res.Body, "OnDemandRotationStartDate")

	res = rawCall(t, srv, "RotateKeyOnDemand", map[string]any{"KeyId": id})
	requireRawOK(t, res)
	require.Equal(t, map[string]any{"KeyId": id}, res.Body)

	res = rawCall(t, srv, "ListKeyRotations", map[string]any{"KeyId": id})
	requireRawOK(t, res)
	require.Equal(t, false, res.Body["Truncated"])
	require.NotContains(t, res.Body, "NextMarker")
	rots, ok := res.Body["Rotations"].([]any)
	require.True(t, ok)
	require.Len(t, rots, 1)
	e := rots[0].(map[string]any)
	require.Equal(t, id, e["KeyId"])
	require.Equal(t, "ON_DEMAND", e["RotationType"])
	require.Equal(t, "CURRENT", e["KeyMaterialState"])
	require.IsType(t, float64(0), e["RotationDate"])
	require.Regexp(t, `^[a-f0-9]{64}$`, e["KeyMaterialId"])

	res = rawCall(t, srv, "RotateKeyOnDemand", map[string]any{})
	requireRawError(t, res, "ValidationException")
	require.Contains(t, res.Message, "keyId")
}
