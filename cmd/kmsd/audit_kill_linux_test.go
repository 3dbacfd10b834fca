package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/audit"
	"github.com/kmsd/kmsd/kmsdclient"
)

// TestDevAuditSurvivesSIGKILL: kmsd is killed (SIGKILL) after a batch
// request, with its audit file open and disk blocks reserved past its end.
// The restarted node releases the reserve without changing the file, chains
// a new file to it, and both verify: the batch is one summary record whose
// items carry their own request ids.
func TestDevAuditSurvivesSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	p := startKmsd(t, "-dev", "-data-dir", dataDir)
	ctx := context.Background()
	created, err := p.client("AKIDAUDIT", "secret").CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	bc, err := kmsdclient.New(kmsdclient.Options{Endpoint: p.url, Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("AKIDAUDIT", "secret", ""), MaxAttempts: 1,
		HTTPClient: &http.Client{Timeout: time.Minute}})
	require.NoError(t, err)
	items := make([]kmsdclient.DataKeyItem, 200)
	for i := range items {
		items[i] = kmsdclient.DataKeyItem{KeyId: *created.KeyMetadata.KeyId, KeySpec: "AES_256"}
	}
	items[7].KeyId = "alias/none"
	out, err := bc.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items})
	require.NoError(t, err)

	dir := filepath.Join(dataDir, "audit")
	files, err := audit.Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 1)
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(files[0], &st))
	reserved := st.Blocks*512 > st.Size+1<<20
	t.Logf("before the kill: size %d, allocated %d", st.Size, st.Blocks*512)

	require.NoError(t, p.cmd.Process.Kill())
	<-p.done
	before, err := os.ReadFile(files[0])
	require.NoError(t, err)

	p = startKmsd(t, "-dev", "-data-dir", dataDir)
	_, err = p.client("AKIDAUDIT", "secret").ListKeys(ctx, &kms.ListKeysInput{})
	require.NoError(t, err)
	stopKmsd(t, p)

	after, err := os.ReadFile(files[0])
	require.NoError(t, err)
	require.Equal(t, before, after, "the killed node's file is not changed")
	require.NoError(t, syscall.Stat(files[0], &st))
	if reserved {
		require.Less(t, st.Blocks*512, st.Size+64<<10, "reserve released at restart")
	} else {
		t.Logf("no blocks were reserved (the file system refused fallocate KEEP_SIZE): release not checked")
	}

	pub, err := audit.ReadPublicKey(filepath.Join(dir, audit.PubFile))
	require.NoError(t, err)
	files, err = audit.Files(dir)
	require.NoError(t, err)
	require.Len(t, files, 2)
	reps, err := audit.VerifyFiles(files, audit.VerifyOptions{PublicKey: pub})
	require.NoError(t, err)
	for _, r := range reps {
		require.True(t, r.OK(), "%s: %v", r.File, r.Problems)
	}
	require.False(t, reps[0].Final, "killed: no final digest")
	require.Equal(t, 2, reps[0].Events, "CreateKey and the batch's summary record")
	require.NotNil(t, reps[1].Header.PreviousFileClosed)
	require.False(t, *reps[1].Header.PreviousFileClosed)

	log := string(before)
	require.Contains(t, log, `"eventName":"BatchGenerateDataKey"`)
	require.Contains(t, log, `"requestParameters":{"itemCount":200}`)
	require.Contains(t, log, `"responseElements":{"failedItemCount":1}`)
	require.Contains(t, log, `"requestID":"`+out.RequestID+`#199"`)
	require.Contains(t, log, `{"requestID":"`+out.RequestID+`#7","requestParameters":{"keyId":"alias/none","keySpec":"AES_256"},"errorCode":"NotFoundException"`)
	require.Equal(t, 1, strings.Count(log, `"eventName":"BatchGenerateDataKey"`))
	for _, r := range out.Results {
		if r.Error == nil {
			require.NotContains(t, log, base64.StdEncoding.EncodeToString(r.CiphertextBlob))
			require.NotContains(t, log, base64.StdEncoding.EncodeToString(r.Plaintext))
		}
	}
}
