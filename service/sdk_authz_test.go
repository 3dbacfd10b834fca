package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// Principals of the authorization tests: the account root, alice (key
// administrator), bob (key user), carol (nothing but grants), dave (an IAM
// identity policy), and the key-admin / key-user of the CloudFormation
// example.
const authzCreds = `{"account_id": "111122223333", "credentials": [
 {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "arn": "arn:aws:iam::111122223333:root"},
 {"access_key_id": "AKIDALICE", "secret_access_key": "alice-secret", "arn": "arn:aws:iam::111122223333:user/alice"},
 {"access_key_id": "AKIDBOB", "secret_access_key": "bob-secret", "arn": "arn:aws:iam::111122223333:user/bob"},
 {"access_key_id": "AKIDCAROL", "secret_access_key": "carol-secret", "arn": "arn:aws:iam::111122223333:user/carol"},
 {"access_key_id": "AKIDDAVE", "secret_access_key": "dave-secret", "arn": "arn:aws:iam::111122223333:user/dave",
  "policy": {"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:Describe*"], "Resource": "arn:aws:kms:*:111122223333:key/*"},
   {"Effect": "Allow", "Action": "kms:List*", "Resource": "*"},
   {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:secret": "yes"}}}]}},
 {"access_key_id": "AKIDKEYADMIN", "secret_access_key": "ka-secret", "arn": "arn:aws:iam::111122223333:user/key-admin"},
 {"access_key_id": "AKIDKEYUSER", "secret_access_key": "ku-secret", "arn": "arn:aws:iam::111122223333:user/key-user"}
]}`

const (
	userAlice = "arn:aws:iam::111122223333:user/alice"
	userBob   = "arn:aws:iam::111122223333:user/bob"
	userCarol = "arn:aws:iam::111122223333:user/carol"
)

// aliceBobPolicy: the root may do everything (delegation to IAM), alice
// administers the key, bob may only Encrypt, and never with stage=prod.
const aliceBobPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "111122223333"}, "Action": "kms:*", "Resource": "*"},
 {"Sid": "Admin", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/alice"},
  "Action": ["kms:Create*", "kms:Describe*", "kms:Put*", "kms:Get*", "kms:List*", "kms:Revoke*", "kms:Disable*", "kms:Enable*"], "Resource": "*"},
 {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111122223333:user/bob"]}, "Action": "kms:Encrypt", "Resource": "*",
  "Condition": {"StringEquals": {"kms:CallerAccount": "111122223333"}, "Null": {"kms:ViaService": "true"}}},
 {"Sid": "NoProd", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
  "Condition": {"StringEquals": {"kms:EncryptionContext:stage": "prod"}, "StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}}
]}`

func requireDenied(t *testing.T, err error, who, op, why string) {
	t.Helper()
	requireCode(t, err, "AccessDeniedException", who+" "+op)
	msg := err.Error()
	require.Contains(t, msg, "User: "+who+" is not authorized to perform: kms:"+op+" on resource: ")
	require.Contains(t, msg, why)
}

func TestAuthzKeyPolicyGrantsAndDeny(t *testing.T) {
	srv := testserver.StartWithAuth(t, []byte(authzCreds))
	ctx := context.Background()
	root := srv.Client
	alice := srv.ClientFor("AKIDALICE", "alice-secret")
	bob := srv.ClientFor("AKIDBOB", "bob-secret")
	carol := srv.ClientFor("AKIDCAROL", "carol-secret")

	ck, err := root.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(aliceBobPolicy)})
	require.NoError(t, err)
	key := aws.ToString(ck.KeyMetadata.Arn)
	other, _ := mkKey(t, root) // default policy: the root only
	mkAlias(t, root, "alias/ab", key)

	// bob may Encrypt, nothing else.
	enc := func(c *kms.Client, ref string, ec map[string]string) ([]byte, error) {
		out, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: []byte("p"), EncryptionContext: ec})
		if err != nil {
			return nil, err
		}
		return out.CiphertextBlob, nil
	}
	ctA, err := enc(bob, key, map[string]string{"app": "a"})
	require.NoError(t, err)
	_, err = enc(bob, "alias/ab", nil)
	require.NoError(t, err, "through an alias")
	_, err = bob.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "a"}})
	requireDenied(t, err, userBob, "Decrypt", "because no identity-based policy allows the kms:Decrypt action")
	_, err = bob.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	requireDenied(t, err, userBob, "DescribeKey", key)
	_, err = bob.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
	requireDenied(t, err, userBob, "DisableKey", "")

	// alice administers but may not use the key.
	_, err = enc(alice, key, nil)
	requireDenied(t, err, userAlice, "Encrypt", "because no identity-based policy allows the kms:Encrypt action")
	_, err = alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = alice.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = alice.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key)})
	requireDenied(t, err, userAlice, "ScheduleKeyDeletion", "")

	// Explicit deny wins over bob's Allow; the root is exempted by its own
	// condition.
	_, err = enc(bob, key, map[string]string{"stage": "prod"})
	requireDenied(t, err, userBob, "Encrypt", "with an explicit deny in a resource-based policy")
	ctProd, err := enc(root, key, map[string]string{"stage": "prod"})
	require.NoError(t, err)

	// A user of one key cannot touch another.
	_, err = enc(bob, other, nil)
	requireDenied(t, err, userBob, "Encrypt", "because no identity-based policy allows")
	_, err = alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(other)})
	requireCode(t, err, "AccessDeniedException")

	// Without delegation to IAM, the key policy alone decides.
	bobOnly := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/bob"},"Action":"kms:*","Resource":"*"}]}`
	ck2, err := root.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(bobOnly)})
	require.NoError(t, err)
	_, err = alice.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: ck2.KeyMetadata.KeyId})
	requireDenied(t, err, userAlice, "DescribeKey", "because no resource-based policy allows the kms:DescribeKey action")
	_, err = root.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: ck2.KeyMetadata.KeyId})
	requireDenied(t, err, "arn:aws:iam::111122223333:root", "DescribeKey", "because no resource-based policy allows")
	_, err = bob.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: ck2.KeyMetadata.KeyId})
	require.NoError(t, err)

	// The root: allowed by the default policy, and by the account principal.
	_, err = enc(root, other, nil)
	require.NoError(t, err)
	_, err = root.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "a"}})
	require.NoError(t, err)

	// A grant from alice lets carol Decrypt under a matching context only.
	_, err = carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "a"}})
	requireDenied(t, err, userCarol, "Decrypt", "")
	g, err := alice.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String(userCarol),
		Operations:  []types.GrantOperation{types.GrantOperationDecrypt},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"app": "a"}}})
	require.NoError(t, err)
	out, err := carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "a"},
		GrantTokens: []string{aws.ToString(g.GrantToken)}})
	require.NoError(t, err)
	require.Equal(t, []byte("p"), out.Plaintext)
	ctB, err := enc(bob, key, map[string]string{"app": "b"})
	require.NoError(t, err)
	_, err = carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctB, EncryptionContext: map[string]string{"app": "b"}})
	requireDenied(t, err, userCarol, "Decrypt", "")
	_, err = enc(carol, key, map[string]string{"app": "a"})
	requireDenied(t, err, userCarol, "Encrypt", "")
	// The explicit deny beats the grant.
	_, err = carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctProd, EncryptionContext: map[string]string{"stage": "prod"}})
	requireDenied(t, err, userCarol, "Decrypt", "")
	// carol may not widen her grant.
	_, err = carol.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String(userBob),
		Operations: []types.GrantOperation{types.GrantOperationDecrypt}})
	requireDenied(t, err, userCarol, "CreateGrant", "")

	_, err = alice.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(key), GrantId: g.GrantId})
	require.NoError(t, err)
	_, err = carol.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "a"}})
	requireDenied(t, err, userCarol, "Decrypt", "")

	// Operations not on a key: users without an identity policy may.
	_, err = bob.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	_, err = carol.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(8)})
	require.NoError(t, err)

	// Policy lockout safety check.
	selfLock := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	_, err = alice.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(selfLock)})
	requireErrAs[*types.MalformedPolicyDocumentException](t, err)
	require.Contains(t, err.Error(), "The new key policy will not allow you to update the key policy in the future.")
	_, err = bob.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(selfLock)})
	requireErrAs[*types.MalformedPolicyDocumentException](t, err)
	_, err = alice.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(selfLock), BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)
	_, err = alice.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key)})
	requireDenied(t, err, userAlice, "GetKeyPolicy", "")
	// The root can always repair a policy (break glass).
	_, err = root.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(aliceBobPolicy)})
	require.NoError(t, err)
	_, err = alice.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
}

func TestAuthzIdentityPolicyDelegation(t *testing.T) {
	srv := testserver.StartWithAuth(t, []byte(authzCreds))
	ctx := context.Background()
	dave := srv.ClientFor("AKIDDAVE", "dave-secret")
	bob := srv.ClientFor("AKIDBOB", "bob-secret")
	key, _ := mkKey(t, srv.Client) // default policy: delegation to IAM

	ct, err := dave.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x"), EncryptionContext: map[string]string{"secret": "yes"}})
	require.NoError(t, err)
	_, err = dave.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionContext: map[string]string{"secret": "yes"}})
	requireDenied(t, err, "arn:aws:iam::111122223333:user/dave", "Decrypt", "with an explicit deny in an identity-based policy")
	ct2, err := dave.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
	require.NoError(t, err)
	_, err = dave.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct2.CiphertextBlob})
	require.NoError(t, err)
	_, err = dave.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = dave.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
	requireDenied(t, err, "arn:aws:iam::111122223333:user/dave", "DisableKey", "because no identity-based policy allows the kms:DisableKey action")
	_, err = dave.ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	_, err = dave.CreateKey(ctx, &kms.CreateKeyInput{})
	requireCode(t, err, "AccessDeniedException")
	require.Contains(t, err.Error(), "kms:CreateKey on resource: *")
	// bob has no identity policy: the key policy's delegation gives him nothing.
	_, err = bob.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
	requireDenied(t, err, userBob, "Encrypt", "because no identity-based policy allows")
}

// TestAuthzCloudFormationKeyPolicy enforces the key policy of
// /work/shared/seeds/kms-key-cloudformation.yaml: the administrator manages
// but cannot use the key, the user uses but cannot manage it.
func TestAuthzCloudFormationKeyPolicy(t *testing.T) {
	const policy = `{"Version": "2012-10-17", "Id": "key-example-1", "Statement": [
 {"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
 {"Sid": "Allow administration of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/key-admin"},
  "Action": ["kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*", "kms:Disable*",
   "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"], "Resource": "*"},
 {"Sid": "Allow use of the key", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/key-user"},
  "Action": ["kms:DescribeKey", "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey", "kms:GenerateDataKeyWithoutPlaintext"], "Resource": "*"}]}`
	srv := testserver.StartWithAuth(t, []byte(authzCreds))
	ctx := context.Background()
	admin := srv.ClientFor("AKIDKEYADMIN", "ka-secret")
	user := srv.ClientFor("AKIDKEYUSER", "ku-secret")
	const adminARN, userARN = "arn:aws:iam::111122223333:user/key-admin", "arn:aws:iam::111122223333:user/key-user"

	// The administrator creates the key (CreateKey is decided by IAM; it has
	// no identity policy) with the template's policy, which lets it manage it.
	ck, err := admin.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(policy), Description: aws.String("An example symmetric encryption KMS key"),
		Tags: []types.Tag{{TagKey: aws.String("Name"), TagValue: aws.String("exampleKMS")}}})
	require.NoError(t, err)
	key := aws.ToString(ck.KeyMetadata.KeyId)
	_, err = admin.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/example-KMS"), TargetKeyId: aws.String(key)})
	require.NoError(t, err)

	// The user uses the key, through the alias too.
	ct, err := user.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/example-KMS"), Plaintext: []byte("data")})
	require.NoError(t, err)
	_, err = user.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
	require.NoError(t, err)
	_, err = user.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	_, err = user.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, DestinationKeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = user.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	for name, call := range map[string]func() error{
		"DisableKey": func() error { _, err := user.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); return err },
		"PutKeyPolicy": func() error {
			_, err := user.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)})
			return err
		},
		"ScheduleKeyDeletion": func() error {
			_, err := user.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key)})
			return err
		},
		"CreateGrant": func() error {
			_, err := user.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String(userCarol), Operations: []types.GrantOperation{"Decrypt"}})
			return err
		},
		"GenerateDataKeyPair": func() error {
			_, err := user.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(key), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			return err
		},
	} {
		requireDenied(t, call(), userARN, name, "because no identity-based policy allows")
	}

	// The administrator manages the key but cannot use it.
	_, err = admin.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = admin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	_, err = admin.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(key), Tags: []types.Tag{{TagKey: aws.String("k"), TagValue: aws.String("v")}}})
	require.NoError(t, err)
	_, err = admin.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(key), Policy: aws.String(policy)})
	require.NoError(t, err)
	for _, op := range []string{"Encrypt", "Decrypt"} {
		var err error
		if op == "Encrypt" {
			_, err = admin.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
		} else {
			_, err = admin.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob})
		}
		requireDenied(t, err, adminARN, op, "because no identity-based policy allows")
	}
	_, err = admin.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(key), PendingWindowInDays: aws.Int32(7)})
	require.NoError(t, err)
	_, err = admin.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(key)})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(adminARN, "arn:aws:iam::"))
}
