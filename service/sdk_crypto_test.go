package service_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/service"
)

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func TestSDKEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	id, arn := mkKey(t, c)
	mkAlias(t, c, "alias/rt", id)

	contexts := []map[string]string{
		nil,
		{"purpose": "test"},
		{"a": "1", "b": "2", "unicode-é": "värde", "": "empty key"},
	}
	for _, size := range []int{1, 100, 4096} {
		for _, ectx := range contexts {
			pt := randBytes(t, size)
			enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: pt, EncryptionContext: ectx})
			require.NoError(t, err, "size %d ctx %v", size, ectx)
			require.Equal(t, arn, aws.ToString(enc.KeyId))
			require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, enc.EncryptionAlgorithm)
			if size >= 16 {
				require.False(t, bytes.Contains(enc.CiphertextBlob, pt), "the blob contains the plaintext")
			}
			require.LessOrEqual(t, len(enc.CiphertextBlob), 6144)

			dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ectx})
			require.NoError(t, err, "size %d ctx %v", size, ectx)
			require.Equal(t, pt, dec.Plaintext)
			require.Equal(t, arn, aws.ToString(dec.KeyId))
			require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, dec.EncryptionAlgorithm)
		}
	}

	// Two encryptions of the same plaintext differ.
	a := encrypt(t, c, id, []byte("same"), nil)
	b := encrypt(t, c, id, []byte("same"), nil)
	require.NotEqual(t, a, b)

	// An absent and an empty context are the same context.
	blob := encrypt(t, c, id, []byte("no context"), nil)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{}})
	require.NoError(t, err)
	require.Equal(t, "no context", string(dec.Plaintext))

	// Encrypt by alias name, alias ARN and key ARN; KeyId out is the key ARN.
	for _, ref := range []string{"alias/rt", aliasARNPfx + "alias/rt", arn} {
		enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(ref), Plaintext: []byte(ref)})
		require.NoError(t, err, ref)
		require.Equal(t, arn, aws.ToString(enc.KeyId), ref)
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
		require.NoError(t, err, ref)
		require.Equal(t, ref, string(dec.Plaintext))
	}

	// Decrypt with KeyId naming the right key in every form.
	blob = encrypt(t, c, id, []byte("named"), map[string]string{"k": "v"})
	for _, ref := range []string{id, arn, "alias/rt", aliasARNPfx + "alias/rt"} {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(ref), EncryptionContext: map[string]string{"k": "v"},
			EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault})
		require.NoError(t, err, ref)
		require.Equal(t, "named", string(dec.Plaintext), ref)
	}

	// Size limits, sent raw since the SDK does not check them.
	requireRawOK(t, rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id, "Plaintext": b64(make([]byte, 4096))}))
	requireRawError(t, rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id, "Plaintext": b64(make([]byte, 4097))}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id, "Plaintext": ""}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Encrypt", map[string]any{"Plaintext": b64([]byte("x"))}), "ValidationException")
	// A validation message never echoes the (sensitive) plaintext.
	res := rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id, "Plaintext": b64(bytes.Repeat([]byte("Z"), 4097))})
	requireRawError(t, res, "ValidationException")
	require.NotContains(t, res.Message, "ZZZZ")
	require.NotContains(t, res.Message, b64(bytes.Repeat([]byte("Z"), 30)))

	// Unknown keys.
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("alias/none"), Plaintext: []byte("x")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String("1234abcd-12ab-34cd-56ef-1234567890ab"), Plaintext: []byte("x")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String("alias/none"), EncryptionContext: map[string]string{"k": "v"}})
	requireErrAs[*types.NotFoundException](t, err)
}

func TestSDKEncryptionContextBinding(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	id, _ := mkKey(t, c)

	base := map[string]string{"tenant": "a", "purpose": "x"}
	blob := encrypt(t, c, id, []byte("bound"), base)
	wrong := map[string]map[string]string{
		"missing":       nil,
		"empty":         {},
		"subset":        {"tenant": "a"},
		"extra":         {"tenant": "a", "purpose": "x", "more": "y"},
		"other value":   {"tenant": "b", "purpose": "x"},
		"other key":     {"tenant": "a", "Purpose": "x"},
		"value case":    {"tenant": "A", "purpose": "x"},
		"swapped":       {"tenant": "x", "purpose": "a"},
		"trailing char": {"tenant": "a ", "purpose": "x"},
	}
	for name, ectx := range wrong {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ectx})
		requireErrAs[*types.InvalidCiphertextException](t, err, name)
	}
	// Map order does not matter.
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"purpose": "x", "tenant": "a"}})
	require.NoError(t, err)
	require.Equal(t, "bound", string(dec.Plaintext))

	// Without a context at encryption, any context at decryption fails.
	plain := encrypt(t, c, id, []byte("unbound"), nil)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: plain, EncryptionContext: map[string]string{"a": "b"}})
	requireErrAs[*types.InvalidCiphertextException](t, err)

	// Contexts whose concatenations are equal do not cross-decrypt.
	pairs := [][2]map[string]string{
		{{"ab": "c"}, {"a": "bc"}},
		{{"a": "b", "c": "d"}, {"a": "bcd"}},
		{{"a": ""}, {"": "a"}},
		{{"a=b": "c"}, {"a": "b=c"}},
	}
	for _, p := range pairs {
		for i := 0; i < 2; i++ {
			enc := encrypt(t, c, id, []byte("pair"), p[i])
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc, EncryptionContext: p[1-i]})
			requireErrAs[*types.InvalidCiphertextException](t, err, "%v vs %v", p[i], p[1-i])
			dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc, EncryptionContext: p[i]})
			require.NoError(t, err)
			require.Equal(t, "pair", string(dec.Plaintext))
		}
	}
}

func TestSDKDecryptWrongKeyAndTampering(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	idA, arnA := mkKey(t, c)
	idB, arnB := mkKey(t, c)
	mkAlias(t, c, "alias/b", idB)
	ectx := map[string]string{"k": "v"}
	blob := encrypt(t, c, idA, []byte("tamper me please"), ectx)

	// KeyId naming another key: IncorrectKeyException in every form.
	for _, ref := range []string{idB, arnB, "alias/b", aliasARNPfx + "alias/b"} {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(ref), EncryptionContext: ectx})
		requireErrAs[*types.IncorrectKeyException](t, err, ref)
	}

	// Tampering: every changed byte outside the key id is an invalid ciphertext.
	require.Greater(t, len(blob), crypto.HeaderSize)
	for _, pos := range []int{0, 1, 2, 20, 35, 36, 51, 52, 63, crypto.HeaderSize, crypto.HeaderSize + 3, len(blob) - 17, len(blob) - 1} {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(blob)
			bad[pos] ^= mask
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ectx})
			requireErrAs[*types.InvalidCiphertextException](t, err, "byte %d ^ %#x", pos, mask)
		}
	}
	// Unknown flag bits.
	for _, mask := range []byte{0x02, 0x80} {
		bad := bytes.Clone(blob)
		bad[3] ^= mask
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ectx})
		requireErrAs[*types.InvalidCiphertextException](t, err, "flags ^ %#x", mask)
	}
	// A changed key id names a key that does not exist: AccessDeniedException,
	// like AWS, so the answer reveals nothing about which keys exist.
	for _, pos := range []int{4, 11, 19} {
		bad := bytes.Clone(blob)
		bad[pos] ^= 0x01
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ectx})
		requireCode(t, err, "AccessDeniedException", "key id byte %d", pos)
	}
	// The key id of another existing key: the blob does not authenticate
	// under that key.
	bad := bytes.Clone(blob)
	rawB, _, err := crypto.ParseKeyID(idB)
	require.NoError(t, err)
	copy(bad[4:20], rawB[:])
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: ectx})
	requireErrAs[*types.InvalidCiphertextException](t, err)

	// Truncations, extensions and garbage.
	for name, b := range map[string][]byte{
		"drop last byte":   blob[:len(blob)-1],
		"header only":      blob[:crypto.HeaderSize],
		"min size":         blob[:crypto.MinBlobSize],
		"below min size":   blob[:crypto.MinBlobSize-1],
		"10 bytes":         blob[:10],
		"one byte":         blob[:1],
		"extra byte":       append(bytes.Clone(blob), 0),
		"doubled":          append(bytes.Clone(blob), blob...),
		"random garbage":   randBytes(t, len(blob)),
		"random short":     randBytes(t, 3),
		"zeros":            make([]byte, 200),
		"max size garbage": randBytes(t, 6144),
	} {
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: b, EncryptionContext: ectx})
		requireErrAs[*types.InvalidCiphertextException](t, err, name)
	}
	// Well-formed garbage names a random key id: no such key.
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: append([]byte{'K', 'D', 1, 0}, randBytes(t, 100)...)})
	requireCode(t, err, "AccessDeniedException")
	// The original still decrypts, under its key.
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: ectx, KeyId: aws.String(arnA)})
	require.NoError(t, err)
	require.Equal(t, "tamper me please", string(dec.Plaintext))

	// Empty and oversized blobs break the shape (min 1, max 6144): AWS
	// rejects them in validation, before looking at the bytes.
	requireRawError(t, rawCall(t, srv, "Decrypt", map[string]any{"CiphertextBlob": ""}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Decrypt", map[string]any{}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Decrypt", map[string]any{"CiphertextBlob": b64(make([]byte, 6145))}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "Decrypt", map[string]any{"CiphertextBlob": "!!not base64!!"}), "SerializationException")
}

func TestSDKAlgorithmsAndDryRun(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	id, _ := mkKey(t, c)
	other, _ := mkKey(t, c)
	blob := encrypt(t, c, id, []byte("alg"), nil)

	for _, alg := range []types.EncryptionAlgorithmSpec{types.EncryptionAlgorithmSpecRsaesOaepSha256, types.EncryptionAlgorithmSpecRsaesOaepSha1, types.EncryptionAlgorithmSpecSm2pke} {
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), EncryptionAlgorithm: alg})
		requireErrAs[*types.InvalidKeyUsageException](t, err, alg)
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionAlgorithm: alg})
		requireErrAs[*types.InvalidKeyUsageException](t, err, alg)
		_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String(other), DestinationEncryptionAlgorithm: alg})
		requireErrAs[*types.InvalidKeyUsageException](t, err, alg)
		_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String(other), SourceEncryptionAlgorithm: alg})
		requireErrAs[*types.InvalidKeyUsageException](t, err, alg)
	}
	requireRawError(t, rawCall(t, srv, "Encrypt", map[string]any{"KeyId": id, "Plaintext": b64([]byte("x")), "EncryptionAlgorithm": "AES"}), "ValidationException")

	// DryRun: the request would have succeeded.
	dry := aws.Bool(true)
	_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, DestinationKeyId: aws.String(other), DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, DryRun: dry})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, DryRun: dry})
	requireCode(t, err, "DryRunOperationException")
	// DryRun false is an ordinary request.
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), DryRun: aws.Bool(false)})
	require.NoError(t, err)
	// A dry run that would fail reports the failure.
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(id), Plaintext: []byte("x"), DryRun: dry})
	requireErrAs[*types.DisabledException](t, err)
}

// TestSDKCryptoKeyStates checks every cryptographic operation against a key
// in each unusable state (reference/key-states.md), then that restoring the
// key restores its use.
func TestSDKCryptoKeyStates(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	healthy, _ := mkKey(t, c)
	healthyBlob := encrypt(t, c, healthy, []byte("healthy"), nil)

	type op struct {
		name string
		run  func(key string, blob []byte) error
	}
	ops := []op{
		{"Encrypt", func(key string, _ []byte) error {
			_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
			return err
		}},
		{"Decrypt", func(_ string, blob []byte) error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"s": "t"}})
			return err
		}},
		{"Decrypt with KeyId", func(key string, blob []byte) error {
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(key), EncryptionContext: map[string]string{"s": "t"}})
			return err
		}},
		{"ReEncrypt from", func(_ string, blob []byte) error {
			_, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: map[string]string{"s": "t"}, DestinationKeyId: aws.String(healthy)})
			return err
		}},
		{"ReEncrypt to", func(key string, _ []byte) error {
			_, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: healthyBlob, DestinationKeyId: aws.String(key)})
			return err
		}},
		{"GenerateDataKey", func(key string, _ []byte) error {
			_, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: types.DataKeySpecAes256})
			return err
		}},
		{"GenerateDataKeyWithoutPlaintext", func(key string, _ []byte) error {
			_, err := c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(key), NumberOfBytes: aws.Int32(64)})
			return err
		}},
	}
	states := []struct {
		state   types.KeyState
		enter   func(t *testing.T, id string)
		check   func(t *testing.T, err error)
		restore func(t *testing.T, id string)
	}{
		{
			types.KeyStateDisabled,
			func(t *testing.T, id string) {
				_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)})
				require.NoError(t, err)
			},
			func(t *testing.T, err error) { requireErrAs[*types.DisabledException](t, err) },
			func(t *testing.T, id string) {
				_, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
				require.NoError(t, err)
			},
		},
		{
			types.KeyStatePendingDeletion,
			func(t *testing.T, id string) { scheduleDeletion(t, c, id, 7) },
			func(t *testing.T, err error) { requireErrAs[*types.KMSInvalidStateException](t, err) },
			func(t *testing.T, id string) {
				_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
				require.NoError(t, err)
				_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
				require.NoError(t, err)
			},
		},
	}
	for _, st := range states {
		t.Run(string(st.state), func(t *testing.T) {
			id, arn := mkKey(t, c)
			alias := "alias/state-" + strings.ToLower(string(st.state))
			mkAlias(t, c, alias, id)
			blob := encrypt(t, c, id, []byte("state"), map[string]string{"s": "t"})
			st.enter(t, id)
			require.Equal(t, st.state, describe(t, c, id).KeyState)
			for _, o := range ops {
				for _, ref := range []string{id, arn, alias} {
					err := o.run(ref, blob)
					t.Run(o.name+" "+ref, func(t *testing.T) {
						st.check(t, err)
						require.Contains(t, err.Error(), arn, "the message names the key ARN")
					})
				}
			}
			st.restore(t, id)
			require.Equal(t, types.KeyStateEnabled, describe(t, c, id).KeyState)
			for _, o := range ops {
				require.NoError(t, o.run(id, blob), "%s after restoring the key", o.name)
			}
		})
	}
}

func TestSDKReEncrypt(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	src, srcARN := mkKey(t, c)
	dst, dstARN := mkKey(t, c)
	third, _ := mkKey(t, c)
	mkAlias(t, c, "alias/dst", dst)
	srcCtx := map[string]string{"from": "src"}
	dstCtx := map[string]string{"to": "dst"}
	pt := randBytes(t, 300)
	blob := encrypt(t, c, src, pt, srcCtx)

	out, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{
		CiphertextBlob: blob, SourceEncryptionContext: srcCtx,
		DestinationKeyId: aws.String("alias/dst"), DestinationEncryptionContext: dstCtx,
	})
	require.NoError(t, err)
	require.Equal(t, srcARN, aws.ToString(out.SourceKeyId))
	require.Equal(t, dstARN, aws.ToString(out.KeyId))
	require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, out.SourceEncryptionAlgorithm)
	require.Equal(t, types.EncryptionAlgorithmSpecSymmetricDefault, out.DestinationEncryptionAlgorithm)
	require.NotEqual(t, blob, out.CiphertextBlob)

	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: dstCtx})
	require.NoError(t, err)
	require.Equal(t, pt, dec.Plaintext)
	require.Equal(t, dstARN, aws.ToString(dec.KeyId))
	// The new blob is bound to the destination key and context.
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: srcCtx})
	requireErrAs[*types.InvalidCiphertextException](t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: dstCtx, KeyId: aws.String(src)})
	requireErrAs[*types.IncorrectKeyException](t, err)
	// The old blob still decrypts under the source key.
	dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: srcCtx})
	require.NoError(t, err)
	require.Equal(t, pt, dec.Plaintext)

	// Wrong source context.
	for _, wrong := range []map[string]string{nil, {"from": "other"}, dstCtx} {
		_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: wrong, DestinationKeyId: aws.String(dst)})
		requireErrAs[*types.InvalidCiphertextException](t, err, "%v", wrong)
	}
	// SourceKeyId naming another key.
	for _, ref := range []string{dst, third, "alias/dst"} {
		_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: srcCtx, SourceKeyId: aws.String(ref), DestinationKeyId: aws.String(dst)})
		requireErrAs[*types.IncorrectKeyException](t, err, ref)
	}
	// SourceKeyId naming the right key.
	out, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: srcCtx, SourceKeyId: aws.String(srcARN), DestinationKeyId: aws.String(src)})
	require.NoError(t, err)
	require.Equal(t, srcARN, aws.ToString(out.KeyId))
	dec, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob})
	require.NoError(t, err, "re-encrypted to the same key without a context")
	require.Equal(t, pt, dec.Plaintext)

	// Unknown destination; tampered source; missing destination.
	_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: srcCtx, DestinationKeyId: aws.String("alias/none")})
	requireErrAs[*types.NotFoundException](t, err)
	bad := bytes.Clone(blob)
	bad[len(bad)-1] ^= 1
	_, err = c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: bad, SourceEncryptionContext: srcCtx, DestinationKeyId: aws.String(dst)})
	requireErrAs[*types.InvalidCiphertextException](t, err)
	requireRawError(t, rawCall(t, srv, "ReEncrypt", map[string]any{"CiphertextBlob": b64(blob)}), "ValidationException")
	requireRawError(t, rawCall(t, srv, "ReEncrypt", map[string]any{"CiphertextBlob": "", "DestinationKeyId": dst}), "ValidationException")
}

func TestSDKGenerateDataKey(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	id, arn := mkKey(t, c)
	other, _ := mkKey(t, c)
	ectx := map[string]string{"file": "a.txt"}

	check := func(name string, out *kms.GenerateDataKeyOutput, n int) {
		t.Helper()
		require.Len(t, out.Plaintext, n, name)
		require.Equal(t, arn, aws.ToString(out.KeyId), name)
		require.Regexp(t, `^[a-f0-9]{64}$`, aws.ToString(out.KeyMaterialId), name)
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ectx})
		require.NoError(t, err, name)
		require.Equal(t, out.Plaintext, dec.Plaintext, name)
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob})
		requireErrAs[*types.InvalidCiphertextException](t, err, name)
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: out.CiphertextBlob, EncryptionContext: ectx, KeyId: aws.String(other)})
		requireErrAs[*types.IncorrectKeyException](t, err, name)
	}
	for _, tc := range []struct {
		name string
		in   *kms.GenerateDataKeyInput
		n    int
	}{
		{"AES_256", &kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes256}, 32},
		{"AES_128", &kms.GenerateDataKeyInput{KeySpec: types.DataKeySpecAes128}, 16},
		{"1 byte", &kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1)}, 1},
		{"1024 bytes", &kms.GenerateDataKeyInput{NumberOfBytes: aws.Int32(1024)}, 1024},
	} {
		tc.in.KeyId = aws.String(id)
		tc.in.EncryptionContext = ectx
		out, err := c.GenerateDataKey(ctx, tc.in)
		require.NoError(t, err, tc.name)
		check(tc.name, out, tc.n)
	}
	// Fresh keys every time.
	a, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	b, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	require.NotEqual(t, a.Plaintext, b.Plaintext)

	// Without plaintext.
	wp, err := c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Equal(t, arn, aws.ToString(wp.KeyId))
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: wp.CiphertextBlob, EncryptionContext: ectx})
	require.NoError(t, err)
	require.Len(t, dec.Plaintext, 32)
	res := rawCall(t, srv, "GenerateDataKeyWithoutPlaintext", map[string]any{"KeyId": id, "NumberOfBytes": 16})
	requireRawOK(t, res)
	require.NotContains(t, res.Body, "Plaintext")
	require.Contains(t, res.Body, "CiphertextBlob")

	// Exactly one of KeySpec and NumberOfBytes.
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256, NumberOfBytes: aws.Int32(32)})
	requireCode(t, err, "ValidationException")
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id)})
	requireCode(t, err, "ValidationException")
	_, err = c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes128, NumberOfBytes: aws.Int32(16)})
	requireCode(t, err, "ValidationException")
	_, err = c.GenerateDataKeyWithoutPlaintext(ctx, &kms.GenerateDataKeyWithoutPlaintextInput{KeyId: aws.String(id)})
	requireCode(t, err, "ValidationException")
	for _, op := range []string{"GenerateDataKey", "GenerateDataKeyWithoutPlaintext"} {
		for _, n := range []int{0, -1, 1025} {
			requireRawError(t, rawCall(t, srv, op, map[string]any{"KeyId": id, "NumberOfBytes": n}), "ValidationException", "%s %d", op, n)
		}
		requireRawError(t, rawCall(t, srv, op, map[string]any{"KeyId": id, "KeySpec": "AES_512"}), "ValidationException", op)
		requireRawError(t, rawCall(t, srv, op, map[string]any{"KeySpec": "AES_256"}), "ValidationException", op)
	}
	_, err = c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String("alias/none"), KeySpec: types.DataKeySpecAes256})
	requireErrAs[*types.NotFoundException](t, err)
}

func TestSDKGenerateRandom(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	for _, n := range []int32{1, 32, 1024} {
		out, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(n)})
		require.NoError(t, err)
		require.Len(t, out.Plaintext, int(n))
	}
	a, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	require.NoError(t, err)
	b, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	require.NoError(t, err)
	require.NotEqual(t, a.Plaintext, b.Plaintext)

	for _, body := range []map[string]any{{"NumberOfBytes": 0}, {"NumberOfBytes": -5}, {"NumberOfBytes": 1025}, {}} {
		requireRawError(t, rawCall(t, srv, "GenerateRandom", body), "ValidationException", "%v", body)
	}
	_, err = c.GenerateRandom(ctx, &kms.GenerateRandomInput{})
	requireCode(t, err, "ValidationException")
	_, err = c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(8), CustomKeyStoreId: aws.String("cks-1234567890abcdef0")})
	requireErrAs[*types.CustomKeyStoreNotFoundException](t, err)
}

// TestSDKCiphertextFromAnotherServer decrypts on one server a ciphertext
// made on another: its key does not exist there.
func TestSDKCiphertextFromAnotherServer(t *testing.T) {
	t.Parallel()
	a := testserver.Start(t)
	b := testserver.Start(t)
	ctx := context.Background()

	idA, _ := mkKey(t, a.Client)
	blob := encrypt(t, a.Client, idA, []byte("from a"), map[string]string{"x": "y"})
	_, err := b.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, EncryptionContext: map[string]string{"x": "y"}})
	requireCode(t, err, "AccessDeniedException")
	_, err = b.Client.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: map[string]string{"x": "y"}, DestinationKeyId: aws.String(mkKeyID(t, b))})
	requireCode(t, err, "AccessDeniedException")
	// Naming the key explicitly: it does not exist on b.
	_, err = b.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob, KeyId: aws.String(idA)})
	requireErrAs[*types.NotFoundException](t, err)

	// A data key from b does not open on a either.
	gdk, err := b.Client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(mkKeyID(t, b)), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	_, err = a.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gdk.CiphertextBlob})
	requireCode(t, err, "AccessDeniedException")
}

func mkKeyID(t testing.TB, srv *testserver.Server) string {
	t.Helper()
	id, _ := mkKey(t, srv.Client)
	return id
}

// The ciphertext format is a node setting: format 2 by default, format 1
// when configured (a rolling upgrade), and a node opens both, including
// after its key cache was emptied.
func TestSDKCiphertextFormats(t *testing.T) {
	ctx := context.Background()
	for _, format := range []byte{0, 1, 2} {
		srv := testserver.StartWith(t, func(c *service.Config) { c.CiphertextFormat = format })
		key := mkKeyID(t, srv)
		want := format
		if want == 0 {
			want = 2
		}
		enc, err := srv.Client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("format test"),
			EncryptionContext: map[string]string{"f": "x"}})
		require.NoError(t, err)
		require.Equal(t, want, enc.CiphertextBlob[2], "format byte of the blob")
		dk, err := srv.Client.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(key), KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		require.Equal(t, want, dk.CiphertextBlob[2])
		srv.Service.PurgeKeyCacheForTest()
		dec, err := srv.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"f": "x"}})
		require.NoError(t, err)
		require.Equal(t, "format test", string(dec.Plaintext))
		dec, err = srv.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: dk.CiphertextBlob})
		require.NoError(t, err)
		require.Equal(t, dk.Plaintext, dec.Plaintext)
		// The format byte is authenticated: the other format's reading fails.
		bad := bytes.Clone(enc.CiphertextBlob)
		bad[2] = 3 - want
		_, err = srv.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: bad, EncryptionContext: map[string]string{"f": "x"}})
		var ice *types.InvalidCiphertextException
		require.ErrorAs(t, err, &ice)
	}
}
