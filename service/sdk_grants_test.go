package service_test

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/stretchr/testify/require"

	"github.com/kmsd/kmsd/internal/testserver"
)

const (
	granteeApp  = "arn:aws:iam::111122223333:role/app"
	retiringOps = "arn:aws:iam::111122223333:role/ops"
)

var grantIDPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// mkGrant creates a grant for granteeApp with the given operations.
func mkGrant(t testing.TB, c *kms.Client, key string, ops ...types.GrantOperation) *kms.CreateGrantOutput {
	t.Helper()
	out, err := c.CreateGrant(context.Background(), &kms.CreateGrantInput{KeyId: aws.String(key),
		GranteePrincipal: aws.String(granteeApp), RetiringPrincipal: aws.String(retiringOps), Operations: ops})
	require.NoError(t, err)
	require.Regexp(t, grantIDPattern, aws.ToString(out.GrantId))
	require.NotEmpty(t, aws.ToString(out.GrantToken))
	return out
}

// listGrants follows markers with the given page size.
func listGrants(t testing.TB, c *kms.Client, in *kms.ListGrantsInput) []types.GrantListEntry {
	t.Helper()
	var all []types.GrantListEntry
	in.Marker = nil
	for range 1000 {
		out, err := c.ListGrants(context.Background(), in)
		require.NoError(t, err)
		if in.Limit != nil {
			require.LessOrEqual(t, len(out.Grants), int(*in.Limit))
		}
		all = append(all, out.Grants...)
		if !out.Truncated {
			require.Nil(t, out.NextMarker)
			return all
		}
		require.NotNil(t, out.NextMarker)
		in.Marker = out.NextMarker
	}
	t.Fatal("ListGrants never ended")
	return nil
}

func grantIDs(gs []types.GrantListEntry) []string {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = aws.ToString(g.GrantId)
	}
	return ids
}

func TestGrantCreateAndList(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)
	other, _ := mkKey(t, c)

	created := srv.Clock.Now()
	out, err := c.CreateGrant(ctx, &kms.CreateGrantInput{
		KeyId:             aws.String(arn),
		GranteePrincipal:  aws.String(granteeApp),
		RetiringPrincipal: aws.String(retiringOps),
		Operations:        []types.GrantOperation{types.GrantOperationEncrypt, types.GrantOperationDecrypt, types.GrantOperationDescribeKey},
		Constraints: &types.GrantConstraints{
			EncryptionContextSubset: map[string]string{"dept": "finance"},
			EncryptionContextEquals: map[string]string{"app": "billing", "env": "prod"},
		},
		Name: aws.String("billing-grant:v1/a_b-c"),
	})
	require.NoError(t, err)
	gid := aws.ToString(out.GrantId)
	require.Regexp(t, grantIDPattern, gid)
	require.NotEmpty(t, aws.ToString(out.GrantToken))
	srv.Clock.Advance(time.Second) // the test clock stands still otherwise
	plain := mkGrant(t, c, id, types.GrantOperationGenerateDataKey)
	mkGrant(t, c, other, types.GrantOperationEncrypt)

	gs := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)})
	require.Len(t, gs, 2)
	g := gs[0]
	require.Equal(t, arn, aws.ToString(g.KeyId), "ListGrants names the key by ARN")
	require.Equal(t, gid, aws.ToString(g.GrantId))
	require.Equal(t, "billing-grant:v1/a_b-c", aws.ToString(g.Name))
	requireTimeNear(t, created, g.CreationDate, time.Second)
	require.Equal(t, granteeApp, aws.ToString(g.GranteePrincipal))
	require.Equal(t, retiringOps, aws.ToString(g.RetiringPrincipal))
	require.Equal(t, "arn:aws:iam::"+testAccount+":root", aws.ToString(g.IssuingAccount))
	require.Equal(t, []types.GrantOperation{"Encrypt", "Decrypt", "DescribeKey"}, g.Operations)
	require.Equal(t, &types.GrantConstraints{
		EncryptionContextSubset: map[string]string{"dept": "finance"},
		EncryptionContextEquals: map[string]string{"app": "billing", "env": "prod"},
	}, g.Constraints)
	require.Equal(t, aws.ToString(plain.GrantId), aws.ToString(gs[1].GrantId))
	require.Nil(t, gs[1].Constraints)
	require.Nil(t, gs[1].Name)

	// Filters.
	one := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id), GrantId: aws.String(gid)})
	require.Equal(t, []string{gid}, grantIDs(one))
	none := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(other), GrantId: aws.String(gid)})
	require.Empty(t, none, "a grant id of another key")
	require.Len(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id), GranteePrincipal: aws.String(granteeApp)}), 2)
	require.Empty(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id), GranteePrincipal: aws.String("arn:aws:iam::111122223333:role/nobody")}))
	_, err = c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id), GrantId: aws.String("not-a-grant-id")})
	requireErrAs[*types.InvalidGrantIdException](t, err)

	// A key with no grants lists an empty list, not null.
	empty, _ := mkKey(t, c)
	res := rawCall(t, srv, "ListGrants", map[string]any{"KeyId": empty})
	requireRawOK(t, res)
	require.Equal(t, []any{}, res.Body["Grants"])
	require.Equal(t, false, res.Body["Truncated"])
}

func TestGrantListPaging(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, _ := mkKey(t, c)
	var want []string
	for i := range 7 {
		if i%2 == 0 {
			srv.Clock.Advance(time.Second) // some grants share a creation time
		}
		want = append(want, aws.ToString(mkGrant(t, c, id, types.GrantOperationEncrypt).GrantId))
	}
	for _, limit := range []int32{1, 3, 7, 100} {
		got := grantIDs(listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id), Limit: aws.Int32(limit)}))
		require.Len(t, got, 7, "limit %d", limit)
		require.ElementsMatch(t, want, got, "limit %d", limit)
	}
	page, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id), Limit: aws.Int32(3)})
	require.NoError(t, err)
	require.True(t, page.Truncated)
	require.Len(t, page.Grants, 3)

	// A grant removed between pages does not disturb the listing.
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: page.Grants[2].GrantId})
	require.NoError(t, err)
	rest, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id), Limit: aws.Int32(10), Marker: page.NextMarker})
	require.NoError(t, err)
	require.Len(t, rest.Grants, 4)
	require.NotContains(t, grantIDs(rest.Grants), aws.ToString(page.Grants[2].GrantId))

	// Default page size is 50; more than 100 is capped.
	for range 53 {
		mkGrant(t, c, id, types.GrantOperationDecrypt)
	}
	def, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id)})
	require.NoError(t, err)
	require.Len(t, def.Grants, 50)
	require.True(t, def.Truncated)
	capped, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id), Limit: aws.Int32(1000)})
	require.NoError(t, err)
	require.Len(t, capped.Grants, 59)
	require.False(t, capped.Truncated)

	for _, m := range []string{"garbage", "Z3JhbnRzOjEyMy94"} {
		_, err = c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(id), Marker: aws.String(m)})
		requireErrAs[*types.InvalidMarkerException](t, err, m)
	}
	res := rawCall(t, srv, "ListGrants", map[string]any{"KeyId": id, "Limit": 0})
	requireRawError(t, res, "ValidationException")
	res = rawCall(t, srv, "ListGrants", map[string]any{})
	requireRawError(t, res, "ValidationException")
}

func TestGrantNameIdempotency(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)
	in := func(ops ...types.GrantOperation) *kms.CreateGrantInput {
		return &kms.CreateGrantInput{KeyId: aws.String(id), GranteePrincipal: aws.String(granteeApp),
			Operations: ops, Name: aws.String("retry-safe")}
	}
	first, err := c.CreateGrant(ctx, in(types.GrantOperationEncrypt, types.GrantOperationDecrypt))
	require.NoError(t, err)
	again, err := c.CreateGrant(ctx, in(types.GrantOperationDecrypt, types.GrantOperationEncrypt))
	require.NoError(t, err)
	require.Equal(t, aws.ToString(first.GrantId), aws.ToString(again.GrantId), "same name and parameters: the same grant")
	require.NotEqual(t, aws.ToString(first.GrantToken), aws.ToString(again.GrantToken), "a new token every time")
	viaARN := in(types.GrantOperationEncrypt, types.GrantOperationDecrypt)
	viaARN.KeyId = aws.String(arn)
	third, err := c.CreateGrant(ctx, viaARN)
	require.NoError(t, err)
	require.Equal(t, aws.ToString(first.GrantId), aws.ToString(third.GrantId))
	require.Len(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)}), 1)

	// Other parameters under the same name: a new grant.
	diff, err := c.CreateGrant(ctx, in(types.GrantOperationEncrypt))
	require.NoError(t, err)
	require.NotEqual(t, aws.ToString(first.GrantId), aws.ToString(diff.GrantId))
	// No name: never idempotent.
	a := mkGrant(t, c, id, types.GrantOperationEncrypt)
	b := mkGrant(t, c, id, types.GrantOperationEncrypt)
	require.NotEqual(t, aws.ToString(a.GrantId), aws.ToString(b.GrantId))
	require.Len(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)}), 4)

	// Every token of the grant works; once it is retired, the others find
	// nothing.
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: again.GrantToken})
	require.NoError(t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: first.GrantToken})
	requireErrAs[*types.NotFoundException](t, err)
	// The name is free again: a new grant with a new id.
	fresh, err := c.CreateGrant(ctx, in(types.GrantOperationEncrypt, types.GrantOperationDecrypt))
	require.NoError(t, err)
	require.NotEqual(t, aws.ToString(first.GrantId), aws.ToString(fresh.GrantId))
}

func TestGrantRetireAndRevoke(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	id, arn := mkKey(t, c)
	other, _ := mkKey(t, c)
	count := func(key string) int { return len(listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(key)})) }

	byToken := mkGrant(t, c, id, types.GrantOperationEncrypt)
	byID := mkGrant(t, c, id, types.GrantOperationEncrypt)
	revoked := mkGrant(t, c, id, types.GrantOperationEncrypt)
	otherGrant := mkGrant(t, c, other, types.GrantOperationEncrypt)
	require.Equal(t, 3, count(id))

	// DryRun changes nothing.
	_, err := c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: byToken.GrantToken, DryRun: aws.Bool(true)})
	requireErrAs[*types.DryRunOperationException](t, err)
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: revoked.GrantId, DryRun: aws.Bool(true)})
	requireErrAs[*types.DryRunOperationException](t, err)
	require.Equal(t, 3, count(id))

	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: byToken.GrantToken})
	require.NoError(t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(arn), GrantId: byID.GrantId})
	require.NoError(t, err)
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: revoked.GrantId})
	require.NoError(t, err)
	require.Zero(t, count(id))
	require.Equal(t, 1, count(other))

	// Gone grants.
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: revoked.GrantId})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(id), GrantId: byID.GrantId})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: byToken.GrantToken})
	requireErrAs[*types.NotFoundException](t, err)
	// A grant of another key.
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: otherGrant.GrantId})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(id), GrantId: otherGrant.GrantId})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: otherGrant.GrantToken, KeyId: aws.String(id)})
	requireCode(t, err, "ValidationException")
	require.Equal(t, 1, count(other))

	// Malformed ids and tokens; missing identification.
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(id), GrantId: aws.String("xyz")})
	requireErrAs[*types.InvalidGrantIdException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{KeyId: aws.String(id), GrantId: aws.String("xyz")})
	requireErrAs[*types.InvalidGrantIdException](t, err)
	tok := []byte(aws.ToString(otherGrant.GrantToken))
	tok[10] ^= 1
	for _, bad := range []string{"garbage", string(tok), aws.ToString(otherGrant.GrantToken) + "A"} {
		_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: aws.String(bad)})
		requireErrAs[*types.InvalidGrantTokenException](t, err, bad)
	}
	for _, in := range []*kms.RetireGrantInput{{}, {KeyId: aws.String(id)}, {GrantId: otherGrant.GrantId}} {
		_, err = c.RetireGrant(ctx, in)
		requireCode(t, err, "ValidationException")
	}
	// Unknown keys.
	unknown := "00000000-0000-4000-8000-000000000000"
	_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(unknown), GrantId: otherGrant.GrantId})
	requireErrAs[*types.NotFoundException](t, err)
	res := rawCall(t, srv, "RevokeGrant", map[string]any{"KeyId": id})
	requireRawError(t, res, "ValidationException")
	require.Equal(t, 1, count(other))
}

func TestGrantListRetirable(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	k1, arn1 := mkKey(t, c)
	k2, arn2 := mkKey(t, c)
	a := mkGrant(t, c, k1, types.GrantOperationEncrypt)
	srv.Clock.Advance(time.Second) // listings are in creation order
	b := mkGrant(t, c, k2, types.GrantOperationDecrypt)
	_, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(k1), GranteePrincipal: aws.String(granteeApp),
		Operations: []types.GrantOperation{types.GrantOperationEncrypt}}) // no retiring principal
	require.NoError(t, err)
	_, err = c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: aws.String(k2), GranteePrincipal: aws.String(granteeApp),
		RetiringPrincipal: aws.String("arn:aws:iam::111122223333:role/other"), Operations: []types.GrantOperation{types.GrantOperationEncrypt}})
	require.NoError(t, err)

	var all []types.GrantListEntry
	var marker *string
	for {
		out, err := c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retiringOps), Limit: aws.Int32(1), Marker: marker})
		require.NoError(t, err)
		all = append(all, out.Grants...)
		if !out.Truncated {
			break
		}
		marker = out.NextMarker
	}
	require.Equal(t, []string{aws.ToString(a.GrantId), aws.ToString(b.GrantId)}, grantIDs(all))
	require.Equal(t, arn1, aws.ToString(all[0].KeyId))
	require.Equal(t, arn2, aws.ToString(all[1].KeyId))

	none, err := c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String("arn:aws:iam::111122223333:role/nobody")})
	require.NoError(t, err)
	require.Empty(t, none.Grants)
	_, err = c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{})
	requireCode(t, err, "ValidationException")
	_, err = c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retiringOps), Marker: aws.String("garbage")})
	requireCode(t, err, "InvalidMarkerException")
	// A marker from ListGrants is not one of ListRetirableGrants.
	for range 2 {
		mkGrant(t, c, k1, types.GrantOperationEncrypt)
	}
	lg, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(k1), Limit: aws.Int32(1)})
	require.NoError(t, err)
	_, err = c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retiringOps), Marker: lg.NextMarker})
	requireCode(t, err, "InvalidMarkerException")
}

func TestGrantValidation(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	sym, _ := mkKey(t, c)
	mkAlias(t, c, "alias/grants", sym)
	hk, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: types.KeySpecHmac256, KeyUsage: types.KeyUsageTypeGenerateVerifyMac})
	require.NoError(t, err)
	hmacKey := aws.ToString(hk.KeyMetadata.KeyId)

	ec := &types.GrantConstraints{EncryptionContextSubset: map[string]string{"a": "b"}}
	nine := map[string]string{}
	for i := range 9 {
		nine[fmt.Sprint("k", i)] = "v"
	}
	long := string(make([]byte, 385))
	ops := []types.GrantOperation{types.GrantOperationEncrypt}
	cases := []struct {
		name string
		in   kms.CreateGrantInput
		code string
	}{
		{"unknown operation", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"Encrypt", "Bogus"}}, "ValidationException"},
		{"no operations", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{}}, "ValidationException"},
		{"GenerateMac on a symmetric key", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"GenerateMac"}}, "ValidationException"},
		{"Sign on a symmetric key", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"Sign"}}, "ValidationException"},
		{"Encrypt on an HMAC key", kms.CreateGrantInput{KeyId: &hmacKey, GranteePrincipal: aws.String(granteeApp), Operations: ops}, "ValidationException"},
		{"constraint on an HMAC key", kms.CreateGrantInput{KeyId: &hmacKey, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"GenerateMac"}, Constraints: ec}, "ValidationException"},
		{"constraint without a cryptographic operation", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"DescribeKey"}, Constraints: ec}, "ValidationException"},
		{"nine constraint pairs", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, Constraints: &types.GrantConstraints{EncryptionContextEquals: nine}}, "ValidationException"},
		{"long constraint value", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, Constraints: &types.GrantConstraints{EncryptionContextEquals: map[string]string{"k": long}}}, "ValidationException"},
		{"no grantee", kms.CreateGrantInput{KeyId: &sym, Operations: ops}, "ValidationException"},
		{"two grantees", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), GranteeServicePrincipal: aws.String("logs.us-east-1.amazonaws.com"), Operations: ops}, "ValidationException"},
		{"service grantee without SourceArn", kms.CreateGrantInput{KeyId: &sym, GranteeServicePrincipal: aws.String("logs.us-east-1.amazonaws.com"), RetiringPrincipal: aws.String(retiringOps), Operations: ops}, "ValidationException"},
		{"bad principal", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String("has space"), Operations: ops}, "ValidationException"},
		{"bad name", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, Name: aws.String("no spaces please")}, "ValidationException"},
		{"bad source ARN", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, Constraints: &types.GrantConstraints{SourceArn: aws.String("arn:aws:s3:::bucket-without-account")}}, "ValidationException"},
		{"eleven grant tokens", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, GrantTokens: make([]string, 11)}, "ValidationException"},
		{"invalid grant token", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, GrantTokens: []string{"forged"}}, "InvalidGrantTokenException"},
		{"alias", kms.CreateGrantInput{KeyId: aws.String("alias/grants"), GranteePrincipal: aws.String(granteeApp), Operations: ops}, "NotFoundException"},
		{"unknown key", kms.CreateGrantInput{KeyId: aws.String("00000000-0000-4000-8000-000000000000"), GranteePrincipal: aws.String(granteeApp), Operations: ops}, "NotFoundException"},
		{"dry run", kms.CreateGrantInput{KeyId: &sym, GranteePrincipal: aws.String(granteeApp), Operations: ops, DryRun: aws.Bool(true)}, "DryRunOperationException"},
	}
	for _, tc := range cases {
		_, err := c.CreateGrant(ctx, &tc.in)
		requireCode(t, err, tc.code, tc.name)
	}
	require.Empty(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(sym)}), "failed requests created nothing")
	res := rawCall(t, srv, "CreateGrant", map[string]any{"KeyId": sym, "GranteePrincipal": granteeApp})
	requireRawError(t, res, "ValidationException")
	require.Contains(t, res.Message, "operations")

	// Valid combinations.
	_, err = c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &hmacKey, GranteePrincipal: aws.String(granteeApp),
		Operations: []types.GrantOperation{"GenerateMac", "VerifyMac", "DescribeKey", "CreateGrant", "RetireGrant"}})
	require.NoError(t, err)
	tokenGrant := mkGrant(t, c, sym, "GenerateDataKeyPair", "ReEncryptFrom", "ReEncryptTo", "GenerateDataKeyWithoutPlaintext")
	svc, err := c.CreateGrant(ctx, &kms.CreateGrantInput{KeyId: &sym, GranteeServicePrincipal: aws.String("logs.us-east-1.amazonaws.com"),
		RetiringServicePrincipal: aws.String("logs.us-east-1.amazonaws.com"), Operations: ops,
		Constraints: &types.GrantConstraints{SourceArn: aws.String("arn:aws:logs:us-east-1:111122223333:log-group:x")},
		GrantTokens: []string{aws.ToString(tokenGrant.GrantToken)}})
	require.NoError(t, err)
	got := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(sym), GranteeServicePrincipal: aws.String("logs.us-east-1.amazonaws.com")})
	require.Equal(t, []string{aws.ToString(svc.GrantId)}, grantIDs(got))
	require.Equal(t, "logs.us-east-1.amazonaws.com", aws.ToString(got[0].RetiringServicePrincipal))
	require.Nil(t, got[0].GranteePrincipal)
	require.Equal(t, "arn:aws:logs:us-east-1:111122223333:log-group:x", aws.ToString(got[0].Constraints.SourceArn))
	retirable, err := c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringServicePrincipal: aws.String("logs.us-east-1.amazonaws.com")})
	require.NoError(t, err)
	require.Equal(t, []string{aws.ToString(svc.GrantId)}, grantIDs(retirable.Grants))
}

func TestGrantKeyStates(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	disabled, darn := mkKey(t, c)
	dg := mkGrant(t, c, disabled, types.GrantOperationEncrypt)
	dg2 := mkGrant(t, c, disabled, types.GrantOperationEncrypt)
	_, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(disabled)})
	require.NoError(t, err)
	pending, parn := mkKey(t, c)
	pg := mkGrant(t, c, pending, types.GrantOperationEncrypt)
	pg2 := mkGrant(t, c, pending, types.GrantOperationEncrypt)
	scheduleDeletion(t, c, pending, 7)

	in := func(key string) *kms.CreateGrantInput {
		return &kms.CreateGrantInput{KeyId: aws.String(key), GranteePrincipal: aws.String(granteeApp), Operations: []types.GrantOperation{"Encrypt"}}
	}
	_, err = c.CreateGrant(ctx, in(disabled))
	e := requireErrAs[*types.DisabledException](t, err)
	require.Equal(t, darn+" is disabled.", e.ErrorMessage())
	_, err = c.CreateGrant(ctx, in(pending))
	s := requireErrAs[*types.KMSInvalidStateException](t, err)
	require.Equal(t, parn+" is pending deletion.", s.ErrorMessage())

	// Listing, retiring and revoking work in every state.
	for _, tc := range []struct {
		key  string
		a, b *kms.CreateGrantOutput
	}{{disabled, dg, dg2}, {pending, pg, pg2}} {
		require.Len(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(tc.key)}), 2)
		_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: tc.a.GrantToken})
		require.NoError(t, err)
		_, err = c.RevokeGrant(ctx, &kms.RevokeGrantInput{KeyId: aws.String(tc.key), GrantId: tc.b.GrantId})
		require.NoError(t, err)
		require.Empty(t, listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(tc.key)}))
	}

	// Enabled again: grants can be created again.
	_, err = c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(disabled)})
	require.NoError(t, err)
	mkGrant(t, c, disabled, types.GrantOperationEncrypt)
}

func TestGrantsDisappearWithTheirKey(t *testing.T) {
	srv := testserver.Start(t)
	c, ctx := srv.Client, context.Background()
	doomed, _ := mkKey(t, c)
	kept, _ := mkKey(t, c)
	g := mkGrant(t, c, doomed, types.GrantOperationEncrypt)
	keptGrant := mkGrant(t, c, kept, types.GrantOperationEncrypt)
	scheduleDeletion(t, c, doomed, 7)
	srv.Clock.Advance(7*24*time.Hour + time.Minute)
	require.NoError(t, srv.Service.MaintenanceTick(ctx))

	_, err := c.ListGrants(ctx, &kms.ListGrantsInput{KeyId: aws.String(doomed)})
	requireErrAs[*types.NotFoundException](t, err)
	_, err = c.RetireGrant(ctx, &kms.RetireGrantInput{GrantToken: g.GrantToken})
	requireErrAs[*types.NotFoundException](t, err)
	out, err := c.ListRetirableGrants(ctx, &kms.ListRetirableGrantsInput{RetiringPrincipal: aws.String(retiringOps)})
	require.NoError(t, err)
	require.Equal(t, []string{aws.ToString(keptGrant.GrantId)}, grantIDs(out.Grants))
	require.Equal(t, 1, srv.FSM.GrantCount())
}

func TestGrantsSurviveRestart(t *testing.T) {
	srv := testserver.Start(t)
	c := srv.Client
	id, _ := mkKey(t, c)
	a := mkGrant(t, c, id, types.GrantOperationEncrypt)
	b := mkGrant(t, c, id, types.GrantOperationDecrypt, types.GrantOperationDescribeKey)
	before := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)})
	require.Len(t, before, 2)

	srv.Restart()
	c = srv.Client
	after := listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)})
	require.Equal(t, before, after)
	// Tokens issued before the restart still name their grants.
	_, err := c.RetireGrant(context.Background(), &kms.RetireGrantInput{GrantToken: a.GrantToken})
	require.NoError(t, err)
	require.Equal(t, []string{aws.ToString(b.GrantId)}, grantIDs(listGrants(t, c, &kms.ListGrantsInput{KeyId: aws.String(id)})))
}
