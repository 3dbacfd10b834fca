package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/api"
	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/internal/testserver"
)

// TestAuditRecordsNoSecrets runs real operations through a handler with an
// audit.Writer and scans the audit files for the plaintexts, data keys and
// ciphertexts involved, raw, in base64 and in hex.
func TestAuditRecordsNoSecrets(t *testing.T) {
	srv := testserver.Start(t)
	dir := t.TempDir()
	w, err := audit.Open(audit.Options{Dir: dir, NodeID: "n1", Region: testserver.Region, AccountID: testserver.AccountID, DigestEvery: 3})
	require.NoError(t, err)
	h, err := api.NewHandler(api.Config{
		KMS:    srv.Service,
		Auth:   &api.DevAuthenticator{AccountID: testserver.AccountID},
		NodeID: "n1",
		Audit:  w,
	})
	require.NoError(t, err)
	hs := httptest.NewServer(h)
	defer hs.Close()
	c := testserver.NewClient(hs.URL)
	ctx := context.Background()

	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("audited")})
	require.NoError(t, err)
	keyID := *created.KeyMetadata.KeyId
	plaintext := []byte("the launch code is 0000-TOP-SECRET-PLAINTEXT")
	enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: plaintext,
		EncryptionContext: map[string]string{"purpose": "audit-test"}})
	require.NoError(t, err)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"purpose": "audit-test"}})
	require.NoError(t, err)
	require.Equal(t, plaintext, dec.Plaintext)
	dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(keyID), KeySpec: types.DataKeySpecAes256})
	require.NoError(t, err)
	rnd, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
	require.NoError(t, err)
	_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: []byte("garbage-ciphertext-garbage-ciphertext")})
	require.Error(t, err)
	require.NoError(t, w.Close())

	secrets := map[string][]byte{
		"plaintext": plaintext, "ciphertext": enc.CiphertextBlob, "data key": dk.Plaintext,
		"wrapped data key": dk.CiphertextBlob, "random": rnd.Plaintext,
	}
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		all = append(all, b...)
	}
	for name, s := range secrets {
		for form, enc := range map[string][]byte{
			"raw": s, "base64": []byte(base64.StdEncoding.EncodeToString(s)), "hex": []byte(hex.EncodeToString(s)),
			"base64 prefix": []byte(base64.StdEncoding.EncodeToString(s)[:16]),
		} {
			require.False(t, bytes.Contains(all, enc), "the audit files contain the %s (%s)", name, form)
		}
	}
	// What is kept: the operations, the key, the encryption context, the
	// failure.
	for _, want := range []string{`"eventName":"Encrypt"`, `"eventName":"GenerateDataKey"`, `"eventName":"GenerateRandom"`,
		`"encryptionContext":{"purpose":"audit-test"}`, keyID, `"errorCode":"InvalidCiphertextException"`} {
		require.Contains(t, string(all), want)
	}

	auditFiles, err := audit.Files(dir)
	require.NoError(t, err)
	reps, err := audit.VerifyFiles(auditFiles, audit.VerifyOptions{PublicKey: w.PublicKey()})
	require.NoError(t, err)
	require.Len(t, reps, 1)
	require.True(t, reps[0].OK(), "%v", reps[0].Problems)
	require.Equal(t, 6, reps[0].Events)
}
