package service_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// hostileOps are the operations the hostile-input test sends to.
var hostileOps = []string{
	"CreateKey", "DescribeKey", "ListKeys", "UpdateKeyDescription", "EnableKey", "DisableKey",
	"ScheduleKeyDeletion", "CancelKeyDeletion", "Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey",
	"GenerateDataKeyWithoutPlaintext", "GenerateRandom", "CreateAlias", "UpdateAlias", "DeleteAlias",
	"ListAliases", "TagResource", "UntagResource", "ListResourceTags", "GenerateMac", "VerifyMac",
	"GetKeyPolicy", "PutKeyPolicy", "ListKeyPolicies", "CreateGrant", "ListGrants", "ListRetirableGrants",
	"RetireGrant", "RevokeGrant",
}

var hostileFields = []string{
	"KeyId", "Plaintext", "CiphertextBlob", "EncryptionContext", "NumberOfBytes", "KeySpec", "AliasName",
	"TargetKeyId", "Limit", "Marker", "Tags", "TagKeys", "Description", "PendingWindowInDays",
	"DestinationKeyId", "SourceKeyId", "SourceEncryptionContext", "DestinationEncryptionContext",
	"GrantTokens", "DryRun", "KeyUsage", "Origin", "Policy", "CustomerMasterKeySpec", "MultiRegion",
	"EncryptionAlgorithm", "CustomKeyStoreId", "Message", "MacAlgorithm", "Mac",
	"PolicyName", "Operations", "GranteePrincipal", "RetiringPrincipal", "Constraints", "Name", "GrantId",
	"GrantToken", "GranteeServicePrincipal", "RetiringServicePrincipal",
}

// TestHostileRequestsNever5xx sends thousands of malformed, oversized,
// mistyped and semantically odd requests to a real node and checks that
// each one gets a well-formed AWS answer below 500, and that the node still
// works afterwards.
func TestHostileRequestsNever5xx(t *testing.T) {
	srv := testserver.Start(t)
	ctx := context.Background()
	ck, err := srv.Client.CreateKey(ctx, &kms.CreateKeyInput{})
	require.NoError(t, err)
	keyID := *ck.KeyMetadata.KeyId
	enc, err := srv.Client.Encrypt(ctx, &kms.EncryptInput{KeyId: aws.String(keyID), Plaintext: []byte("x")})
	require.NoError(t, err)
	_, err = srv.Client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String("alias/hostile"), TargetKeyId: aws.String(keyID)})
	require.NoError(t, err)
	hk, err := srv.Client.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: "HMAC_256", KeyUsage: "GENERATE_VERIFY_MAC"})
	require.NoError(t, err)
	hmacID := *hk.KeyMetadata.KeyId
	ct := base64.StdEncoding.EncodeToString(enc.CiphertextBlob)
	mangled := append([]byte(nil), enc.CiphertextBlob...)
	mangled[len(mangled)/2] ^= 1

	values := []any{
		nil, "", " ", strings.Repeat("x", 3000), strings.Repeat("é", 300), "\x00", "\xff\xfe",
		0, -1, 1, 7, 31, 1024, 1025, 1 << 40, -1e300, 1.5, true, false,
		[]any{}, []any{nil}, []any{"a", 1}, map[string]any{}, map[string]any{"": ""},
		map[string]any{"k": 1}, map[string]any{"k": strings.Repeat("v", 9000)},
		keyID, strings.ToUpper(keyID), "arn:aws:kms:us-east-1:111122223333:key/" + keyID,
		"arn:aws:kms:eu-west-1:111122223333:key/" + keyID, "arn:", "arn:aws:kms:::", "alias/", "alias/hostile",
		"alias/aws/x", "arn:aws:kms:us-east-1:111122223333:alias/hostile", "mrk-" + strings.Repeat("0", 32),
		ct, base64.StdEncoding.EncodeToString(mangled), "!!notbase64!!", base64.StdEncoding.EncodeToString(make([]byte, 7000)),
		"AES_128", "AES_512", "SYMMETRIC_DEFAULT", "RSA_2048", "EXTERNAL",
		[]any{map[string]any{"TagKey": "k", "TagValue": "v"}}, []any{map[string]any{"TagKey": nil}},
		[]any{map[string]any{"TagKey": "aws:x", "TagValue": ""}}, "a2V5czp6enp6", `{"Statement":[]}`,
		"HMAC_256", "HMAC_SHA_256", "HMAC_SHA_512", "GENERATE_VERIFY_MAC", hmacID, "bWFj",
		[]any{"Encrypt", "Decrypt"}, []any{"Sign", "Bogus"}, "arn:aws:iam::111122223333:root", "default",
		strings.Repeat("ab", 32), map[string]any{"EncryptionContextSubset": map[string]any{"a": "b"}, "SourceArn": 7},
	}
	r := rand.New(rand.NewPCG(1, 2))
	client := &http.Client{Timeout: 30 * time.Second}
	send := func(op string, body []byte) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodPost, srv.URL+"/", bytes.NewReader(body))
		require.NoError(t, err)
		now := time.Now().UTC()
		req.Header.Set("X-Amz-Target", "TrentService."+op)
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Date", now.Format("20060102T150405Z"))
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"+now.Format("20060102")+
			"/us-east-1/kms/aws4_request, SignedHeaders=host;x-amz-date, Signature="+strings.Repeat("ab", 32))
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out map[string]any
		require.NoError(t, json.Unmarshal(raw, &out), "op %s body %s: response %q is not JSON", op, body, raw)
		return resp.StatusCode, out
	}
	seen := map[string]int{}
	n := 3000
	if testing.Short() {
		n = 300
	}
	for i := 0; i < n; i++ {
		op := hostileOps[r.IntN(len(hostileOps))]
		var body []byte
		switch r.IntN(10) {
		case 0: // not JSON at all, or not an object
			body = []byte([]string{"", "{", "[]", "null", "42", `"x"`, "{}{}", `{"KeyId":}`, "\x00\x01"}[r.IntN(9)])
		default:
			doc := map[string]any{}
			for j := 0; j < 1+r.IntN(4); j++ {
				doc[hostileFields[r.IntN(len(hostileFields))]] = values[r.IntN(len(values))]
			}
			body, err = json.Marshal(doc)
			require.NoError(t, err)
		}
		status, out := send(op, body)
		require.Less(t, status, 500, "op %s body %s: %v", op, body, out)
		if status == http.StatusOK {
			seen["200"]++
		} else {
			seen[fmt.Sprint(out["__type"])]++
			require.NotEmpty(t, out["__type"], "op %s body %s", op, body)
			require.Contains(t, out, "message", "op %s body %s", op, body)
		}
	}
	t.Logf("answers: %v", seen)
	// The mix must reach the service, not only the decoder.
	require.Positive(t, seen["200"])
	for _, want := range []string{"SerializationException", "ValidationException", "NotFoundException"} {
		require.Positive(t, seen[want], want)
	}
	// The node still serves normal requests with its state intact.
	d, err := srv.Client.Decrypt(ctx, &kms.DecryptInput{CiphertextBlob: enc.CiphertextBlob})
	if err != nil {
		// The hostile requests may have disabled or scheduled the key; its
		// metadata must still be readable and consistent.
		dk, derr := srv.Client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(keyID)})
		require.NoError(t, derr)
		t.Logf("key ended in state %s: %v", dk.KeyMetadata.KeyState, err)
		return
	}
	require.Equal(t, "x", string(d.Plaintext))
}
