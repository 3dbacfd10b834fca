package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
	"github.com/kmsd/kmsd/kmsdclient"
	"github.com/kmsd/kmsd/service"
)

// The Batch API end to end: a real node (Raft on BoltDB, the api handler
// on loopback), batches sent by kmsdclient, single operations by the AWS
// SDK. Every item's answer must equal the single operation's answer to
// the same request.

// batchHTTP is one HTTP client for every batch client of these tests.
var batchHTTP = &http.Client{Timeout: 60 * time.Second}

// batchClient returns a batch client of srv signing with one credential.
func batchClient(t testing.TB, srv *testserver.Server, id, secret string) *kmsdclient.Client {
	t.Helper()
	c, err := kmsdclient.New(kmsdclient.Options{
		Endpoint: srv.URL, Region: testserver.Region,
		Credentials: credentials.NewStaticCredentialsProvider(id, secret, ""),
		HTTPClient:  batchHTTP, MaxAttempts: 1,
	})
	require.NoError(t, err)
	return c
}

// devBatchClient is batchClient for a dev-auth server (every caller is the
// account root).
func devBatchClient(t testing.TB, srv *testserver.Server) *kmsdclient.Client {
	return batchClient(t, srv, "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
}

// rawSingle sends one single-operation request as raw JSON (so that items
// the SDK would refuse client-side reach the server too) and returns its
// error code and message, "" on success, and the decoded body.
func rawSingle(t testing.TB, srv *testserver.Server, op string, body any) (code, msg string, out map[string]any) {
	t.Helper()
	res := rawCall(t, srv, op, body)
	if res.Type == "" {
		require.Equal(t, http.StatusOK, res.Status, "%s: %v", op, res.Body)
	}
	return res.Type, res.Message, res.Body
}

// sameAsSingle asserts item i's error equals the single operation's
// answer (code and message), or that both succeeded.
func sameAsSingle(t testing.TB, i int, itemErr *kmsdclient.ItemError, code, msg string) {
	t.Helper()
	if code == "" {
		require.Nil(t, itemErr, "item %d: the single operation succeeded", i)
		return
	}
	require.NotNil(t, itemErr, "item %d: the single operation failed with %s: %s", i, code, msg)
	require.Equal(t, code, itemErr.Code, "item %d: %s", i, itemErr.Message)
	require.Equal(t, msg, itemErr.Message, "item %d", i)
}

func TestBatchEncryptItemsAnswerAsEncrypt(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	c := srv.Client
	good, goodARN := mkKey(t, c)
	mkAlias(t, c, "alias/batch-good", good)
	disabled, _ := mkKey(t, c)
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)})
	require.NoError(t, err)
	pending, _ := mkKey(t, c)
	scheduleDeletion(t, c, pending, 7)
	rsa, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecRsa2048, KeyUsage: types.KeyUsageTypeEncryptDecrypt})
	require.NoError(t, err)
	hmacKey, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)

	str := aws.String
	items := []service.BatchEncryptItem{
		{KeyId: str(good), Plaintext: []byte("zero"), EncryptionContext: map[string]string{"app": "a"}},
		{KeyId: str("1234abcd-12ab-34cd-56ef-1234567890ab"), Plaintext: []byte("unknown key")},
		{KeyId: str(disabled), Plaintext: []byte("disabled key")},
		{KeyId: str(good), Plaintext: bytes.Repeat([]byte("x"), 4097)},
		{Plaintext: []byte("no key id")},
		{KeyId: str("alias/batch-good"), Plaintext: []byte("through an alias")},
		{KeyId: str(good), Plaintext: []byte("asymmetric algorithm"), EncryptionAlgorithm: str("RSAES_OAEP_SHA_256")},
		{KeyId: str(good), Plaintext: []byte("unknown algorithm"), EncryptionAlgorithm: str("ROT13")},
		{KeyId: str(pending), Plaintext: []byte("pending deletion")},
		{KeyId: str("alias/batch-missing"), Plaintext: []byte("unknown alias")},
		{KeyId: str(good), Plaintext: []byte{}},
		{KeyId: str(aws.ToString(rsa.KeyMetadata.KeyId)), Plaintext: []byte("no algorithm for RSA")},
		{KeyId: str(aws.ToString(rsa.KeyMetadata.KeyId)), Plaintext: []byte("RSA"), EncryptionAlgorithm: str("RSAES_OAEP_SHA_256")},
		{KeyId: str(aws.ToString(hmacKey.KeyMetadata.KeyId)), Plaintext: []byte("HMAC key")},
		{KeyId: str("arn:aws:kms:eu-west-9:111122223333:key/" + good), Plaintext: []byte("other region")},
		{KeyId: str(goodARN), Plaintext: []byte("by ARN"), EncryptionContext: map[string]string{"": "empty key"}},
	}
	wire := make([]kmsdclient.EncryptItem, len(items))
	for i, it := range items {
		wire[i] = kmsdclient.EncryptItem{KeyId: aws.ToString(it.KeyId), Plaintext: it.Plaintext,
			EncryptionContext: it.EncryptionContext, EncryptionAlgorithm: aws.ToString(it.EncryptionAlgorithm)}
	}
	out, err := devBatchClient(t, srv).BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: wire})
	require.NoError(t, err)
	require.Len(t, out.Results, len(items))
	require.NotEmpty(t, out.RequestID)

	oks := 0
	for i, it := range items {
		// The single request is the item's own JSON.
		single, err := json.Marshal(wire[i])
		require.NoError(t, err)
		code, msg, sout := rawSingle(t, srv, "Encrypt", single)
		r := out.Results[i]
		sameAsSingle(t, i, r.Error, code, msg)
		if code != "" {
			require.Empty(t, r.CiphertextBlob, "item %d", i)
			continue
		}
		oks++
		require.Equal(t, sout["KeyId"], r.KeyId, "item %d", i)
		require.Equal(t, sout["EncryptionAlgorithm"], r.EncryptionAlgorithm, "item %d", i)
		// The ciphertext opens with the SDK's Decrypt (RSA: with the key
		// and algorithm named).
		din := &kms.DecryptInput{CiphertextBlob: r.CiphertextBlob, EncryptionContext: it.EncryptionContext}
		if r.EncryptionAlgorithm != "SYMMETRIC_DEFAULT" {
			din.KeyId, din.EncryptionAlgorithm = it.KeyId, types.EncryptionAlgorithmSpec(r.EncryptionAlgorithm)
		}
		dec, err := c.Decrypt(ctx, din)
		require.NoError(t, err, "item %d", i)
		require.Equal(t, it.Plaintext, dec.Plaintext, "item %d", i)
	}
	require.GreaterOrEqual(t, oks, 3)
	// The errors the test means to exercise are there.
	require.Equal(t, []string{"", "NotFoundException", "DisabledException", "ValidationException", "ValidationException", "",
		"InvalidKeyUsageException", "ValidationException", "KMSInvalidStateException", "NotFoundException", "ValidationException"},
		itemCodes(out.Results)[:11])
	require.Nil(t, out.Results[12].Error, "RSA with its algorithm")
	require.Contains(t, out.Results[3].Error.Message, "'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096")
}

func TestBatchDecryptItemsAnswerAsDecrypt(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	c := srv.Client
	a, _ := mkKey(t, c)
	b, _ := mkKey(t, c)
	ctA := encrypt(t, c, a, []byte("under a"), map[string]string{"app": "1"})
	ctB := encrypt(t, c, b, []byte("under b"), nil)
	later, _ := mkKey(t, c)
	ctLater := encrypt(t, c, later, []byte("disabled later"), nil)
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(later)})
	require.NoError(t, err)
	tampered := bytes.Clone(ctA)
	tampered[len(tampered)-1] ^= 1

	str := aws.String
	items := []service.BatchDecryptItem{
		{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "1"}},
		{CiphertextBlob: ctA, EncryptionContext: map[string]string{"app": "2"}}, // wrong context
		{CiphertextBlob: ctA},                  // missing context
		{CiphertextBlob: ctB, KeyId: str(a)},   // names the wrong key
		{CiphertextBlob: ctB, KeyId: str(b)},   // names the right key
		{CiphertextBlob: []byte("not a blob")}, // garbage
		{CiphertextBlob: tampered, EncryptionContext: map[string]string{"app": "1"}},
		{CiphertextBlob: ctLater}, // key disabled since
		{},                        // no ciphertext
		{CiphertextBlob: ctB, EncryptionAlgorithm: str("RSAES_OAEP_SHA_1")},
		{CiphertextBlob: ctB, KeyId: str("alias/none")},
	}
	wire := make([]kmsdclient.DecryptItem, len(items))
	for i, it := range items {
		wire[i] = kmsdclient.DecryptItem{CiphertextBlob: it.CiphertextBlob, EncryptionContext: it.EncryptionContext,
			KeyId: aws.ToString(it.KeyId), EncryptionAlgorithm: aws.ToString(it.EncryptionAlgorithm)}
	}
	out, err := devBatchClient(t, srv).BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: wire})
	require.NoError(t, err)
	require.Len(t, out.Results, len(items))
	for i := range items {
		single, err := json.Marshal(wire[i])
		require.NoError(t, err)
		code, msg, sout := rawSingle(t, srv, "Decrypt", single)
		r := out.Results[i]
		sameAsSingle(t, i, r.Error, code, msg)
		if code == "" {
			require.Equal(t, sout["Plaintext"], base64.StdEncoding.EncodeToString(r.Plaintext), "item %d", i)
			require.Equal(t, sout["KeyId"], r.KeyId, "item %d", i)
			require.Equal(t, sout["KeyMaterialId"], r.KeyMaterialId, "item %d", i)
		} else {
			require.Empty(t, r.Plaintext, "item %d", i)
		}
	}
	require.Nil(t, out.Results[0].Error)
	require.Equal(t, []byte("under a"), out.Results[0].Plaintext)
	require.Equal(t, "InvalidCiphertextException", out.Results[1].Error.Code)
	require.Equal(t, "IncorrectKeyException", out.Results[3].Error.Code)
	require.Equal(t, []byte("under b"), out.Results[4].Plaintext)
	require.Equal(t, "DisabledException", out.Results[7].Error.Code)
	require.Equal(t, "ValidationException", out.Results[8].Error.Code)
}

func TestBatchGenerateDataKeyMatchesDecrypt(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	c := srv.Client
	key, keyARN := mkKey(t, c)
	bc := devBatchClient(t, srv)

	const n = 120
	items := make([]kmsdclient.DataKeyItem, n)
	want := make([]int, n)
	for i := range items {
		items[i] = kmsdclient.DataKeyItem{KeyId: key, EncryptionContext: map[string]string{"i": fmt.Sprint(i)}}
		switch i % 3 {
		case 0:
			items[i].KeySpec, want[i] = "AES_256", 32
		case 1:
			items[i].KeySpec, want[i] = "AES_128", 16
		case 2:
			items[i].NumberOfBytes, want[i] = int32(1+i), 1+i
		}
	}
	out, err := bc.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items})
	require.NoError(t, err)
	require.Len(t, out.Results, n)
	seen := map[string]bool{}
	for i, r := range out.Results {
		require.Nil(t, r.Error, "item %d", i)
		require.Len(t, r.Plaintext, want[i], "item %d", i)
		require.Equal(t, keyARN, r.KeyId)
		require.NotEmpty(t, r.KeyMaterialId)
		require.False(t, seen[string(r.Plaintext)], "item %d: data key repeated", i)
		seen[string(r.Plaintext)] = true
		dec, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: r.CiphertextBlob, EncryptionContext: items[i].EncryptionContext})
		require.NoError(t, err, "item %d", i)
		require.Equal(t, r.Plaintext, dec.Plaintext, "item %d", i)
		// Each item's context is bound into its own ciphertext only.
		if i > 0 {
			_, err = c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: r.CiphertextBlob, EncryptionContext: items[i-1].EncryptionContext})
			requireCode(t, err, "InvalidCiphertextException")
		}
	}

	// WithoutPlaintext: only the ciphertext, which decrypts to a key of the
	// asked size; and BatchDecrypt opens what GenerateDataKey made.
	wo, err := bc.BatchGenerateDataKeyWithoutPlaintext(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items[:30]})
	require.NoError(t, err)
	dItems := make([]kmsdclient.DecryptItem, 30)
	for i, r := range wo.Results {
		require.Nil(t, r.Error, "item %d", i)
		require.Empty(t, r.Plaintext)
		dItems[i] = kmsdclient.DecryptItem{CiphertextBlob: r.CiphertextBlob, EncryptionContext: items[i].EncryptionContext}
	}
	dec, err := bc.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: dItems})
	require.NoError(t, err)
	for i, r := range dec.Results {
		require.Nil(t, r.Error, "item %d", i)
		require.Len(t, r.Plaintext, want[i], "item %d", i)
	}

	// Bad items fail as the single operation does.
	bad := []kmsdclient.DataKeyItem{
		{KeyId: key}, // neither KeySpec nor NumberOfBytes
		{KeyId: key, KeySpec: "AES_256", NumberOfBytes: 32}, // both
		{KeyId: key, NumberOfBytes: 1025},
		{KeyId: key, KeySpec: "AES_512"},
		{KeyId: "alias/nope", KeySpec: "AES_256"},
		{KeyId: key, KeySpec: "AES_256"},
	}
	for _, op := range []string{"GenerateDataKey", "GenerateDataKeyWithoutPlaintext"} {
		in := &kmsdclient.BatchGenerateDataKeyInput{Items: bad}
		var got []kmsdclient.DataKeyResult
		if op == "GenerateDataKey" {
			o, err := bc.BatchGenerateDataKey(ctx, in)
			require.NoError(t, err)
			got = o.Results
		} else {
			o, err := bc.BatchGenerateDataKeyWithoutPlaintext(ctx, in)
			require.NoError(t, err)
			got = o.Results
		}
		for i, it := range bad {
			b, err := json.Marshal(it)
			require.NoError(t, err)
			code, msg, _ := rawSingle(t, srv, op, b)
			sameAsSingle(t, i, got[i].Error, code, msg)
		}
		require.Nil(t, got[len(bad)-1].Error)
		require.Equal(t, "ValidationException", got[0].Error.Code)
	}
}

func TestBatchEncryptOpensWithSDKAndBack(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	c := srv.Client
	key, _ := mkKey(t, c)
	bc := devBatchClient(t, srv)
	const n = 64
	items := make([]kmsdclient.EncryptItem, n)
	for i := range items {
		pt := bytes.Repeat([]byte{byte(i)}, 1+i*64) // up to 4 KiB
		items[i] = kmsdclient.EncryptItem{KeyId: key, Plaintext: pt, EncryptionContext: map[string]string{"n": fmt.Sprint(i)}}
	}
	enc, err := bc.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items})
	require.NoError(t, err)
	dItems := make([]kmsdclient.DecryptItem, n)
	for i, r := range enc.Results {
		require.Nil(t, r.Error, "item %d", i)
		out, err := c.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: r.CiphertextBlob, EncryptionContext: items[i].EncryptionContext})
		require.NoError(t, err, "item %d", i)
		require.Equal(t, items[i].Plaintext, out.Plaintext, "item %d", i)
		// And SDK ciphertexts open with BatchDecrypt.
		dItems[i] = kmsdclient.DecryptItem{CiphertextBlob: encrypt(t, c, key, items[i].Plaintext, items[i].EncryptionContext),
			EncryptionContext: items[i].EncryptionContext, KeyId: key}
	}
	dec, err := bc.BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: dItems})
	require.NoError(t, err)
	for i, r := range dec.Results {
		require.Nil(t, r.Error, "item %d", i)
		require.Equal(t, items[i].Plaintext, r.Plaintext, "item %d", i)
	}
}

func TestBatchRequestLimits(t *testing.T) {
	var mu sync.Mutex
	uses := 0
	srv := testserver.StartWith(t, func(c *service.Config) {
		c.OnKeyUse = func(string, string) { mu.Lock(); uses++; mu.Unlock() }
	})
	used := func() int { mu.Lock(); defer mu.Unlock(); return uses }
	ctx := context.Background()
	key, _ := mkKey(t, srv.Client)
	bc := devBatchClient(t, srv)
	items := func(n int) []kmsdclient.DataKeyItem {
		it := make([]kmsdclient.DataKeyItem, n)
		for i := range it {
			it[i] = kmsdclient.DataKeyItem{KeyId: key, KeySpec: "AES_256"}
		}
		return it
	}

	// 1,000 items: every one is done.
	before := used()
	out, err := bc.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items(1000)})
	require.NoError(t, err)
	require.Len(t, out.Results, 1000)
	for i, r := range out.Results {
		require.Nil(t, r.Error, "item %d", i)
	}
	require.Equal(t, before+1000, used(), "each item is authorized and metered once")

	// 1,001 items, none, no Items at all, 11 grant tokens: the whole
	// request fails and nothing is done.
	before = used()
	for name, in := range map[string]*kmsdclient.BatchGenerateDataKeyInput{
		"1001 items": {Items: items(1001)},
		"no items":   {Items: []kmsdclient.DataKeyItem{}},
		"null items": {},
		"11 tokens":  {Items: items(2), GrantTokens: strings.Split("a,b,c,d,e,f,g,h,i,j,k", ",")},
	} {
		_, err := bc.BatchGenerateDataKey(ctx, in)
		var ae *kmsdclient.APIError
		require.ErrorAs(t, err, &ae, name)
		require.Equal(t, "ValidationException", ae.Code, name)
		require.Equal(t, http.StatusBadRequest, ae.StatusCode, name)
		require.NotEmpty(t, ae.RequestID, name)
		var sae smithy.APIError
		require.ErrorAs(t, err, &sae)
		require.Equal(t, "ValidationException", sae.ErrorCode())
	}
	require.Equal(t, before, used(), "no item of a refused batch ran")
	_, err = bc.BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{Items: items(1001)})
	require.ErrorContains(t, err, "Member must have length less than or equal to 1000")

	// A malformed body fails as a whole too.
	res := rawBatch(t, srv, "BatchEncrypt", []byte(`{"Items":[{"KeyId":"k","Plaintext":"!!not base64"}]}`))
	require.Equal(t, "SerializationException", res.Type)
	res = rawBatch(t, srv, "BatchEncrypt", []byte(`{"Items":{}}`))
	require.Equal(t, "SerializationException", res.Type)
	res = rawBatch(t, srv, "BatchNothing", []byte(`{}`))
	require.Equal(t, "UnknownOperationException", res.Type)
	require.Equal(t, before, used())
}

// rawBatch POSTs body to a KmsdService operation with a well-formed SigV4
// header the dev authenticator accepts.
func rawBatch(t testing.TB, srv *testserver.Server, op string, body []byte) rawResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(body))
	require.NoError(t, err)
	now := time.Now().UTC()
	req.Header.Set("X-Amz-Target", "KmsdService."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
		"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("0f", 32))
	resp, err := rawHTTPClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	res := rawResult{Status: resp.StatusCode, ErrHeader: resp.Header.Get("X-Amzn-ErrorType")}
	require.NoError(t, json.Unmarshal(raw, &res.Body), "response %q", raw)
	res.Type, _ = res.Body["__type"].(string)
	res.Message, _ = res.Body["message"].(string)
	return res
}

func TestBatchDryRunAndGrantTokens(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	key, _ := mkKey(t, srv.Client)
	bc := devBatchClient(t, srv)
	out, err := bc.BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{DryRun: true, Items: []kmsdclient.EncryptItem{
		{KeyId: key, Plaintext: []byte("x")}, {KeyId: "alias/none", Plaintext: []byte("x")},
	}})
	require.NoError(t, err)
	for i, r := range out.Results {
		code, msg, _ := rawSingle(t, srv, "Encrypt", map[string]any{"KeyId": []string{key, "alias/none"}[i], "Plaintext": []byte("x"), "DryRun": true})
		sameAsSingle(t, i, r.Error, code, msg)
	}
	require.Equal(t, "DryRunOperationException", out.Results[0].Error.Code)
	require.Equal(t, "NotFoundException", out.Results[1].Error.Code)
}

// batchCreds: the account root; ann, whom key A's policy allows to use A;
// gus, who has only a grant on key B; ida, whose identity policy allows
// use of every key but denies Decrypt with secret=yes.
const batchCreds = `{"account_id": "111122223333", "credentials": [
 {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "arn": "arn:aws:iam::111122223333:root"},
 {"access_key_id": "AKIDANN", "secret_access_key": "ann-secret", "arn": "arn:aws:iam::111122223333:user/ann"},
 {"access_key_id": "AKIDGUS", "secret_access_key": "gus-secret", "arn": "arn:aws:iam::111122223333:user/gus"},
 {"access_key_id": "AKIDIDA", "secret_access_key": "ida-secret", "arn": "arn:aws:iam::111122223333:user/ida",
  "policy": {"Version": "2012-10-17", "Statement": [
   {"Effect": "Allow", "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "arn:aws:kms:*:111122223333:key/*"},
   {"Effect": "Deny", "Action": "kms:Decrypt", "Resource": "*", "Condition": {"StringEquals": {"kms:EncryptionContext:secret": "yes"}}}]}}
]}`

// annPolicy: the account delegates to IAM; ann may use the key, except
// with stage=prod.
const annPolicy = `{"Version": "2012-10-17", "Statement": [
 {"Sid": "Root", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*", "Resource": "*"},
 {"Sid": "Use", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:user/ann"},
  "Action": ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey*"], "Resource": "*"},
 {"Sid": "NoProd", "Effect": "Deny", "Principal": "*", "Action": "kms:*", "Resource": "*",
  "Condition": {"StringEquals": {"kms:EncryptionContext:stage": "prod"}, "StringNotLike": {"aws:PrincipalArn": "arn:aws:iam::*:root"}}}
]}`

func TestBatchAuthorizationPerItem(t *testing.T) {
	srv := testserver.StartWithAuth(t, []byte(batchCreds))
	ctx := context.Background()
	root := srv.Client
	ck, err := root.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(annPolicy)})
	require.NoError(t, err)
	keyA := aws.ToString(ck.KeyMetadata.KeyId)
	mkAlias(t, root, "alias/batch-a", keyA)
	keyB, _ := mkKey(t, root) // default policy: the account, through IAM
	g, err := root.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(keyB), GranteePrincipal: aws.String("arn:aws:iam::111122223333:user/gus"),
		Operations:  []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt, types.GrantOperationGenerateDataKey},
		Constraints: &types.GrantConstraints{EncryptionContextSubset: map[string]string{"app": "g"}}})
	require.NoError(t, err)

	type principal struct{ id, secret string }
	ann, gus, ida := principal{"AKIDANN", "ann-secret"}, principal{"AKIDGUS", "gus-secret"}, principal{"AKIDIDA", "ida-secret"}

	// checkEncrypt sends items as one batch and one by one through the
	// SDK, as p, and requires the same answers; it returns the results.
	checkEncrypt := func(p principal, tokens []string, items []kmsdclient.EncryptItem) []kmsdclient.EncryptResult {
		t.Helper()
		out, err := batchClient(t, srv, p.id, p.secret).BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: items, GrantTokens: tokens})
		require.NoError(t, err)
		sdk := srv.ClientFor(p.id, p.secret)
		for i, it := range items {
			_, err := sdk.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(it.KeyId), Plaintext: it.Plaintext,
				EncryptionContext: it.EncryptionContext, GrantTokens: tokens})
			requireSameError(t, p.id, i, err, out.Results[i].Error)
		}
		return out.Results
	}
	checkDecrypt := func(p principal, items []kmsdclient.DecryptItem) []kmsdclient.DecryptResult {
		t.Helper()
		out, err := batchClient(t, srv, p.id, p.secret).BatchDecrypt(ctx, &kmsdclient.BatchDecryptInput{Items: items})
		require.NoError(t, err)
		sdk := srv.ClientFor(p.id, p.secret)
		for i, it := range items {
			_, err := sdk.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: it.CiphertextBlob, EncryptionContext: it.EncryptionContext})
			requireSameError(t, p.id, i, err, out.Results[i].Error)
		}
		return out.Results
	}
	pt := []byte("p")
	prod := map[string]string{"stage": "prod"}

	// ann: key A yes (also by alias), key B no, A with stage=prod no.
	res := checkEncrypt(ann, nil, []kmsdclient.EncryptItem{
		{KeyId: keyA, Plaintext: pt}, {KeyId: keyB, Plaintext: pt}, {KeyId: keyA, Plaintext: pt, EncryptionContext: prod},
		{KeyId: "alias/batch-a", Plaintext: pt}, {KeyId: keyA, Plaintext: pt, EncryptionContext: map[string]string{"stage": "dev"}},
	})
	require.Equal(t, []string{"", "AccessDeniedException", "AccessDeniedException", "", ""}, itemCodes(res))
	require.Contains(t, res[1].Error.Message, "User: arn:aws:iam::111122223333:user/ann is not authorized to perform: kms:Encrypt on resource: arn:aws:kms:us-east-1:111122223333:key/"+keyB)
	require.Contains(t, res[2].Error.Message, "with an explicit deny in a resource-based policy")
	annDK, err := batchClient(t, srv, ann.id, ann.secret).BatchGenerateDataKey(ctx, &kmsdclient.BatchGenerateDataKeyInput{
		Items: []kmsdclient.DataKeyItem{{KeyId: keyB, KeySpec: "AES_256"}, {KeyId: keyA, KeySpec: "AES_256"}}})
	require.NoError(t, err)
	require.Equal(t, "AccessDeniedException", annDK.Results[0].Error.Code)
	require.Contains(t, annDK.Results[0].Error.Message, "kms:GenerateDataKey on resource")
	require.Nil(t, annDK.Results[1].Error)

	// gus: only through the grant on B, only with app=g; grant tokens count
	// for every item.
	res = checkEncrypt(gus, nil, []kmsdclient.EncryptItem{
		{KeyId: keyB, Plaintext: pt, EncryptionContext: map[string]string{"app": "g"}},
		{KeyId: keyB, Plaintext: pt, EncryptionContext: map[string]string{"app": "h"}},
		{KeyId: keyB, Plaintext: pt},
		{KeyId: keyA, Plaintext: pt, EncryptionContext: map[string]string{"app": "g"}},
	})
	require.Equal(t, []string{"", "AccessDeniedException", "AccessDeniedException", "AccessDeniedException"}, itemCodes(res))
	withToken := checkEncrypt(gus, []string{aws.ToString(g.GrantToken)}, []kmsdclient.EncryptItem{
		{KeyId: keyB, Plaintext: pt, EncryptionContext: map[string]string{"app": "g"}},
		{KeyId: keyB, Plaintext: pt, EncryptionContext: map[string]string{"app": "x"}},
	})
	require.Equal(t, []string{"", "AccessDeniedException"}, itemCodes(withToken))
	dres := checkDecrypt(gus, []kmsdclient.DecryptItem{
		{CiphertextBlob: res[0].CiphertextBlob, EncryptionContext: map[string]string{"app": "g"}},
		{CiphertextBlob: encrypt(t, root, keyB, pt, map[string]string{"app": "h"}), EncryptionContext: map[string]string{"app": "h"}},
	})
	require.Equal(t, []string{"", "AccessDeniedException"}, itemCodes(dres))
	require.Equal(t, pt, dres[0].Plaintext)

	// ida: her identity policy decides (both keys delegate to IAM... key A
	// through its Root statement), and its Deny wins per item.
	secret := map[string]string{"secret": "yes"}
	dres = checkDecrypt(ida, []kmsdclient.DecryptItem{
		{CiphertextBlob: encrypt(t, root, keyB, pt, secret), EncryptionContext: secret},
		{CiphertextBlob: encrypt(t, root, keyB, pt, nil)},
		{CiphertextBlob: encrypt(t, root, keyA, pt, secret), EncryptionContext: secret},
		{CiphertextBlob: encrypt(t, root, keyA, pt, nil)},
	})
	require.Equal(t, []string{"AccessDeniedException", "", "AccessDeniedException", ""}, itemCodes(dres))
	require.Contains(t, dres[0].Error.Message, "with an explicit deny in an identity-based policy")
}

// requireSameError asserts a batch item answered as the SDK's single call.
func requireSameError(t *testing.T, who string, i int, sdkErr error, item *kmsdclient.ItemError) {
	t.Helper()
	if sdkErr == nil {
		require.Nil(t, item, "%s item %d: the single call succeeded", who, i)
		return
	}
	var ae smithy.APIError
	require.True(t, errors.As(sdkErr, &ae), "%s item %d: %v", who, i, sdkErr)
	require.NotNil(t, item, "%s item %d: the single call failed: %v", who, i, sdkErr)
	require.Equal(t, ae.ErrorCode(), item.Code, "%s item %d", who, i)
	require.Equal(t, ae.ErrorMessage(), item.Message, "%s item %d", who, i)
}

func itemCodes[R any](rs []R) []string {
	codes := make([]string, len(rs))
	for i, r := range rs {
		var e *kmsdclient.ItemError
		switch r := any(r).(type) {
		case kmsdclient.EncryptResult:
			e = r.Error
		case kmsdclient.DecryptResult:
			e = r.Error
		case kmsdclient.DataKeyResult:
			e = r.Error
		}
		if e != nil {
			codes[i] = e.Code
		}
	}
	return codes
}

func TestBatchAuthenticationAsTrentService(t *testing.T) {
	srv := testserver.StartWithAuth(t, []byte(batchCreds))
	ctx := context.Background()
	key, _ := mkKey(t, srv.Client)

	// Signed with a wrong secret, or an unknown access key id: the same
	// error as the SDK gets for Encrypt.
	for _, p := range [][2]string{{"AKIDANN", "wrong-secret"}, {"AKIDNOBODY", "x"}} {
		_, sdkErr := srv.ClientFor(p[0], p[1]).Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(key), Plaintext: []byte("x")})
		_, err := batchClient(t, srv, p[0], p[1]).BatchEncrypt(ctx, &kmsdclient.BatchEncryptInput{Items: []kmsdclient.EncryptItem{{KeyId: key, Plaintext: []byte("x")}}})
		var want smithy.APIError
		require.ErrorAs(t, sdkErr, &want)
		var got *kmsdclient.APIError
		require.ErrorAs(t, err, &got)
		require.Equal(t, want.ErrorCode(), got.Code, p[0])
		require.Equal(t, want.ErrorMessage(), got.Message, p[0])
		require.Contains(t, []string{"InvalidSignatureException", "UnrecognizedClientException"}, got.Code)
	}

	// Unsigned, or with a malformed or tampered signature: the same status,
	// type and message on both targets.
	body := []byte(`{"Items":[{"KeyId":"` + key + `","Plaintext":"eA=="}]}`)
	single := []byte(`{"KeyId":"` + key + `","Plaintext":"eA=="}`)
	now := time.Now().UTC()
	cases := map[string]func(h http.Header){
		"unsigned": func(h http.Header) {},
		"not sigv4": func(h http.Header) {
			h.Set("Authorization", "Basic dXNlcjpwYXNz")
		},
		"wrong service": func(h http.Header) {
			h.Set("X-Amz-Date", now.Format("20060102T150405Z"))
			h.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDANN/"+now.Format("20060102")+"/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("ab", 32))
		},
		"bad signature": func(h http.Header) {
			h.Set("X-Amz-Date", now.Format("20060102T150405Z"))
			h.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDANN/"+now.Format("20060102")+"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("ab", 32))
		},
	}
	for name, set := range cases {
		send := func(target string, b []byte) (int, string, string) {
			req, err := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(b))
			require.NoError(t, err)
			req.Header.Set("X-Amz-Target", target)
			req.Header.Set("Content-Type", "application/x-amz-json-1.1")
			set(req.Header)
			resp, err := rawHTTPClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&e))
			return resp.StatusCode, e.Type, e.Message
		}
		s1, t1, m1 := send("TrentService.Encrypt", single)
		s2, t2, m2 := send("KmsdService.BatchEncrypt", body)
		require.NotEmpty(t, t1, name)
		require.Equal(t, []any{s1, t1, m1}, []any{s2, t2, m2}, name)
	}
}

// benchCtx is a request context as the api layer builds it for the account
// root (authorization is evaluated, as for every request).
func benchCtx() context.Context {
	return service.WithRequestInfo(context.Background(), service.RequestInfo{
		RequestID: "bench", SourceIP: "127.0.0.1",
		Caller: service.Caller{AccessKeyID: "AKIDEXAMPLE", ARN: "arn:aws:iam::" + testAccount + ":root", AccountID: testAccount},
	})
}

// BenchmarkBatchGenerateDataKey runs BatchGenerateDataKey (1,000 AES_256
// items per call) on the service of a real node, without HTTP: the item
// path alone (resolution, authorization, metering, key derivation, seal)
// on GOMAXPROCS workers. items/s is data keys per second.
//
//	go test -run '^$' -bench BatchGenerateDataKey -benchtime 20x ./service/
func BenchmarkBatchGenerateDataKey(b *testing.B) {
	srv := testserver.Start(b)
	key, _ := mkKey(b, srv.Client)
	in := &service.BatchGenerateDataKeyInput{Items: make([]service.BatchGenerateDataKeyItem, service.MaxBatchItems)}
	for i := range in.Items {
		in.Items[i] = service.BatchGenerateDataKeyItem{KeyId: aws.String(key), KeySpec: aws.String("AES_256")}
	}
	ctx := benchCtx()
	b.ReportAllocs()
	cpu0 := processCPU()
	for b.Loop() {
		out, err := srv.Service.BatchGenerateDataKey(ctx, in, service.BatchOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if r := out.Results[len(out.Results)-1]; r.Err != nil || len(r.Output.Plaintext) != 32 {
			b.Fatalf("last item: %v", r.Err)
		}
	}
	reportItems(b, b.N*service.MaxBatchItems, processCPU()-cpu0)
}

// processCPU is this process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportItems reports items/s (wall clock) and the CPU an item cost
// (cpu-µs/item, the whole process: robust when other work shares the
// machine), and items/s-per-core, the rate one core would sustain.
func reportItems(b *testing.B, items int, cpu time.Duration) {
	b.ReportMetric(float64(items)/b.Elapsed().Seconds(), "items/s")
	if cpu > 0 {
		b.ReportMetric(float64(cpu.Microseconds())/float64(items), "cpu-µs/item")
		b.ReportMetric(float64(items)/cpu.Seconds(), "items/s-per-core")
	}
}

func TestBatchHookPanicsStayInTheirItem(t *testing.T) {
	srv := testserver.Start(t)
	key, _ := mkKey(t, srv.Client)
	in := &service.BatchGenerateDataKeyInput{Items: make([]service.BatchGenerateDataKeyItem, 5)}
	for i := range in.Items {
		in.Items[i] = service.BatchGenerateDataKeyItem{KeyId: aws.String(key), KeySpec: aws.String("AES_256")}
	}
	var mu sync.Mutex
	done := map[int]bool{}
	out, err := srv.Service.BatchGenerateDataKey(benchCtx(), in, service.BatchOptions{
		Check: func(i int, _ any) error {
			if i == 1 {
				panic("check")
			}
			return nil
		},
		Done: func(i int, rid string, _ any, err error) {
			mu.Lock()
			done[i] = true
			mu.Unlock()
			assert.Equal(t, fmt.Sprintf("bench#%d", i), rid) // not require: a worker goroutine
			if i == 3 {
				panic("done")
			}
		},
	})
	require.NoError(t, err)
	require.Len(t, done, 5, "Done ran for every item")
	for i, r := range out.Results {
		if i == 1 {
			require.ErrorIs(t, r.Err, service.ErrInternal)
			require.Equal(t, "KMSInternalException: An internal error occurred.", r.Err.Error())
			continue
		}
		require.NoError(t, r.Err, "item %d", i)
		require.Len(t, r.Output.Plaintext, 32)
	}

	// A cancelled request runs no item; in-process calls (no request
	// info) have no item request ids and still check the item count.
	cctx, cancel := context.WithCancel(benchCtx())
	cancel()
	out, err = srv.Service.BatchGenerateDataKey(cctx, in, service.BatchOptions{})
	require.NoError(t, err)
	for _, r := range out.Results {
		require.ErrorIs(t, r.Err, service.ErrDependencyTimeout)
	}
	out, err = srv.Service.BatchGenerateDataKey(context.Background(), &service.BatchGenerateDataKeyInput{Items: in.Items[:1]}, service.BatchOptions{})
	require.NoError(t, err)
	require.Empty(t, out.Results[0].RequestID)
	require.NoError(t, out.Results[0].Err)
	_, err = srv.Service.BatchEncrypt(context.Background(), &service.BatchEncryptInput{Items: make([]service.BatchEncryptItem, 1001)}, service.BatchOptions{})
	require.ErrorIs(t, err, service.ErrValidation)
	_, err = srv.Service.BatchDecrypt(context.Background(), &service.BatchDecryptInput{}, service.BatchOptions{})
	require.ErrorIs(t, err, service.ErrValidation)
	// Without the api's validation, a missing KeyId is still refused.
	res, err := srv.Service.BatchEncrypt(context.Background(), &service.BatchEncryptInput{Items: []service.BatchEncryptItem{{Plaintext: []byte("x")}}}, service.BatchOptions{})
	require.NoError(t, err)
	require.ErrorIs(t, res.Results[0].Err, service.ErrValidation)
}
