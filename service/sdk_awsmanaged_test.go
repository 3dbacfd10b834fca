package service_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/service"
)

func TestAWSManagedKeyCreateIdempotent(t *testing.T) {
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, err := srv.Service.AWSManagedKey(ctx, "s3")
	require.NoError(t, err)
	again, err := srv.Service.AWSManagedKey(ctx, "s3")
	require.NoError(t, err)
	require.Equal(t, id, again)
	other, err := srv.Service.AWSManagedKey(ctx, "ebs")
	require.NoError(t, err)
	require.NotEqual(t, id, other)

	_, err = srv.Service.AWSManagedKey(ctx, "Not/Valid")
	requireCodeKind(t, err, service.ErrValidation)

	md := describe(t, c, "alias/aws/s3")
	require.Equal(t, id, aws.ToString(md.KeyId))
	require.Equal(t, types.KeyManagerTypeAws, md.KeyManager)
	require.Equal(t, "Default key that protects my S3 data when no other key is defined", aws.ToString(md.Description))
	require.Equal(t, types.KeyStateEnabled, md.KeyState)
	require.Equal(t, types.KeySpecSymmetricDefault, md.KeySpec)
	require.Equal(t, types.KeyUsageTypeEncryptDecrypt, md.KeyUsage)

	rot, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.True(t, rot.KeyRotationEnabled)
	require.Equal(t, int32(365), aws.ToInt32(rot.RotationPeriodInDays))

	// The key is usable.
	ct := encrypt(t, c, "alias/aws/s3", []byte("hello"), nil)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	require.NoError(t, err)
	require.Equal(t, []byte("hello"), dec.Plaintext)
	require.Equal(t, keyARNPfx+id, aws.ToString(dec.KeyId))

	// A customer key still says CUSTOMER.
	cid, _ := mkKey(t, c)
	require.Equal(t, types.KeyManagerTypeCustomer, describe(t, c, cid).KeyManager)
}

func TestAWSManagedKeyConcurrent(t *testing.T) {
	srv := testserver.Start(t)
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i], errs[i] = srv.Service.AWSManagedKey(context.Background(), "sqs")
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, ids[0], ids[i])
	}
	require.Len(t, listAllKeys(t, srv.Client), 1, "concurrent creations must leave one key")
}

func TestAWSManagedKeyRejectsCallerChanges(t *testing.T) {
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	id, err := srv.Service.AWSManagedKey(ctx, "secretsmanager")
	require.NoError(t, err)
	kid := aws.String(id)

	unsupported := map[string]error{}
	_, unsupported["DisableKey"] = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: kid})
	_, unsupported["EnableKey"] = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: kid})
	_, unsupported["ScheduleKeyDeletion"] = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: kid})
	_, unsupported["EnableKeyRotation"] = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: kid, RotationPeriodInDays: aws.Int32(90)})
	_, unsupported["DisableKeyRotation"] = c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: kid})
	_, unsupported["RotateKeyOnDemand"] = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: kid})
	_, unsupported["UpdateKeyDescription"] = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: kid, Description: aws.String("mine")})
	_, unsupported["PutKeyPolicy"] = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: kid, PolicyName: aws.String("default"), Policy: aws.String(defaultPolicyForTest)})
	_, unsupported["TagResource"] = c.TagResource(ctx, &kms.TagResourceInput{KeyId: kid, Tags: []types.Tag{{TagKey: aws.String("a"), TagValue: aws.String("b")}}})
	_, unsupported["UntagResource"] = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: kid, TagKeys: []string{"a"}})
	for op, err := range unsupported {
		requireCode(t, err, "UnsupportedOperationException", op)
		require.Contains(t, err.Error(), "is an AWS managed key", op)
	}

	md := describe(t, c, id)
	require.Equal(t, types.KeyStateEnabled, md.KeyState)
	require.Equal(t, "Default key that protects my Secrets Manager data when no other key is defined", aws.ToString(md.Description))
	rot, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: kid})
	require.NoError(t, err)
	require.Equal(t, int32(365), aws.ToInt32(rot.RotationPeriodInDays))

	// Alias rules: alias/aws/* stays reserved, and no alias may point at an
	// AWS managed key.
	cid, _ := mkKey(t, c)
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/aws/mine"), TargetKeyId: aws.String(cid)})
	requireCode(t, err, "InvalidAliasNameException")
	_, err = c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/aws/secretsmanager"), TargetKeyId: aws.String(cid)})
	requireCode(t, err, "InvalidAliasNameException")
	_, err = c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String("alias/aws/secretsmanager")})
	requireCode(t, err, "InvalidAliasNameException")
	_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/mine"), TargetKeyId: kid})
	requireCode(t, err, "AccessDeniedException")
	require.Equal(t, id, aws.ToString(describe(t, c, "alias/aws/secretsmanager").KeyId))
}

func TestAWSManagedKeyCreatedOnFirstUse(t *testing.T) {
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	// Unknown alias/aws/ names are not created.
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/aws/notaservice"), Plaintext: []byte("x")})
	requireCode(t, err, "NotFoundException")
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/aws/rds")})
	requireCode(t, err, "NotFoundException", "DescribeKey does not create")

	out, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/aws/rds"), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	md := describe(t, c, "alias/aws/rds")
	require.Equal(t, types.KeyManagerTypeAws, md.KeyManager)
	require.Equal(t, aws.ToString(md.Arn), aws.ToString(out.KeyId))

	// By alias ARN too, and later uses find the same key.
	ct := encrypt(t, c, aliasARNPfx+"alias/aws/lambda", []byte("x"), nil)
	require.NotEmpty(t, ct)
	lambdaID := aws.ToString(describe(t, c, "alias/aws/lambda").KeyId)
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/aws/lambda"), Plaintext: []byte("y")})
	require.NoError(t, err)
	require.Equal(t, keyARNPfx+lambdaID, aws.ToString(enc.KeyId))

	names := aliasNames(listAllAliases(t, c, nil))
	require.Contains(t, names, "alias/aws/rds")
	require.Contains(t, names, "alias/aws/lambda")
	require.Len(t, listAllKeys(t, c), 2)
}

func TestOnKeyUseSeesResolvedKeyIDs(t *testing.T) {
	type use struct{ key, op string }
	var mu sync.Mutex
	var uses []use
	srv := testserver.StartWith(t, func(cfg *service.Config) {
		cfg.OnKeyUse = func(keyID, op string) {
			mu.Lock()
			uses = append(uses, use{keyID, op})
			mu.Unlock()
		}
	})
	c := srv.Client
	ctx := context.Background()
	id, _ := mkKey(t, c)
	mkAlias(t, c, "alias/metered", id)
	mu.Lock()
	uses = nil
	mu.Unlock()

	ct := encrypt(t, c, "alias/metered", []byte("x"), nil)
	_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	require.NoError(t, err)
	describe(t, c, id)
	_, err = c.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/missing"), Plaintext: []byte("x")})
	requireCode(t, err, "NotFoundException")

	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []use{{id, "Encrypt"}, {id, "Decrypt"}, {id, "DescribeKey"}}, uses)
}

const defaultPolicyForTest = `{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + testAccount + `:root"},"Action":"kms:*","Resource":"*"}]}`

// requireCodeKind asserts a service-level error has the given kind.
func requireCodeKind(t testing.TB, err error, kind error) {
	t.Helper()
	require.ErrorIs(t, err, kind)
}
