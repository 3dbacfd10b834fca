package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/audit"
)

// TestDevWritesAuditLog starts kmsd -dev, makes calls (one failing) and
// stops it: <data-dir>/audit holds a verifiable, closed file with a record
// of each call and no plaintext; a restart chains a new file to it.
func TestDevWritesAuditLog(t *testing.T) {
	dataDir := t.TempDir()
	p := startKmsd(t, "-dev", "-data-dir", dataDir, "-audit-digest-every", "2")
	c := p.client("AKIDAUDIT", "secret")
	ctx := context.Background()
	created, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	const secret = "process-test-plaintext-0123456789"
	_, err = c.Encrypt(ctx, &kms.EncryptInput{KeyId: created.KeyMetadata.KeyId, Plaintext: []byte(secret)})
	require.NoError(t, err)
	_, err = c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String("alias/none")})
	require.Equal(t, "NotFoundException", errCode(err))
	stopKmsd(t, p)

	dir := filepath.Join(dataDir, "audit")
	pub, err := audit.ReadPublicKey(filepath.Join(dir, audit.PubFile))
	require.NoError(t, err)
	files, err := audit.Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 1)
	reps, err := audit.VerifyFiles(files, audit.VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	require.True(t, reps[0].OK(), "%v", reps[0].Problems)
	require.True(t, reps[0].Final, "clean shutdown writes a final digest")
	require.Equal(t, 3, reps[0].Events)
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	log := string(b)
	require.NotContains(t, log, secret)
	for _, want := range []string{`"eventName":"CreateKey"`, `"eventName":"Encrypt"`, `"errorCode":"NotFoundException"`,
		`"accessKeyId":"AKIDAUDIT"`, `"type":"Root"`, *created.KeyMetadata.Arn} {
		require.Contains(t, log, want)
	}
	fi, err := os.Stat(files[0])
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())

	// A restart starts the next file, linked to the first.
	p = startKmsd(t, "-dev", "-data-dir", dataDir)
	_, err = p.client("AKIDAUDIT", "secret").ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	stopKmsd(t, p)
	files, err = audit.Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 2)
	reps, err = audit.VerifyFiles(files, audit.VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
	}
	require.True(t, strings.HasSuffix(reps[1].Header.PreviousFile, filepath.Base(files[0])))
}

func stopKmsd(t *testing.T, p *kmsdProc) {
	t.Helper()
	require.NoError(t, p.cmd.Process.Signal(os.Interrupt))
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("kmsd did not stop:\n%s", p.out.String())
	}
}
