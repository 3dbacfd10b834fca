package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"hash"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/testserver"
)

// mkExternalKey creates a symmetric key with Origin EXTERNAL.
func mkExternalKey(t testing.TB, c *kms.Client) string {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{Origin: types.OriginTypeExternal})
	require.NoError(t, err)
	return *out.KeyMetadata.KeyId
}

// importParams calls GetParametersForImport.
func importParams(t testing.TB, c *kms.Client, keyID string, alg types.AlgorithmSpec, spec types.WrappingKeySpec) *kms.GetParametersForImportOutput {
	t.Helper()
	out, err := c.GetParametersForImport(context.Background(), &kms.GetParametersForImportInput{
		KeyId: aws.String(keyID), WrappingAlgorithm: alg, WrappingKeySpec: spec})
	require.NoError(t, err)
	return out
}

// wrapForImport wraps material under the public key of params the way an
// AWS KMS BYOK client does, with crypto/rsa (and AES-KWP of RFC 5649 for
// RSA_AES_KEY_WRAP_*: RSA-OAEP of an ephemeral AES-256 key, followed by the
// material wrapped under it).
func wrapForImport(t testing.TB, publicKeyDER []byte, alg types.AlgorithmSpec, material []byte) []byte {
	t.Helper()
	pk, err := x509.ParsePKIXPublicKey(publicKeyDER)
	require.NoError(t, err)
	pub, ok := pk.(*rsa.PublicKey)
	require.True(t, ok, "public key is %T", pk)
	var h hash.Hash
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaAesKeyWrapSha1:
		h = sha1.New()
	default:
		h = sha256.New()
	}
	switch alg {
	case types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaesOaepSha256:
		ct, err := rsa.EncryptOAEP(h, rand.Reader, pub, material, nil)
		require.NoError(t, err)
		return ct
	}
	aesKey := make([]byte, 32)
	_, _ = rand.Read(aesKey)
	ek, err := rsa.EncryptOAEP(h, rand.Reader, pub, aesKey, nil)
	require.NoError(t, err)
	wrapped, err := crypto.KeyWrapWithPadding(aesKey, material)
	require.NoError(t, err)
	return append(ek, wrapped...)
}

func importMaterial(ctx context.Context, c *kms.Client, keyID string, p *kms.GetParametersForImportOutput, alg types.AlgorithmSpec, t testing.TB, material []byte) (*kms.ImportKeyMaterialOutput, error) {
	return c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId:                aws.String(keyID),
		ImportToken:          p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
}

func newMaterial() []byte {
	m := make([]byte, 32)
	_, _ = rand.Read(m)
	return m
}

func TestSDKImportKeyMaterialRoundTrip(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	for _, alg := range []types.AlgorithmSpec{
		types.AlgorithmSpecRsaesOaepSha1, types.AlgorithmSpecRsaesOaepSha256,
		types.AlgorithmSpecRsaAesKeyWrapSha1, types.AlgorithmSpecRsaAesKeyWrapSha256,
	} {
		t.Run(string(alg), func(t *testing.T) {
			created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Origin: types.OriginTypeExternal, Description: aws.String("byok")})
			require.NoError(t, err)
			m := created.KeyMetadata
			id := *m.KeyId
			require.Equal(t, types.KeyStatePendingImport, m.KeyState)
			require.Equal(t, types.OriginTypeExternal, m.Origin)
			require.False(t, m.Enabled)
			require.Empty(t, m.ExpirationModel)
			require.Nil(t, m.ValidTo)
			require.Nil(t, m.CurrentKeyMaterialId)

			// Pending import: crypto operations fail.
			_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x")})
			requireErrAs[*types.KMSInvalidStateException](t, err)
			_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
			requireErrAs[*types.KMSInvalidStateException](t, err)
			_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
			requireErrAs[*types.KMSInvalidStateException](t, err)
			_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(id)})
			requireErrAs[*types.UnsupportedOperationException](t, err)

			p := importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
			require.Equal(t, keyARNPfx+id, *p.KeyId)
			requireTimeNear(t, srv.Clock.Now().Add(24*time.Hour), p.ParametersValidTo, 2*time.Second)
			pk, err := x509.ParsePKIXPublicKey(p.PublicKey)
			require.NoError(t, err)
			require.Equal(t, 2048, pk.(*rsa.PublicKey).N.BitLen())

			material := newMaterial()
			out, err := importMaterial(ctx, c, id, p, alg, t, material)
			require.NoError(t, err)
			require.Equal(t, keyARNPfx+id, *out.KeyId)
			require.Len(t, *out.KeyMaterialId, 64)

			m = describe(t, c, id)
			require.Equal(t, types.KeyStateEnabled, m.KeyState)
			require.True(t, m.Enabled)
			require.Equal(t, types.ExpirationModelTypeKeyMaterialDoesNotExpire, m.ExpirationModel)
			require.Nil(t, m.ValidTo)
			require.Equal(t, *out.KeyMaterialId, *m.CurrentKeyMaterialId)

			// The key encrypts with the imported material: kmsd's own
			// material is exactly what was imported.
			got, err := srv.Service.CurrentMaterialForTest(id)
			require.NoError(t, err)
			require.Equal(t, material, got)
			ct := encrypt(t, c, id, []byte("hello byok"), map[string]string{"a": "b"})
			dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct, EncryptionContext: map[string]string{"a": "b"}})
			require.NoError(t, err)
			require.Equal(t, []byte("hello byok"), dec.Plaintext)
			require.Equal(t, *out.KeyMaterialId, *dec.KeyMaterialId)

			// Rotation of imported material is not supported.
			_, err = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
			requireErrAs[*types.UnsupportedOperationException](t, err)
		})
	}
}

func TestSDKImportDeleteAndReimport(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id := mkExternalKey(t, c)
	alg := types.AlgorithmSpecRsaAesKeyWrapSha256
	p := importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	material := newMaterial()
	first, err := importMaterial(ctx, c, id, p, alg, t, material)
	require.NoError(t, err)
	ct := encrypt(t, c, id, []byte("survives"), nil)

	del, err := c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(keyARNPfx + id)})
	require.NoError(t, err)
	require.Equal(t, keyARNPfx+id, *del.KeyId)
	require.Equal(t, *first.KeyMaterialId, *del.KeyMaterialId)
	m := describe(t, c, id)
	require.Equal(t, types.KeyStatePendingImport, m.KeyState)
	require.Empty(t, m.ExpirationModel)
	require.Nil(t, m.CurrentKeyMaterialId)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	requireErrAs[*types.KMSInvalidStateException](t, err)
	// Deleting again has no effect.
	_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id)})
	require.NoError(t, err)

	// Different material is refused, with either wrapping algorithm.
	other := newMaterial()
	_, err = importMaterial(ctx, c, id, p, alg, t, other)
	requireErrAs[*types.IncorrectKeyMaterialException](t, err)
	p2 := importParams(t, c, id, types.AlgorithmSpecRsaesOaepSha1, types.WrappingKeySpecRsa3072)
	_, err = importMaterial(ctx, c, id, p2, types.AlgorithmSpecRsaesOaepSha1, t, other)
	requireErrAs[*types.IncorrectKeyMaterialException](t, err)
	require.Equal(t, types.KeyStatePendingImport, describe(t, c, id).KeyState)

	// The same material comes back as the same version: old ciphertexts
	// decrypt again.
	again, err := importMaterial(ctx, c, id, p2, types.AlgorithmSpecRsaesOaepSha1, t, material)
	require.NoError(t, err)
	require.Equal(t, *first.KeyMaterialId, *again.KeyMaterialId)
	require.Equal(t, types.KeyStateEnabled, describe(t, c, id).KeyState)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	require.NoError(t, err)
	require.Equal(t, []byte("survives"), dec.Plaintext)

	// A reimport into an enabled key must be the same material too.
	_, err = importMaterial(ctx, c, id, p2, types.AlgorithmSpecRsaesOaepSha1, t, other)
	requireErrAs[*types.IncorrectKeyMaterialException](t, err)
	_, err = importMaterial(ctx, c, id, p2, types.AlgorithmSpecRsaesOaepSha1, t, material)
	require.NoError(t, err)

	// And all of it survives a restart (log replay).
	srv.Restart()
	c = srv.Client
	dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	require.NoError(t, err)
	require.Equal(t, []byte("survives"), dec.Plaintext)
	_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = importMaterial(ctx, c, id, p, alg, t, material) // token from before the restart
	require.NoError(t, err)
}

func TestSDKImportTokenErrors(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, otherID := mkExternalKey(t, c), mkExternalKey(t, c)
	alg := types.AlgorithmSpecRsaesOaepSha256
	p := importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	pOther := importParams(t, c, otherID, alg, types.WrappingKeySpecRsa2048)
	material := newMaterial()

	// A token (and public key) of another key.
	_, err := c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: pOther.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, pOther.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	requireErrAs[*types.InvalidImportTokenException](t, err)
	// Garbage and tampered tokens.
	for _, tok := range [][]byte{[]byte("garbage"), append(bytes.Clone(p.ImportToken[:len(p.ImportToken)-1]), p.ImportToken[len(p.ImportToken)-1]^1)} {
		_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
			KeyId: aws.String(id), ImportToken: tok,
			EncryptedKeyMaterial: wrapForImport(t, p.PublicKey, alg, material),
			ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
		})
		requireErrAs[*types.InvalidImportTokenException](t, err)
	}
	// Material wrapped under another public key, or garbage.
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, pOther.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	requireErrAs[*types.InvalidCiphertextException](t, err)
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: p.ImportToken, EncryptedKeyMaterial: bytes.Repeat([]byte{7}, 256),
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	requireErrAs[*types.InvalidCiphertextException](t, err)
	// Material wrapped with the other algorithm of the same RSA key.
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p.PublicKey, types.AlgorithmSpecRsaesOaepSha1, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	requireErrAs[*types.InvalidCiphertextException](t, err)
	// Material of the wrong size.
	_, err = importMaterial(ctx, c, id, p, alg, t, material[:16])
	requireErrAs[*types.IncorrectKeyMaterialException](t, err)
	// Expiration rules.
	for name, in := range map[string]*kms.ImportKeyMaterialInput{
		"EXPIRES without ValidTo":       {ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires},
		"default model without ValidTo": {},
		"DOES_NOT_EXPIRE with ValidTo":  {ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire, ValidTo: aws.Time(srv.Clock.Now().Add(time.Hour))},
		"ValidTo in the past":           {ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires, ValidTo: aws.Time(srv.Clock.Now().Add(-time.Hour))},
		"ValidTo beyond 365 days":       {ExpirationModel: types.ExpirationModelTypeKeyMaterialExpires, ValidTo: aws.Time(srv.Clock.Now().Add(366 * 24 * time.Hour))},
	} {
		in.KeyId, in.ImportToken, in.EncryptedKeyMaterial = aws.String(id), p.ImportToken, wrapForImport(t, p.PublicKey, alg, material)
		_, err = c.ImportKeyMaterial(ctx, in)
		requireCode(t, err, "ValidationException", name)
	}
	require.Equal(t, types.KeyStatePendingImport, describe(t, c, id).KeyState)

	// Expired token: 25 hours later.
	srv.Clock.Advance(25 * time.Hour)
	_, err = importMaterial(ctx, c, id, p, alg, t, material)
	requireErrAs[*types.ExpiredImportTokenException](t, err)
	// Fresh parameters work.
	p = importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	_, err = importMaterial(ctx, c, id, p, alg, t, material)
	require.NoError(t, err)
}

func TestSDKImportOperationRules(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	awsKey, _ := mkKey(t, c)
	alg := types.AlgorithmSpecRsaesOaepSha256

	// Keys with AWS_KMS material.
	_, err := c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(awsKey),
		WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	requireErrAs[*types.UnsupportedOperationException](t, err)
	_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(awsKey)})
	requireErrAs[*types.UnsupportedOperationException](t, err)
	_, err = c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{KeyId: aws.String(awsKey), ImportToken: []byte("t"),
		EncryptedKeyMaterial: []byte("m"), ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire})
	requireErrAs[*types.UnsupportedOperationException](t, err)

	id := mkExternalKey(t, c)
	// Unsupported wrapping parameters.
	for _, in := range []*kms.GetParametersForImportInput{
		{WrappingAlgorithm: types.AlgorithmSpecRsaesPkcs1V15, WrappingKeySpec: types.WrappingKeySpecRsa2048},
		{WrappingAlgorithm: types.AlgorithmSpecSm2pke, WrappingKeySpec: types.WrappingKeySpecSm2},
	} {
		in.KeyId = aws.String(id)
		_, err = c.GetParametersForImport(ctx, in)
		requireErrAs[*types.UnsupportedOperationException](t, err)
	}
	// Aliases are not accepted; unknown keys are not found.
	mkAlias(t, c, "alias/byok", id)
	_, err = c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String("alias/byok"),
		WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	requireErrAs[*types.NotFoundException](t, err)

	// Pending deletion: no parameters, no import; cancelling the deletion
	// of a key without material leaves it PendingImport.
	p := importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	scheduleDeletion(t, c, id, 7)
	_, err = c.GetParametersForImport(ctx, &kms.GetParametersForImportInput{KeyId: aws.String(id),
		WrappingAlgorithm: alg, WrappingKeySpec: types.WrappingKeySpecRsa2048})
	requireErrAs[*types.KMSInvalidStateException](t, err)
	_, err = importMaterial(ctx, c, id, p, alg, t, newMaterial())
	requireErrAs[*types.KMSInvalidStateException](t, err)
	_, err = c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStatePendingImport, describe(t, c, id).KeyState)

	// Import into a disabled key keeps it disabled (reimport); deleting the
	// material of a disabled key makes it PendingImport.
	material := newMaterial()
	_, err = importMaterial(ctx, c, id, p, alg, t, material)
	require.NoError(t, err)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = importMaterial(ctx, c, id, p, alg, t, material)
	require.NoError(t, err)
	require.Equal(t, types.KeyStateDisabled, describe(t, c, id).KeyState)
	_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id),
		KeyMaterialId: aws.String(string(bytes.Repeat([]byte("a"), 64)))})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.DeleteImportedKeyMaterial(ctx, &kms.DeleteImportedKeyMaterialInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, types.KeyStatePendingImport, describe(t, c, id).KeyState)
}

func TestSDKImportedMaterialExpires(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id := mkExternalKey(t, c)
	alg := types.AlgorithmSpecRsaAesKeyWrapSha1
	p := importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	material := newMaterial()
	validTo := srv.Clock.Now().Add(2 * time.Hour).Truncate(time.Second)
	_, err := c.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: p.ImportToken,
		EncryptedKeyMaterial: wrapForImport(t, p.PublicKey, alg, material),
		ExpirationModel:      types.ExpirationModelTypeKeyMaterialExpires,
		ValidTo:              aws.Time(validTo),
	})
	require.NoError(t, err)
	m := describe(t, c, id)
	require.Equal(t, types.ExpirationModelTypeKeyMaterialExpires, m.ExpirationModel)
	require.NotNil(t, m.ValidTo)
	require.True(t, validTo.Equal(*m.ValidTo), "ValidTo %v, want %v", m.ValidTo, validTo)
	ct := encrypt(t, c, id, []byte("expiring"), nil)

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); srv.Service.RunMaintenance(runCtx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()

	// Not yet due: the material stays.
	srv.Clock.Advance(time.Hour)
	time.Sleep(100 * time.Millisecond)
	require.Equal(t, types.KeyStateEnabled, describe(t, c, id).KeyState)

	srv.Clock.Advance(time.Hour + time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for describe(t, c, id).KeyState != types.KeyStatePendingImport {
		require.True(t, time.Now().Before(deadline), "material not deleted after its ValidTo")
		time.Sleep(20 * time.Millisecond)
	}
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	requireErrAs[*types.KMSInvalidStateException](t, err)
	cancel()
	<-done

	srv.Restart()
	c = srv.Client
	m = describe(t, c, id)
	require.Equal(t, types.KeyStatePendingImport, m.KeyState)
	require.Empty(t, m.ExpirationModel)
	require.Nil(t, m.ValidTo)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	requireErrAs[*types.KMSInvalidStateException](t, err)

	// Reimport (now without expiry) brings the ciphertext back.
	p = importParams(t, c, id, alg, types.WrappingKeySpecRsa2048)
	_, err = importMaterial(ctx, c, id, p, alg, t, material)
	require.NoError(t, err)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct})
	require.NoError(t, err)
	require.Equal(t, []byte("expiring"), dec.Plaintext)
}
