package service_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestSDKCreateKeyDefaults(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	before := srv.Clock.Now()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		Description: aws.String("payments key"),
		Tags: []types.Tag{
			{TagKey: aws.String("team"), TagValue: aws.String("payments")},
			{TagKey: aws.String("env"), TagValue: aws.String("")},
		},
	})
	require.NoError(t, err)
	md := out.KeyMetadata
	id := aws.ToString(md.KeyId)
	require.Regexp(t, uuidRE, id)
	require.Equal(t, keyARNPfx+id, aws.ToString(md.Arn))
	require.Equal(t, testAccount, aws.ToString(md.AWSAccountId))
	require.True(t, md.Enabled)
	require.Equal(t, types.KeyStateEnabled, md.KeyState)
	require.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
	require.Equal(t, types.CustomerMasterKeySpecSymmetricDefault, md.CustomerMasterKeySpec)
	require.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage)
	require.Equal(t, types.OriginTypeAwsKms, md.Origin)
	require.Equal(t, types.KeyManagerTypeCustomer, md.KeyManager)
	require.Equal(t, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, md.EncryptionAlgorithms)
	require.Equal(t, "payments key", aws.ToString(md.Description))
	require.False(t, aws.ToBool(md.MultiRegion))
	require.Nil(t, md.DeletionDate)
	require.Nil(t, md.PendingDeletionWindowInDays)
	requireTimeNear(t, before, md.CreationDate, 2*time.Second)

	// DescribeKey agrees with CreateKey.
	d := describe(t, c, id)
	require.Equal(t, md.Arn, d.Arn)
	require.Equal(t, md.Description, d.Description)
	require.Equal(t, md.KeyState, d.KeyState)
	require.True(t, md.CreationDate.Equal(*d.CreationDate))

	tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.False(t, tags.Truncated)
	require.Equal(t, []types.Tag{
		{TagKey: aws.String("env"), TagValue: aws.String("")},
		{TagKey: aws.String("team"), TagValue: aws.String("payments")},
	}, tags.Tags)

	// No description: the empty string.
	plain, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	require.Equal(t, "", aws.ToString(plain.KeyMetadata.Description))
	require.NotEqual(t, id, aws.ToString(plain.KeyMetadata.KeyId))

	// Explicit defaults are accepted, including a valid policy.
	explicit, err := c.CreateKey(ctx, &kms.CreateKeyInput{
		KeySpec:  types.KeySpecSymmetricDefault,
		KeyUsage: types.KeyUsageTypeEncryptDecrypt,
		Origin:   types.OriginTypeAwsKms,
		Policy:   aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`),
	})
	require.NoError(t, err)
	require.Equal(t, types.KeyStateEnabled, explicit.KeyMetadata.KeyState)
	cmk, err := c.CreateKey(ctx, &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault})
	require.NoError(t, err)
	require.Equal(t, types.KeySpecSymmetricDefault, cmk.KeyMetadata.KeySpec)
}

func TestSDKCreateKeyErrors(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	tags := func(n int) []types.Tag {
		out := make([]types.Tag, n)
		for i := range out {
			out[i] = types.Tag{TagKey: aws.String(fmt.Sprintf("k%02d", i)), TagValue: aws.String("v")}
		}
		return out
	}
	cases := []struct {
		name string
		in   *kms.CreateKeyInput
		code string
	}{
		{"KeySpec RSA_2048 without KeyUsage", &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048}, "ValidationException"},
		// ECC_SECG_P256K1 is supported (TestAsymmetricSecp256k1); SM2 is not.
		{"KeySpec SM2", &kms.CreateKeyInput{KeySpec: types.KeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException"},
		{"KeySpec ECC_SECG_P256K1 KEY_AGREEMENT", &kms.CreateKeyInput{KeySpec: types.KeySpecEccSecgP256k1, KeyUsage: types.KeyUsageTypeKeyAgreement}, "ValidationException"},
		{"KeySpec HMAC_256 without KeyUsage", &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256}, "ValidationException"},
		{"CustomerMasterKeySpec RSA_2048 without KeyUsage", &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecRsa2048}, "ValidationException"},
		{"CustomerMasterKeySpec SM2", &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify}, "UnsupportedOperationException"},
		{"CustomerMasterKeySpec ECC_SECG_P256K1 without KeyUsage", &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecEccSecgP256k1}, "ValidationException"},
		{"KeySpec and CustomerMasterKeySpec", &kms.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, CustomerMasterKeySpec: types.CustomerMasterKeySpecSymmetricDefault}, "ValidationException"},
		{"SIGN_VERIFY symmetric", &kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeSignVerify}, "ValidationException"},
		{"GENERATE_VERIFY_MAC symmetric", &kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, "ValidationException"},
		{"Origin EXTERNAL with KeySpec HMAC_256", &kms.CreateKeyInput{Origin: types.OriginTypeExternal, KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, "UnsupportedOperationException"},
		{"Origin AWS_CLOUDHSM", &kms.CreateKeyInput{Origin: types.OriginTypeAwsCloudhsm}, "UnsupportedOperationException"},
		{"MultiRegion", &kms.CreateKeyInput{MultiRegion: aws.Bool(true)}, "UnsupportedOperationException"},
		{"aws: tag", &kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("v")}}}, "TagException"},
		{"AWS: tag", &kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("AWS:x"), TagValue: aws.String("v")}}}, "TagException"},
		{"duplicate tag keys", &kms.CreateKeyInput{Tags: []types.Tag{
			{TagKey: aws.String("a"), TagValue: aws.String("1")}, {TagKey: aws.String("a"), TagValue: aws.String("2")}}}, "TagException"},
		{"51 tags", &kms.CreateKeyInput{Tags: tags(51)}, "LimitExceededException"},
		{"policy not JSON", &kms.CreateKeyInput{Policy: aws.String("{not json")}, "MalformedPolicyDocumentException"},
		{"policy JSON array", &kms.CreateKeyInput{Policy: aws.String(`[1,2]`)}, "MalformedPolicyDocumentException"},
		{"policy without Statement", &kms.CreateKeyInput{Policy: aws.String(`{"Version":"2012-10-17"}`)}, "MalformedPolicyDocumentException"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateKey(ctx, tc.in)
			requireCode(t, err, tc.code)
		})
	}
	// The typed errors the SDK knows arrive typed.
	_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecSm2, KeyUsage: types.KeyUsageTypeSignVerify})
	requireErrAs[*types.UnsupportedOperationException](t, err)
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Tags: tags(51)})
	requireErrAs[*types.LimitExceededException](t, err)
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("aws:x"), TagValue: aws.String("v")}}})
	requireErrAs[*types.TagException](t, err)
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String("nope")})
	requireErrAs[*types.MalformedPolicyDocumentException](t, err)

	// 50 tags is the limit, not beyond it.
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Tags: tags(50)})
	require.NoError(t, err)

	// Shape limits the SDK does not check client-side, sent raw.
	requireRawOK(t, rawCall(t, srv, "CreateKey", map[string]any{"Description": strings.Repeat("d", 8192)}))
	requireRawError(t, rawCall(t, srv, "CreateKey", map[string]any{"Description": strings.Repeat("d", 8193)}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateKey", map[string]any{"KeySpec": "AES_256"}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateKey", map[string]any{"KeyUsage": "ENCRYPT"}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateKey", map[string]any{"Tags": []any{map[string]any{"TagKey": strings.Repeat("k", 129), "TagValue": "v"}}}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateKey", map[string]any{"Tags": []any{map[string]any{"TagKey": "k", "TagValue": strings.Repeat("v", 257)}}}), "ValidationException")

	// None of the failures created a key: only the 50-tag key and the
	// 8192-character description key exist.
	require.Len(t, listAllKeys(t, c), 2)
}

func TestSDKDescribeKeyReferences(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c, "described")
	mkAlias(t, c, "alias/described", id)
	other, _ := mkKey(t, c)

	for _, ref := range []string{id, arn, "alias/described", aliasARNPfx + "alias/described"} {
		md := describe(t, c, ref)
		require.Equal(t, id, aws.ToString(md.KeyId), ref)
		require.Equal(t, arn, aws.ToString(md.Arn), ref)
		require.Equal(t, "described", aws.ToString(md.Description), ref)
	}
	require.Equal(t, other, aws.ToString(describe(t, c, other).KeyId))

	unknown := "1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, ref := range []string{
		unknown,
		keyARNPfx + unknown,
		"not-a-key",
		id[:35] + "x",
		"alias/missing",
		aliasARNPfx + "alias/missing",
		"arn:aws:kms:eu-west-1:" + testAccount + ":key/" + id,
		"arn:aws:kms:" + testRegion + ":999999999999:key/" + id,
		"arn:aws:kms:eu-west-1:" + testAccount + ":alias/described",
		"arn:aws:s3:::bucket",
		"arn:aws:kms:" + testRegion + ":" + testAccount + ":grant/" + id,
		"arn:aws:kms:" + testRegion + ":" + testAccount + ":key/" + id + "/x",
		"arn:",
		" " + id,
		// Another partition names another resource: this node's ARNs are
		// all in the aws partition.
		"arn:aws-cn:kms:" + testRegion + ":" + testAccount + ":key/" + id,
		"arn:aws-us-gov:kms:" + testRegion + ":" + testAccount + ":alias/described",
		"arn:awsx:kms:" + testRegion + ":" + testAccount + ":key/" + id,
	} {
		t.Run(ref, func(t *testing.T) {
			_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(ref)})
			requireErrAs[*types.NotFoundException](t, err, ref)
			_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: []byte("x")})
			requireErrAs[*types.NotFoundException](t, err, ref)
		})
	}
	// An empty KeyId breaks the shape (min 1).
	requireRawError(t, rawCall(t, srv, "DescribeKey", map[string]any{"KeyId": ""}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "DescribeKey", map[string]any{}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "DescribeKey", map[string]any{"KeyId": strings.Repeat("a", 2049)}), "ValidationException")
}

func TestSDKListKeysPagination(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	created := map[string]string{}
	for i := 0; i < 7; i++ {
		id, arn := mkKey(t, c)
		created[id] = arn
	}

	var seen []string
	var marker *string
	pages := 0
	for {
		out, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(2), Marker: marker})
		require.NoError(t, err)
		pages++
		require.LessOrEqual(t, len(out.Keys), 2)
		for _, k := range out.Keys {
			id := aws.ToString(k.KeyId)
			require.Equal(t, created[id], aws.ToString(k.KeyArn), "key %s", id)
			seen = append(seen, id)
		}
		if !out.Truncated {
			require.Nil(t, out.NextMarker)
			break
		}
		require.Len(t, out.Keys, 2)
		require.NotEmpty(t, aws.ToString(out.NextMarker))
		marker = out.NextMarker
		require.Less(t, pages, 10, "pagination does not end")
	}
	require.Equal(t, 4, pages)
	require.Len(t, seen, 7)
	require.True(t, slices.IsSorted(seen), "keys not in order: %v", seen)
	require.Len(t, slices.Compact(slices.Clone(seen)), 7, "a key was listed twice")
	for id := range created {
		require.Contains(t, seen, id)
	}

	// The SDK paginator sees the same keys.
	var viaPaginator []string
	p := kms.NewListKeysPaginator(c, &kms.ListKeysInput{Limit: aws.Int32(3)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		for _, k := range out.Keys {
			viaPaginator = append(viaPaginator, aws.ToString(k.KeyId))
		}
	}
	require.Equal(t, seen, viaPaginator)

	// Without a limit: one page, not truncated.
	all, err := c.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	require.False(t, all.Truncated)
	require.Len(t, all.Keys, 7)
	// Exactly the limit: not truncated either.
	exact, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(7)})
	require.NoError(t, err)
	require.False(t, exact.Truncated)
	require.Nil(t, exact.NextMarker)
	require.Len(t, exact.Keys, 7)
	maxed, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1000)})
	require.NoError(t, err)
	require.Len(t, maxed.Keys, 7)

	// Bad markers: garbage, and a marker of another listing.
	for _, m := range []string{"garbage", "!!!", "a2V5cw", strings.Repeat("A", 40)} {
		_, err := c.ListKeys(ctx, &kms.ListKeysInput{Marker: aws.String(m)})
		requireErrAs[*types.InvalidMarkerException](t, err, m)
	}
	mkAlias(t, c, "alias/a1", seen[0])
	mkAlias(t, c, "alias/a2", seen[0])
	al, err := c.ListAliases(ctx, &kms.ListAliasesInput{Limit: aws.Int32(1)})
	require.NoError(t, err)
	require.True(t, al.Truncated)
	_, err = c.ListKeys(ctx, &kms.ListKeysInput{Marker: al.NextMarker})
	requireErrAs[*types.InvalidMarkerException](t, err)

	// Limit out of range, sent raw.
	for _, l := range []int{0, -1, 1001} {
		requireRawError(t, rawCall(t, srv, "ListKeys", map[string]any{"Limit": l}), "ValidationException", "limit %d", l)
	}
	requireRawError(t, rawCall(t, srv, "ListKeys", map[string]any{"Marker": ""}), "ValidationException")
}

func TestSDKUpdateKeyDescription(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c, "old")
	mkAlias(t, c, "alias/desc", id)
	_, err := c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(id), Description: aws.String("new")})
	require.NoError(t, err)
	require.Equal(t, "new", aws.ToString(describe(t, c, id).Description))
	_, err = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(arn), Description: aws.String("")})
	require.NoError(t, err)
	require.Equal(t, "", aws.ToString(describe(t, c, id).Description))

	// Management operations take a key id or key ARN, not an alias.
	for _, ref := range []string{"alias/desc", aliasARNPfx + "alias/desc"} {
		_, err = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(ref), Description: aws.String("x")})
		requireErrAs[*types.NotFoundException](t, err, ref)
	}
	_, err = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab"), Description: aws.String("x")})
	requireErrAs[*types.NotFoundException](t, err)

	requireRawOK(t, rawCall(t, srv, "UpdateKeyDescription", map[string]any{"KeyId": id, "Description": strings.Repeat("é", 8192)}))
	require.Equal(t, strings.Repeat("é", 8192), aws.ToString(describe(t, c, id).Description))
	requireRawError(t, rawCall(t, srv, "UpdateKeyDescription", map[string]any{"KeyId": id, "Description": strings.Repeat("d", 8193)}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "UpdateKeyDescription", map[string]any{"KeyId": id}), "ValidationException")
}

func TestSDKEnableDisableKey(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c)
	mkAlias(t, c, "alias/toggle", id)

	for i := 0; i < 2; i++ { // idempotent
		_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		md := describe(t, c, id)
		require.False(t, md.Enabled)
		require.Equal(t, types.KeyStateDisabled, md.KeyState)
	}
	for i := 0; i < 2; i++ {
		_, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)})
		require.NoError(t, err)
		md := describe(t, c, id)
		require.True(t, md.Enabled)
		require.Equal(t, types.KeyStateEnabled, md.KeyState)
	}

	for _, ref := range []string{"alias/toggle", aliasARNPfx + "alias/toggle"} {
		_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ref)})
		requireErrAs[*types.NotFoundException](t, err, ref)
		_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(ref)})
		requireErrAs[*types.NotFoundException](t, err, ref)
		_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(ref)})
		requireErrAs[*types.NotFoundException](t, err, ref)
		_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(ref)})
		requireErrAs[*types.NotFoundException](t, err, ref)
		_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(ref), Tags: []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("b")}}})
		requireErrAs[*types.NotFoundException](t, err, ref)
		_, err = c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(ref)})
		requireErrAs[*types.NotFoundException](t, err, ref)
	}
	require.True(t, describe(t, c, id).Enabled, "a rejected request changed the key")

	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")})
	requireErrAs[*types.NotFoundException](t, err)

	// Pending deletion: EnableKey and DisableKey fail (key-states.md [3]).
	scheduleDeletion(t, c, id, 7)
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
	requireErrAs[*types.KMSInvalidStateException](t, err)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	requireErrAs[*types.KMSInvalidStateException](t, err)
	require.Equal(t, types.KeyStatePendingDeletion, describe(t, c, id).KeyState)
}

func TestSDKScheduleAndCancelKeyDeletion(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	day := 24 * time.Hour

	// Default window: 30 days.
	id30, arn30 := mkKey(t, c)
	now := srv.Clock.Now()
	out, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id30)})
	require.NoError(t, err)
	require.Equal(t, arn30, aws.ToString(out.KeyId))
	require.Equal(t, types.KeyStatePendingDeletion, out.KeyState)
	require.Equal(t, int32(30), aws.ToInt32(out.PendingWindowInDays))
	requireTimeNear(t, now.Add(30*day), out.DeletionDate, time.Minute)

	md := describe(t, c, id30)
	require.False(t, md.Enabled)
	require.Equal(t, types.KeyStatePendingDeletion, md.KeyState)
	require.Equal(t, int32(30), aws.ToInt32(md.PendingDeletionWindowInDays))
	requireTimeNear(t, now.Add(30*day), md.DeletionDate, time.Minute)
	require.True(t, out.DeletionDate.Equal(*md.DeletionDate))

	// 7 days, by ARN, from Disabled (allowed in every state but
	// PendingDeletion).
	id7, arn7 := mkKey(t, c)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id7)})
	require.NoError(t, err)
	out = scheduleDeletion(t, c, arn7, 7)
	require.Equal(t, arn7, aws.ToString(out.KeyId))
	require.Equal(t, int32(7), aws.ToInt32(out.PendingWindowInDays))
	requireTimeNear(t, srv.Clock.Now().Add(7*day), out.DeletionDate, time.Minute)
	md = describe(t, c, id7)
	require.Equal(t, int32(7), aws.ToInt32(md.PendingDeletionWindowInDays))

	// Window out of range.
	idBad, _ := mkKey(t, c)
	for _, days := range []int32{6, 31, 1, 365} {
		_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(idBad), PendingWindowInDays: aws.Int32(days)})
		requireCode(t, err, "ValidationException", "window %d", days)
	}
	for _, days := range []int{0, 366, -1} {
		requireRawError(t, rawCall(t, srv, "ScheduleKeyDeletion", map[string]any{"KeyId": idBad, "PendingWindowInDays": days}), "ValidationException", "window %d", days)
	}
	require.Equal(t, types.KeyStateEnabled, describe(t, c, idBad).KeyState)

	// Scheduling twice fails and keeps the first date.
	first := describe(t, c, id7).DeletionDate
	srv.Clock.Advance(time.Hour)
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id7), PendingWindowInDays: aws.Int32(10)})
	ise := requireErrAs[*types.KMSInvalidStateException](t, err)
	require.Contains(t, ise.ErrorMessage(), arn7)
	md = describe(t, c, id7)
	require.True(t, first.Equal(*md.DeletionDate))
	require.Equal(t, int32(7), aws.ToInt32(md.PendingDeletionWindowInDays))

	// Cancel: the key becomes Disabled, with no deletion date.
	cancel, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id7)})
	require.NoError(t, err)
	require.Equal(t, arn7, aws.ToString(cancel.KeyId))
	md = describe(t, c, id7)
	require.Equal(t, types.KeyStateDisabled, md.KeyState)
	require.False(t, md.Enabled)
	require.Nil(t, md.DeletionDate)
	require.Nil(t, md.PendingDeletionWindowInDays)

	// Cancelling a key that is not pending deletion fails ([4]).
	for _, id := range []string{id7 /* Disabled */, idBad /* Enabled */} {
		_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
		requireErrAs[*types.KMSInvalidStateException](t, err, id)
	}
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")})
	requireErrAs[*types.NotFoundException](t, err)

	// A cancelled key can be enabled and scheduled again.
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id7)})
	require.NoError(t, err)
	scheduleDeletion(t, c, id7, 8)
	require.Equal(t, int32(8), aws.ToInt32(describe(t, c, id7).PendingDeletionWindowInDays))
}

func TestSDKKeyDeletionAfterWaitingPeriod(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	day := 24 * time.Hour

	doomed, _ := mkKey(t, c)
	mkAlias(t, c, "alias/doomed-1", doomed)
	mkAlias(t, c, "alias/doomed-2", doomed)
	blob := encrypt(t, c, doomed, []byte("secret"), nil)

	later, _ := mkKey(t, c)
	mkAlias(t, c, "alias/later", later)
	cancelled, _ := mkKey(t, c)
	mkAlias(t, c, "alias/cancelled", cancelled)
	kept, _ := mkKey(t, c)
	mkAlias(t, c, "alias/kept", kept)

	scheduleDeletion(t, c, doomed, 7)
	scheduleDeletion(t, c, later, 8)
	scheduleDeletion(t, c, cancelled, 7)
	_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(cancelled)})
	require.NoError(t, err)

	// Just before the deletion date nothing happens.
	srv.Clock.Advance(7*day - time.Minute)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	require.Equal(t, types.KeyStatePendingDeletion, describe(t, c, doomed).KeyState)

	// After it, the key and its aliases are gone.
	srv.Clock.Advance(2 * time.Minute)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(doomed)})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/doomed-1")})
	requireErrAs[*types.NotFoundException](t, err)
	require.Equal(t, []string{"alias/cancelled", "alias/kept", "alias/later"}, aliasNames(listAllAliases(t, c, nil)))
	require.ElementsMatch(t, []string{later, cancelled, kept}, listAllKeys(t, c))

	// Its ciphertexts now name a key that does not exist.
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	requireCode(t, err, "AccessDeniedException")

	// The alias names are free again.
	mkAlias(t, c, "alias/doomed-1", kept)

	// The ticks rolled the domain key (the clock moved past 24h): new keys
	// use the new one, and keys under the old one keep working.
	fresh, _ := mkKey(t, c)
	oldKey, ok := srv.FSM.Key(kept)
	require.True(t, ok)
	newKey, ok := srv.FSM.Key(fresh)
	require.True(t, ok)
	require.NotEqual(t, oldKey.Versions[0].DomainKeyID, newKey.Versions[0].DomainKeyID)
	for _, id := range []string{kept, fresh} {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: encrypt(t, c, id, []byte("roll"), nil)})
		require.NoError(t, err)
		require.Equal(t, "roll", string(dec.Plaintext))
	}
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(fresh), PendingWindowInDays: aws.Int32(30)})
	require.NoError(t, err)

	// The key scheduled later, the cancelled key and the other key are untouched.
	require.Equal(t, types.KeyStatePendingDeletion, describe(t, c, later).KeyState)
	require.Equal(t, types.KeyStateDisabled, describe(t, c, cancelled).KeyState)
	require.Equal(t, types.KeyStateEnabled, describe(t, c, kept).KeyState)

	// Another tick is a no-op; then the later key goes too.
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	require.Equal(t, types.KeyStatePendingDeletion, describe(t, c, later).KeyState)
	srv.Clock.Advance(day)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(later)})
	requireErrAs[*types.NotFoundException](t, err)
	require.ElementsMatch(t, []string{cancelled, kept, fresh}, listAllKeys(t, c))
	require.Equal(t, types.KeyStatePendingDeletion, describe(t, c, fresh).KeyState)
	require.Equal(t, []string{"alias/cancelled", "alias/doomed-1", "alias/kept"}, aliasNames(listAllAliases(t, c, nil)))
}
