package service_test

import (
	"bytes"
	"context"
	gocrypto "crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	secpecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"github.com/stretchr/testify/require"

	kmscrypto "github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/testserver"
)

// Asymmetric keys are checked against the standard library: every signature
// kmsd makes is verified outside kmsd with the public key GetPublicKey
// returns, and RSA ciphertexts made outside kmsd decrypt inside it. RSA key
// generation is slow under -race, so each test makes few RSA keys.

var rsaSigningAlgs = []types.SigningAlgorithmSpec{
	types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512,
	types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512,
}

var rsaEncryptionAlgs = []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecRsaesOaepSha256}

// algHash is the hash of a signing algorithm.
func algHash(alg types.SigningAlgorithmSpec) gocrypto.Hash {
	switch alg {
	case types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecEcdsaSha256:
		return gocrypto.SHA256
	case types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecEcdsaSha384:
		return gocrypto.SHA384
	}
	return gocrypto.SHA512
}

func digestOf(h gocrypto.Hash, msg []byte) []byte {
	var hh hash.Hash
	switch h {
	case gocrypto.SHA256:
		hh = sha256.New()
	case gocrypto.SHA384:
		hh = sha512.New384()
	default:
		hh = sha512.New()
	}
	hh.Write(msg)
	return hh.Sum(nil)
}

// verifyOutside checks sig with the standard library. msg is the message
// (isDigest false) or its digest (isDigest true), as given to Sign.
func verifyOutside(t testing.TB, pub any, alg types.SigningAlgorithmSpec, msg []byte, isDigest bool, sig []byte) {
	t.Helper()
	h := algHash(alg)
	d := msg
	if !isDigest && alg != types.SigningAlgorithmSpecEd25519Sha512 {
		d = digestOf(h, msg)
	}
	switch alg {
	case types.SigningAlgorithmSpecRsassaPkcs1V15Sha256, types.SigningAlgorithmSpecRsassaPkcs1V15Sha384, types.SigningAlgorithmSpecRsassaPkcs1V15Sha512:
		require.NoError(t, rsa.VerifyPKCS1v15(pub.(*rsa.PublicKey), h, d, sig), "%s", alg)
	case types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecRsassaPssSha384, types.SigningAlgorithmSpecRsassaPssSha512:
		// AWS KMS: MGF1 with the same hash, salt as long as the hash.
		require.NoError(t, rsa.VerifyPSS(pub.(*rsa.PublicKey), h, d, sig, &rsa.PSSOptions{SaltLength: h.Size()}), "%s", alg)
	case types.SigningAlgorithmSpecEcdsaSha256, types.SigningAlgorithmSpecEcdsaSha384, types.SigningAlgorithmSpecEcdsaSha512:
		require.True(t, ecdsa.VerifyASN1(pub.(*ecdsa.PublicKey), d, sig), "%s: not a valid DER ECDSA signature", alg)
	case types.SigningAlgorithmSpecEd25519Sha512:
		require.True(t, ed25519.Verify(pub.(ed25519.PublicKey), msg, sig), "%s", alg)
	case types.SigningAlgorithmSpecEd25519PhSha512:
		// KMS prehashes the 64-byte digest once more (FIPS 186-5 7.8.1).
		require.True(t, isDigest)
		ph := sha512.Sum512(msg)
		require.NoError(t, ed25519.VerifyWithOptions(pub.(ed25519.PublicKey), ph[:], sig, &ed25519.Options{Hash: gocrypto.SHA512}), "%s", alg)
	default:
		t.Fatalf("no outside verifier for %s", alg)
	}
}

func mkAsymKey(t testing.TB, c *kms.Client, spec types.KeySpec, usage types.KeyUsageType) (string, string) {
	t.Helper()
	out, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{KeySpec: spec, KeyUsage: usage})
	require.NoError(t, err, "CreateKey %s %s", spec, usage)
	require.Equal(t, spec, out.KeyMetadata.KeySpec)
	require.Equal(t, usage, out.KeyMetadata.KeyUsage)
	return aws.ToString(out.KeyMetadata.KeyId), aws.ToString(out.KeyMetadata.Arn)
}

// publicKey calls GetPublicKey, checks its metadata members and returns
// the parsed key and its DER.
func publicKey(t testing.TB, c *kms.Client, ref string, spec types.KeySpec, usage types.KeyUsageType) (any, []byte) {
	t.Helper()
	out, err := c.GetPublicKey(context.Background(), &kms.GetPublicKeyInput{KeyId: aws.String(ref)})
	require.NoError(t, err, "GetPublicKey %s", ref)
	require.Equal(t, spec, out.KeySpec)
	require.Equal(t, usage, out.KeyUsage)
	require.Contains(t, aws.ToString(out.KeyId), keyARNPfx)
	if spec == types.KeySpecEccNistEdwards25519 {
		require.Empty(t, out.CustomerMasterKeySpec)
	} else {
		require.Equal(t, types.CustomerMasterKeySpec(spec), out.CustomerMasterKeySpec)
	}
	if usage == types.KeyUsageTypeSignVerify {
		require.Empty(t, out.EncryptionAlgorithms)
		require.NotEmpty(t, out.SigningAlgorithms)
	} else {
		require.Equal(t, rsaEncryptionAlgs, out.EncryptionAlgorithms)
		require.Empty(t, out.SigningAlgorithms)
	}
	pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
	require.NoError(t, err, "PublicKey is not DER SubjectPublicKeyInfo")
	switch spec {
	case types.KeySpecRsa2048, types.KeySpecRsa3072, types.KeySpecRsa4096:
		bits := map[types.KeySpec]int{types.KeySpecRsa2048: 2048, types.KeySpecRsa3072: 3072, types.KeySpecRsa4096: 4096}[spec]
		require.Equal(t, bits, pub.(*rsa.PublicKey).N.BitLen())
	case types.KeySpecEccNistP256:
		require.Equal(t, elliptic.P256(), pub.(*ecdsa.PublicKey).Curve)
	case types.KeySpecEccNistP384:
		require.Equal(t, elliptic.P384(), pub.(*ecdsa.PublicKey).Curve)
	case types.KeySpecEccNistP521:
		require.Equal(t, elliptic.P521(), pub.(*ecdsa.PublicKey).Curve)
	case types.KeySpecEccNistEdwards25519:
		require.Len(t, pub.(ed25519.PublicKey), ed25519.PublicKeySize)
	}
	return pub, out.PublicKey
}

type signCase struct {
	spec types.KeySpec
	algs []types.SigningAlgorithmSpec
}

var signCases = []signCase{
	{types.KeySpecRsa2048, rsaSigningAlgs},
	{types.KeySpecEccNistP256, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}},
	{types.KeySpecEccNistP384, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384}},
	{types.KeySpecEccNistP521, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha512}},
	{types.KeySpecEccNistEdwards25519, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEd25519Sha512, types.SigningAlgorithmSpecEd25519PhSha512}},
}

// sign calls Sign and checks the response's members.
func sign(t testing.TB, c *kms.Client, ref string, alg types.SigningAlgorithmSpec, mt types.MessageType, msg []byte) []byte {
	t.Helper()
	out, err := c.Sign(context.Background(), &kms.SignInput{KeyId: aws.String(ref), SigningAlgorithm: alg, MessageType: mt, Message: msg})
	require.NoError(t, err, "Sign %s %s", alg, mt)
	require.Equal(t, alg, out.SigningAlgorithm)
	require.Contains(t, aws.ToString(out.KeyId), keyARNPfx)
	return out.Signature
}

func verifyInside(c *kms.Client, ref string, alg types.SigningAlgorithmSpec, mt types.MessageType, msg, sig []byte) (*kms.VerifyOutput, error) {
	return c.Verify(context.Background(), &kms.VerifyInput{KeyId: aws.String(ref), SigningAlgorithm: alg, MessageType: mt, Message: msg, Signature: sig})
}

// TestAsymmetricSignVerify signs with every signing key spec and algorithm,
// RAW and DIGEST, verifies each signature with the standard library and
// with Verify, and checks the refusals; then restarts the node and checks
// the keys still sign under the same public keys.
func TestAsymmetricSignVerify(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	ids := map[types.KeySpec]string{}
	pubs := map[types.KeySpec][]byte{}
	for _, sc := range signCases {
		t.Run(string(sc.spec), func(t *testing.T) {
			id, arn := mkAsymKey(t, c, sc.spec, types.KeyUsageTypeSignVerify)
			ids[sc.spec] = id
			md := describe(t, c, id)
			require.Equal(t, sc.algs, md.SigningAlgorithms)
			require.Empty(t, md.EncryptionAlgorithms)
			require.Empty(t, md.MacAlgorithms)
			require.Empty(t, md.CurrentKeyMaterialId, "asymmetric keys have no CurrentKeyMaterialId")
			require.Equal(t, types.KeyStateEnabled, md.KeyState)
			pub, der := publicKey(t, c, id, sc.spec, types.KeyUsageTypeSignVerify)
			pubs[sc.spec] = der

			msgs := [][]byte{{0}, []byte("hello, signatures"), bytes.Repeat([]byte{0x5a}, 4096)}
			for _, alg := range sc.algs {
				for _, msg := range msgs {
					if alg != types.SigningAlgorithmSpecEd25519PhSha512 {
						sig := sign(t, c, id, alg, types.MessageTypeRaw, msg)
						verifyOutside(t, pub, alg, msg, false, sig)
						v, err := verifyInside(c, arn, alg, types.MessageTypeRaw, msg, sig)
						require.NoError(t, err)
						require.True(t, v.SignatureValid)
						require.Equal(t, arn, aws.ToString(v.KeyId))
						// MessageType defaults to RAW.
						sig = sign(t, c, id, alg, "", msg)
						verifyOutside(t, pub, alg, msg, false, sig)
					}
					if alg != types.SigningAlgorithmSpecEd25519Sha512 {
						d := digestOf(algHash(alg), msg)
						sig := sign(t, c, id, alg, types.MessageTypeDigest, d)
						verifyOutside(t, pub, alg, d, true, sig)
						_, err := verifyInside(c, id, alg, types.MessageTypeDigest, d, sig)
						require.NoError(t, err)
					}
				}
				// A signature over another message, or a mangled one, is
				// KMSInvalidSignatureException.
				mt, m := types.MessageTypeRaw, []byte("original")
				if alg == types.SigningAlgorithmSpecEd25519PhSha512 {
					mt, m = types.MessageTypeDigest, digestOf(gocrypto.SHA512, m)
				}
				sig := sign(t, c, id, alg, mt, m)
				other := bytes.Clone(m)
				other[0] ^= 1
				_, err := verifyInside(c, id, alg, mt, other, sig)
				requireCode(t, err, "KMSInvalidSignatureException", "%s", alg)
				requireErrAs[*types.KMSInvalidSignatureException](t, err)
				bad := bytes.Clone(sig)
				bad[len(bad)/2] ^= 0x40
				_, err = verifyInside(c, id, alg, mt, m, bad)
				requireCode(t, err, "KMSInvalidSignatureException", "%s", alg)
				_, err = verifyInside(c, id, alg, mt, m, []byte{1, 2, 3})
				requireCode(t, err, "KMSInvalidSignatureException", "%s", alg)

				// A digest of the wrong length is a ValidationException.
				if alg != types.SigningAlgorithmSpecEd25519Sha512 {
					short := make([]byte, algHash(alg).Size()-1)
					_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: alg, MessageType: types.MessageTypeDigest, Message: short})
					requireCode(t, err, "ValidationException", "%s", alg)
					_, err = verifyInside(c, id, alg, types.MessageTypeDigest, short, sig)
					requireCode(t, err, "ValidationException", "%s", alg)
				}
			}
			// An algorithm of another key spec is InvalidKeyUsageException.
			wrong := types.SigningAlgorithmSpecEcdsaSha384
			if sc.spec == types.KeySpecEccNistP384 {
				wrong = types.SigningAlgorithmSpecRsassaPssSha256
			}
			_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: wrong, Message: []byte("m")})
			requireCode(t, err, "InvalidKeyUsageException")
			// A signing key does not encrypt, nor does it rotate.
			_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			requireCode(t, err, "InvalidKeyUsageException")
			_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
			requireCode(t, err, "InvalidKeyUsageException")
			_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(id)})
			requireCode(t, err, "UnsupportedOperationException")
			_, err = c.RotateKeyOnDemand(ctx, &kms.RotateKeyOnDemandInput{KeyId: aws.String(id)})
			requireCode(t, err, "UnsupportedOperationException")
			_, err = c.GetKeyRotationStatus(ctx, &kms.GetKeyRotationStatusInput{KeyId: aws.String(id)})
			requireCode(t, err, "UnsupportedOperationException")
		})
	}

	t.Run("Ed25519MessageTypes", func(t *testing.T) {
		id := ids[types.KeySpecEccNistEdwards25519]
		_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: types.SigningAlgorithmSpecEd25519Sha512, MessageType: types.MessageTypeDigest, Message: make([]byte, 64)})
		requireCode(t, err, "ValidationException")
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: types.SigningAlgorithmSpecEd25519PhSha512, MessageType: types.MessageTypeRaw, Message: []byte("m")})
		requireCode(t, err, "ValidationException")
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: types.SigningAlgorithmSpecEd25519Sha512, MessageType: types.MessageTypeExternalMu, Message: make([]byte, 64)})
		requireCode(t, err, "ValidationException")
	})

	t.Run("Refusals", func(t *testing.T) {
		symID, _ := mkKey(t, c)
		_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(symID), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: []byte("m")})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = verifyInside(c, symID, types.SigningAlgorithmSpecEcdsaSha256, "", []byte("m"), []byte{1})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(symID)})
		requireCode(t, err, "UnsupportedOperationException")
		macID, _ := mkHMACKey(t, c, types.KeySpecHmac256)
		_, err = c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(macID)})
		requireCode(t, err, "UnsupportedOperationException")
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(keyARNPfx + "00000000-0000-4000-8000-000000000000"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: []byte("m")})
		requireCode(t, err, "NotFoundException")
		// An alias names an asymmetric key too.
		mkAlias(t, c, "alias/signer", ids[types.KeySpecEccNistP256])
		sig := sign(t, c, "alias/signer", types.SigningAlgorithmSpecEcdsaSha256, "", []byte("via alias"))
		_, err = verifyInside(c, aliasARNPfx+"alias/signer", types.SigningAlgorithmSpecEcdsaSha256, "", []byte("via alias"), sig)
		require.NoError(t, err)
		// Dry runs: Sign stops before signing; Verify reports a bad
		// signature as the real call would.
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String("alias/signer"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: []byte("m"), DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		_, err = c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String("alias/signer"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: []byte("via alias"), Signature: sig, DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		_, err = c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String("alias/signer"), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: []byte("other"), Signature: sig, DryRun: aws.Bool(true)})
		requireCode(t, err, "KMSInvalidSignatureException")
	})

	t.Run("AfterRestart", func(t *testing.T) {
		srv.Restart()
		c := srv.Client
		for _, sc := range signCases {
			id := ids[sc.spec]
			pub, der := publicKey(t, c, id, sc.spec, types.KeyUsageTypeSignVerify)
			require.Equal(t, pubs[sc.spec], der, "%s: public key changed across restart", sc.spec)
			alg := sc.algs[0]
			msg := []byte("after restart")
			sig := sign(t, c, id, alg, types.MessageTypeRaw, msg)
			verifyOutside(t, pub, alg, msg, false, sig)
			require.Equal(t, sc.algs, describe(t, c, id).SigningAlgorithms)
		}
	})
}

// oaepHash is the hash of an RSAES-OAEP algorithm.
func oaepHash(alg types.EncryptionAlgorithmSpec) hash.Hash {
	if alg == types.EncryptionAlgorithmSpecRsaesOaepSha1 {
		return sha1.New()
	}
	return sha256.New()
}

// TestAsymmetricRSAEncryption encrypts with RSA keys inside and outside
// kmsd and decrypts inside, at and over the plaintext limits of AWS KMS.
func TestAsymmetricRSAEncryption(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	limits := map[types.KeySpec][2]int{ // OAEP SHA-1, SHA-256
		types.KeySpecRsa2048: {214, 190},
		types.KeySpecRsa4096: {470, 446},
	}
	ids := map[types.KeySpec]string{}
	for _, spec := range []types.KeySpec{types.KeySpecRsa2048, types.KeySpecRsa4096} {
		t.Run(string(spec), func(t *testing.T) {
			id, arn := mkAsymKey(t, c, spec, types.KeyUsageTypeEncryptDecrypt)
			ids[spec] = id
			md := describe(t, c, id)
			require.Equal(t, rsaEncryptionAlgs, md.EncryptionAlgorithms)
			require.Empty(t, md.SigningAlgorithms)
			pubAny, _ := publicKey(t, c, arn, spec, types.KeyUsageTypeEncryptDecrypt)
			pub := pubAny.(*rsa.PublicKey)
			for i, alg := range rsaEncryptionAlgs {
				limit := limits[spec][i]
				for _, n := range []int{1, 32, limit} {
					pt := bytes.Repeat([]byte{byte(n)}, n)
					// Made outside, decrypted inside.
					ct, err := rsa.EncryptOAEP(oaepHash(alg), rand.Reader, pub, pt, nil)
					require.NoError(t, err)
					d, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), EncryptionAlgorithm: alg, CiphertextBlob: ct})
					require.NoError(t, err, "%s %s %d bytes", spec, alg, n)
					require.Equal(t, pt, d.Plaintext)
					require.Equal(t, arn, aws.ToString(d.KeyId))
					require.Equal(t, alg, d.EncryptionAlgorithm)
					// Made inside: a raw RSA ciphertext, decrypted inside.
					e, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), EncryptionAlgorithm: alg, Plaintext: pt})
					require.NoError(t, err, "%s %s %d bytes", spec, alg, n)
					require.Equal(t, alg, e.EncryptionAlgorithm)
					require.Equal(t, arn, aws.ToString(e.KeyId))
					require.Len(t, e.CiphertextBlob, pub.Size())
					d, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(arn), EncryptionAlgorithm: alg, CiphertextBlob: e.CiphertextBlob})
					require.NoError(t, err)
					require.Equal(t, pt, d.Plaintext)
				}
				_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), EncryptionAlgorithm: alg, Plaintext: make([]byte, limit+1)})
				requireCode(t, err, "ValidationException", "%s %s: %d bytes", spec, alg, limit+1)
			}
		})
	}

	id := ids[types.KeySpecRsa2048]
	ct, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, Plaintext: []byte("secret")})
	require.NoError(t, err)

	t.Run("Refusals", func(t *testing.T) {
		// EncryptionAlgorithm defaults to SYMMETRIC_DEFAULT, which an RSA key
		// does not support.
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m")})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: ct.CiphertextBlob})
		requireCode(t, err, "InvalidKeyUsageException")
		// No encryption context with asymmetric keys.
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, EncryptionContext: map[string]string{"a": "b"}})
		requireCode(t, err, "ValidationException")
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, EncryptionContext: map[string]string{"a": "b"}})
		requireCode(t, err, "ValidationException")
		// The wrong OAEP hash, a mangled ciphertext, or no KeyId (a raw RSA
		// ciphertext names no key): InvalidCiphertextException.
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha1})
		requireCode(t, err, "InvalidCiphertextException")
		bad := bytes.Clone(ct.CiphertextBlob)
		bad[10] ^= 1
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: bad, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireCode(t, err, "InvalidCiphertextException")
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireCode(t, err, "InvalidCiphertextException")
		// Another RSA key cannot decrypt it.
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(ids[types.KeySpecRsa4096]), CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireCode(t, err, "InvalidCiphertextException")
		// An encryption key neither signs nor makes data keys; a symmetric
		// key does not take an RSA algorithm.
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: types.SigningAlgorithmSpecRsassaPssSha256, Message: []byte("m")})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(id), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		requireCode(t, err, "InvalidKeyUsageException")
		symID, _ := mkKey(t, c)
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(symID), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), CiphertextBlob: ct.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
	})

	t.Run("ReEncrypt", func(t *testing.T) {
		symID, symARN := mkKey(t, c)
		// RSA -> symmetric.
		r, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: ct.CiphertextBlob, SourceKeyId: aws.String(id),
			SourceEncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, DestinationKeyId: aws.String(symID),
			DestinationEncryptionContext: map[string]string{"k": "v"}})
		require.NoError(t, err)
		require.Equal(t, symARN, aws.ToString(r.KeyId))
		require.Equal(t, keyARNPfx+id, aws.ToString(r.SourceKeyId))
		require.Equal(t, types.EncryptionAlgorithmSpecRsaesOaepSha256, r.SourceEncryptionAlgorithm)
		require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, r.DestinationEncryptionAlgorithm)
		d, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: r.CiphertextBlob, EncryptionContext: map[string]string{"k": "v"}})
		require.NoError(t, err)
		require.Equal(t, []byte("secret"), d.Plaintext)
		// symmetric -> RSA.
		r2, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: r.CiphertextBlob, SourceEncryptionContext: map[string]string{"k": "v"},
			DestinationKeyId: aws.String(id), DestinationEncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha1})
		require.NoError(t, err)
		require.Equal(t, types.EncryptionAlgorithmSpecRsaesOaepSha1, r2.DestinationEncryptionAlgorithm)
		d, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha1, CiphertextBlob: r2.CiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, []byte("secret"), d.Plaintext)
	})

	t.Run("AfterRestart", func(t *testing.T) {
		srv.Restart()
		d, err := srv.Client.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(id), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256, CiphertextBlob: ct.CiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, []byte("secret"), d.Plaintext)
	})
}

// TestAsymmetricCreateKeyRules checks CreateKey's KeySpec and KeyUsage rules
// for asymmetric keys.
func TestAsymmetricCreateKeyRules(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	for _, tc := range []struct {
		spec  types.KeySpec
		usage types.KeyUsageType
		code  string
	}{
		{types.KeySpecRsa2048, "", "ValidationException"}, // KeyUsage required
		{types.KeySpecEccNistP256, "", "ValidationException"},
		{types.KeySpecRsa2048, types.KeyUsageTypeGenerateVerifyMac, "ValidationException"},
		{types.KeySpecRsa2048, types.KeyUsageTypeKeyAgreement, "ValidationException"},
		{types.KeySpecEccNistP256, types.KeyUsageTypeEncryptDecrypt, "ValidationException"},
		{types.KeySpecEccNistEdwards25519, types.KeyUsageTypeEncryptDecrypt, "ValidationException"},
		{types.KeySpecEccNistP384, types.KeyUsageTypeKeyAgreement, "UnsupportedOperationException"}, // no DeriveSharedSecret
		// ECC_SECG_P256K1 is SIGN_VERIFY only (KEY_AGREEMENT is for the NIST
		// curves and SM2).
		{types.KeySpecEccSecgP256k1, "", "ValidationException"},
		{types.KeySpecEccSecgP256k1, types.KeyUsageTypeKeyAgreement, "ValidationException"},
		{types.KeySpecEccSecgP256k1, types.KeyUsageTypeEncryptDecrypt, "ValidationException"},
		{types.KeySpecEccSecgP256k1, types.KeyUsageTypeGenerateVerifyMac, "ValidationException"},
		{types.KeySpecSm2, types.KeyUsageTypeSignVerify, "UnsupportedOperationException"},
		{types.KeySpecSymmetricDefault, types.KeyUsageTypeSignVerify, "ValidationException"},
	} {
		_, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: tc.spec, KeyUsage: tc.usage})
		requireCode(t, err, tc.code, "%s %s", tc.spec, tc.usage)
	}
	// The deprecated CustomerMasterKeySpec works too.
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecEccNistP256, KeyUsage: types.KeyUsageTypeSignVerify})
	require.NoError(t, err)
	require.Equal(t, types.KeySpecEccNistP256, out.KeyMetadata.KeySpec)
	require.Equal(t, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}, out.KeyMetadata.SigningAlgorithms)
}

// TestGenerateDataKeyPair checks both operations for every key pair spec:
// the private key is PKCS#8, the public key SubjectPublicKeyInfo, they
// match, and the encrypted private key decrypts (with its encryption
// context) to the same PKCS#8 bytes.
func TestGenerateDataKeyPair(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	symID, symARN := mkKey(t, c)
	ectx := map[string]string{"purpose": "data key pair"}
	for _, spec := range []types.DataKeyPairSpec{
		types.DataKeyPairSpecRsa2048, types.DataKeyPairSpecRsa3072, types.DataKeyPairSpecRsa4096,
		types.DataKeyPairSpecEccNistP256, types.DataKeyPairSpecEccNistP384, types.DataKeyPairSpecEccNistP521,
		types.DataKeyPairSpecEccNistEdwards25519,
	} {
		t.Run(string(spec), func(t *testing.T) {
			out, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: spec, EncryptionContext: ectx})
			require.NoError(t, err)
			require.Equal(t, symARN, aws.ToString(out.KeyId))
			require.Equal(t, spec, out.KeyPairSpec)
			require.Len(t, aws.ToString(out.KeyMaterialId), 64)
			priv, err := x509.ParsePKCS8PrivateKey(out.PrivateKeyPlaintext)
			require.NoError(t, err, "PrivateKeyPlaintext is not PKCS#8")
			pub, err := x509.ParsePKIXPublicKey(out.PublicKey)
			require.NoError(t, err, "PublicKey is not SubjectPublicKeyInfo")
			require.True(t, priv.(interface{ Public() gocrypto.PublicKey }).Public().(interface{ Equal(gocrypto.PublicKey) bool }).Equal(pub), "public key does not match private key")
			checkPairSpec(t, spec, pub)

			d, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext: ectx})
			require.NoError(t, err)
			require.Equal(t, out.PrivateKeyPlaintext, d.Plaintext)
			require.Equal(t, symARN, aws.ToString(d.KeyId))
			_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
			requireCode(t, err, "InvalidCiphertextException")

			wo, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(symID), KeyPairSpec: spec, EncryptionContext: ectx})
			require.NoError(t, err)
			require.Equal(t, spec, wo.KeyPairSpec)
			require.NotEqual(t, out.PublicKey, wo.PublicKey, "two calls gave the same key pair")
			d, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wo.PrivateKeyCiphertextBlob, EncryptionContext: ectx})
			require.NoError(t, err)
			priv2, err := x509.ParsePKCS8PrivateKey(d.Plaintext)
			require.NoError(t, err)
			pub2, err := x509.ParsePKIXPublicKey(wo.PublicKey)
			require.NoError(t, err)
			require.True(t, priv2.(interface{ Public() gocrypto.PublicKey }).Public().(interface{ Equal(gocrypto.PublicKey) bool }).Equal(pub2))
		})
	}
	t.Run("WirePlaintextAbsent", func(t *testing.T) {
		res := rawCall(t, srv, "GenerateDataKeyPairWithoutPlaintext", map[string]any{"KeyId": symID, "KeyPairSpec": "ECC_NIST_P256"})
		requireRawOK(t, res)
		require.NotContains(t, res.Body, "PrivateKeyPlaintext")
		require.Contains(t, res.Body, "PrivateKeyCiphertextBlob")
	})
	t.Run("Refusals", func(t *testing.T) {
		// ECC_SECG_P256K1: TestGenerateDataKeyPairSecp256k1.
		_, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: types.DataKeyPairSpecSm2})
		requireCode(t, err, "UnsupportedOperationException")
		res := rawCall(t, srv, "GenerateDataKeyPair", map[string]any{"KeyId": symID, "KeyPairSpec": "RSA_1024"})
		requireRawError(t, res, "ValidationException")
		res = rawCall(t, srv, "GenerateDataKeyPair", map[string]any{"KeyId": symID})
		requireRawError(t, res, "ValidationException")
		macID, _ := mkHMACKey(t, c, types.KeySpecHmac256)
		_, err = c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(macID), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: types.DataKeyPairSpecEccNistP256, DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		res = rawCall(t, srv, "GenerateDataKeyPair", map[string]any{"KeyId": symID, "KeyPairSpec": "ECC_NIST_P256", "Recipient": map[string]any{"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": "AAAA"}})
		requireRawError(t, res, "UnsupportedOperationException")
	})
}

func checkPairSpec(t testing.TB, spec types.DataKeyPairSpec, pub any) {
	t.Helper()
	switch spec {
	case types.DataKeyPairSpecRsa2048:
		require.Equal(t, 2048, pub.(*rsa.PublicKey).N.BitLen())
	case types.DataKeyPairSpecRsa3072:
		require.Equal(t, 3072, pub.(*rsa.PublicKey).N.BitLen())
	case types.DataKeyPairSpecRsa4096:
		require.Equal(t, 4096, pub.(*rsa.PublicKey).N.BitLen())
	case types.DataKeyPairSpecEccNistP256:
		require.Equal(t, elliptic.P256(), pub.(*ecdsa.PublicKey).Curve)
	case types.DataKeyPairSpecEccNistP384:
		require.Equal(t, elliptic.P384(), pub.(*ecdsa.PublicKey).Curve)
	case types.DataKeyPairSpecEccNistP521:
		require.Equal(t, elliptic.P521(), pub.(*ecdsa.PublicKey).Curve)
	case types.DataKeyPairSpecEccNistEdwards25519:
		require.IsType(t, ed25519.PublicKey{}, pub)
	}
}

// TestAsymmetricKeyStates runs every new operation against keys in each
// state kmsd has (key-states.md): Enabled works; Disabled is
// DisabledException; PendingDeletion is KMSInvalidStateException; after
// CancelKeyDeletion (Disabled) and EnableKey the key works again.
func TestAsymmetricKeyStates(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	signID, _ := mkAsymKey(t, c, types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify)
	encID, _ := mkAsymKey(t, c, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)
	symID, _ := mkKey(t, c)
	msg := []byte("state")
	sig := sign(t, c, signID, types.SigningAlgorithmSpecEcdsaSha256, "", msg)
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(encID), Plaintext: msg, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	require.NoError(t, err)

	ops := []struct {
		name string
		key  string
		call func() error
	}{
		{"Sign", signID, func() error {
			_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(signID), SigningAlgorithm: types.SigningAlgorithmSpecEcdsaSha256, Message: msg})
			return err
		}},
		{"Verify", signID, func() error {
			_, err := verifyInside(c, signID, types.SigningAlgorithmSpecEcdsaSha256, "", msg, sig)
			return err
		}},
		{"GetPublicKey/sign", signID, func() error {
			_, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(signID)})
			return err
		}},
		{"GetPublicKey/encrypt", encID, func() error {
			_, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(encID)})
			return err
		}},
		{"Encrypt", encID, func() error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(encID), Plaintext: msg, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}},
		{"Decrypt", encID, func() error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(encID), CiphertextBlob: enc.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
			return err
		}},
		{"GenerateDataKeyPair", symID, func() error {
			_, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			return err
		}},
		{"GenerateDataKeyPairWithoutPlaintext", symID, func() error {
			_, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(symID), KeyPairSpec: types.DataKeyPairSpecEccNistP256})
			return err
		}},
	}
	keys := []string{signID, encID, symID}
	states := []struct {
		state string
		enter func(t *testing.T, id string)
		code  string
	}{
		{"Enabled", func(*testing.T, string) {}, ""},
		{"Disabled", func(t *testing.T, id string) {
			_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
			require.NoError(t, err)
		}, "DisabledException"},
		{"PendingDeletion", func(t *testing.T, id string) { scheduleDeletion(t, c, id, 7) }, "KMSInvalidStateException"},
		{"CancelledThenEnabled", func(t *testing.T, id string) {
			_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
			require.NoError(t, err)
			require.Equal(t, types.KeyStateDisabled, describe(t, c, id).KeyState)
			_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
			require.NoError(t, err)
		}, ""},
	}
	for _, st := range states {
		for _, id := range keys {
			st.enter(t, id)
		}
		for _, op := range ops {
			err := op.call()
			if st.code == "" {
				require.NoError(t, err, "%s in state %s", op.name, st.state)
				continue
			}
			requireCode(t, err, st.code, "%s in state %s", op.name, st.state)
			require.Contains(t, errMessage(err), keyARNPfx+op.key, "%s in state %s: message names the key", op.name, st.state)
		}
	}
	// DescribeKey keeps answering with the algorithms in every state.
	require.Equal(t, []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha256}, describe(t, c, signID).SigningAlgorithms)
}

// errMessage returns the AWS error message of err, or "".
func errMessage(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

// TestAsymmetricMaterialNotOnDisk checks that asymmetric private keys (the
// PKCS#8 material of kmsd keys and the private keys GenerateDataKeyPair
// hands out) never reach the data dir in a recognisable form.
func TestAsymmetricMaterialNotOnDisk(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	secrets := map[string][]byte{}
	for _, spec := range []types.KeySpec{types.KeySpecEccNistP256, types.KeySpecEccNistEdwards25519} {
		id, _ := mkAsymKey(t, c, spec, types.KeyUsageTypeSignVerify)
		alg := types.SigningAlgorithmSpecEcdsaSha256
		if spec == types.KeySpecEccNistEdwards25519 {
			alg = types.SigningAlgorithmSpecEd25519Sha512
		}
		sign(t, c, id, alg, "", []byte("m"))
		m, err := srv.Service.CurrentMaterialForTest(id)
		require.NoError(t, err)
		priv, err := x509.ParsePKCS8PrivateKey(m)
		require.NoError(t, err, "%s material is not PKCS#8", spec)
		secrets["PKCS#8 of "+id] = m
		switch k := priv.(type) {
		case *ecdsa.PrivateKey:
			secrets["ECDSA scalar of "+id] = k.D.FillBytes(make([]byte, 32))
		case ed25519.PrivateKey:
			secrets["Ed25519 seed of "+id] = k.Seed()
		}
	}
	k1ID, _ := mkAsymKey(t, c, types.KeySpecEccSecgP256k1, types.KeyUsageTypeSignVerify)
	sign(t, c, k1ID, types.SigningAlgorithmSpecEcdsaSha256, "", []byte("m"))
	m, err := srv.Service.CurrentMaterialForTest(k1ID)
	require.NoError(t, err)
	secrets["PKCS#8 of "+k1ID] = m
	secrets["secp256k1 scalar of "+k1ID], _ = parseP256K1PKCS8(t, m)
	k1SymID, _ := mkKey(t, c)
	k1Pair, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(k1SymID), KeyPairSpec: types.DataKeyPairSpecEccSecgP256k1})
	require.NoError(t, err)
	secrets["secp256k1 data key pair private key"] = k1Pair.PrivateKeyPlaintext
	secrets["secp256k1 data key pair scalar"], _ = parseP256K1PKCS8(t, k1Pair.PrivateKeyPlaintext)
	encID, _ := mkAsymKey(t, c, types.KeySpecRsa2048, types.KeyUsageTypeEncryptDecrypt)
	m, err = srv.Service.CurrentMaterialForTest(encID)
	require.NoError(t, err)
	secrets["PKCS#8 of "+encID] = m
	pt := []byte("rsa plaintext that must stay in memory")
	secrets["RSA plaintext"] = pt
	e, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(encID), Plaintext: pt, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	require.NoError(t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{KeyId: aws.String(encID), CiphertextBlob: e.CiphertextBlob, EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
	require.NoError(t, err)
	symID, _ := mkKey(t, c)
	dkp, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: types.DataKeyPairSpecEccNistP384})
	require.NoError(t, err)
	secrets["data key pair private key"] = dkp.PrivateKeyPlaintext

	require.NoError(t, srv.Node.Snapshot())
	srv.Stop()
	err = filepath.WalkDir(srv.DataDir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for name, s := range secrets {
			for form, needle := range secretForms(s) {
				require.False(t, bytes.Contains(data, needle), "%s (%s) found in %s", name, form, path)
			}
		}
		return nil
	})
	require.NoError(t, err)
}

// --- ECC_SECG_P256K1 (secp256k1) ----------------------------------------------

// secp256k1 keys are checked outside kmsd without crypto/x509, which does
// not know the curve: the test parses the DER structures itself with
// encoding/asn1, verifies signatures with decred's secp256k1 ECDSA, and,
// when openssl is installed, with OpenSSL too.

var (
	oidECPublicKey = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
	oidSecp256k1   = asn1.ObjectIdentifier{1, 3, 132, 0, 10}
)

// ecAlgorithm is an AlgorithmIdentifier of an EC key with a named curve.
type ecAlgorithm struct {
	Algorithm asn1.ObjectIdentifier
	Curve     asn1.ObjectIdentifier
}

// parseP256K1SPKI parses DER SubjectPublicKeyInfo strictly: nothing after
// it, id-ecPublicKey with namedCurve secp256k1, an uncompressed point on the
// curve.
func parseP256K1SPKI(t testing.TB, der []byte) *secp256k1.PublicKey {
	t.Helper()
	var spki struct {
		Algo      ecAlgorithm
		PublicKey asn1.BitString
	}
	rest, err := asn1.Unmarshal(der, &spki)
	require.NoError(t, err, "PublicKey is not DER SubjectPublicKeyInfo")
	require.Empty(t, rest, "bytes after the SubjectPublicKeyInfo")
	require.True(t, spki.Algo.Algorithm.Equal(oidECPublicKey), "algorithm %v", spki.Algo.Algorithm)
	require.True(t, spki.Algo.Curve.Equal(oidSecp256k1), "curve %v", spki.Algo.Curve)
	p := spki.PublicKey.Bytes
	require.Equal(t, 65*8, spki.PublicKey.BitLength)
	require.Len(t, p, 65)
	require.Equal(t, byte(4), p[0], "point is not uncompressed")
	pub, err := secp256k1.ParsePubKey(p)
	require.NoError(t, err, "point is not on secp256k1")
	return pub
}

// parseP256K1PKCS8 parses a PKCS#8 PrivateKeyInfo (RFC 5208) of a secp256k1
// key wrapping an ECPrivateKey (RFC 5915) with the curve parameter and the
// public key, as kmsd writes them, and checks that the public key is the
// scalar's. It returns the scalar (32 bytes) and the public key.
func parseP256K1PKCS8(t testing.TB, der []byte) ([]byte, *secp256k1.PublicKey) {
	t.Helper()
	var p8 struct {
		Version    int
		Algo       ecAlgorithm
		PrivateKey []byte
	}
	rest, err := asn1.Unmarshal(der, &p8)
	require.NoError(t, err, "private key is not PKCS#8")
	require.Empty(t, rest)
	require.Zero(t, p8.Version)
	require.True(t, p8.Algo.Algorithm.Equal(oidECPublicKey), "algorithm %v", p8.Algo.Algorithm)
	require.True(t, p8.Algo.Curve.Equal(oidSecp256k1), "curve %v", p8.Algo.Curve)
	var ec struct {
		Version    int
		PrivateKey []byte
		Curve      asn1.ObjectIdentifier `asn1:"optional,explicit,tag:0"`
		PublicKey  asn1.BitString        `asn1:"optional,explicit,tag:1"`
	}
	rest, err = asn1.Unmarshal(p8.PrivateKey, &ec)
	require.NoError(t, err, "PKCS#8 does not hold an ECPrivateKey")
	require.Empty(t, rest)
	require.Equal(t, 1, ec.Version)
	require.Len(t, ec.PrivateKey, 32)
	require.True(t, ec.Curve.Equal(oidSecp256k1), "ECPrivateKey parameters %v", ec.Curve)
	var scalar secp256k1.ModNScalar
	require.False(t, scalar.SetByteSlice(ec.PrivateKey), "scalar not below n")
	require.False(t, scalar.IsZero(), "scalar zero")
	pub := secp256k1.NewPrivateKey(&scalar).PubKey()
	require.Equal(t, pub.SerializeUncompressed(), ec.PublicKey.Bytes, "ECPrivateKey's public key is not the scalar's")
	return ec.PrivateKey, pub
}

// opensslPath is the openssl binary, "" if it is not installed.
func opensslPath() string {
	p, err := exec.LookPath("openssl")
	if err != nil {
		return ""
	}
	return p
}

// withOpenSSL runs check as a subtest, skipped with a clear message when
// openssl is not installed.
func withOpenSSL(t *testing.T, name string, check func(t *testing.T, openssl func(args ...string) string, dir string)) {
	t.Helper()
	t.Run("OpenSSL/"+name, func(t *testing.T) {
		bin := opensslPath()
		if bin == "" {
			t.Skip("openssl is not installed: the OpenSSL cross-check is skipped (the checks with decred's secp256k1 still ran)")
		}
		dir := t.TempDir()
		check(t, func(args ...string) string {
			t.Helper()
			out, err := exec.Command(bin, args...).CombinedOutput()
			require.NoError(t, err, "openssl %v: %s", args, out)
			return string(out)
		}, dir)
	})
}

func writeFile(t testing.TB, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}

// verifyP256K1Outside checks a DER ECDSA signature made by kmsd over msg
// (RAW, hashed with SHA-256) or over the digest msg (DIGEST): with decred's
// verifier and the public key parsed from spki, and with OpenSSL over the
// PEM of spki.
func verifyP256K1Outside(t *testing.T, spki, msg []byte, isDigest bool, sig []byte) {
	t.Helper()
	pub := parseP256K1SPKI(t, spki)
	d := msg
	if !isDigest {
		d = digestOf(gocrypto.SHA256, msg)
	}
	require.Len(t, d, 32)
	s, err := secpecdsa.ParseDERSignature(sig)
	require.NoError(t, err, "signature is not DER SEQUENCE{r, s}")
	require.True(t, s.Verify(d, pub), "decred's ECDSA rejects kmsd's signature")
	name := fmt.Sprintf("verify RAW %d bytes", len(msg))
	if isDigest {
		name = "verify DIGEST"
	}
	withOpenSSL(t, name, func(t *testing.T, openssl func(...string) string, dir string) {
		pemFile := writeFile(t, dir, "pub.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))
		sigFile := writeFile(t, dir, "sig.der", sig)
		if isDigest {
			out := openssl("pkeyutl", "-verify", "-pubin", "-inkey", pemFile, "-in", writeFile(t, dir, "digest", d), "-sigfile", sigFile)
			require.Contains(t, out, "Signature Verified Successfully")
		} else {
			out := openssl("dgst", "-sha256", "-verify", pemFile, "-signature", sigFile, writeFile(t, dir, "msg", msg))
			require.Contains(t, out, "Verified OK")
		}
	})
}

// highSSignature returns (r, n-s) of a DER signature: as valid as (r, s),
// and what signers that do not normalise S (AWS KMS among them) produce
// half the time.
func highSSignature(t testing.TB, sig []byte) []byte {
	t.Helper()
	var rs struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(sig, &rs)
	require.NoError(t, err)
	require.Empty(t, rest)
	rs.S.Sub(secp256k1.Params().N, rs.S)
	out, err := asn1.Marshal(rs)
	require.NoError(t, err)
	return out
}

// TestAsymmetricSecp256k1 creates ECC_SECG_P256K1 keys, signs RAW and
// DIGEST messages, verifies every signature outside kmsd and with Verify,
// checks the refusals, and checks the key after a restart.
func TestAsymmetricSecp256k1(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	const spec, alg = types.KeySpecEccSecgP256k1, types.SigningAlgorithmSpecEcdsaSha256
	id, arn := mkAsymKey(t, c, spec, types.KeyUsageTypeSignVerify)
	md := describe(t, c, id)
	require.Equal(t, []types.SigningAlgorithmSpec{alg}, md.SigningAlgorithms)
	require.Empty(t, md.EncryptionAlgorithms)
	require.Empty(t, md.MacAlgorithms)
	require.Empty(t, md.KeyAgreementAlgorithms)
	require.Empty(t, md.CurrentKeyMaterialId, "asymmetric keys have no CurrentKeyMaterialId")
	require.Equal(t, types.CustomerMasterKeySpecEccSecgP256k1, md.CustomerMasterKeySpec)
	require.Equal(t, types.KeyStateEnabled, md.KeyState)

	gp, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Equal(t, arn, aws.ToString(gp.KeyId))
	require.Equal(t, spec, gp.KeySpec)
	require.Equal(t, types.CustomerMasterKeySpecEccSecgP256k1, gp.CustomerMasterKeySpec)
	require.Equal(t, types.KeyUsageTypeSignVerify, gp.KeyUsage)
	require.Equal(t, []types.SigningAlgorithmSpec{alg}, gp.SigningAlgorithms)
	require.Empty(t, gp.EncryptionAlgorithms)
	spki := gp.PublicKey
	parseP256K1SPKI(t, spki)
	withOpenSSL(t, "public key", func(t *testing.T, openssl func(...string) string, dir string) {
		out := openssl("pkey", "-pubin", "-inform", "DER", "-in", writeFile(t, dir, "pub.der", spki), "-text", "-noout")
		require.Contains(t, out, "ASN1 OID: secp256k1")
	})

	for _, msg := range [][]byte{{0}, []byte("hello, secp256k1"), bytes.Repeat([]byte{0x5a}, 4096)} {
		d := digestOf(gocrypto.SHA256, msg)
		sig := sign(t, c, id, alg, types.MessageTypeRaw, msg)
		verifyP256K1Outside(t, spki, msg, false, sig)
		v, err := verifyInside(c, arn, alg, types.MessageTypeRaw, msg, sig)
		require.NoError(t, err)
		require.True(t, v.SignatureValid)
		require.Equal(t, arn, aws.ToString(v.KeyId))
		require.Equal(t, alg, v.SigningAlgorithm)
		// MessageType defaults to RAW.
		verifyP256K1Outside(t, spki, msg, false, sign(t, c, id, alg, "", msg))
		_, err = verifyInside(c, id, alg, "", msg, sig)
		require.NoError(t, err)
		// DIGEST signs the 32 bytes given, so a RAW signature is one over
		// the SHA-256 digest and the other way round.
		dsig := sign(t, c, id, alg, types.MessageTypeDigest, d)
		verifyP256K1Outside(t, spki, d, true, dsig)
		_, err = verifyInside(c, id, alg, types.MessageTypeDigest, d, dsig)
		require.NoError(t, err)
		_, err = verifyInside(c, id, alg, types.MessageTypeDigest, d, sig)
		require.NoError(t, err)
		_, err = verifyInside(c, id, alg, types.MessageTypeRaw, msg, dsig)
		require.NoError(t, err)
		// The high-S twin of a signature is valid too, and Verify says so.
		_, err = verifyInside(c, id, alg, types.MessageTypeRaw, msg, highSSignature(t, sig))
		require.NoError(t, err)
	}

	t.Run("Tampered", func(t *testing.T) {
		msg := []byte("original")
		sig := sign(t, c, id, alg, types.MessageTypeRaw, msg)
		other := bytes.Clone(msg)
		other[0] ^= 1
		bad := bytes.Clone(sig)
		bad[len(bad)-1] ^= 0x01
		badR := bytes.Clone(sig)
		badR[6] ^= 0x40
		d := digestOf(gocrypto.SHA256, msg)
		d[31] ^= 1
		for name, tc := range map[string]struct {
			mt       types.MessageType
			msg, sig []byte
		}{
			"other message": {types.MessageTypeRaw, other, sig},
			"mangled s":     {types.MessageTypeRaw, msg, bad},
			"mangled r":     {types.MessageTypeRaw, msg, badR},
			"other digest":  {types.MessageTypeDigest, d, sig},
			"high-S, other": {types.MessageTypeRaw, other, highSSignature(t, sig)},
			"not DER":       {types.MessageTypeRaw, msg, []byte{1, 2, 3}},
			"trailing byte": {types.MessageTypeRaw, msg, append(bytes.Clone(sig), 0)},
			"digest as RAW": {types.MessageTypeRaw, digestOf(gocrypto.SHA256, msg), sig},
		} {
			_, err := verifyInside(c, id, alg, tc.mt, tc.msg, tc.sig)
			requireCode(t, err, "KMSInvalidSignatureException", "%s", name)
			requireErrAs[*types.KMSInvalidSignatureException](t, err, "%s", name)
		}
		// And outside: decred refuses the mangled one.
		s, err := secpecdsa.ParseDERSignature(bad)
		if err == nil {
			require.False(t, s.Verify(digestOf(gocrypto.SHA256, msg), parseP256K1SPKI(t, spki)))
		}
	})

	t.Run("Refusals", func(t *testing.T) {
		for _, n := range []int{31, 33, 48, 64} {
			_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: alg, MessageType: types.MessageTypeDigest, Message: make([]byte, n)})
			requireCode(t, err, "ValidationException", "Sign digest of %d bytes", n)
			_, err = verifyInside(c, id, alg, types.MessageTypeDigest, make([]byte, n), []byte{0x30, 0})
			requireCode(t, err, "ValidationException", "Verify digest of %d bytes", n)
		}
		_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: alg, MessageType: types.MessageTypeExternalMu, Message: make([]byte, 64)})
		requireCode(t, err, "ValidationException")
		for _, wrong := range []types.SigningAlgorithmSpec{types.SigningAlgorithmSpecEcdsaSha384, types.SigningAlgorithmSpecEcdsaSha512,
			types.SigningAlgorithmSpecRsassaPssSha256, types.SigningAlgorithmSpecEd25519Sha512, types.SigningAlgorithmSpecSm2dsa} {
			_, err := c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: wrong, Message: []byte("m")})
			requireCode(t, err, "InvalidKeyUsageException", "%s", wrong)
			_, err = verifyInside(c, id, wrong, "", []byte("m"), []byte{1})
			requireCode(t, err, "InvalidKeyUsageException", "%s", wrong)
		}
		// A P-256 key does not verify a secp256k1 signature (same
		// algorithm name, another curve).
		p256ID, _ := mkAsymKey(t, c, types.KeySpecEccNistP256, types.KeyUsageTypeSignVerify)
		sig := sign(t, c, id, alg, "", []byte("m"))
		_, err = verifyInside(c, p256ID, alg, "", []byte("m"), sig)
		requireCode(t, err, "KMSInvalidSignatureException")
		// A signing key does not encrypt, make data keys or rotate.
		_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("m"), EncryptionAlgorithm: types.EncryptionAlgorithmSpecRsaesOaepSha256})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(id), KeyPairSpec: types.DataKeyPairSpecEccSecgP256k1})
		requireCode(t, err, "InvalidKeyUsageException")
		_, err = c.EnableKeyRotation(ctx, &kms.EnableKeyRotationInput{KeyId: aws.String(id)})
		requireCode(t, err, "UnsupportedOperationException")
		// Dry runs.
		_, err = c.Sign(ctx, &kms.SignInput{KeyId: aws.String(id), SigningAlgorithm: alg, Message: []byte("m"), DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		_, err = c.Verify(ctx, &kms.VerifyInput{KeyId: aws.String(id), SigningAlgorithm: alg, Message: []byte("m"), Signature: sig, DryRun: aws.Bool(true)})
		requireCode(t, err, "DryRunOperationException")
		// The deprecated CustomerMasterKeySpec makes one too.
		out, err := c.CreateKey(ctx, &kms.CreateKeyInput{CustomerMasterKeySpec: types.CustomerMasterKeySpecEccSecgP256k1, KeyUsage: types.KeyUsageTypeSignVerify})
		require.NoError(t, err)
		require.Equal(t, spec, out.KeyMetadata.KeySpec)
		require.Equal(t, []types.SigningAlgorithmSpec{alg}, out.KeyMetadata.SigningAlgorithms)
		other, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: out.KeyMetadata.KeyId})
		require.NoError(t, err)
		require.NotEqual(t, spki, other.PublicKey, "two keys with the same public key")
	})

	t.Run("AfterRestart", func(t *testing.T) {
		msg := []byte("before restart")
		before := sign(t, c, id, alg, types.MessageTypeRaw, msg)
		srv.Restart()
		c := srv.Client
		gp, err := c.GetPublicKey(ctx, &kms.GetPublicKeyInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		require.Equal(t, spki, gp.PublicKey, "public key changed across restart")
		require.Equal(t, []types.SigningAlgorithmSpec{alg}, describe(t, c, id).SigningAlgorithms)
		_, err = verifyInside(c, id, alg, types.MessageTypeRaw, msg, before)
		require.NoError(t, err)
		after := []byte("after restart")
		verifyP256K1Outside(t, spki, after, false, sign(t, c, id, alg, types.MessageTypeRaw, after))
	})
}

// TestGenerateDataKeyPairSecp256k1 checks both data key pair operations with
// ECC_SECG_P256K1: the private key is PKCS#8 around an ECPrivateKey of the
// public key returned as SubjectPublicKeyInfo (checked by the test's own
// parser, kmsd's crypto package and OpenSSL), and the encrypted private key
// decrypts, with its encryption context, to the same PKCS#8.
func TestGenerateDataKeyPairSecp256k1(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	symID, symARN := mkKey(t, c)
	ectx := map[string]string{"purpose": "secp256k1 data key pair"}
	const spec = types.DataKeyPairSpecEccSecgP256k1

	// checkPair checks a PKCS#8 private key against a SubjectPublicKeyInfo.
	checkPair := func(t *testing.T, p8, spki []byte) {
		t.Helper()
		pub := parseP256K1SPKI(t, spki)
		scalar, privPub := parseP256K1PKCS8(t, p8)
		require.True(t, privPub.IsEqual(pub), "public key does not match private key")
		der, err := kmscrypto.PublicKeyDER(kmscrypto.NewSecret(p8))
		require.NoError(t, err, "kmsd's own parser refuses the PKCS#8")
		require.Equal(t, spki, der)
		// The pair signs and verifies outside kmsd.
		d := digestOf(gocrypto.SHA256, []byte("data key pair"))
		var k secp256k1.ModNScalar
		k.SetByteSlice(scalar)
		require.True(t, secpecdsa.Sign(secp256k1.NewPrivateKey(&k), d).Verify(d, pub))
		withOpenSSL(t, "private key", func(t *testing.T, openssl func(...string) string, dir string) {
			keyFile := writeFile(t, dir, "key.der", p8)
			require.Contains(t, openssl("pkey", "-inform", "DER", "-in", keyFile, "-check", "-noout"), "Key is valid")
			pubFile := filepath.Join(dir, "pub.der")
			openssl("pkey", "-inform", "DER", "-in", keyFile, "-pubout", "-outform", "DER", "-out", pubFile)
			got, err := os.ReadFile(pubFile)
			require.NoError(t, err)
			require.Equal(t, spki, got, "OpenSSL derives another public key")
		})
	}

	out, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: spec, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, symARN, aws.ToString(out.KeyId))
	require.Equal(t, spec, out.KeyPairSpec)
	require.Len(t, aws.ToString(out.KeyMaterialId), 64)
	checkPair(t, out.PrivateKeyPlaintext, out.PublicKey)
	d, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, out.PrivateKeyPlaintext, d.Plaintext)
	require.Equal(t, symARN, aws.ToString(d.KeyId))
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.PrivateKeyCiphertextBlob})
	requireCode(t, err, "InvalidCiphertextException")

	wo, err := c.GenerateDataKeyPairWithoutPlaintext(ctx, &kms.GenerateDataKeyPairWithoutPlaintextInput{KeyId: aws.String(symID), KeyPairSpec: spec, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, spec, wo.KeyPairSpec)
	require.Equal(t, symARN, aws.ToString(wo.KeyId))
	require.NotEqual(t, out.PublicKey, wo.PublicKey, "two calls gave the same key pair")
	d, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wo.PrivateKeyCiphertextBlob, EncryptionContext: ectx})
	require.NoError(t, err)
	checkPair(t, d.Plaintext, wo.PublicKey)

	res := rawCall(t, srv, "GenerateDataKeyPairWithoutPlaintext", map[string]any{"KeyId": symID, "KeyPairSpec": "ECC_SECG_P256K1"})
	requireRawOK(t, res)
	require.NotContains(t, res.Body, "PrivateKeyPlaintext")
	_, err = c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: aws.String(symID), KeyPairSpec: spec, DryRun: aws.Bool(true)})
	requireCode(t, err, "DryRunOperationException")
}
