package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

type sealed struct {
	keyID      string
	plaintext  []byte
	ciphertext []byte
	context    map[string]string
}

// TestKillRestartKeepsEverything creates keys, aliases, tags and
// ciphertexts, SIGKILLs the process, restarts it on the same data dir, and
// checks that everything is there and every ciphertext still decrypts. The
// rounds repeat with more state each time (KMSD_CHAOS_ROUNDS, default 2).
func TestKillRestartKeepsEverything(t *testing.T) {
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("KMSD_CHAOS_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dataDir := t.TempDir()
	p := startDev(t, dataDir)
	ctx := ctxT(t)

	var all []sealed
	tags := map[string]string{}
	aliases := map[string]string{}
	disabled := map[string]bool{}
	for round := 0; round < rounds; round++ {
		c := testserver.NewClient(p.endpoint)
		for i := 0; i < 3; i++ {
			ck, err := c.CreateKey(ctx, &kms.CreateKeyInput{
				Description: aws.String(fmt.Sprintf("round %d key %d", round, i)),
				Tags:        []types.Tag{{TagKey: aws.String("round"), TagValue: aws.String(strconv.Itoa(round))}},
			})
			require.NoError(t, err)
			id := *ck.KeyMetadata.KeyId
			tags[id] = strconv.Itoa(round)
			alias := fmt.Sprintf("alias/r%d-k%d", round, i)
			_, err = c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(id)})
			require.NoError(t, err)
			aliases[alias] = id
			pt := make([]byte, 100+i)
			rand.Read(pt)
			ec := map[string]string{"round": strconv.Itoa(round)}
			enc, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(alias), Plaintext: pt, EncryptionContext: ec})
			require.NoError(t, err)
			all = append(all, sealed{keyID: id, plaintext: pt, ciphertext: enc.CiphertextBlob, context: ec})
		}
		// One key per round ends disabled; the state must survive too.
		last := all[len(all)-1].keyID
		_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(last)})
		require.NoError(t, err)
		disabled[last] = true

		p.kill()
		p = startDev(t, dataDir)
		c = testserver.NewClient(p.endpoint)

		for alias, id := range aliases {
			d, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(alias)})
			require.NoError(t, err, alias)
			require.Equal(t, id, *d.KeyMetadata.KeyId)
			want := types.KeyStateEnabled
			if disabled[id] {
				want = types.KeyStateDisabled
			}
			require.Equal(t, want, d.KeyMetadata.KeyState)
			lt, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
			require.NoError(t, err)
			require.Len(t, lt.Tags, 1)
			require.Equal(t, tags[id], *lt.Tags[0].TagValue)
		}
		for _, s := range all {
			out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: s.ciphertext, EncryptionContext: s.context})
			if disabled[s.keyID] {
				var de *types.DisabledException
				require.True(t, errors.As(err, &de), "want DisabledException, got %v", err)
				continue
			}
			require.NoError(t, err)
			require.True(t, bytes.Equal(s.plaintext, out.Plaintext))
		}
		keys, err := c.ListKeys(ctx, &kms.ListKeysInput{Limit: aws.Int32(1000)})
		require.NoError(t, err)
		require.Len(t, keys.Keys, len(tags))
	}
}

// TestDataDirHoldsNoPlaintext sends plaintexts and takes data keys, then
// scans every byte of the data dir (Raft log, stable store, snapshots) for
// them, in raw and base64 form. Key material is checked by the in-process
// test in the service package, which can unwrap it.
func TestDataDirHoldsNoPlaintext(t *testing.T) {
	dataDir := t.TempDir()
	p := startDev(t, dataDir)
	c := testserver.NewClient(p.endpoint)
	ctx := ctxT(t)
	needles := map[string][]byte{}
	ck, err := c.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		pt := make([]byte, 64)
		rand.Read(pt)
		_, err := c.Encrypt(ctx, &kms.EncryptInput{KeyId: ck.KeyMetadata.KeyId, Plaintext: pt})
		require.NoError(t, err)
		needles[fmt.Sprintf("plaintext %d", i)] = pt
		needles[fmt.Sprintf("plaintext %d (base64)", i)] = []byte(base64.StdEncoding.EncodeToString(pt))
		dk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: ck.KeyMetadata.KeyId, KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		needles[fmt.Sprintf("data key %d", i)] = dk.Plaintext
		needles[fmt.Sprintf("data key %d (base64)", i)] = []byte(base64.StdEncoding.EncodeToString(dk.Plaintext))
		// Keys created between data operations make the log grow.
		_, err = c.CreateKey(ctx, &kms.CreateKeyInput{})
		require.NoError(t, err)
	}
	p.stop()
	require.Empty(t, scanDir(t, dataDir, needles))
}
