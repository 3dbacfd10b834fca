package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/internal/testserver"
)

// persistFixture is state created before a restart and checked after it.
type persistFixture struct {
	keys        map[string]types.KeyMetadata // by key id
	aliases     []types.AliasListEntry
	tags        map[string][]types.Tag
	ciphertexts []persistCiphertext
}

type persistCiphertext struct {
	keyID string
	ctx   map[string]string
	pt    []byte
	blob  []byte
}

func buildPersistFixture(t *testing.T, srv *testserver.Server) *persistFixture {
	t.Helper()
	c := srv.Client
	ctx := context.Background()
	f := &persistFixture{keys: map[string]types.KeyMetadata{}, tags: map[string][]types.Tag{}}

	var ids []string
	for i := 0; i < 4; i++ {
		if i == 2 {
			// Roll the domain key: the fixture's keys span two of them.
			srv.Clock.Advance(25 * time.Hour)
			require.NoError(t, srv.Service.MaintenanceTick(ctx))
		}
		out, err := c.CreateKey(ctx, &kms.CreateKeyInput{
			Description: aws.String(fmt.Sprintf("key %d", i)),
			Tags:        []types.Tag{{TagKey: aws.String("n"), TagValue: aws.String(fmt.Sprint(i))}},
		})
		require.NoError(t, err)
		id := aws.ToString(out.KeyMetadata.KeyId)
		ids = append(ids, id)
		for j := 0; j < 3; j++ {
			ectx := map[string]string{"key": fmt.Sprint(i), "msg": fmt.Sprint(j)}
			if j == 0 {
				ectx = nil
			}
			pt := randBytes(t, 10+100*j)
			f.ciphertexts = append(f.ciphertexts, persistCiphertext{id, ectx, pt, encrypt(t, c, id, pt, ectx)})
		}
		gdk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		f.ciphertexts = append(f.ciphertexts, persistCiphertext{id, nil, gdk.Plaintext, gdk.CiphertextBlob})
	}
	mkAlias(t, c, "alias/p0", ids[0])
	mkAlias(t, c, "alias/p1", ids[1])
	mkAlias(t, c, "alias/moved", ids[0])
	_, err := c.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String("alias/moved"), TargetKeyId: aws.String(ids[2])})
	require.NoError(t, err)
	_, err = c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(ids[1]), Tags: []types.Tag{{TagKey: aws.String("extra"), TagValue: aws.String("yes")}}})
	require.NoError(t, err)
	_, err = c.UntagResource(ctx, &kms.UntagResourceInput{KeyId: aws.String(ids[2]), TagKeys: []string{"n"}})
	require.NoError(t, err)
	_, err = c.UpdateKeyDescription(ctx, &kms.UpdateKeyDescriptionInput{KeyId: aws.String(ids[3]), Description: aws.String("updated")})
	require.NoError(t, err)
	_, err = c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ids[1])})
	require.NoError(t, err)
	scheduleDeletion(t, c, ids[3], 9)

	for _, id := range ids {
		f.keys[id] = *describe(t, c, id)
		out, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		f.tags[id] = out.Tags
	}
	f.aliases = listAllAliases(t, c, nil)
	require.Len(t, f.aliases, 3)
	dk0, _ := srv.FSM.Key(ids[0])
	dk3, _ := srv.FSM.Key(ids[3])
	require.NotEqual(t, dk0.Versions[0].DomainKeyID, dk3.Versions[0].DomainKeyID, "the fixture should span two domain keys")
	return f
}

// check verifies that srv holds exactly the fixture's state and that every
// ciphertext still decrypts.
func (f *persistFixture) check(t *testing.T, srv *testserver.Server) {
	t.Helper()
	c := srv.Client
	ctx := context.Background()

	require.ElementsMatch(t, mapKeys(f.keys), listAllKeys(t, c))
	for id, want := range f.keys {
		got := describe(t, c, id)
		require.Equal(t, want.KeyState, got.KeyState, id)
		require.Equal(t, want.Enabled, got.Enabled, id)
		require.Equal(t, aws.ToString(want.Description), aws.ToString(got.Description), id)
		require.Equal(t, aws.ToString(want.Arn), aws.ToString(got.Arn), id)
		require.True(t, want.CreationDate.Equal(*got.CreationDate), id)
		require.Equal(t, want.PendingDeletionWindowInDays, got.PendingDeletionWindowInDays, id)
		if want.DeletionDate != nil {
			require.True(t, want.DeletionDate.Equal(*got.DeletionDate), id)
		}
		require.Equal(t, aws.ToString(want.CurrentKeyMaterialId), aws.ToString(got.CurrentKeyMaterialId), id)
		tags, err := c.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		require.Equal(t, f.tags[id], tags.Tags, id)
	}
	got := listAllAliases(t, c, nil)
	require.Equal(t, aliasNames(f.aliases), aliasNames(got))
	for i := range got {
		require.Equal(t, aws.ToString(f.aliases[i].TargetKeyId), aws.ToString(got[i].TargetKeyId))
		require.True(t, f.aliases[i].CreationDate.Equal(*got[i].CreationDate))
		require.True(t, f.aliases[i].LastUpdatedDate.Equal(*got[i].LastUpdatedDate))
	}

	// Every ciphertext decrypts once its key is usable; the fixture's
	// unusable keys are made usable (on the restarted server) to check.
	for id, md := range f.keys {
		switch md.KeyState {
		case types.KeyStateDisabled:
			blob := f.ciphertexts[0].blob
			for _, ct := range f.ciphertexts {
				if ct.keyID == id {
					blob = ct.blob
				}
			}
			_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
			requireErrAs[*types.DisabledException](t, err, "disabled key %s", id)
			_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
			require.NoError(t, err)
		case types.KeyStatePendingDeletion:
			_, err := c.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)})
			require.NoError(t, err)
			_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)})
			require.NoError(t, err)
		}
	}
	for i, ct := range f.ciphertexts {
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: ct.blob, EncryptionContext: ct.ctx})
		require.NoError(t, err, "ciphertext %d", i)
		require.Equal(t, ct.pt, dec.Plaintext, "ciphertext %d", i)
		require.Equal(t, aws.ToString(f.keys[ct.keyID].Arn), aws.ToString(dec.KeyId))
	}
	// And new work is possible on the restarted node.
	id, _ := mkKey(t, c)
	blob := encrypt(t, c, "alias/p0", []byte("after restart"), nil)
	dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
	require.NoError(t, err)
	require.Equal(t, "after restart", string(dec.Plaintext))
	_, err = c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id)})
	require.NoError(t, err)
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestPersistenceAcrossRestart restarts the node on its data dir, replaying
// the Raft log, and finds every key, alias, tag and state as it was.
func TestPersistenceAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	f := buildPersistFixture(t, srv)
	restartAndCatchUp(t, srv)
	f.check(t, srv)
}

// restartAndCatchUp restarts srv and waits until its FSM has replayed the
// committed log. Without the barrier the first reads may see an empty or
// partial state: TestReadsRightAfterRestart.
func restartAndCatchUp(t *testing.T, srv *testserver.Server) {
	t.Helper()
	srv.Restart()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, srv.Node.Barrier(ctx))
}

// TestReadsRightAfterRestart reads right after a restart: a restarted node
// must not answer from a state that lacks entries it committed before.
func TestReadsRightAfterRestart(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()
	var ids []string
	var blob []byte
	for i := 0; i < 6; i++ {
		id, _ := mkKey(t, c)
		ids = append(ids, id)
		_, err := c.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("i"), TagValue: aws.String(fmt.Sprint(i))}}})
		require.NoError(t, err)
		blob = encrypt(t, c, id, []byte("x"), nil)
	}
	last := ids[len(ids)-1]
	// The window is short: try several restarts.
	for restart := 1; restart <= 8; restart++ {
		srv.Restart()
		c := srv.Client // a new endpoint after each restart
		_, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: blob})
		require.NoError(t, err, "restart %d: Decrypt of a ciphertext made before the restart", restart)
		got := listAllKeys(t, c)
		require.ElementsMatch(t, ids, got, "restart %d: ListKeys right after the restart", restart)
		md, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(last)})
		require.NoError(t, err, "restart %d: DescribeKey right after the restart", restart)
		require.Equal(t, types.KeyStateEnabled, md.KeyMetadata.KeyState)
	}
}

// TestPersistenceAcrossRestartFromSnapshot does the same with the state in
// a Raft snapshot (and log entries after it), and restarts twice.
func TestPersistenceAcrossRestartFromSnapshot(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	f := buildPersistFixture(t, srv)
	require.NoError(t, srv.Node.Snapshot())
	// An entry after the snapshot.
	ctx := context.Background()
	id := aws.ToString(f.aliases[0].TargetKeyId)
	_, err := srv.Client.TagResource(ctx, &kms.TagResourceInput{KeyId: aws.String(id), Tags: []types.Tag{{TagKey: aws.String("post"), TagValue: aws.String("snap")}}})
	require.NoError(t, err)
	out, err := srv.Client.ListResourceTags(ctx, &kms.ListResourceTagsInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	f.tags[id] = out.Tags

	restartAndCatchUp(t, srv)
	restartAndCatchUp(t, srv)
	f.check(t, srv)
}

// TestNoPlaintextOrKeyMaterialOnDisk stores known plaintexts, data keys and
// key material, then scans every file the node wrote for them.
func TestNoPlaintextOrKeyMaterialOnDisk(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	c := srv.Client
	ctx := context.Background()

	secrets := map[string][]byte{} // description -> bytes that must not appear on disk
	var ids []string
	for i := 0; i < 5; i++ {
		id, _ := mkKey(t, c)
		ids = append(ids, id)
		pt := randBytes(t, 64)
		secrets[fmt.Sprintf("plaintext %d", i)] = pt
		blob := encrypt(t, c, id, pt, map[string]string{"i": fmt.Sprint(i)})
		// ReEncrypt, so that plaintext passes through another path too.
		_, err := c.ReEncrypt(ctx, &kms.ReEncryptInput{CiphertextBlob: blob, SourceEncryptionContext: map[string]string{"i": fmt.Sprint(i)}, DestinationKeyId: aws.String(ids[0])})
		require.NoError(t, err)
		gdk, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), KeySpec: types.DataKeySpecAes256})
		require.NoError(t, err)
		secrets[fmt.Sprintf("data key %d", i)] = gdk.Plaintext
		big, err := c.GenerateDataKey(ctx, &kms.GenerateDataKeyInput{KeyId: aws.String(id), NumberOfBytes: aws.Int32(1024)})
		require.NoError(t, err)
		secrets[fmt.Sprintf("1024-byte data key %d", i)] = big.Plaintext
		// Decrypt a data key too: the decrypted bytes are the same secret.
		_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: gdk.CiphertextBlob})
		require.NoError(t, err)
	}
	// HMAC keys: their material and the messages they MAC stay off disk too.
	for i, spec := range []types.KeySpec{types.KeySpecHmac224, types.KeySpecHmac512} {
		id, _ := mkHMACKey(t, c, spec)
		ids = append(ids, id)
		alg := hmacCases[0].alg
		for _, hc := range hmacCases {
			if hc.spec == spec {
				alg = hc.alg
			}
		}
		msg := randBytes(t, 64)
		secrets[fmt.Sprintf("MAC message %d", i)] = msg
		mac := generateMac(t, c, id, alg, msg)
		verifyMacOK(t, c, id, alg, msg, mac)
	}
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(ids[1])})
	require.NoError(t, err)
	scheduleDeletion(t, c, ids[2], 7)
	// Roll the domain key so there are two, both in use.
	srv.Clock.Advance(25 * time.Hour)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))
	ids = append(ids, mkKeyID(t, srv))

	// Unwrap every key version and every domain key from the FSM while
	// it is readable.
	keys, _ := srv.FSM.ListKeys("", 1000)
	require.Len(t, keys, len(ids))
	domainKeys := map[string]bool{}
	for _, k := range keys {
		require.NotEmpty(t, k.Versions)
		for _, v := range k.Versions {
			rec, ok := srv.FSM.DomainKey(v.DomainKeyID)
			require.True(t, ok, "domain key %s of %s", v.DomainKeyID, k.KeyID)
			dk, err := srv.RootKey.UnwrapDomainKey(rec.ID, rec.Wrapped)
			require.NoError(t, err)
			secrets["domain key "+rec.ID] = bytes.Clone(dk.Bytes())
			domainKeys[rec.ID] = true
			m, err := crypto.UnwrapKeyMaterial(dk, v.DomainKeyID, k.ARN, v.VersionID, v.WrappedMaterial)
			require.NoError(t, err)
			wantLen := crypto.KeySize
			for _, hc := range hmacCases {
				if types.KeySpec(k.KeySpec) == hc.spec {
					wantLen = hc.keyBytes
				}
			}
			require.Equal(t, wantLen, m.Len(), "material of %s %s", k.KeySpec, k.KeyID)
			secrets["key material of "+k.KeyID] = bytes.Clone(m.Bytes())
			m.Zero()
			dk.Zero()
		}
	}
	require.Len(t, domainKeys, 2, "keys under both domain keys")
	cur, ok := srv.FSM.CurrentDomainKey()
	require.True(t, ok)
	require.True(t, domainKeys[cur.ID])

	// Put the state in a snapshot as well as the log, then stop.
	require.NoError(t, srv.Node.Snapshot())
	srv.Stop()

	needles := map[string][]byte{}
	for name, s := range secrets {
		for form, b := range secretForms(s) {
			needles[name+" ("+form+")"] = b
		}
	}
	files := 0
	var total int64
	err = filepath.WalkDir(srv.DataDir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		files++
		total += int64(len(data))
		for name, needle := range needles {
			require.False(t, bytes.Contains(data, needle), "%s found in %s", name, path)
		}
		return nil
	})
	require.NoError(t, err)
	require.GreaterOrEqual(t, files, 3, "raft.db and a snapshot (state.bin, meta.json) expected")
	t.Logf("scanned %d files, %d bytes, for %d encodings of %d secrets", files, total, len(needles), len(secrets))
}

// secretForms returns encodings of s that a careless writer could leave on
// disk: raw, hex, and base64 (standard and URL alphabets) at each of the
// three alignments s can have inside a longer base64 string.
func secretForms(s []byte) map[string][]byte {
	forms := map[string][]byte{
		"raw":       s,
		"hex":       []byte(hex.EncodeToString(s)),
		"HEX":       bytes.ToUpper([]byte(hex.EncodeToString(s))),
		"base64 0":  []byte(base64.StdEncoding.EncodeToString(s)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(s)),
	}
	for shift := 0; shift < 3; shift++ {
		for name, enc := range map[string]*base64.Encoding{"std": base64.StdEncoding, "url": base64.URLEncoding} {
			padded := append(make([]byte, shift), s...)
			e := enc.EncodeToString(padded)
			// Keep the 4-character groups made only of s's bytes.
			from := 4 * ((shift + 2) / 3)
			to := 4 * ((shift + len(s)) / 3)
			forms[fmt.Sprintf("base64 %s shift %d", name, shift)] = []byte(e[from:to])
		}
	}
	return forms
}

// TestDataDirPermissions checks that what the node writes under its data
// dir is private to its user: directories 0700, files 0600.
func TestDataDirPermissions(t *testing.T) {
	t.Parallel()
	srv := testserver.Start(t)
	id, _ := mkKey(t, srv.Client)
	encrypt(t, srv.Client, id, []byte("x"), nil)
	require.NoError(t, srv.Node.Snapshot())
	srv.Restart() // a restart keeps (or tightens) the modes
	mkKey(t, srv.Client)
	require.NoError(t, srv.Node.Snapshot())
	srv.Stop()

	raftDir := filepath.Join(srv.DataDir, "raft")
	st, err := os.Stat(raftDir)
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o700), st.Mode().Perm(), raftDir)
	st, err = os.Stat(filepath.Join(raftDir, "raft.db"))
	require.NoError(t, err)
	require.Equal(t, fs.FileMode(0o600), st.Mode().Perm(), "raft.db")

	var bad []string
	err = filepath.WalkDir(raftDir, func(path string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		info, err := d.Info()
		require.NoError(t, err)
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			rel, _ := filepath.Rel(srv.DataDir, path)
			bad = append(bad, fmt.Sprintf("%s is %#o, want %#o", rel, info.Mode().Perm(), want))
		}
		return nil
	})
	require.NoError(t, err)
	require.Empty(t, bad, "paths under the raft dir with modes other than 0700 (dirs) / 0600 (files)")
}
