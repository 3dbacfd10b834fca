package service_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

func TestSDKAliasLifecycle(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	k1, arn1 := mkKey(t, c)
	k2, arn2 := mkKey(t, c)

	created := srv.Clock.Now()
	mkAlias(t, c, "alias/app", k1)
	mkAlias(t, c, "alias/by-arn", arn2)
	longName := "alias/" + strings.Repeat("x", 250) // 256 characters
	mkAlias(t, c, longName, k1)
	mkAlias(t, c, "alias/a:b/c_d-e", k2)

	all := listAllAliases(t, c, nil)
	require.Equal(t, []string{"alias/a:b/c_d-e", "alias/app", "alias/by-arn", longName}, aliasNames(all))
	for _, a := range all {
		require.Equal(t, aliasARNPfx+aws.ToString(a.AliasName), aws.ToString(a.AliasArn))
		requireTimeNear(t, created, a.CreationDate, 2*time.Second)
		requireTimeNear(t, created, a.LastUpdatedDate, 2*time.Second)
	}
	require.Equal(t, "arn:aws:kms:us-east-1:111122223333:alias/app", aws.ToString(all[1].AliasArn))
	require.Equal(t, k1, aws.ToString(all[1].TargetKeyId), "TargetKeyId is the key id")
	require.Equal(t, k2, aws.ToString(all[2].TargetKeyId))
	require.Equal(t, arn1, aws.ToString(describe(t, c, "alias/app").Arn))
	require.Equal(t, arn2, aws.ToString(describe(t, c, aliasARNPfx+"alias/by-arn").Arn))

	// UpdateAlias: points the alias elsewhere, keeps CreationDate, moves
	// LastUpdatedDate.
	srv.Clock.Advance(time.Hour)
	_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/app"), TargetKeyId: aws.String(arn2)})
	require.NoError(t, err)
	var app types.AliasListEntry
	for _, a := range listAllAliases(t, c, nil) {
		if aws.ToString(a.AliasName) == "alias/app" {
			app = a
		}
	}
	require.Equal(t, k2, aws.ToString(app.TargetKeyId))
	require.True(t, all[1].CreationDate.Equal(*app.CreationDate), "CreationDate changed: %v -> %v", all[1].CreationDate, app.CreationDate)
	requireTimeNear(t, created.Add(time.Hour), app.LastUpdatedDate, 2*time.Second)
	require.Equal(t, arn2, aws.ToString(describe(t, c, "alias/app").Arn))
	blob := encrypt(t, c, "alias/app", []byte("via alias"), nil)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(k2)})
	require.NoError(t, err)
	require.Equal(t, "via alias", string(dec.Plaintext))

	// ListAliases with a KeyId filter (key id or key ARN).
	require.Equal(t, []string{longName}, aliasNames(listAllAliases(t, c, aws.String(k1))))
	require.Equal(t, []string{"alias/a:b/c_d-e", "alias/app", "alias/by-arn"}, aliasNames(listAllAliases(t, c, aws.String(arn2))))
	k3, _ := mkKey(t, c)
	out, err := c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(k3)})
	require.NoError(t, err)
	require.Empty(t, out.Aliases)
	require.False(t, out.Truncated)
	_, err = c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab")})
	requireErrAs[*types.NotFoundException](t, err)

	// DeleteAlias: the key is unaffected.
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/app")})
	require.NoError(t, err)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/app")})
	requireErrAs[*types.NotFoundException](t, err)
	require.Equal(t, types.KeyStateEnabled, describe(t, c, k2).KeyState)
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/app")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/app"), Plaintext: []byte("x")})
	requireErrAs[*types.NotFoundException](t, err)
	// The name can be reused.
	mkAlias(t, c, "alias/app", k3)
	require.Equal(t, k3, aws.ToString(describe(t, c, "alias/app").KeyId))
}

func TestSDKAliasErrors(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	k1, arn1 := mkKey(t, c)
	k2, _ := mkKey(t, c)
	mkAlias(t, c, "alias/taken", k1)

	create := func(name, target string) error {
		_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)})
		return err
	}
	update := func(name, target string) error {
		_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(name), TargetKeyId: aws.String(target)})
		return err
	}

	for _, name := range []string{"app", "alias/", "alias", "ALIAS/app", "aliases/app", "arn:aws:kms:us-east-1:111122223333:alias/app"} {
		requireErrAs[*types.InvalidAliasNameException](t, create(name, k1), name)
		requireErrAs[*types.InvalidAliasNameException](t, update(name, k1), name)
	}
	for _, name := range []string{"alias/aws/x", "alias/aws/"} {
		requireErrAs[*types.InvalidAliasNameException](t, create(name, k1), name)
		requireErrAs[*types.InvalidAliasNameException](t, update(name, k1), name)
		_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(name)})
		requireErrAs[*types.InvalidAliasNameException](t, err, name)
	}
	// Characters outside the pattern, and length: shape violations.
	for _, name := range []string{"alias/a b", "alias/é", "alias/a.b", "alias/a*", "alias/\x00", "alias/" + strings.Repeat("x", 251)} {
		requireCode(t, create(name, k1), "ValidationException", name)
		requireCode(t, update(name, k1), "ValidationException", name)
		_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(name)})
		requireCode(t, err, "ValidationException", name)
	}
	requireRawError(t, rawCall(t, srv, "CreateAlias", map[string]any{"AliasName": "", "TargetKeyId": k1}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateAlias", map[string]any{"AliasName": "alias/x"}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "CreateAlias", map[string]any{"TargetKeyId": k1}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "DeleteAlias", map[string]any{}), "ValidationException")

	// Duplicates, whatever the target.
	requireErrAs[*types.AlreadyExistsException](t, create("alias/taken", k2))
	requireErrAs[*types.AlreadyExistsException](t, create("alias/taken", k1))
	require.Equal(t, k1, aws.ToString(describe(t, c, "alias/taken").KeyId))

	// Targets that are not keys.
	unknown := "1234abcd-12ab-34cd-56ef-1234567890ab"
	for _, target := range []string{unknown, keyARNPfx + unknown, "alias/taken", aliasARNPfx + "alias/taken", "garbage",
		"arn:aws:kms:eu-west-1:" + testAccount + ":key/" + k1} {
		requireErrAs[*types.NotFoundException](t, create("alias/new", target), target)
		requireErrAs[*types.NotFoundException](t, update("alias/taken", target), target)
	}
	_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/new")})
	requireErrAs[*types.NotFoundException](t, err, "a failed CreateAlias left an alias behind")

	// UpdateAlias of an alias that does not exist.
	requireErrAs[*types.NotFoundException](t, update("alias/missing", k1))
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/missing")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/missing")})
	requireErrAs[*types.NotFoundException](t, err)

	// A target pending deletion: CreateAlias and UpdateAlias fail ([3],
	// [10]); an alias whose current key is pending deletion can be moved
	// to a usable key.
	pending, _ := mkKey(t, c)
	mkAlias(t, c, "alias/was-pending", pending)
	scheduleDeletion(t, c, pending, 7)
	requireErrAs[*types.KMSInvalidStateException](t, create("alias/to-pending", pending))
	requireErrAs[*types.KMSInvalidStateException](t, update("alias/taken", pending))
	require.Equal(t, k1, aws.ToString(describe(t, c, "alias/taken").KeyId))
	require.NoError(t, update("alias/was-pending", arn1))
	require.Equal(t, k1, aws.ToString(describe(t, c, "alias/was-pending").KeyId))

	// Alias operations on a Disabled key work (key-states.md).
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(k2)})
	require.NoError(t, err)
	require.NoError(t, create("alias/disabled", k2))
	require.NoError(t, update("alias/taken", k2))
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/disabled")})
	require.NoError(t, err)
}

func TestSDKListAliasesPagination(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	k1, _ := mkKey(t, c)
	k2, _ := mkKey(t, c)
	var want, want1 []string
	for i := 0; i < 5; i++ {
		target := k1
		if i%2 == 1 {
			target = k2
		} else {
			want1 = append(want1, fmt.Sprintf("alias/p%d", i))
		}
		name := fmt.Sprintf("alias/p%d", i)
		mkAlias(t, c, name, target)
		want = append(want, name)
	}

	page := func(keyID *string) []string {
		var got []string
		var marker *string
		for pages := 0; ; pages++ {
			require.Less(t, pages, 20)
			out, err := c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: keyID, Limit: aws.Int32(1), Marker: marker})
			require.NoError(t, err)
			require.LessOrEqual(t, len(out.Aliases), 1)
			got = append(got, aliasNames(out.Aliases)...)
			if !out.Truncated {
				require.Nil(t, out.NextMarker)
				return got
			}
			require.NotEmpty(t, aws.ToString(out.NextMarker))
			marker = out.NextMarker
		}
	}
	require.Equal(t, want, page(nil))
	require.Equal(t, want1, page(aws.String(k1)))

	var viaPaginator []string
	p := kms.NewListAliasesPaginator(c, &kms.ListAliasesInput{Limit: aws.Int32(2)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		require.NoError(t, err)
		viaPaginator = append(viaPaginator, aliasNames(out.Aliases)...)
	}
	require.Equal(t, want, viaPaginator)

	for _, m := range []string{"garbage", "!!!", strings.Repeat("Z", 50)} {
		_, err := c.ListAliases(ctx, &kms.ListAliasesInput{Marker: aws.String(m)})
		requireErrAs[*types.InvalidMarkerException](t, err, m)
	}
	keys, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1)})
	require.NoError(t, err)
	require.True(t, keys.Truncated)
	_, err = c.ListAliases(ctx, &kms.ListAliasesInput{Marker: keys.NextMarker})
	requireErrAs[*types.InvalidMarkerException](t, err, "a ListKeys marker")

	for _, l := range []int{0, 1001} {
		requireRawError(t, rawCall(t, srv, "ListAliases", map[string]any{"Limit": l}), "ValidationException", "limit %d", l)
	}
}

func TestSDKTags(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c)
	tag := func(kv ...string) []types.Tag {
		var out []types.Tag
		for i := 0; i < len(kv); i += 2 {
			out = append(out, types.Tag{TagKey: aws.String(kv[i]), TagValue: aws.String(kv[i+1])})
		}
		return out
	}
	list := func() []types.Tag {
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		require.False(t, out.Truncated)
		return out.Tags
	}

	require.Empty(t, list())
	_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tag("b", "2", "a", "1")})
	require.NoError(t, err)
	require.Equal(t, tag("a", "1", "b", "2"), list())
	// Replaces values, adds new keys, by ARN.
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(arn), Tags: tag("a", "one", "c", "")})
	require.NoError(t, err)
	require.Equal(t, tag("a", "one", "b", "2", "c", ""), list())
	// Untag: absent keys are ignored.
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"b", "absent"}})
	require.NoError(t, err)
	require.Equal(t, tag("a", "one", "c", ""), list())
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(arn), TagKeys: []string{"nothing"}})
	require.NoError(t, err)
	require.Equal(t, tag("a", "one", "c", ""), list())

	// Reserved prefix, duplicates.
	for _, tags := range [][]types.Tag{tag("aws:x", "v"), tag("AWS:x", "v"), tag("ok", "v", "aws:created", "v"), tag("d", "1", "d", "2")} {
		_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tags})
		requireErrAs[*types.TagException](t, err, "%v", tags)
	}
	require.Equal(t, tag("a", "one", "c", ""), list(), "a rejected TagResource changed the tags")
	// Shape limits.
	requireRawError(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id, "Tags": []any{map[string]any{"TagKey": strings.Repeat("k", 129), "TagValue": "v"}}}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id, "Tags": []any{map[string]any{"TagKey": "", "TagValue": "v"}}}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id, "Tags": []any{map[string]any{"TagKey": "k", "TagValue": strings.Repeat("v", 257)}}}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id, "Tags": []any{map[string]any{"TagKey": "k"}}}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "UntagResource", map[string]any{"KeyId": id}), "ValidationException")
	requireRawOK(t, rawCall(t, srv, "TagResource", map[string]any{"KeyId": id, "Tags": []any{map[string]any{"TagKey": strings.Repeat("k", 128), "TagValue": strings.Repeat("v", 256)}}}))
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{strings.Repeat("k", 128)}})
	require.NoError(t, err)

	// The limit: 50 tags in total. A request that would exceed it changes nothing.
	var many []types.Tag
	for i := 0; i < 48; i++ {
		many = append(many, tag(fmt.Sprintf("t%02d", i), "v")...)
	}
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: many})
	require.NoError(t, err)
	require.Len(t, list(), 50)
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tag("a", "replaced", "new", "x")})
	requireErrAs[*types.LimitExceededException](t, err)
	tags := list()
	require.Len(t, tags, 50)
	require.Equal(t, tag("a", "one"), tags[:1], "a rejected TagResource changed a value")
	// Replacing values at the limit is fine.
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tag("a", "replaced", "t00", "w")})
	require.NoError(t, err)
	require.Len(t, list(), 50)
	// After removing one, one new tag fits.
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"c"}})
	require.NoError(t, err)
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: tag("new", "x")})
	require.NoError(t, err)

	// Sorted, paginated with Limit 2.
	tags = list()
	require.Len(t, tags, 50)
	var paged []types.Tag
	var marker *string
	for pages := 0; ; pages++ {
		require.Less(t, pages, 30)
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id), Limit: aws.Int32(2), Marker: marker})
		require.NoError(t, err)
		require.LessOrEqual(t, len(out.Tags), 2)
		paged = append(paged, out.Tags...)
		if !out.Truncated {
			require.Nil(t, out.NextMarker)
			break
		}
		marker = out.NextMarker
	}
	require.Equal(t, tags, paged)
	for i := 1; i < len(tags); i++ {
		require.Less(t, aws.ToString(tags[i-1].TagKey), aws.ToString(tags[i].TagKey))
	}
	_, err = c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id), Marker: aws.String("garbage")})
	requireErrAs[*types.InvalidMarkerException](t, err)

	// Unknown keys.
	unknown := "1234abcd-12ab-34cd-56ef-1234567890ab"
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(unknown), Tags: tag("a", "b")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(unknown), TagKeys: []string{"a"}})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(unknown)})
	requireErrAs[*types.NotFoundException](t, err)
}

// TestSDKPendingDeletionManagement checks the management operations on a key
// pending deletion against reference/key-states.md.
func TestSDKPendingDeletionManagement(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c, "before")
	mkAlias(t, c, "alias/pd", id)
	_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}})
	require.NoError(t, err)
	scheduleDeletion(t, c, id, 7)

	fails := map[string]error{}
	_, fails["TagResource"] = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("k2"), TagValue: aws.String("v")}}})
	_, fails["UntagResource"] = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(id), TagKeys: []string{"k"}})
	_, fails["UpdateKeyDescription"] = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(id), Description: aws.String("after")})
	_, fails["CreateAlias"] = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/pd2"), TargetKeyId: aws.String(id)})
	_, fails["EnableKey"] = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
	_, fails["DisableKey"] = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	_, fails["ScheduleKeyDeletion"] = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id)})
	for op, err := range fails {
		ise := requireErrAs[*types.KMSInvalidStateException](t, err, op)
		require.Contains(t, ise.ErrorMessage(), arn, op)
	}

	// Reads and DeleteAlias still work; nothing changed.
	md := describe(t, c, "alias/pd")
	require.Equal(t, types.KeyStatePendingDeletion, md.KeyState)
	require.Equal(t, "before", aws.ToString(md.Description))
	tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}, tags.Tags)
	require.Equal(t, []string{"alias/pd"}, aliasNames(listAllAliases(t, c, aws.String(id))))
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/pd")})
	require.NoError(t, err)
	require.Empty(t, listAllAliases(t, c, aws.String(id)))
	require.Contains(t, listAllKeys(t, c), id)

	// After cancelling, the key is Disabled and manageable again.
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(id), Description: aws.String("after")})
	require.NoError(t, err)
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("k2"), TagValue: aws.String("v")}}})
	require.NoError(t, err)
	mkAlias(t, c, "alias/pd2", id)
	require.Equal(t, "after", aws.ToString(describe(t, c, "alias/pd2").Description))
}
