package service_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// The authorization matrix (issue 5 item 7): principals x operations x key
// policies, grants, identity policies and conditions, each with its
// expected answer, through the AWS SDK against a node that authenticates
// callers with a credentials file.

func mxARN(name string) string { return "arn:aws:iam::111122223333:user/" + name }

const mxRootARN = "arn:aws:iam::111122223333:root"

// mxDavePolicy: dave may use keys and read their configuration through
// IAM (delegation by the key policies' root statement), only from
// loopback addresses.
const mxDavePolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:Describe*","kms:Sign","kms:Verify",
  "kms:GetPublicKey","kms:GenerateMac","kms:VerifyMac","kms:List*","kms:GetKeyPolicy","kms:GetKeyRotationStatus"],"Resource":"arn:aws:kms:*:111122223333:key/*"},
 {"Effect":"Allow","Action":"kms:List*","Resource":"*"},
 {"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":["127.0.0.0/8","::1"]}}}]}`

// mxErinPolicy allows everything but denies everything from loopback:
// every request of erin's in these tests is denied by her identity policy,
// whatever key policies and grants say.
const mxErinPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"kms:*","Resource":"*"},
 {"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["127.0.0.0/8","::1/128"]}}}]}`

// mxGracePolicy allows everything, but only over TLS.
const mxGracePolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}]}`

// mxIvanPolicy: ivan may create symmetric keys (not with Stage=prod or a
// Forbidden tag, nor bypassing the lockout check) and use the keys tagged
// with his own name (attribute-based access control).
const mxIvanPolicy = `{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":"kms:CreateKey","Resource":"*","Condition":{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT","kms:KeyOrigin":"AWS_KMS"},"Bool":{"kms:MultiRegion":"false"}}},
 {"Effect":"Deny","Action":"kms:CreateKey","Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/Stage":"prod"}}},
 {"Effect":"Deny","Action":"kms:CreateKey","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"Forbidden"}}},
 {"Effect":"Deny","Action":"kms:CreateKey","Resource":"*","Condition":{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}},
 {"Effect":"Allow","Action":["kms:DescribeKey","kms:Encrypt"],"Resource":"*","Condition":{"StringEquals":{"aws:ResourceTag/Owner":"${aws:username}"}}}]}`

// mxFrankPolicy allows Encrypt and DescribeKey until deadline.
func mxFrankPolicy(deadline time.Time) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Statement":[
 {"Effect":"Allow","Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*",
  "Condition":{"DateLessThan":{"aws:CurrentTime":%q},"NumericLessThan":{"aws:EpochTime":%d}}}]}`,
		deadline.UTC().Format(time.RFC3339), deadline.Unix())
}

func mxCreds(frankDeadline time.Time) []byte {
	cred := func(name, policy string) string {
		s := fmt.Sprintf(`{"access_key_id":"AKIDMX%s","secret_access_key":"mx-%s-secret","arn":%q`, strings.ToUpper(name), name, mxARN(name))
		if policy != "" {
			s += `,"policy":` + policy
		}
		return s + "}"
	}
	return []byte(`{"account_id":"111122223333","credentials":[
 {"access_key_id":"AKIDEXAMPLE","secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY","arn":"arn:aws:iam::111122223333:root"},
 ` + strings.Join([]string{cred("alice", ""), cred("bob", ""), cred("carol", ""), cred("dave", mxDavePolicy),
		cred("erin", mxErinPolicy), cred("frank", mxFrankPolicy(frankDeadline)), cred("grace", mxGracePolicy),
		cred("heidi", ""), cred("ivan", mxIvanPolicy)}, ",\n ") + `]}`)
}

// mxServer is a node with the matrix's credentials and a client per
// principal ("root" and the user names).
type mxServer struct {
	srv     *testserver.Server
	clients map[string]*kms.Client
}

func startMatrixServer(t *testing.T) *mxServer {
	t.Helper()
	srv := testserver.StartWithAuth(t, mxCreds(time.Now().Add(time.Hour)))
	m := &mxServer{srv: srv, clients: map[string]*kms.Client{"root": srv.Client}}
	for _, n := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"} {
		m.clients[n] = srv.ClientFor("AKIDMX"+strings.ToUpper(n), "mx-"+n+"-secret")
	}
	return m
}

func mxCallerARN(who string) string {
	if who == "root" {
		return mxRootARN
	}
	return mxARN(who)
}

// mxPolicy is a key policy: the root statement (delegation to IAM) unless
// noRoot, then the given statements.
func mxPolicy(noRoot bool, statements ...string) string {
	if !noRoot {
		statements = append([]string{`{"Sid":"Root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}`}, statements...)
	}
	return `{"Version":"2012-10-17","Statement":[` + strings.Join(statements, ",\n") + `]}`
}

func mxAllow(principals, actions string) string {
	return `{"Effect":"Allow","Principal":{"AWS":` + principals + `},"Action":` + actions + `,"Resource":"*"}`
}

const mxAdminActions = `["kms:Create*","kms:Describe*","kms:Enable*","kms:List*","kms:Put*","kms:Update*","kms:Revoke*","kms:Disable*",
 "kms:Get*","kms:Delete*","kms:TagResource","kms:UntagResource","kms:ScheduleKeyDeletion","kms:CancelKeyDeletion","kms:RotateKeyOnDemand","kms:ImportKeyMaterial"]`

// Key kinds of the matrix.
const (
	kindSym      = "symmetric"
	kindSign     = "sign"
	kindHMAC     = "hmac"
	kindExternal = "external"
	kindIsolated = "isolated" // bob's alone: no root statement
)

// mxKey is one key of the matrix and what its operations need.
type mxKey struct {
	kind     string
	id, arn  string
	policy   string
	admin    *kms.Client // root, or bob for the isolated key
	ct       []byte      // a ciphertext under the key
	sig, mac []byte
	material []byte // imported material (external key)
}

// mxOp is one operation on a key: before prepares the key with the admin
// client, run is the principal's call, after restores the key whatever
// run returned.
type mxOp struct {
	name   string
	before func(t *testing.T)
	run    func(c *kms.Client) error
	after  func(t *testing.T, err error)
}

var mxSeq atomic.Int64

func mxName(prefix string) string { return fmt.Sprintf("%s-%d", prefix, mxSeq.Add(1)) }

// mxOps lists the operations that apply to a key of k's kind.
func mxOps(t *testing.T, ctx context.Context, k *mxKey) []mxOp {
	id := aws.String(k.id)
	must := func(err error, what string) {
		t.Helper()
		require.NoError(t, err, "%s on %s key", what, k.kind)
	}
	enable := func(t *testing.T) {
		_, err := k.admin.EnableKey(ctx, &kms.EnableKeyInput{KeyId: id})
		must(err, "EnableKey")
	}
	const nobody = "arn:aws:iam::111122223333:user/nobody"
	var grantID, alias string
	ops := []mxOp{
		{name: "DescribeKey", run: func(c *kms.Client) error { _, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: id}); return err }},
		{name: "GetKeyPolicy", run: func(c *kms.Client) error {
			_, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: id})
			return err
		}},
		{name: "ListKeyPolicies", run: func(c *kms.Client) error {
			_, err := c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: id})
			return err
		}},
		{name: "PutKeyPolicy", run: func(c *kms.Client) error {
			_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: id, Policy: aws.String(k.policy)})
			return err
		}},
		{name: "ListResourceTags", run: func(c *kms.Client) error {
			_, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: id})
			return err
		}},
		{name: "TagResource", run: func(c *kms.Client) error {
			_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: id, Tags: []types.Tag{{TagKey: aws.String("m"), TagValue: aws.String("1")}}})
			return err
		}},
		{name: "UntagResource", run: func(c *kms.Client) error {
			_, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: id, TagKeys: []string{"m"}})
			return err
		}},
		{name: "UpdateKeyDescription", run: func(c *kms.Client) error {
			_, err := c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: id, Description: aws.String("d")})
			return err
		}},
		{name: "DisableKey", run: func(c *kms.Client) error { _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: id}); return err },
			after: func(t *testing.T, err error) { enable(t) }},
		{name: "EnableKey", run: func(c *kms.Client) error { _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: id}); return err }},
		{name: "ScheduleKeyDeletion", run: func(c *kms.Client) error {
			_, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)})
			return err
		}, after: func(t *testing.T, err error) {
			if err == nil {
				_, err := k.admin.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: id})
				must(err, "CancelKeyDeletion")
				enable(t)
			}
		}},
		{name: "CancelKeyDeletion", before: func(t *testing.T) {
			_, err := k.admin.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: id, PendingWindowInDays: aws.Int32(7)})
			must(err, "ScheduleKeyDeletion")
		}, run: func(c *kms.Client) error {
			_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: id})
			return err
		}, after: func(t *testing.T, err error) {
			if err != nil {
				_, err := k.admin.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: id})
				must(err, "CancelKeyDeletion")
			}
			enable(t)
		}},
		{name: "CreateGrant", run: func(c *kms.Client) error {
			_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: id, GranteePrincipal: aws.String(nobody), Operations: []types.GrantOperation{"DescribeKey"}})
			return err
		}},
		{name: "ListGrants", run: func(c *kms.Client) error { _, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: id}); return err }},
		{name: "RevokeGrant", before: func(t *testing.T) {
			g, err := k.admin.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: id, GranteePrincipal: aws.String(nobody), Operations: []types.GrantOperation{"DescribeKey"}})
			must(err, "CreateGrant")
			grantID = aws.ToString(g.GrantId)
		}, run: func(c *kms.Client) error {
			_, err := c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: id, GrantId: aws.String(grantID)})
			return err
		}, after: func(t *testing.T, err error) {
			if err != nil {
				_, err := k.admin.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: id, GrantId: aws.String(grantID)})
				must(err, "RevokeGrant")
			}
		}},
		{name: "CreateAlias", before: func(t *testing.T) { alias = "alias/" + mxName("mx") }, run: func(c *kms.Client) error {
			_, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: id})
			return err
		}, after: func(t *testing.T, err error) {
			if err == nil {
				_, err := k.admin.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)})
				must(err, "DeleteAlias")
			}
		}},
		{name: "DeleteAlias", before: func(t *testing.T) {
			alias = "alias/" + mxName("mx")
			_, err := k.admin.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: id})
			must(err, "CreateAlias")
		}, run: func(c *kms.Client) error {
			_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)})
			return err
		}, after: func(t *testing.T, err error) {
			if err != nil {
				_, err := k.admin.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias)})
				must(err, "DeleteAlias")
			}
		}},
		{name: "ListAliases", run: func(c *kms.Client) error { _, err := c.ListAliases(ctx, &kms.ListAliasesInput{KeyId: id}); return err }},
	}
	encrypt := mxOp{name: "Encrypt", run: func(c *kms.Client) error {
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: id, Plaintext: []byte("p")})
		return err
	}}
	decrypt := mxOp{name: "Decrypt", run: func(c *kms.Client) error {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.ct})
		return err
	}}
	switch k.kind {
	case kindSym, kindIsolated:
		ops = append(ops, encrypt, decrypt,
			mxOp{name: "ReEncrypt", run: func(c *kms.Client) error {
				_, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: k.ct, DestinationKeyId: id})
				return err
			}},
			mxOp{name: "GenerateDataKey", run: func(c *kms.Client) error {
				_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: id, KeySpec: types.DataKeySpecAes256})
				return err
			}},
			mxOp{name: "GenerateDataKeyWithoutPlaintext", run: func(c *kms.Client) error {
				_, err := c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: id, NumberOfBytes: aws.Int32(16)})
				return err
			}},
			mxOp{name: "GenerateDataKeyPair", run: func(c *kms.Client) error {
				_, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: id, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
				return err
			}},
			mxOp{name: "GenerateDataKeyPairWithoutPlaintext", run: func(c *kms.Client) error {
				_, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: id, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
				return err
			}},
			mxOp{name: "EnableKeyRotation", run: func(c *kms.Client) error {
				_, err := c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: id})
				return err
			}},
			mxOp{name: "DisableKeyRotation", run: func(c *kms.Client) error {
				_, err := c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: id})
				return err
			}},
			mxOp{name: "GetKeyRotationStatus", run: func(c *kms.Client) error {
				_, err := c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: id})
				return err
			}},
			mxOp{name: "RotateKeyOnDemand", run: func(c *kms.Client) error {
				_, err := c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: id})
				return err
			}},
			mxOp{name: "ListKeyRotations", run: func(c *kms.Client) error {
				_, err := c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: id})
				return err
			}},
		)
	case kindSign:
		ops = append(ops,
			mxOp{name: "Sign", run: func(c *kms.Client) error {
				_, err := c.Sign(ctx, &kms.SignInput{KeyId: id, Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
				return err
			}},
			mxOp{name: "Verify", run: func(c *kms.Client) error {
				_, err := c.Verify(ctx, &kms.VerifyInput{KeyId: id, Message: []byte("m"), Signature: k.sig, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
				return err
			}},
			mxOp{name: "GetPublicKey", run: func(c *kms.Client) error {
				_, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: id})
				return err
			}},
		)
	case kindHMAC:
		ops = append(ops,
			mxOp{name: "GenerateMac", run: func(c *kms.Client) error {
				_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: id, Message: []byte("m"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
				return err
			}},
			mxOp{name: "VerifyMac", run: func(c *kms.Client) error {
				_, err := c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: id, Message: []byte("m"), Mac: k.mac, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
				return err
			}},
		)
	case kindExternal:
		var params *kms.GetParametersForImportOutput
		reimport := func(t *testing.T) {
			p := importParams(t, k.admin, k.id, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
			_, err := importMaterial(ctx, k.admin, k.id, p, types.AlgorithmSpecRsaesOaepSha256, t, k.material)
			must(err, "ImportKeyMaterial")
		}
		ops = append(ops, encrypt, decrypt,
			mxOp{name: "GetParametersForImport", run: func(c *kms.Client) error {
				_, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: id,
					WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048})
				return err
			}},
			mxOp{name: "ImportKeyMaterial", before: func(t *testing.T) {
				params = importParams(t, k.admin, k.id, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
			}, run: func(c *kms.Client) error {
				_, err := importMaterial(ctx, c, k.id, params, types.AlgorithmSpecRsaesOaepSha256, t, k.material)
				return err
			}},
			mxOp{name: "DeleteImportedKeyMaterial", run: func(c *kms.Client) error {
				_, err := c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: id})
				return err
			}, after: func(t *testing.T, err error) {
				if err == nil {
					reimport(t)
				}
			}},
		)
	}
	return ops
}

// The expected answers, written out per principal rather than derived
// from the policies.
var (
	mxBreakGlass = []string{"GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies"}
	// alice: the administrator statement (mxAdminActions).
	mxAliceOps = []string{"CreateGrant", "CreateAlias", "DescribeKey", "EnableKey", "EnableKeyRotation", "ListGrants", "ListKeyPolicies",
		"ListResourceTags", "ListAliases", "ListKeyRotations", "PutKeyPolicy", "UpdateKeyDescription", "RevokeGrant", "DisableKey",
		"DisableKeyRotation", "GetKeyPolicy", "GetKeyRotationStatus", "GetPublicKey", "GetParametersForImport", "DeleteAlias",
		"DeleteImportedKeyMaterial", "TagResource", "UntagResource", "ScheduleKeyDeletion", "CancelKeyDeletion", "RotateKeyOnDemand",
		"ImportKeyMaterial"}
	mxSymUse = []string{"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
		"GenerateDataKeyPairWithoutPlaintext", "DescribeKey"}
	// bob: the use statement of each key.
	mxBobOps = map[string][]string{
		kindSym:      mxSymUse,
		kindSign:     {"Sign", "Verify", "GetPublicKey", "DescribeKey"},
		kindHMAC:     {"GenerateMac", "VerifyMac", "DescribeKey"},
		kindExternal: {"Encrypt", "Decrypt", "DescribeKey"},
	}
	// carol: her grants.
	mxCarolOps = map[string][]string{
		kindSym:      mxSymUse,
		kindSign:     {"Sign", "Verify", "GetPublicKey", "DescribeKey"},
		kindHMAC:     {"GenerateMac", "VerifyMac"},
		kindExternal: {"Encrypt"},
	}
	// dave: his identity policy, on keys that delegate to IAM.
	mxDaveOps = []string{"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
		"GenerateDataKeyPairWithoutPlaintext", "DescribeKey", "Sign", "Verify", "GetPublicKey", "GenerateMac", "VerifyMac", "ListGrants",
		"ListKeyPolicies", "ListResourceTags", "ListAliases", "ListKeyRotations", "GetKeyPolicy", "GetKeyRotationStatus"}
)

func mxExpected(kind, who, op string) bool {
	switch who {
	case "root":
		return kind != kindIsolated || slices.Contains(mxBreakGlass, op)
	case "alice":
		return kind != kindIsolated && slices.Contains(mxAliceOps, op)
	case "bob":
		return kind == kindIsolated || slices.Contains(mxBobOps[kind], op)
	case "carol":
		return slices.Contains(mxCarolOps[kind], op)
	case "dave":
		return kind != kindIsolated && slices.Contains(mxDaveOps, op)
	}
	return false // erin: denied by her identity policy
}

// setupMatrixKeys creates one key of each kind with its policy, data to
// use it with, and carol's grants.
func setupMatrixKeys(t *testing.T, ctx context.Context, m *mxServer) []*mxKey {
	root, bob := m.clients["root"], m.clients["bob"]
	admin := mxAllow(`"arn:aws:iam::111122223333:user/alice"`, mxAdminActions)
	use := func(actions string) string {
		return mxAllow(`["arn:aws:iam::111122223333:user/bob","arn:aws:iam::111122223333:user/erin"]`, actions)
	}
	mk := func(kind string, in *kms.CreateKeyInput, creator *kms.Client, policy string) *mxKey {
		in.Policy = aws.String(policy)
		out, err := creator.CreateKey(ctx, in)
		require.NoError(t, err, "CreateKey %s", kind)
		k := &mxKey{kind: kind, id: aws.ToString(out.KeyMetadata.KeyId), arn: aws.ToString(out.KeyMetadata.Arn), policy: policy, admin: root}
		if kind == kindIsolated {
			k.admin = bob
		}
		return k
	}
	sym := mk(kindSym, &kms.CreateKeyInput{}, root, mxPolicy(false, admin,
		use(`["kms:Encrypt","kms:Decrypt","kms:ReEncrypt*","kms:GenerateDataKey*","kms:DescribeKey"]`)))
	sign := mk(kindSign, &kms.CreateKeyInput{KeySpec: types.KeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify}, root,
		mxPolicy(false, admin, use(`["kms:Sign","kms:Verify","kms:GetPublicKey","kms:DescribeKey"]`)))
	hmacKey := mk(kindHMAC, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac}, root,
		mxPolicy(false, admin, use(`["kms:GenerateMac","kms:VerifyMac","kms:DescribeKey"]`)))
	ext := mk(kindExternal, &kms.CreateKeyInput{Origin: types.OriginTypeExternal}, root,
		mxPolicy(false, admin, use(`["kms:Encrypt","kms:Decrypt","kms:DescribeKey"]`)))
	// Created by bob: the root has no say on it (break glass aside).
	isolated := mk(kindIsolated, &kms.CreateKeyInput{}, bob, mxPolicy(true, mxAllow(`"arn:aws:iam::111122223333:user/bob"`, `"kms:*"`)))

	ext.material = newMaterial()
	p := importParams(t, root, ext.id, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
	_, err := importMaterial(ctx, root, ext.id, p, types.AlgorithmSpecRsaesOaepSha256, t, ext.material)
	require.NoError(t, err)
	for _, k := range []*mxKey{sym, ext, isolated} {
		out, err := k.admin.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.id), Plaintext: []byte("secret")})
		require.NoError(t, err)
		k.ct = out.CiphertextBlob
	}
	so, err := root.Sign(ctx, &kms.SignInput{KeyId: aws.String(sign.id), Message: []byte("m"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
	require.NoError(t, err)
	sign.sig = so.Signature
	mo, err := root.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(hmacKey.id), Message: []byte("m"), MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	require.NoError(t, err)
	hmacKey.mac = mo.Mac

	// carol's grants (operations named as grant operations: ReEncrypt is
	// ReEncryptFrom and ReEncryptTo).
	for _, k := range []*mxKey{sym, sign, hmacKey, ext} {
		var ops []types.GrantOperation
		for _, op := range mxCarolOps[k.kind] {
			if op == "ReEncrypt" {
				ops = append(ops, "ReEncryptFrom", "ReEncryptTo")
				continue
			}
			ops = append(ops, types.GrantOperation(op))
		}
		_, err := root.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(k.id), GranteePrincipal: aws.String(mxARN("carol")), Operations: ops})
		require.NoError(t, err, "grant on %s", k.kind)
	}
	// erin holds a grant too: her identity policy's Deny still wins.
	_, err = root.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(sym.id), GranteePrincipal: aws.String(mxARN("erin")),
		Operations: []types.GrantOperation{"Encrypt", "Decrypt", "DescribeKey"}})
	require.NoError(t, err)
	return []*mxKey{sym, sign, hmacKey, ext, isolated}
}

// TestAuthzMatrix runs every operation that applies to each kind of key
// as each principal and checks the answer: allowed calls succeed, the
// others are AccessDeniedException naming the caller, the action and the
// key. It includes "a user of one key cannot touch another": bob uses the
// keys whose policies name him for exactly the operations named, the
// isolated key is bob's alone, and carol reaches only what her grants give.
func TestAuthzMatrix(t *testing.T) {
	m := startMatrixServer(t)
	ctx := context.Background()
	keys := setupMatrixKeys(t, ctx, m)
	principals := []string{"root", "alice", "bob", "carol", "dave", "erin"}
	counts := map[bool]int{}
	for _, k := range keys {
		for _, op := range mxOps(t, ctx, k) {
			for _, who := range principals {
				want := mxExpected(k.kind, who, op.name)
				if op.before != nil {
					op.before(t)
				}
				err := op.run(m.clients[who])
				if op.after != nil {
					op.after(t, err)
				}
				counts[want]++
				where := fmt.Sprintf("%s key, %s as %s", k.kind, op.name, who)
				if want {
					require.NoError(t, err, where)
					continue
				}
				action := op.name
				if action == "ReEncrypt" {
					action = "ReEncryptFrom"
				}
				requireCode(t, err, "AccessDeniedException", where)
				require.Contains(t, err.Error(), "User: "+mxCallerARN(who)+" is not authorized to perform: kms:"+action+" on resource: "+k.arn, where)
				if who == "erin" {
					require.Contains(t, err.Error(), "with an explicit deny in an identity-based policy", where)
				}
			}
		}
	}
	t.Logf("matrix: %d allowed and %d denied calls", counts[true], counts[false])

	// Operations not on a key: the identity policy decides.
	for _, tc := range []struct {
		who  string
		want bool
	}{{"root", true}, {"alice", true}, {"dave", true}, {"erin", false}} {
		_, err := m.clients[tc.who].ListKeys(ctx, &kms.ListKeysInput{})
		if tc.want {
			require.NoError(t, err, "ListKeys as %s", tc.who)
		} else {
			requireDenied(t, err, mxCallerARN(tc.who), "ListKeys", "with an explicit deny in an identity-based policy")
		}
	}
	_, err := m.clients["dave"].CreateKey(ctx, &kms.CreateKeyInput{})
	requireDenied(t, err, mxARN("dave"), "CreateKey", "because no identity-based policy allows the kms:CreateKey action")
}

// mxCase is one request under one key policy (or none: the default).
type mxCase struct {
	name string
	who  string
	call func(ctx context.Context, c *kms.Client, k *mxCondKey) error
	// allow, or the denial's action and reason
	allow  bool
	action string
	why    string
}

// mxCondKey is a key made for a group of condition cases.
type mxCondKey struct {
	id, arn string
	alias   string
	ct      []byte // under the encryption context app=a (symmetric keys)
}

// mxCondPolicy is a key policy for condition cases: the root may only set
// the key up (aliases, tags, and the ciphertext runCondGroup makes, under
// the encryption context app=a), then the given statements.
func mxCondPolicy(statements ...string) string {
	// Naming the account root delegates to IAM for every principal of the
	// account: the principal type condition keeps these to the root.
	setup := []string{
		`{"Sid":"Setup","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":["kms:CreateAlias","kms:DeleteAlias","kms:TagResource"],"Resource":"*",
		  "Condition":{"StringEquals":{"aws:PrincipalType":"Account"}}}`,
		`{"Sid":"SetupEncrypt","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:Encrypt","Resource":"*",
		  "Condition":{"StringEquals":{"kms:EncryptionContext:app":"a","aws:PrincipalType":"Account"}}}`,
	}
	return mxPolicy(true, append(setup, statements...)...)
}

// runCondGroup creates a key (spec, policy, tags, alias), runs the cases
// and checks each answer.
func runCondGroup(t *testing.T, ctx context.Context, m *mxServer, name string, in *kms.CreateKeyInput, aliasName string, cases []mxCase) {
	t.Helper()
	root := m.clients["root"]
	out, err := root.CreateKey(ctx, in)
	require.NoError(t, err, name)
	k := &mxCondKey{id: aws.ToString(out.KeyMetadata.KeyId), arn: aws.ToString(out.KeyMetadata.Arn)}
	if aliasName != "" {
		k.alias = aliasName
		mkAlias(t, root, aliasName, k.id)
	}
	if in.KeySpec == "" && in.Origin == "" {
		ct, err := root.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.id), Plaintext: []byte("p"), EncryptionContext: map[string]string{"app": "a"}})
		require.NoError(t, err, name)
		k.ct = ct.CiphertextBlob
	}
	for _, tc := range cases {
		err := tc.call(ctx, m.clients[tc.who], k)
		where := name + ": " + tc.name
		if tc.allow {
			require.NoError(t, err, where)
			continue
		}
		requireCode(t, err, "AccessDeniedException", where)
		require.Contains(t, err.Error(), "User: "+mxCallerARN(tc.who)+" is not authorized to perform: kms:"+tc.action, where)
		require.Contains(t, err.Error(), tc.why, where)
	}
}

func mxEncrypt(ec map[string]string) func(context.Context, *kms.Client, *mxCondKey) error {
	return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.id), Plaintext: []byte("p"), EncryptionContext: ec})
		return err
	}
}

func mxEncryptVia(ref func(k *mxCondKey) string) func(context.Context, *kms.Client, *mxCondKey) error {
	return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref(k)), Plaintext: []byte("p")})
		return err
	}
}

func mxDescribe(ctx context.Context, c *kms.Client, k *mxCondKey) error {
	_, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(k.id)})
	return err
}

func mxGrant(grantee string, ops []types.GrantOperation, cons *types.GrantConstraints, retiring string) func(context.Context, *kms.Client, *mxCondKey) error {
	return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
		in := &kms.CreateGrantInput{KeyId: aws.String(k.id), GranteePrincipal: aws.String(grantee), Operations: ops, Constraints: cons}
		if retiring != "" {
			in.RetiringPrincipal = aws.String(retiring)
		}
		_, err := c.CreateGrant(ctx, in)
		return err
	}
}

const (
	whyNoResource = "because no resource-based policy allows"
	whyResDeny    = "with an explicit deny in a resource-based policy"
	whyIDDeny     = "with an explicit deny in an identity-based policy"
	whyNoIdentity = "because no identity-based policy allows"
)

// TestAuthzMatrixConditions: key policy, identity policy and grant
// conditions on the condition keys kmsd derives from the caller, the key,
// the encryption context, the key reference and CreateKey / CreateGrant /
// PutKeyPolicy requests.
func TestAuthzMatrixConditions(t *testing.T) {
	m := startMatrixServer(t)
	ctx := context.Background()
	bob := `"arn:aws:iam::111122223333:user/bob"`
	withPolicy := func(statements ...string) *kms.CreateKeyInput {
		return &kms.CreateKeyInput{Policy: aws.String(mxCondPolicy(statements...)), BypassPolicyLockoutSafetyCheck: true}
	}
	cond := func(principal, actions, condition string) string {
		return `{"Effect":"Allow","Principal":{"AWS":` + principal + `},"Action":` + actions + `,"Resource":"*","Condition":` + condition + `}`
	}

	runCondGroup(t, ctx, m, "encryption context pair", withPolicy(cond(bob, `"kms:Encrypt"`, `{"StringEquals":{"kms:EncryptionContext:app":"a"}}`)), "", []mxCase{
		{name: "matching pair", who: "bob", call: mxEncrypt(map[string]string{"app": "a", "x": "y"}), allow: true},
		{name: "key of the pair in another case", who: "bob", call: mxEncrypt(map[string]string{"APP": "a"}), allow: true},
		{name: "other value", who: "bob", call: mxEncrypt(map[string]string{"app": "b"}), action: "Encrypt", why: whyNoResource},
		{name: "no context", who: "bob", call: mxEncrypt(nil), action: "Encrypt", why: whyNoResource},
	})
	runCondGroup(t, ctx, m, "encryption context keys", withPolicy(cond(bob, `"kms:Encrypt"`,
		`{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["app","tenant"]},"Null":{"kms:EncryptionContextKeys":"false"}}`)), "", []mxCase{
		{name: "allowed keys", who: "bob", call: mxEncrypt(map[string]string{"app": "a", "tenant": "t"}), allow: true},
		{name: "another key", who: "bob", call: mxEncrypt(map[string]string{"app": "a", "other": "o"}), action: "Encrypt", why: whyNoResource},
		{name: "no context", who: "bob", call: mxEncrypt(nil), action: "Encrypt", why: whyNoResource},
	})
	runCondGroup(t, ctx, m, "caller account and principal ARN", withPolicy(
		cond(`"*"`, `"kms:Encrypt"`, `{"StringEquals":{"kms:CallerAccount":"111122223333"},"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/b*"}}`),
		cond(`"*"`, `"kms:DescribeKey"`, `{"StringEquals":{"kms:CallerAccount":"444455556666"}}`),
		cond(`"*"`, `"kms:Decrypt"`, `{"StringEquals":{"aws:PrincipalType":"User","aws:PrincipalAccount":"111122223333"}}`)), "", []mxCase{
		{name: "bob in the account", who: "bob", call: mxEncrypt(nil), allow: true},
		{name: "heidi does not match b*", who: "heidi", call: mxEncrypt(nil), action: "Encrypt", why: whyNoResource},
		{name: "other account only", who: "bob", call: mxDescribe, action: "DescribeKey", why: whyNoResource},
		{name: "principal type User", who: "heidi", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.ct, EncryptionContext: map[string]string{"app": "a"}})
			return err
		}, allow: true},
		{name: "root is not a User", who: "root", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.ct, EncryptionContext: map[string]string{"app": "a"}})
			return err
		}, action: "Decrypt", why: whyNoResource},
	})
	runCondGroup(t, ctx, m, "request alias", withPolicy(cond(bob, `["kms:Encrypt","kms:DescribeKey"]`, `{"StringEquals":{"kms:RequestAlias":"alias/mx-finance"}}`)),
		"alias/mx-finance", []mxCase{
			{name: "alias name", who: "bob", call: mxEncryptVia(func(k *mxCondKey) string { return k.alias }), allow: true},
			{name: "alias ARN", who: "bob", call: mxEncryptVia(func(k *mxCondKey) string { return aliasARNPfx + k.alias }), allow: true},
			{name: "key id", who: "bob", call: mxEncryptVia(func(k *mxCondKey) string { return k.id }), action: "Encrypt", why: whyNoResource},
			{name: "key ARN", who: "bob", call: mxEncryptVia(func(k *mxCondKey) string { return k.arn }), action: "Encrypt", why: whyNoResource},
		})
	runCondGroup(t, ctx, m, "resource aliases and tags", &kms.CreateKeyInput{Tags: []types.Tag{{TagKey: aws.String("Project"), TagValue: aws.String("Alpha")}},
		Policy: aws.String(mxCondPolicy(
			cond(bob, `"kms:Encrypt"`, `{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/*-finance"}}`),
			cond(bob, `"kms:DescribeKey"`, `{"StringEquals":{"aws:ResourceTag/Project":"Alpha"}}`),
			cond(bob, `"kms:GetKeyPolicy"`, `{"StringEquals":{"aws:ResourceTag/Project":"Beta"}}`),
			cond(bob, `"kms:ListResourceTags"`, `{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT","kms:KeyUsage":"ENCRYPT_DECRYPT","kms:KeyOrigin":"AWS_KMS"},"Bool":{"kms:MultiRegion":"false"}}`),
			cond(bob, `"kms:ListGrants"`, `{"StringEquals":{"kms:KeyOrigin":"EXTERNAL"}}`))),
		BypassPolicyLockoutSafetyCheck: true}, "alias/mx-2-finance", []mxCase{
		{name: "key has a matching alias, named by id", who: "bob", call: mxEncrypt(nil), allow: true},
		{name: "resource tag", who: "bob", call: mxDescribe, allow: true},
		{name: "other resource tag", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(k.id)})
			return err
		}, action: "GetKeyPolicy", why: whyNoResource},
		{name: "key properties", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(k.id)})
			return err
		}, allow: true},
		{name: "other origin", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(k.id)})
			return err
		}, action: "ListGrants", why: whyNoResource},
		{name: "alias removed", who: "root", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(k.alias)})
			return err
		}, allow: true},
		{name: "no matching alias any more", who: "bob", call: mxEncrypt(nil), action: "Encrypt", why: whyNoResource},
		{name: "tag changed", who: "root", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(k.id), Tags: []types.Tag{{TagKey: aws.String("Project"), TagValue: aws.String("Beta")}}})
			return err
		}, allow: true},
		{name: "resource tag no longer matches", who: "bob", call: mxDescribe, action: "DescribeKey", why: whyNoResource},
	})
	runCondGroup(t, ctx, m, "source IP, secure transport, via service", withPolicy(
		cond(bob, `"kms:Encrypt"`, `{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}`),
		cond(bob, `"kms:DescribeKey"`, `{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","::1"]}}`),
		cond(bob, `"kms:GetKeyPolicy"`, `{"StringEqualsIfExists":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"},"Null":{"kms:ViaService":"true"}}`),
		cond(bob, `"kms:ListKeyPolicies"`, `{"StringEquals":{"kms:ViaService":"ec2.us-east-1.amazonaws.com"}}`),
		cond(bob, `"kms:ListResourceTags"`, `{"StringEquals":{"kms:NoSuchKey":"x"}}`),
		`{"Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}`,
		cond(bob, `"kms:Decrypt"`, `{}`)), "", []mxCase{
		{name: "loopback caller", who: "bob", call: mxEncrypt(nil), allow: true},
		{name: "not from those addresses", who: "bob", call: mxDescribe, action: "DescribeKey", why: whyNoResource},
		{name: "ViaService absent: IfExists and Null", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(k.id)})
			return err
		}, allow: true},
		{name: "ViaService absent: StringEquals", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(k.id)})
			return err
		}, action: "ListKeyPolicies", why: whyNoResource},
		{name: "unknown condition key", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(k.id)})
			return err
		}, action: "ListResourceTags", why: whyNoResource},
		{name: "plain HTTP is denied", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: k.ct, EncryptionContext: map[string]string{"app": "a"}})
			return err
		}, action: "Decrypt", why: whyResDeny},
	})
	runCondGroup(t, ctx, m, "user name variable", withPolicy(
		cond(`"*"`, `"kms:Encrypt"`, `{"StringEquals":{"kms:EncryptionContext:user":"${aws:username}","kms:CallerAccount":"111122223333"}}`)), "", []mxCase{
		{name: "own name", who: "bob", call: mxEncrypt(map[string]string{"user": "bob"}), allow: true},
		{name: "own name, heidi", who: "heidi", call: mxEncrypt(map[string]string{"user": "heidi"}), allow: true},
		{name: "another's name", who: "bob", call: mxEncrypt(map[string]string{"user": "heidi"}), action: "Encrypt", why: whyNoResource},
		{name: "root has no user name", who: "root", call: mxEncrypt(map[string]string{"user": "root"}), action: "Encrypt", why: whyNoResource},
	})

	// Grants: conditions on CreateGrant requests.
	alice := `"arn:aws:iam::111122223333:user/alice"`
	carol, heidi := mxARN("carol"), mxARN("heidi")
	runCondGroup(t, ctx, m, "CreateGrant conditions", withPolicy(
		cond(alice, `"kms:CreateGrant"`, `{"ForAllValues:StringEquals":{"kms:GrantOperations":["Encrypt","ReEncryptTo","DescribeKey"]},
		  "StringEquals":{"kms:GranteePrincipal":"`+carol+`"},"StringEqualsIfExists":{"kms:RetiringPrincipal":"`+heidi+`"},
		  "Bool":{"kms:GrantIsForAWSResource":"false"}}`),
		cond(bob, `"kms:CreateGrant"`, `{"StringEquals":{"kms:GrantConstraintType":"EncryptionContextEquals","kms:EncryptionContext:app":"a"}}`),
		cond(`"arn:aws:iam::111122223333:user/heidi"`, `"kms:CreateGrant"`, `{"Bool":{"kms:GrantIsForAWSResource":"true"}}`)), "", []mxCase{
		{name: "operations within the set", who: "alice", call: mxGrant(carol, []types.GrantOperation{"Encrypt", "DescribeKey"}, nil, heidi), allow: true},
		{name: "no retiring principal", who: "alice", call: mxGrant(carol, []types.GrantOperation{"Encrypt"}, nil, ""), allow: true},
		{name: "an operation outside the set", who: "alice", call: mxGrant(carol, []types.GrantOperation{"Encrypt", "Decrypt"}, nil, ""), action: "CreateGrant", why: whyNoResource},
		{name: "other grantee", who: "alice", call: mxGrant(heidi, []types.GrantOperation{"Encrypt"}, nil, ""), action: "CreateGrant", why: whyNoResource},
		{name: "other retiring principal", who: "alice", call: mxGrant(carol, []types.GrantOperation{"Encrypt"}, nil, carol), action: "CreateGrant", why: whyNoResource},
		{name: "constraint Equals with the pair", who: "bob", call: mxGrant(carol, []types.GrantOperation{"Decrypt"},
			&types.GrantConstraints{EncryptionContextEquals: map[string]string{"app": "a"}}, ""), allow: true},
		{name: "constraint Subset", who: "bob", call: mxGrant(carol, []types.GrantOperation{"Decrypt"},
			&types.GrantConstraints{EncryptionContextSubset: map[string]string{"app": "a"}}, ""), action: "CreateGrant", why: whyNoResource},
		{name: "constraint with another value", who: "bob", call: mxGrant(carol, []types.GrantOperation{"Decrypt"},
			&types.GrantConstraints{EncryptionContextEquals: map[string]string{"app": "b"}}, ""), action: "CreateGrant", why: whyNoResource},
		{name: "no constraint", who: "bob", call: mxGrant(carol, []types.GrantOperation{"Decrypt"}, nil, ""), action: "CreateGrant", why: whyNoResource},
		{name: "grants are never for an AWS resource", who: "heidi", call: mxGrant(carol, []types.GrantOperation{"Decrypt"}, nil, ""), action: "CreateGrant", why: whyNoResource},
	})

	// PutKeyPolicy: kms:BypassPolicyLockoutSafetyCheck is present only when
	// the request has it.
	putPolicyCall := func(bypass bool) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			p := getPolicy(t, m.clients["root"], k.id)
			_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(k.id), Policy: aws.String(p), BypassPolicyLockoutSafetyCheck: bypass})
			return err
		}
	}
	runCondGroup(t, ctx, m, "policy lockout bypass", withPolicy(
		cond(alice, `["kms:PutKeyPolicy","kms:GetKeyPolicy"]`, `{"Null":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}`),
		cond(bob, `"kms:PutKeyPolicy"`, `{}`),
		`{"Effect":"Deny","Principal":{"AWS":`+bob+`},"Action":"kms:PutKeyPolicy","Resource":"*","Condition":{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"true"}}}`), "", []mxCase{
		{name: "alice without the parameter", who: "alice", call: putPolicyCall(false), allow: true},
		{name: "alice with it", who: "alice", call: putPolicyCall(true), action: "PutKeyPolicy", why: whyNoResource},
		{name: "bob without it", who: "bob", call: putPolicyCall(false), allow: true},
		{name: "bob with it", who: "bob", call: putPolicyCall(true), action: "PutKeyPolicy", why: whyResDeny},
	})

	// CreateKey by ivan's identity policy, then attribute-based access to
	// the keys tagged with his name.
	ivan := m.clients["ivan"]
	tag := func(k, v string) types.Tag { return types.Tag{TagKey: aws.String(k), TagValue: aws.String(v)} }
	for _, tc := range []struct {
		name string
		in   *kms.CreateKeyInput
		why  string // "" allowed
	}{
		{"defaults", &kms.CreateKeyInput{}, ""},
		{"tagged dev", &kms.CreateKeyInput{Tags: []types.Tag{tag("Stage", "dev")}}, ""},
		{"asymmetric", &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify}, whyNoIdentity},
		{"imported", &kms.CreateKeyInput{Origin: types.OriginTypeExternal}, whyNoIdentity},
		{"multi-Region", &kms.CreateKeyInput{MultiRegion: aws.Bool(true)}, whyNoIdentity},
		{"request tag", &kms.CreateKeyInput{Tags: []types.Tag{tag("Stage", "prod")}}, whyIDDeny},
		{"tag key", &kms.CreateKeyInput{Tags: []types.Tag{tag("Forbidden", "x")}}, whyIDDeny},
		{"bypass", &kms.CreateKeyInput{BypassPolicyLockoutSafetyCheck: true, Policy: aws.String(mxPolicy(false))}, whyIDDeny},
	} {
		_, err := ivan.CreateKey(ctx, tc.in)
		if tc.why == "" {
			require.NoError(t, err, "ivan CreateKey %s", tc.name)
		} else {
			requireDenied(t, err, mxARN("ivan"), "CreateKey", tc.why)
		}
	}
	own, err := ivan.CreateKey(ctx, &kms.CreateKeyInput{Tags: []types.Tag{tag("Owner", "ivan")}})
	require.NoError(t, err)
	others, err := m.clients["root"].CreateKey(ctx, &kms.CreateKeyInput{Tags: []types.Tag{tag("Owner", "bob")}})
	require.NoError(t, err)
	_, err = ivan.Encrypt(ctx, &kms.EncryptInput{KeyId: own.KeyMetadata.KeyId, Plaintext: []byte("x")})
	require.NoError(t, err, "ivan's own key")
	_, err = ivan.Encrypt(ctx, &kms.EncryptInput{KeyId: others.KeyMetadata.KeyId, Plaintext: []byte("x")})
	requireDenied(t, err, mxARN("ivan"), "Encrypt", whyNoIdentity)
	_, err = ivan.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: encrypt(t, m.clients["root"], aws.ToString(own.KeyMetadata.KeyId), []byte("x"), nil)})
	requireDenied(t, err, mxARN("ivan"), "Decrypt", whyNoIdentity)

	// Key policies with conditions kmsd cannot evaluate are refused.
	for c, msg := range map[string]string{
		`{"StringSortOf":{"aws:username":"bob"}}`:                       "unsupported condition operator",
		`{"IpAddress":{"aws:SourceIp":"300.0.0.1"}}`:                    "not a valid IpAddress value",
		`{"ForAllValues:StringEquals":{"kms:EncryptionContext:a":"b"}}`: "OverlyPermissiveCondition:EncryptionContext",
	} {
		_, err := m.clients["root"].CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(mxPolicy(false, cond(bob, `"kms:Encrypt"`, c)))})
		requireErrAs[*types.MalformedPolicyDocumentException](t, err, c)
		require.Contains(t, err.Error(), msg)
	}
}

// TestAuthzMatrixTimeAndTransport: aws:CurrentTime and aws:EpochTime
// follow the service clock; aws:SecureTransport is false over plain HTTP.
func TestAuthzMatrixTimeAndTransport(t *testing.T) {
	m := startMatrixServer(t)
	ctx := context.Background()
	id, _ := mkKey(t, m.clients["root"])
	frank := m.clients["frank"]
	_, err := frank.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
	require.NoError(t, err, "before the deadline")
	_, err = frank.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: encrypt(t, m.clients["root"], id, []byte("x"), nil)})
	requireDenied(t, err, mxARN("frank"), "Decrypt", whyNoIdentity)
	m.srv.Clock.Advance(2 * time.Hour)
	_, err = frank.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
	requireDenied(t, err, mxARN("frank"), "Encrypt", whyNoIdentity)
	_, err = frank.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	requireDenied(t, err, mxARN("frank"), "DescribeKey", whyNoIdentity)

	// grace's identity policy allows only TLS requests.
	_, err = m.clients["grace"].DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	requireDenied(t, err, mxARN("grace"), "DescribeKey", whyNoIdentity)
	_, err = m.clients["grace"].ListKeys(ctx, &kms.ListKeysInput{})
	requireDenied(t, err, mxARN("grace"), "ListKeys", whyNoIdentity)
}
