package service_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/testserver"
)

// hmacCase is one HMAC key spec with what AWS documents for it.
type hmacCase struct {
	spec     types.KeySpec
	alg      types.MacAlgorithmSpec
	keyBytes int
	macBytes int
	hash     func() hash.Hash
}

var hmacCases = []hmacCase{
	{types.KeySpecHmac224, types.MacAlgorithmSpecHmacSha224, 28, 28, sha256.New224},
	{types.KeySpecHmac256, types.MacAlgorithmSpecHmacSha256, 32, 32, sha256.New},
	{types.KeySpecHmac384, types.MacAlgorithmSpecHmacSha384, 48, 48, sha512.New384},
	{types.KeySpecHmac512, types.MacAlgorithmSpecHmacSha512, 64, 64, sha512.New},
}

// otherMacAlg returns an algorithm that is not the case's own.
func (hc hmacCase) otherMacAlg() types.MacAlgorithmSpec {
	for _, o := range hmacCases {
		if o.alg != hc.alg {
			return o.alg
		}
	}
	panic("unreachable")
}

func mkHMACKey(t testing.TB, c *kms.Client, spec types.KeySpec) (string, string) {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{KeySpec: spec, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err, "CreateKey %s", spec)
	return aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
}

func generateMac(t testing.TB, c *kms.Client, ref string, alg types.MacAlgorithmSpec, msg []byte) []byte {
	t.Helper()
	out, err := c.GenerateMac(context.Background(), &kms.GenerateMacInput{KeyId: aws.String(ref), MacAlgorithm: alg, Message: msg})
	require.NoError(t, err, "GenerateMac %s %s", ref, alg)
	return out.Mac
}

func verifyMacOK(t testing.TB, c *kms.Client, ref string, alg types.MacAlgorithmSpec, msg, mac []byte) {
	t.Helper()
	out, err := c.VerifyMac(context.Background(), &kms.VerifyMacInput{KeyId: aws.String(ref), MacAlgorithm: alg, Message: msg, Mac: mac})
	require.NoError(t, err, "VerifyMac %s %s", ref, alg)
	require.True(t, out.MacValid)
	require.Equal(t, alg, out.MacAlgorithm)
}

func verifyMacErr(c *kms.Client, ref string, alg types.MacAlgorithmSpec, msg, mac []byte) error {
	_, err := c.VerifyMac(context.Background(), &kms.VerifyMacInput{KeyId: aws.String(ref), MacAlgorithm: alg, Message: msg, Mac: mac})
	return err
}

// TestHMACEverySpec creates a key of every HMAC spec, checks its metadata,
// and checks its MACs are standard HMACs: crypto/hmac over the key's
// material (read through the service's own unwrap path) gives the same
// bytes, and VerifyMac accepts them.
func TestHMACEverySpec(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	for _, hc := range hmacCases {
		t.Run(string(hc.spec), func(t *testing.T) {
			out, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: hc.spec, KeyUsage: types.KeyUsageTypeGenerateVerifyMac, Description: aws.String("mac")})
			require.NoError(t, err)
			for _, md := range []*types.KeyMetadata{out.KeyMetadata, describe(t, c, aws.ToString(out.KeyMetadata.KeyId))} {
				require.Equal(t, hc.spec, md.KeySpec)
				require.Equal(t, types.CustomerMasterKeySpec(hc.spec), md.CustomerMasterKeySpec)
				require.Equal(t, types.KeyUsageTypeGenerateVerifyMac, md.KeyUsage)
				require.Equal(t, []types.MacAlgorithmSpec{hc.alg}, md.MacAlgorithms)
				require.Empty(t, md.EncryptionAlgorithms)
				require.Empty(t, md.SigningAlgorithms)
				require.Equal(t, types.KeyStateEnabled, md.KeyState)
				require.True(t, md.Enabled)
				require.Equal(t, types.OriginTypeAwsKms, md.Origin)
			}
			id, arn := aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)

			// The wire form has no EncryptionAlgorithms member at all.
			res := rawCall(t, srv, "DescribeKey", map[string]any{"KeyId": id})
			requireRawOK(t, res)
			md := res.Body["KeyMetadata"].(map[string]any)
			require.NotContains(t, md, "EncryptionAlgorithms")
			require.Equal(t, []any{string(hc.alg)}, md["MacAlgorithms"])

			material, err := srv.Service.CurrentMaterialForTest(id)
			require.NoError(t, err)
			require.Len(t, material, hc.keyBytes, "key material of %s", hc.spec)

			for _, msg := range [][]byte{{0}, []byte("hello, HMAC"), bytes.Repeat([]byte{0xa5}, 4096)} {
				g, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: hc.alg, Message: msg})
				require.NoError(t, err)
				require.Equal(t, arn, aws.ToString(g.KeyId))
				require.Equal(t, hc.alg, g.MacAlgorithm)
				require.Len(t, g.Mac, hc.macBytes)
				std := hmac.New(hc.hash, material)
				std.Write(msg)
				require.Equal(t, std.Sum(nil), g.Mac, "kmsd's MAC is not crypto/hmac's")
				// Deterministic: the same message gives the same MAC.
				require.Equal(t, g.Mac, generateMac(t, c, id, hc.alg, msg))

				verifyMacOK(t, c, id, hc.alg, msg, g.Mac)
				v, err := c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(arn), MacAlgorithm: hc.alg, Message: msg, Mac: g.Mac})
				require.NoError(t, err)
				require.Equal(t, arn, aws.ToString(v.KeyId))
			}
			// An alias names the key too.
			alias := "alias/mac-" + string(hc.spec)
			mkAlias(t, c, alias, id)
			mac := generateMac(t, c, alias, hc.alg, []byte("via alias"))
			verifyMacOK(t, c, aliasARNPfx+alias, hc.alg, []byte("via alias"), mac)
		})
	}
}

// TestHMACDistinctKeys checks two keys of the same spec have different
// material, and one key's MAC does not verify under the other.
func TestHMACDistinctKeys(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	a, _ := mkHMACKey(t, c, types.KeySpecHmac256)
	b, _ := mkHMACKey(t, c, types.KeySpecHmac256)
	msg := []byte("same message")
	ma, mb := generateMac(t, c, a, types.MacAlgorithmSpecHmacSha256, msg), generateMac(t, c, b, types.MacAlgorithmSpecHmacSha256, msg)
	require.NotEqual(t, ma, mb)
	requireErrAs[*types.KMSInvalidMacException](t, verifyMacErr(c, b, types.MacAlgorithmSpecHmacSha256, msg, ma))
}

// TestHMACInvalidMac: a MAC with one flipped bit, a truncated or extended
// MAC, or a MAC of another message is KMSInvalidMacException, never
// MacValid false.
func TestHMACInvalidMac(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	for _, hc := range hmacCases {
		id, _ := mkHMACKey(t, c, hc.spec)
		msg := []byte("authentic message")
		mac := generateMac(t, c, id, hc.alg, msg)
		for bit := 0; bit < len(mac)*8; bit += 37 {
			bad := bytes.Clone(mac)
			bad[bit/8] ^= 1 << (bit % 8)
			e := requireErrAs[*types.KMSInvalidMacException](t, verifyMacErr(c, id, hc.alg, msg, bad), "%s bit %d", hc.spec, bit)
			require.NotEmpty(t, e.ErrorMessage())
		}
		for _, bad := range [][]byte{mac[:len(mac)-1], append(bytes.Clone(mac), 0), {1}, make([]byte, 6144)} {
			requireErrAs[*types.KMSInvalidMacException](t, verifyMacErr(c, id, hc.alg, msg, bad), "%s %d-byte MAC", hc.spec, len(bad))
		}
		requireErrAs[*types.KMSInvalidMacException](t, verifyMacErr(c, id, hc.alg, []byte("authentic messagE"), mac))
		// The wire form of the error.
		res := rawCall(t, srv, "VerifyMac", map[string]any{"KeyId": id, "MacAlgorithm": string(hc.alg), "Message": b64(msg), "Mac": b64(mac[1:])})
		requireRawError(t, res, "KMSInvalidMacException")
		require.NotContains(t, res.Body, "MacValid")
	}
}

// TestHMACWrongAlgorithm: GenerateMac and VerifyMac with an algorithm the
// key's spec does not support are InvalidKeyUsageException; an algorithm
// outside the enum is a ValidationException.
func TestHMACWrongAlgorithm(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	for _, hc := range hmacCases {
		id, _ := mkHMACKey(t, c, hc.spec)
		mac := generateMac(t, c, id, hc.alg, []byte("m"))
		for _, o := range hmacCases {
			if o.alg == hc.alg {
				continue
			}
			_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: o.alg, Message: []byte("m")})
			requireErrAs[*types.InvalidKeyUsageException](t, err, "%s with %s", hc.spec, o.alg)
			requireErrAs[*types.InvalidKeyUsageException](t, verifyMacErr(c, id, o.alg, []byte("m"), mac), "%s with %s", hc.spec, o.alg)
		}
		requireRawError(t, rawCall(t, srv, "GenerateMac", map[string]any{"KeyId": id, "MacAlgorithm": "HMAC_SHA_1", "Message": b64([]byte("m"))}), "ValidationException")
		requireRawError(t, rawCall(t, srv, "GenerateMac", map[string]any{"KeyId": id, "Message": b64([]byte("m"))}), "ValidationException")
		requireRawError(t, rawCall(t, srv, "VerifyMac", map[string]any{"KeyId": id, "MacAlgorithm": "SYMMETRIC_DEFAULT", "Message": b64([]byte("m")), "Mac": b64(mac)}), "ValidationException")
	}
}

// TestHMACWrongKeyUsage: an HMAC key is not an encryption key, and a
// symmetric encryption key computes no MACs.
func TestHMACWrongKeyUsage(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	hid, harn := mkHMACKey(t, c, types.KeySpecHmac256)
	sid, _ := mkKey(t, c)

	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(hid), Plaintext: []byte("x")})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "Encrypt")
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(hid), KeySpec: types.DataKeySpecAes256})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "GenerateDataKey")
	_, err = c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(hid), NumberOfBytes: aws.Int32(16)})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "GenerateDataKeyWithoutPlaintext")
	blob := encrypt(t, c, sid, []byte("secret"), nil)
	_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String(hid)})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "ReEncrypt to an HMAC key")
	// A ciphertext blob that names the HMAC key (its header rewritten).
	raw, _, err := crypto.ParseKeyID(hid)
	require.NoError(t, err)
	forged := bytes.Clone(blob)
	copy(forged[4:20], raw[:])
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: forged})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "Decrypt under an HMAC key")

	// MAC operations on a symmetric encryption key.
	_, err = c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(sid), MacAlgorithm: types.MacAlgorithmSpecHmacSha256, Message: []byte("m")})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "GenerateMac on SYMMETRIC_DEFAULT")
	mac := generateMac(t, c, hid, types.MacAlgorithmSpecHmacSha256, []byte("m"))
	requireErrAs[*types.InvalidKeyUsageException](t, verifyMacErr(c, sid, types.MacAlgorithmSpecHmacSha256, []byte("m"), mac), "VerifyMac on SYMMETRIC_DEFAULT")

	// Rotation is for symmetric encryption keys only.
	_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(hid)})
	requireErrAs[*types.UnsupportedOperationException](t, err, "EnableKeyRotation")
	_, err = c.DisableKeyRotation(ctx, &kms.DisableKeyRotationInput{KeyId: aws.String(hid)})
	requireErrAs[*types.UnsupportedOperationException](t, err, "DisableKeyRotation")
	_, err = c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(harn)})
	requireErrAs[*types.UnsupportedOperationException](t, err, "GetKeyRotationStatus")
	_, err = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(hid)})
	requireErrAs[*types.UnsupportedOperationException](t, err, "RotateKeyOnDemand")
	_, err = c.ListKeyRotations(ctx, &kms.ListKeyRotationsInput{KeyId: aws.String(hid)})
	requireErrAs[*types.UnsupportedOperationException](t, err, "ListKeyRotations")
	require.Empty(t, srv.FSM.KeysDueForRotation(srv.Clock.Now().Add(10000*rotDay).UnixNano()))
}

// TestHMACCreateKeyValidation: an HMAC spec requires GENERATE_VERIFY_MAC,
// and GENERATE_VERIFY_MAC requires an HMAC spec.
func TestHMACCreateKeyValidation(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	before := len(listAllKeys(t, c))
	for _, hc := range hmacCases {
		for _, usage := range []types.KeyUsageType{"", types.KeyUsageTypeEncryptDecrypt, types.KeyUsageTypeSignVerify, types.KeyUsageTypeKeyAgreement} {
			_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: hc.spec, KeyUsage: usage})
			requireCode(t, err, "ValidationException", "%s with usage %q", hc.spec, usage)
		}
	}
	_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	requireCode(t, err, "ValidationException", "SYMMETRIC_DEFAULT with GENERATE_VERIFY_MAC")
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecSymmetricDefault, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	requireCode(t, err, "ValidationException", "SYMMETRIC_DEFAULT with GENERATE_VERIFY_MAC")
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, CustomerMasterKeySpec: types.CustomerMasterKeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	requireCode(t, err, "ValidationException", "KeySpec and CustomerMasterKeySpec")
	require.Len(t, listAllKeys(t, c), before, "a rejected CreateKey created a key")

	// The deprecated CustomerMasterKeySpec still names an HMAC spec.
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecHmac384, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)
	require.Equal(t, types.KeySpecHmac384, out.KeyMetadata.KeySpec)
	require.Equal(t, []types.MacAlgorithmSpec{types.MacAlgorithmSpecHmacSha384}, out.KeyMetadata.MacAlgorithms)
	// A symmetric key's metadata has no MacAlgorithms.
	id, _ := mkKey(t, c)
	md := describe(t, c, id)
	require.Empty(t, md.MacAlgorithms)
	require.Equal(t, []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecSymmetricDefault}, md.EncryptionAlgorithms)
}

// TestHMACMessageLimits: Message is 1 to 4096 bytes and Mac 1 to 6144
// bytes (ValidationException), and both are required.
func TestHMACMessageLimits(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkHMACKey(t, c, types.KeySpecHmac512)
	alg := types.MacAlgorithmSpecHmacSha512
	mac := generateMac(t, c, id, alg, bytes.Repeat([]byte{7}, 4096))
	verifyMacOK(t, c, id, alg, bytes.Repeat([]byte{7}, 4096), mac)

	for _, msg := range [][]byte{{}, make([]byte, 4097), make([]byte, 1<<16)} {
		_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: alg, Message: msg})
		requireCode(t, err, "ValidationException", "GenerateMac of %d bytes", len(msg))
		requireCode(t, verifyMacErr(c, id, alg, msg, mac), "ValidationException", "VerifyMac of %d bytes", len(msg))
	}
	requireCode(t, verifyMacErr(c, id, alg, []byte("m"), []byte{}), "ValidationException", "empty Mac")
	requireCode(t, verifyMacErr(c, id, alg, []byte("m"), make([]byte, 6145)), "ValidationException", "6145-byte Mac")
	// The message is sensitive: a validation message does not echo it.
	res := rawCall(t, srv, "GenerateMac", map[string]any{"KeyId": id, "MacAlgorithm": string(alg), "Message": b64(bytes.Repeat([]byte("Q"), 4097))})
	requireRawError(t, res, "ValidationException")
	require.NotContains(t, res.Message, "QQQQ")
	requireRawError(t, rawCall(t, srv, "GenerateMac", map[string]any{"KeyId": id, "MacAlgorithm": string(alg)}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "VerifyMac", map[string]any{"KeyId": id, "MacAlgorithm": string(alg), "Message": b64([]byte("m"))}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "GenerateMac", map[string]any{"MacAlgorithm": string(alg), "Message": b64([]byte("m"))}), "ValidationException")
	_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String("alias/none"), MacAlgorithm: alg, Message: []byte("m")})
	requireErrAs[*types.NotFoundException](t, err)
}

// TestHMACKeyStates applies key-states.md: a disabled key is
// DisabledException, a key pending deletion KMSInvalidStateException, for
// both operations; DescribeKey works in every state; cancelling the
// deletion leaves the key disabled, and enabling it restores its MACs.
func TestHMACKeyStates(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkHMACKey(t, c, types.KeySpecHmac224)
	alg := types.MacAlgorithmSpecHmacSha224
	msg := []byte("state")
	mac := generateMac(t, c, id, alg, msg)
	gen := func() error {
		_, err := c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: alg, Message: msg})
		return err
	}

	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	requireErrAs[*types.DisabledException](t, gen(), "GenerateMac on a disabled key")
	requireErrAs[*types.DisabledException](t, verifyMacErr(c, id, alg, msg, mac), "VerifyMac on a disabled key")
	require.Equal(t, types.KeyStateDisabled, describe(t, c, id).KeyState)
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	verifyMacOK(t, c, id, alg, msg, mac)

	scheduleDeletion(t, c, id, 7)
	requireErrAs[*types.KMSInvalidStateException](t, gen(), "GenerateMac pending deletion")
	requireErrAs[*types.KMSInvalidStateException](t, verifyMacErr(c, id, alg, msg, mac), "VerifyMac pending deletion")
	md := describe(t, c, id)
	require.Equal(t, types.KeyStatePendingDeletion, md.KeyState)
	require.Equal(t, []types.MacAlgorithmSpec{alg}, md.MacAlgorithms)

	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	requireErrAs[*types.DisabledException](t, gen(), "GenerateMac after cancelled deletion")
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, mac, generateMac(t, c, id, alg, msg))

	// DryRun: the checks run, then DryRunOperationException.
	dry := aws.Bool(true)
	_, err = c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: alg, Message: msg, DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(id), MacAlgorithm: alg, Message: msg, Mac: mac, DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	bad := bytes.Clone(mac)
	bad[0] ^= 1
	_, err = c.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(id), MacAlgorithm: alg, Message: msg, Mac: bad, DryRun: dry})
	requireErrAs[*types.KMSInvalidMacException](t, err, "a dry run of an invalid MAC")
	_, err = c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), MacAlgorithm: types.MacAlgorithmSpecHmacSha256, Message: msg, DryRun: dry})
	requireErrAs[*types.InvalidKeyUsageException](t, err, "a dry run with the wrong algorithm")

	// The key is deleted when its window has passed: then NotFound.
	scheduleDeletion(t, c, id, 7)
	srv.Clock.Advance(8 * rotDay)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	requireErrAs[*types.NotFoundException](t, gen())
}

// TestHMACSurvivesRestart restarts the node from its log and then from a
// snapshot: every HMAC key keeps its spec, usage and material, so MACs made
// before verify after and new MACs are equal to old ones.
func TestHMACSurvivesRestart(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	type made struct {
		hc  hmacCase
		id  string
		mac []byte
	}
	msg := []byte("persist me")
	var keys []made
	for _, hc := range hmacCases {
		id, _ := mkHMACKey(t, srv.Client, hc.spec)
		keys = append(keys, made{hc, id, generateMac(t, srv.Client, id, hc.alg, msg)})
	}
	hash1, err := srv.FSM.StateHash()
	require.NoError(t, err)
	check := func(stage string) {
		t.Helper()
		c := srv.Client
		for _, k := range keys {
			md := describe(t, c, k.id)
			require.Equal(t, k.hc.spec, md.KeySpec, stage)
			require.Equal(t, types.KeyUsageTypeGenerateVerifyMac, md.KeyUsage, stage)
			require.Equal(t, []types.MacAlgorithmSpec{k.hc.alg}, md.MacAlgorithms, stage)
			verifyMacOK(t, c, k.id, k.hc.alg, msg, k.mac)
			require.Equal(t, k.mac, generateMac(t, c, k.id, k.hc.alg, msg), stage)
		}
	}
	restartAndCatchUp(t, srv)
	check("after log replay")
	hash2, err := srv.FSM.StateHash()
	require.NoError(t, err)
	require.Equal(t, hash1, hash2, "state hash after log replay")

	require.NoError(t, srv.Node.Snapshot())
	restartAndCatchUp(t, srv)
	check("after snapshot restore")
	hash3, err := srv.FSM.StateHash()
	require.NoError(t, err)
	require.Equal(t, hash1, hash3, "state hash after snapshot restore")
}
