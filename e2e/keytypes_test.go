package e2e

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/stretchr/testify/require"
)

// TestClusterEveryKeyType: a key of each type created through one node is
// used through another (replicated material, wrapped under replicated
// domain keys), and the results check out with the standard library.
func TestClusterEveryKeyType(t *testing.T) {
	c, _ := startCluster(t)
	ctx := within(t, 2*time.Minute)
	nodes := c.Nodes()
	a, b := nodes[0].SDK(true), nodes[1].SDK(false)

	create := func(spec types.KeySpec, usage types.KeyUsageType) string {
		t.Helper()
		out, err := a.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: usage})
		require.NoError(t, err, "%s", spec)
		id := *out.KeyMetadata.KeyId
		// Crypto operations are served from the local state: wait until
		// the other node has applied the creation.
		require.Eventually(t, func() bool {
			_, err := b.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
			return err == nil
		}, 10*time.Second, 20*time.Millisecond)
		return id
	}
	publicKey := func(id string) any {
		t.Helper()
		out, err := a.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
		require.NoError(t, err)
		return pub
	}
	msg := []byte("release v1.2.3")

	t.Run("symmetric", func(t *testing.T) {
		id := create(types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
		enc, err := a.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: msg})
		require.NoError(t, err)
		dec, err := b.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, msg, dec.Plaintext)
		// Rotation at one node; the old ciphertext still decrypts at the other.
		_, err = a.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		dec, err = b.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, msg, dec.Plaintext)
	})

	t.Run("ECC_NIST_P256 sign", func(t *testing.T) {
		id := create(types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify)
		sig, err := b.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		require.NoError(t, err)
		d := sha256.Sum256(msg)
		require.True(t, ecdsa.VerifyASN1(publicKey(id).(*ecdsa.PublicKey), d[:], sig.Signature))
	})

	t.Run("ECC_SECG_P256K1 sign", func(t *testing.T) {
		id := create(types.KeySpecEccSecgP256k1, types.KeyUsageTypeSignVerify)
		sig, err := b.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256})
		require.NoError(t, err)
		// crypto/x509 knows no secp256k1: read the SubjectPublicKeyInfo
		// here and check with decred's implementation.
		out, err := a.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		var spki struct {
			Algorithm struct{ Algorithm, Curve asn1.ObjectIdentifier }
			Key       asn1.BitString
		}
		rest, err := asn1.Unmarshal(out.PublicKey, &spki)
		require.NoError(t, err)
		require.Empty(t, rest)
		require.Equal(t, asn1.ObjectIdentifier{1, 3, 132, 0, 10}, spki.Algorithm.Curve)
		pub, err := secp256k1.ParsePubKey(spki.Key.Bytes)
		require.NoError(t, err)
		parsed, err := secpecdsa.ParseDERSignature(sig.Signature)
		require.NoError(t, err)
		d := sha256.Sum256(msg)
		require.True(t, parsed.Verify(d[:], pub))
	})

	t.Run("RSA_2048 sign and encrypt", func(t *testing.T) {
		id := create(types.KeySpecRsa2048, types.KeyUsageTypeSignVerify)
		sig, err := b.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256})
		require.NoError(t, err)
		d := sha256.Sum256(msg)
		require.NoError(t, rsa.VerifyPSS(publicKey(id).(*rsa.PublicKey), crypto.SHA256, d[:], sig.Signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}))

		encID := create(types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)
		ct, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, publicKey(encID).(*rsa.PublicKey), msg, nil)
		require.NoError(t, err)
		dec, err := b.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(encID), CiphertextBlob: ct, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		require.NoError(t, err)
		require.Equal(t, msg, dec.Plaintext)
	})

	t.Run("Ed25519 sign", func(t *testing.T) {
		id := create(types.KeySpecEccNistEdwards25519, types.KeyUsageTypeSignVerify)
		sig, err := b.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), Message: msg, SigningAlgorithm: types.SigningAlgorithmSpecEd25519Sha512, MessageType: types.MessageTypeRaw})
		require.NoError(t, err)
		require.True(t, ed25519.Verify(publicKey(id).(ed25519.PublicKey), msg, sig.Signature))
	})

	t.Run("HMAC_512", func(t *testing.T) {
		id := create(types.KeySpecHmac512, types.KeyUsageTypeGenerateVerifyMac)
		mac, err := a.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: aws.String(id), Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha512})
		require.NoError(t, err)
		v, err := b.VerifyMac(ctx, &kms.VerifyMacInput{KeyId: aws.String(id), Message: msg, Mac: mac.Mac, MacAlgorithm: types.MacAlgorithmSpecHmacSha512})
		require.NoError(t, err)
		require.True(t, v.MacValid)
		require.Len(t, mac.Mac, sha512.Size)
		require.False(t, hmac.Equal(mac.Mac, make([]byte, sha512.Size)))
	})

	t.Run("data key pair", func(t *testing.T) {
		id := create(types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
		out, err := a.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(id), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		require.NoError(t, err)
		priv, err := x509.ParsePKCS8PrivateKey(out.PrivateKeyPlaintext)
		require.NoError(t, err)
		pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
		require.NoError(t, err)
		require.True(t, priv.(*ecdsa.PrivateKey).PublicKey.Equal(pub))
		dec, err := b.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, out.PrivateKeyPlaintext, dec.Plaintext)
	})
}
