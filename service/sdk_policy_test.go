package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

// A valid key policy with unusual but legal formatting: GetKeyPolicy must
// return these exact bytes.
const customPolicy = "{\"Version\":\"2012-10-17\",\r\n\t\"Id\":\"custom-1\",  \"Statement\":[\n" +
	"  {\"Sid\":\"Root\",\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"arn:aws:iam::111122223333:root\"]},\"Action\":\"kms:*\",\"Resource\":\"*\"},\n" +
	"  {\"Effect\":\"Deny\",\"Principal\":\"*\",\"NotAction\":[\"kms:Decrypt\",\"kms:Encrypt\"],\"Resource\":[\"*\"]," +
	"\"Condition\":{\"Bool\":{\"aws:SecureTransport\":\"false\"}}}\n]}"

func getPolicy(t testing.TB, c *kms.Client, ref string) string {
	t.Helper()
	out, err := c.GetKeyPolicy(context.Background(), &kms.GetKeyPolicyInput{KeyId: aws.String(ref)})
	require.NoError(t, err, "GetKeyPolicy %s", ref)
	require.Equal(t, "default", aws.ToString(out.PolicyName))
	return aws.ToString(out.Policy)
}

func putPolicy(t testing.TB, c *kms.Client, ref, policy string) {
	t.Helper()
	_, err := c.PutKeyPolicy(context.Background(), &kms.PutKeyPolicyInput{KeyId: aws.String(ref), Policy: aws.String(policy)})
	require.NoError(t, err, "PutKeyPolicy %s", ref)
}

func TestPolicyDefault(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)

	p := getPolicy(t, c, id)
	var doc struct {
		Version   string
		Id        string
		Statement []struct {
			Sid       string
			Effect    string
			Principal map[string]string
			Action    string
			Resource  string
		}
	}
	require.NoError(t, json.Unmarshal([]byte(p), &doc))
	require.Equal(t, "2012-10-17", doc.Version)
	require.Equal(t, "key-default-1", doc.Id)
	require.Len(t, doc.Statement, 1)
	st := doc.Statement[0]
	require.Equal(t, "Enable IAM User Permissions", st.Sid)
	require.Equal(t, "Allow", st.Effect)
	require.Equal(t, map[string]string{"AWS": "arn:aws:iam::" + testAccount + ":root"}, st.Principal)
	require.Equal(t, "kms:*", st.Action)
	require.Equal(t, "*", st.Resource)

	// PolicyName "default" explicitly, and the key ARN.
	out, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(arn), PolicyName: aws.String("default")})
	require.NoError(t, err)
	require.Equal(t, p, aws.ToString(out.Policy))

	// Every key gets the same default policy.
	other, _ := mkKey(t, c)
	require.Equal(t, p, getPolicy(t, c, other))

	for _, limit := range []*int32{nil, aws.Int32(1), aws.Int32(1000)} {
		lp, err := c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(id), Limit: limit})
		require.NoError(t, err)
		require.Equal(t, []string{"default"}, lp.PolicyNames)
		require.False(t, lp.Truncated)
		require.Nil(t, lp.NextMarker)
	}
	_, err = c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(id), Marker: aws.String("garbage")})
	requireCode(t, err, "InvalidMarkerException")
	res := rawCall(t, srv, "ListKeyPolicies", map[string]any{"KeyId": id, "Limit": 0})
	requireRawError(t, res, "ValidationException")
}

func TestPolicyPutGetRoundTrip(t *testing.T) {
	srv := testserver.Start(t)
	c := srv.Client
	id, arn := mkKey(t, c)
	def := getPolicy(t, c, id)

	putPolicy(t, c, arn, customPolicy)
	require.Equal(t, customPolicy, getPolicy(t, c, id), "the exact bytes come back")
	other, _ := mkKey(t, c)
	require.Equal(t, def, getPolicy(t, c, other), "other keys keep theirs")

	// Valid variants of the grammar.
	for _, p := range []string{
		`{"Version":"2008-10-17","Statement":{"Effect":"Allow","Principal":{"Service":"logs.amazonaws.com"},"Action":["kms:Encrypt"],"Resource":"*"}}`,
		`{"Statement":[{"Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:role/x"},"Action":"kms:*","NotResource":"arn:aws:kms:*"}],"Version":"2012-10-17"}`,
		"  " + customPolicy + "\n\n",
	} {
		putPolicy(t, c, id, p)
		require.Equal(t, p, getPolicy(t, c, id))
	}

	// CreateKey with a policy stores it as given.
	ck, err := c.CreateKey(context.Background(), &kms.CreateKeyInput{Policy: aws.String(customPolicy)})
	require.NoError(t, err)
	require.Equal(t, customPolicy, getPolicy(t, c, aws.ToString(ck.KeyMetadata.KeyId)))

	// Largest allowed policy: 32768 bytes.
	big := padPolicy(32768)
	putPolicy(t, c, id, big)
	require.Equal(t, big, getPolicy(t, c, id))
}

// padPolicy returns a valid policy of exactly n bytes.
func padPolicy(n int) string {
	base := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}`
	return base[:len(base)-1] + strings.Repeat(" ", n-len(base)) + "}"
}

func TestPolicyMalformedAndOversize(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	putPolicy(t, c, id, customPolicy)

	stmt := func(s string) string { return `{"Version":"2012-10-17","Statement":[` + s + `]}` }
	const ok = `"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"`
	malformed := map[string]string{
		"not JSON":             `{"Version":`,
		"trailing garbage":     stmt("{"+ok+"}") + "x",
		"array":                `[` + stmt("{"+ok+"}") + `]`,
		"string":               `"policy"`,
		"null":                 `null`,
		"no Version":           `{"Statement":[{` + ok + `}]}`,
		"unknown Version":      `{"Version":"2020-01-01","Statement":[{` + ok + `}]}`,
		"no Statement":         `{"Version":"2012-10-17"}`,
		"empty Statement":      stmt(""),
		"Statement not list":   `{"Version":"2012-10-17","Statement":"x"}`,
		"no Effect":            stmt(`{"Principal":"*","Action":"kms:*","Resource":"*"}`),
		"Effect Permit":        stmt(`{"Effect":"Permit","Principal":"*","Action":"kms:*","Resource":"*"}`),
		"no Principal":         stmt(`{"Effect":"Allow","Action":"kms:*","Resource":"*"}`),
		"bad Principal type":   stmt(`{"Effect":"Allow","Principal":{"User":"x"},"Action":"kms:*","Resource":"*"}`),
		"Principal not *":      stmt(`{"Effect":"Allow","Principal":"me","Action":"kms:*","Resource":"*"}`),
		"no Action":            stmt(`{"Effect":"Allow","Principal":"*","Resource":"*"}`),
		"empty Action list":    stmt(`{"Effect":"Allow","Principal":"*","Action":[],"Resource":"*"}`),
		"Action and NotAction": stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Sign","Resource":"*"}`),
		"no Resource":          stmt(`{"Effect":"Allow","Principal":"*","Action":"kms:*"}`),
		"unknown element":      stmt(`{` + ok + `,"Extra":1}`),
		"unknown top element":  `{"Version":"2012-10-17","Statement":[{` + ok + `}],"Other":true}`,
		"Condition not object": stmt(`{` + ok + `,"Condition":"x"}`),
	}
	for name, p := range malformed {
		_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id), Policy: aws.String(p)})
		requireErrAs[*types.MalformedPolicyDocumentException](t, err, name)
		_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(p)})
		requireErrAs[*types.MalformedPolicyDocumentException](t, err, "CreateKey: "+name)
	}

	// Beyond 32 KB: LimitExceededException; beyond the shape's limit:
	// ValidationException.
	_, err := c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id), Policy: aws.String(padPolicy(32769))})
	requireErrAs[*types.LimitExceededException](t, err)
	_, err = c.CreateKey(ctx, &kms.CreateKeyInput{Policy: aws.String(padPolicy(32769))})
	requireErrAs[*types.LimitExceededException](t, err)
	_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id), Policy: aws.String(padPolicy(131073))})
	requireCode(t, err, "ValidationException")
	res := rawCall(t, srv, "PutKeyPolicy", map[string]any{"KeyId": id, "Policy": ""})
	requireRawError(t, res, "ValidationException")
	res = rawCall(t, srv, "PutKeyPolicy", map[string]any{"KeyId": id})
	requireRawError(t, res, "ValidationException")

	require.Equal(t, customPolicy, getPolicy(t, c, id), "failed puts changed nothing")
}

func TestPolicyNamesAndKeyRefs(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	mkAlias(t, c, "alias/pol", id)
	def := getPolicy(t, c, id)

	_, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(id), PolicyName: aws.String("other")})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id), PolicyName: aws.String("other"), Policy: aws.String(customPolicy)})
	requireErrAs[*types.NotFoundException](t, err)
	require.Equal(t, def, getPolicy(t, c, id))
	_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(id), PolicyName: aws.String("default"), Policy: aws.String(customPolicy),
		BypassPolicyLockoutSafetyCheck: true})
	require.NoError(t, err)
	require.Equal(t, customPolicy, getPolicy(t, c, id))

	// Key ids and ARNs only; unknown keys are NotFound.
	for _, ref := range []string{"alias/pol", "00000000-0000-4000-8000-000000000000", "nope", keyARNPfx + "00000000-0000-4000-8000-000000000000"} {
		_, err := c.GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(ref)})
		requireCode(t, err, "NotFoundException", ref)
		_, err = c.PutKeyPolicy(ctx, &kms.PutKeyPolicyInput{KeyId: aws.String(ref), Policy: aws.String(customPolicy)})
		requireCode(t, err, "NotFoundException", ref)
		_, err = c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(ref)})
		requireCode(t, err, "NotFoundException", ref)
	}
}

func TestPolicyInEveryKeyState(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	disabled, _ := mkKey(t, c)
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)})
	require.NoError(t, err)
	pending, _ := mkKey(t, c)
	scheduleDeletion(t, c, pending, 7)
	for _, id := range []string{disabled, pending} {
		putPolicy(t, c, id, customPolicy)
		require.Equal(t, customPolicy, getPolicy(t, c, id))
		lp, err := c.ListKeyPolicies(ctx, &kms.ListKeyPoliciesInput{KeyId: aws.String(id)})
		require.NoError(t, err)
		require.Equal(t, []string{"default"}, lp.PolicyNames)
	}
}

func TestPolicySurvivesRestart(t *testing.T) {
	srv := testserver.Start(t)
	id, _ := mkKey(t, srv.Client)
	plain, _ := mkKey(t, srv.Client)
	def := getPolicy(t, srv.Client, plain)
	putPolicy(t, srv.Client, id, customPolicy)
	srv.Restart()
	require.Equal(t, customPolicy, getPolicy(t, srv.Client, id))
	require.Equal(t, def, getPolicy(t, srv.Client, plain))
}
