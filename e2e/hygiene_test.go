package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/sdkhttp"
	"github.com/kmsd/kmsd/internal/testserver"
)

// TestSecretsStayOutOfEverything is the hygiene check of the security
// issue, from outside the process: a node with a credentials file, audit
// and debug logging gets plaintexts, hands out data keys, private keys of
// data key pairs and random bytes, and fails some requests on purpose.
// Then every byte kmsd wrote or showed (data dir including the audit log,
// its log at debug level, /metrics, /v1/status, error answers) is searched
// for each secret in raw, base64 and hex form, and every path under the data
// dir must be private to kmsd's user (directories 0700, files 0600).
func TestSecretsStayOutOfEverything(t *testing.T) {
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	const access, secret = "AKIDHYGIENE", "hygiene-secret-access-key-0123456789abcdef"
	credFile := filepath.Join(dir, "credentials.json")
	require.NoError(t, os.WriteFile(credFile, []byte(fmt.Sprintf(`{"account_id": %q, "credentials": [
		{"access_key_id": %q, "secret_access_key": %q, "arn": "arn:aws:iam::%s:user/hygiene",
		 "policy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}}]}`,
		testserver.AccountID, access, secret, testserver.AccountID)), 0o600))

	p := startDevWith(t, dataDir, "-credentials-file", credFile, "-audit-digest-every", "3")
	logPath := p.logPath

	c := kms.New(kms.Options{
		Region:           testserver.Region,
		BaseEndpoint:     aws.String(p.endpoint),
		Credentials:      credentials.NewStaticCredentialsProvider(access, secret, ""),
		RetryMaxAttempts: 1,
		HTTPClient:       sdkhttp.OwnBody(nil),
	})
	ctx := ctxT(t)
	needles := map[string][]byte{}
	add := func(name string, b []byte) {
		require.GreaterOrEqual(t, len(b), 16, name)
		needles[name] = append([]byte(nil), b...)
		needles[name+" (base64)"] = []byte(base64.StdEncoding.EncodeToString(b))
		needles[name+" (hex)"] = []byte(hex.EncodeToString(b))
	}
	add("secret access key", []byte(secret))

	sym, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	symID := sym.KeyMetadata.KeyId
	for i := 0; i < 5; i++ {
		pt := make([]byte, 48)
		rand.Read(pt)
		add(fmt.Sprintf("plaintext %d", i), pt)
		enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: symID, Plaintext: pt,
			EncryptionContext: map[string]string{"purpose": "hygiene"}})
		require.NoError(t, err)
		// A Decrypt under the wrong context fails; its error must not
		// carry the plaintext either.
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob,
			EncryptionContext: map[string]string{"purpose": "other"}})
		require.Error(t, err)
		for name, n := range needles {
			require.NotContains(t, err.Error(), string(n), name)
		}
		dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: symID, KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		add(fmt.Sprintf("data key %d", i), dk.Plaintext)
		rnd, err := c.GenerateRandom(ctx, &kms.GenerateRandomInput{NumberOfBytes: aws.Int32(32)})
		require.NoError(t, err)
		add(fmt.Sprintf("random %d", i), rnd.Plaintext)
	}
	pair, err := c.GenerateDataKeyPair(ctx, &kms.GenerateDataKeyPairInput{KeyId: symID, KeyPairSpec: types.DataKeyPairSpecEccNistP256})
	require.NoError(t, err)
	add("data key pair private key", pair.PrivateKeyPlaintext)
	hmacKey, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)
	msg := make([]byte, 40)
	rand.Read(msg)
	_, err = c.GenerateMac(ctx, &kms.GenerateMacInput{KeyId: hmacKey.KeyMetadata.KeyId, Message: msg, MacAlgorithm: types.MacAlgorithmSpecHmacSha256})
	require.NoError(t, err)
	add("MAC message", msg)

	// A request signed with the right key id and a wrong secret fails
	// without the real secret showing up anywhere.
	bad := kms.New(kms.Options{Region: testserver.Region, BaseEndpoint: aws.String(p.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider(access, "wrong-"+secret, ""), RetryMaxAttempts: 1,
		HTTPClient: sdkhttp.OwnBody(nil)})
	_, err = bad.ListKeys(ctx, &kms.ListKeysInput{})
	require.ErrorContains(t, err, "InvalidSignatureException")

	shown := map[string][]byte{}
	for _, path := range []string{"/metrics", "/v1/status", "/healthz", "/readyz"} {
		resp, err := http.Get(p.endpoint + path)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		shown[path] = b
	}
	p.stop()
	logBytes, err := os.ReadFile(logPath)
	require.NoError(t, err)
	shown["log"] = logBytes
	require.Contains(t, string(logBytes), "level=DEBUG", "the log must be at debug level for this check to mean something")

	// The dev root key lives in the data dir by design (mode 0600); it
	// must not show up in the log or the HTTP answers.
	rootKey, err := os.ReadFile(filepath.Join(dataDir, "dev-root-key"))
	require.NoError(t, err)
	shownNeedles := map[string][]byte{"dev root key file": []byte(strings.TrimSpace(string(rootKey)))}
	for k, v := range needles {
		shownNeedles[k] = v
	}
	for what, b := range shown {
		for name, n := range shownNeedles {
			require.NotContains(t, string(b), string(n), "%s found in %s", name, what)
		}
	}
	require.Empty(t, scanDir(t, dataDir, needles), "secrets in the data dir")

	// The audit log is under the data dir: make sure it was scanned.
	audits, err := filepath.Glob(filepath.Join(dataDir, "audit", "*"))
	require.NoError(t, err)
	require.NotEmpty(t, audits, "no audit files under %s", dataDir)
	// Positive controls: the scanned log and audit files do record the
	// requests (by access key id, which is not a secret), so an empty
	// finding above is not an empty file.
	require.Contains(t, string(logBytes), access)
	require.NotEmpty(t, scanDir(t, filepath.Join(dataDir, "audit"), map[string][]byte{"access key id": []byte(access)}))

	var loose []string
	require.NoError(t, filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			loose = append(loose, fmt.Sprintf("%s is %#o, want %#o", strings.TrimPrefix(path, dataDir), info.Mode().Perm(), want))
		}
		return nil
	}))
	require.Empty(t, loose, "paths under the data dir that others could read")
}
