package service_test

import (
	"context"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"
)

// TestAuthzMatrixRequestParameters: conditions on the keys AWS KMS takes
// from request parameters (kms:SigningAlgorithm, kms:MessageType,
// kms:EncryptionAlgorithm, kms:MacAlgorithm, kms:DataKeyPairSpec,
// kms:ReEncryptOnSameKey, kms:WrappingAlgorithm, kms:WrappingKeySpec,
// kms:ExpirationModel, kms:ValidTo, kms:RotationPeriodInDays,
// aws:RequestTag/KEY and aws:TagKeys on TagResource and UntagResource).
// The api layer hands the decoded input to authorization
// (service.WithRequestInput).
func TestAuthzMatrixRequestParameters(t *testing.T) {
	m := startMatrixServer(t)
	ctx := context.Background()
	bob, alice := `"arn:aws:iam::111122223333:user/bob"`, `"arn:aws:iam::111122223333:user/alice"`
	cond := func(principal, actions, condition string) string {
		return `{"Effect":"Allow","Principal":{"AWS":` + principal + `},"Action":` + actions + `,"Resource":"*","Condition":` + condition + `}`
	}
	deny := func(actions, condition string) string {
		return `{"Effect":"Deny","Principal":"*","Action":` + actions + `,"Resource":"*","Condition":` + condition + `}`
	}
	// The root statement stays: it delegates to IAM, so a statement whose
	// condition fails leaves "no identity-based policy allows".
	withPolicy := func(in *kms.CreateKeyInput, statements ...string) *kms.CreateKeyInput {
		in.Policy = aws.String(mxPolicy(false, statements...))
		return in
	}

	// Probe: these keys exist only when the api layer attaches the decoded
	// input to the request's context (service.WithRequestInput).
	probe, err := m.clients["root"].CreateKey(ctx, withPolicy(&kms.CreateKeyInput{},
		cond(bob, `"kms:GenerateDataKey"`, `{"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}`)))
	require.NoError(t, err)
	_, err = m.clients["bob"].GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: probe.KeyMetadata.KeyId, NumberOfBytes: aws.Int32(16)})
	if errCode(err) == "AccessDeniedException" {
		t.Fatalf("kms:EncryptionAlgorithm is absent from a GenerateDataKey request: the api layer does not attach the decoded input "+
			"with service.WithRequestInput (api/handler.go op()): %v", err)
	}
	require.NoError(t, err)

	var pss []byte
	sign := func(alg types.SigningAlgorithmSpec, mt types.MessageType, msg []byte) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			out, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(k.id), Message: msg, MessageType: mt, SigningAlgorithm: alg})
			if err == nil && alg == types.SigningAlgorithmSpecRsassaPssSha256 {
				pss = out.Signature
			}
			return err
		}
	}
	digest := sha256.Sum256([]byte("m"))
	runCondGroup(t, ctx, m, "signing", withPolicy(&kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeSignVerify},
		cond(bob, `["kms:Sign","kms:Verify"]`, `{"StringLike":{"kms:SigningAlgorithm":"RSASSA_PSS*"},"StringEquals":{"kms:MessageType":"RAW"}}`)), "", []mxCase{
		{name: "PSS, raw message", who: "bob", call: sign(types.SigningAlgorithmSpecRsassaPssSha256, "", []byte("m")), allow: true},
		{name: "PSS, RAW named", who: "bob", call: sign(types.SigningAlgorithmSpecRsassaPssSha384, types.MessageTypeRaw, []byte("m")), allow: true},
		{name: "PKCS #1", who: "bob", call: sign(types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, "", []byte("m")), action: "Sign", why: whyNoIdentity},
		{name: "digest", who: "bob", call: sign(types.SigningAlgorithmSpecRsassaPssSha256, types.MessageTypeDigest, digest[:]), action: "Sign", why: whyNoIdentity},
		{name: "Verify PSS", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			out, err := c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(k.id), Message: []byte("m"), Signature: pss, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
			if err == nil && !out.SignatureValid {
				t.Error("signature not valid")
			}
			return err
		}, allow: true},
		{name: "Verify PKCS #1", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(k.id), Message: []byte("m"), Signature: pss, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPkcs1V15Sha256})
			return err
		}, action: "Verify", why: whyNoIdentity},
	})

	rsaEncrypt := func(alg types.EncryptionAlgorithmSpec) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(k.id), Plaintext: []byte("p"), EncryptionAlgorithm: alg})
			return err
		}
	}
	runCondGroup(t, ctx, m, "asymmetric encryption algorithm", withPolicy(&kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeEncryptDecrypt},
		mxAllow(bob, `["kms:Encrypt","kms:Decrypt"]`),
		deny(`["kms:Encrypt","kms:Decrypt"]`, `{"StringNotEquals":{"kms:EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}`)), "", []mxCase{
		{name: "OAEP SHA-256", who: "bob", call: rsaEncrypt(types.EncryptionAlgorithmSpecRsaesOaepSha256), allow: true},
		{name: "OAEP SHA-1", who: "bob", call: rsaEncrypt(types.EncryptionAlgorithmSpecRsaesOaepSha1), action: "Encrypt", why: whyResDeny},
	})

	dataKeyPair := func(spec types.DataKeyPairSpec) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(k.id), KeyPairSpec: spec})
			return err
		}
	}
	other, err := m.clients["root"].CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(mxPolicy(false, mxAllow(bob, `"kms:ReEncrypt*"`)))})
	require.NoError(t, err)
	reEncrypt := func(toOther bool) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			dst := k.id
			if toOther {
				dst = aws.ToString(other.KeyMetadata.KeyId)
			}
			_, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: k.ct, SourceEncryptionContext: map[string]string{"app": "a"}, DestinationKeyId: aws.String(dst)})
			return err
		}
	}
	runCondGroup(t, ctx, m, "symmetric: algorithm, data key pair spec, re-encryption", withPolicy(&kms.CreateKeyInput{},
		mxAllow(bob, `["kms:Encrypt","kms:Decrypt","kms:GenerateDataKey"]`),
		cond(bob, `"kms:GenerateDataKeyPair*"`, `{"StringLike":{"kms:DataKeyPairSpec":"RSA*"},"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}`),
		cond(bob, `"kms:ReEncrypt*"`, `{"Bool":{"kms:ReEncryptOnSameKey":"true"}}`),
		deny(`"kms:*"`, `{"StringNotEqualsIfExists":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}`)), "", []mxCase{
		{name: "default algorithm", who: "bob", call: mxEncrypt(nil), allow: true},
		{name: "named algorithm", who: "bob", call: rsaEncrypt(types.EncryptionAlgorithmSpecSymmetricDefault), allow: true},
		{name: "data key", who: "bob", call: func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(k.id), NumberOfBytes: aws.Int32(32)})
			return err
		}, allow: true},
		{name: "RSA pair", who: "bob", call: dataKeyPair(types.DataKeyPairSpecRsa2048), allow: true},
		{name: "ECC pair", who: "bob", call: dataKeyPair(types.DataKeyPairSpecEccNistP256), action: "GenerateDataKeyPairWithoutPlaintext", why: whyNoIdentity},
		{name: "re-encrypt under the same key", who: "bob", call: reEncrypt(false), allow: true},
		{name: "re-encrypt under another key", who: "bob", call: reEncrypt(true), action: "ReEncryptFrom", why: whyNoIdentity},
	})

	mac := func(op string, alg types.MacAlgorithmSpec) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			out, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(k.id), Message: []byte("m"), MacAlgorithm: alg})
			if op == "GenerateMac" || err != nil {
				return err
			}
			_, err = c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(k.id), Message: []byte("m"), Mac: out.Mac, MacAlgorithm: alg})
			return err
		}
	}
	runCondGroup(t, ctx, m, "MAC algorithm", withPolicy(&kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac},
		cond(bob, `"kms:GenerateMac"`, `{"StringEquals":{"kms:MacAlgorithm":"HMAC_SHA_256"}}`),
		cond(bob, `"kms:VerifyMac"`, `{"StringEquals":{"kms:MacAlgorithm":"HMAC_SHA_512"}}`)), "", []mxCase{
		{name: "GenerateMac HMAC_SHA_256", who: "bob", call: mac("GenerateMac", types.MacAlgorithmSpecHmacSha256), allow: true},
		{name: "VerifyMac HMAC_SHA_256", who: "bob", call: mac("VerifyMac", types.MacAlgorithmSpecHmacSha256), action: "VerifyMac", why: whyNoIdentity},
	})

	material := newMaterial()
	validTo := time.Now().Add(30 * 24 * time.Hour)
	getParams := func(alg types.AlgorithmSpec, spec types.WrappingKeySpec) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			_, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(k.id), WrappingAlgorithm: alg, WrappingKeySpec: spec})
			return err
		}
	}
	importAs := func(model types.ExpirationModelType, until time.Time) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			p := importParams(t, m.clients["root"], k.id, types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048)
			in := &kms.ImportKeyMaterialInput{KeyId: aws.String(k.id), ImportToken: p.ImportToken, ExpirationModel: model,
				EncryptedKeyMaterial: wrapForImport(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha256, material)}
			if !until.IsZero() {
				in.ValidTo = aws.Time(until)
			}
			_, err := c.ImportKeyMaterial(ctx, in)
			return err
		}
	}
	runCondGroup(t, ctx, m, "import", withPolicy(&kms.CreateKeyInput{Origin: types.OriginTypeExternal},
		cond(alice, `"kms:GetParametersForImport"`, `{"StringNotEquals":{"kms:WrappingAlgorithm":"RSAES_OAEP_SHA_1"},"StringEquals":{"kms:WrappingKeySpec":"RSA_2048"}}`),
		cond(alice, `"kms:ImportKeyMaterial"`, `{"Null":{"kms:ExpirationModel":"true"},"NumericLessThanEquals":{"kms:ValidTo":"`+strconv.FormatInt(validTo.Unix(), 10)+`"}}`)), "", []mxCase{
		{name: "OAEP SHA-256, RSA 2048", who: "alice", call: getParams(types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa2048), allow: true},
		{name: "OAEP SHA-1", who: "alice", call: getParams(types.AlgorithmSpecRsaesOaepSha1, types.WrappingKeySpecRsa2048), action: "GetParametersForImport", why: whyNoIdentity},
		{name: "RSA 4096", who: "alice", call: getParams(types.AlgorithmSpecRsaesOaepSha256, types.WrappingKeySpecRsa4096), action: "GetParametersForImport", why: whyNoIdentity},
		{name: "expiring, within ValidTo", who: "alice", call: importAs("", validTo.Add(-time.Hour)), allow: true},
		{name: "expiring, too late", who: "alice", call: importAs("", validTo.Add(time.Hour)), action: "ImportKeyMaterial", why: whyNoIdentity},
		{name: "expiration model named", who: "alice", call: importAs(types.ExpirationModelTypeKeyMaterialExpires, validTo.Add(-time.Hour)), action: "ImportKeyMaterial", why: whyNoIdentity},
		{name: "not expiring", who: "alice", call: importAs(types.ExpirationModelTypeKeyMaterialDoesNotExpire, time.Time{}), action: "ImportKeyMaterial", why: whyNoIdentity},
	})

	rotation := func(days int32) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, k *mxCondKey) error {
			in := &kms.EnableKeyRotationInput{KeyId: aws.String(k.id)}
			if days != 0 {
				in.RotationPeriodInDays = aws.Int32(days)
			}
			_, err := c.EnableKeyRotation(ctx, in)
			return err
		}
	}
	tagCall := func(k, v string) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, key *mxCondKey) error {
			_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(key.id), Tags: []types.Tag{{TagKey: aws.String(k), TagValue: aws.String(v)}}})
			return err
		}
	}
	untag := func(keys ...string) func(context.Context, *kms.Client, *mxCondKey) error {
		return func(ctx context.Context, c *kms.Client, key *mxCondKey) error {
			_, err := c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(key.id), TagKeys: keys})
			return err
		}
	}
	runCondGroup(t, ctx, m, "rotation period and tags", withPolicy(&kms.CreateKeyInput{},
		cond(alice, `"kms:EnableKeyRotation"`, `{"NumericGreaterThanEquals":{"kms:RotationPeriodInDays":180}}`),
		mxAllow(alice, `["kms:TagResource","kms:UntagResource"]`),
		deny(`"kms:TagResource"`, `{"StringEquals":{"aws:RequestTag/Stage":"prod"}}`),
		deny(`"kms:UntagResource"`, `{"ForAnyValue:StringEquals":{"aws:TagKeys":"Owner"}}`)), "", []mxCase{
		{name: "90 days", who: "alice", call: rotation(90), action: "EnableKeyRotation", why: whyNoIdentity},
		{name: "180 days", who: "alice", call: rotation(180), allow: true},
		{name: "default period", who: "alice", call: rotation(0), allow: true},
		{name: "tag Stage=dev", who: "alice", call: tagCall("Stage", "dev"), allow: true},
		{name: "tag Stage=prod", who: "alice", call: tagCall("Stage", "prod"), action: "TagResource", why: whyResDeny},
		{name: "untag Stage", who: "alice", call: untag("Stage"), allow: true},
		{name: "untag Owner", who: "alice", call: untag("Stage", "Owner"), action: "UntagResource", why: whyResDeny},
	})
}
