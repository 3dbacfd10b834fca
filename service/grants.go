package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

// Grants are stored and returned as data; enforcing them is another
// layer's job.

// Grant operations, as AWS names them.
const (
	grantOpDecrypt                             = "Decrypt"
	grantOpEncrypt                             = "Encrypt"
	grantOpGenerateDataKey                     = "GenerateDataKey"
	grantOpGenerateDataKeyWithoutPlaintext     = "GenerateDataKeyWithoutPlaintext"
	grantOpReEncryptFrom                       = "ReEncryptFrom"
	grantOpReEncryptTo                         = "ReEncryptTo"
	grantOpSign                                = "Sign"
	grantOpVerify                              = "Verify"
	grantOpGetPublicKey                        = "GetPublicKey"
	grantOpCreateGrant                         = "CreateGrant"
	grantOpRetireGrant                         = "RetireGrant"
	grantOpDescribeKey                         = "DescribeKey"
	grantOpGenerateDataKeyPair                 = "GenerateDataKeyPair"
	grantOpGenerateDataKeyPairWithoutPlaintext = "GenerateDataKeyPairWithoutPlaintext"
	grantOpGenerateMac                         = "GenerateMac"
	grantOpVerifyMac                           = "VerifyMac"
	grantOpDeriveSharedSecret                  = "DeriveSharedSecret"
)

// grantOperationEnum is the GrantOperation enum in the model's order.
var grantOperationEnum = []string{
	grantOpDecrypt, grantOpEncrypt, grantOpGenerateDataKey, grantOpGenerateDataKeyWithoutPlaintext,
	grantOpReEncryptFrom, grantOpReEncryptTo, grantOpSign, grantOpVerify, grantOpGetPublicKey,
	grantOpCreateGrant, grantOpRetireGrant, grantOpDescribeKey, grantOpGenerateDataKeyPair,
	grantOpGenerateDataKeyPairWithoutPlaintext, grantOpGenerateMac, grantOpVerifyMac, grantOpDeriveSharedSecret,
}

// grantManagementOps are allowed in a grant for every key type; encryption
// context constraints do not apply to them.
var grantManagementOps = []string{grantOpCreateGrant, grantOpRetireGrant, grantOpDescribeKey}

const (
	grantUsageSignVerify   = "SIGN_VERIFY"
	grantUsageKeyAgreement = "KEY_AGREEMENT"

	grantIDBytes            = 32 // a grant id is 64 hex digits
	grantTokenVersion  byte = 1
	grantTokenNonce         = 16
	grantTokenLen           = 1 + grantIDBytes + grantTokenNonce + sha256.Size
	grantTokenLabel         = "grant-token"
	grantTokenMACLabel      = "kmsd grant token v1\x00"

	defaultListGrantsLimit = 50
	maxListGrantsLimit     = 100
	grantsMarkerKind       = "grants"
	retirableMarkerKind    = "retirable"

	maxConstraintPairs       = 8
	maxConstraintValueLength = 384
)

// grantOpsForKey returns the cryptographic grant operations a key supports
// (the management operations are allowed for every key).
func grantOpsForKey(k *fsm.Key) []string {
	switch {
	case k.KeyUsage == usageEncryptDecrypt && k.KeySpec == specSymmetricDefault:
		return []string{grantOpDecrypt, grantOpEncrypt, grantOpGenerateDataKey, grantOpGenerateDataKeyWithoutPlaintext,
			grantOpReEncryptFrom, grantOpReEncryptTo, grantOpGenerateDataKeyPair, grantOpGenerateDataKeyPairWithoutPlaintext}
	case k.KeyUsage == usageEncryptDecrypt:
		return []string{grantOpDecrypt, grantOpEncrypt, grantOpReEncryptFrom, grantOpReEncryptTo, grantOpGetPublicKey}
	case k.KeyUsage == grantUsageSignVerify:
		return []string{grantOpSign, grantOpVerify, grantOpGetPublicKey}
	case k.KeyUsage == usageGenerateVerifyMAC:
		return []string{grantOpGenerateMac, grantOpVerifyMac}
	case k.KeyUsage == grantUsageKeyAgreement:
		return []string{grantOpDeriveSharedSecret, grantOpGetPublicKey}
	}
	return nil
}

// validGrantID reports whether id has the form of a grant id: 64 lowercase
// hex digits.
func validGrantID(id string) bool {
	if len(id) != 2*grantIDBytes {
		return false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

func invalidGrantID(id string) error {
	return newError(ErrInvalidGrantID, "Invalid grant ID %s", truncateForMessage(id))
}

func grantNotFound(grantID, keyID string) error {
	return newError(ErrNotFound, "Grant ID %s not found for key %s.", grantID, keyID)
}

// grantTokenMAC authenticates a token's version, grant id and nonce under a
// secret every node of the region derives from the root key.
func (s *Service) grantTokenMAC(body []byte) []byte {
	secret := s.cfg.RootKey.DeriveSecret(grantTokenLabel)
	defer secret.Zero()
	m := hmac.New(sha256.New, secret.Bytes())
	m.Write([]byte(grantTokenMACLabel))
	m.Write(body)
	return m.Sum(nil)
}

// newGrantToken returns a fresh token for a grant: every call gives a
// different token, and all tokens of a grant are interchangeable.
func (s *Service) newGrantToken(grantID string) string {
	id, err := hex.DecodeString(grantID)
	if err != nil || len(id) != grantIDBytes {
		panic("service: grant token for a malformed grant id")
	}
	b := make([]byte, 0, grantTokenLen)
	b = append(b, grantTokenVersion)
	b = append(b, id...)
	nonce := make([]byte, grantTokenNonce)
	s.mustRead(nonce)
	b = append(b, nonce...)
	b = append(b, s.grantTokenMAC(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseGrantToken returns the grant id a token names, or
// InvalidGrantTokenException for anything this region did not issue.
func (s *Service) parseGrantToken(tok string) (string, error) {
	bad := newError(ErrInvalidGrantToken, "Invalid grant token.")
	if len(tok) != base64.RawURLEncoding.EncodedLen(grantTokenLen) {
		return "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) != grantTokenLen || b[0] != grantTokenVersion {
		return "", bad
	}
	body, mac := b[:grantTokenLen-sha256.Size], b[grantTokenLen-sha256.Size:]
	if !hmac.Equal(mac, s.grantTokenMAC(body)) {
		return "", bad
	}
	return hex.EncodeToString(b[1 : 1+grantIDBytes]), nil
}

// checkGrantOperations validates the operations against the enum and the
// key type.
func checkGrantOperations(k *fsm.Key, ops []string) error {
	if len(ops) == 0 {
		return ValidationError("1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	for _, op := range ops {
		if !slices.Contains(grantOperationEnum, op) {
			return ValidationError("1 validation error detected: Value '[%s]' at 'operations' failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy enum value set: [%s]]",
				truncateForMessage(strings.Join(ops, ", ")), strings.Join(grantOperationEnum, ", "))
		}
	}
	supported := grantOpsForKey(k)
	for _, op := range ops {
		if !slices.Contains(supported, op) && !slices.Contains(grantManagementOps, op) {
			return ValidationError("Grant operation %s is not supported for %s, whose key spec is %s and key usage %s.", op, k.ARN, k.KeySpec, k.KeyUsage)
		}
	}
	return nil
}

// checkGrantConstraints validates the constraints and returns them as the
// FSM stores them (nil when there are none).
func checkGrantConstraints(k *fsm.Key, ops []string, c *GrantConstraints) (*fsm.GrantConstraints, error) {
	if c == nil {
		return nil, nil
	}
	out := &fsm.GrantConstraints{}
	if c.SourceArn != nil {
		out.SourceArn = *c.SourceArn
	}
	for _, ec := range []struct {
		name string
		m    map[string]string
		dst  *map[string]string
	}{
		{"encryptionContextSubset", c.EncryptionContextSubset, &out.EncryptionContextSubset},
		{"encryptionContextEquals", c.EncryptionContextEquals, &out.EncryptionContextEquals},
	} {
		if len(ec.m) == 0 {
			continue // an empty map is no constraint
		}
		if len(ec.m) > maxConstraintPairs {
			return nil, ValidationError("A grant constraint may have at most %d encryption context pairs; constraints.%s has %d.", maxConstraintPairs, ec.name, len(ec.m))
		}
		for key, v := range ec.m {
			if key == "" {
				return nil, ValidationError("Encryption context keys in constraints.%s must not be empty.", ec.name)
			}
			if len([]rune(v)) > maxConstraintValueLength {
				return nil, ValidationError("Encryption context values in constraints.%s must not exceed %d characters.", ec.name, maxConstraintValueLength)
			}
		}
		*ec.dst = maps.Clone(ec.m)
	}
	if out.EncryptionContextSubset != nil || out.EncryptionContextEquals != nil {
		if k.KeySpec != specSymmetricDefault || k.KeyUsage != usageEncryptDecrypt {
			return nil, ValidationError("Encryption context grant constraints are not supported for %s: only symmetric encryption keys support an encryption context.", k.ARN)
		}
		crypto := false
		for _, op := range ops {
			crypto = crypto || !slices.Contains(grantManagementOps, op)
		}
		if !crypto {
			return nil, ValidationError("Encryption context grant constraints require a grant operation that supports an encryption context.")
		}
	}
	if out.EncryptionContextSubset == nil && out.EncryptionContextEquals == nil && out.SourceArn == "" {
		return nil, nil
	}
	return out, nil
}

// CreateGrant adds a grant to a key and returns its id and a fresh grant
// token. With a Name, a request with the same name and parameters as an
// existing grant of the key returns that grant's id and creates nothing.
func (s *Service) CreateGrant(ctx context.Context, in *CreateGrantInput) (*CreateGrantOutput, error) {
	switch {
	case in.GranteePrincipal != nil && in.GranteeServicePrincipal != nil:
		return nil, ValidationError("You must specify either GranteePrincipal or GranteeServicePrincipal, but not both.")
	case in.GranteePrincipal == nil && in.GranteeServicePrincipal == nil:
		return nil, ValidationError("You must specify either GranteePrincipal or GranteeServicePrincipal.")
	case in.RetiringPrincipal != nil && in.RetiringServicePrincipal != nil:
		return nil, ValidationError("You can specify either RetiringPrincipal or RetiringServicePrincipal, but not both.")
	case in.GranteeServicePrincipal != nil && (in.Constraints == nil || in.Constraints.SourceArn == nil):
		return nil, ValidationError("A grant for a GranteeServicePrincipal requires a SourceArn grant constraint.")
	case in.GranteeServicePrincipal != nil && in.RetiringPrincipal == nil && in.RetiringServicePrincipal == nil:
		return nil, ValidationError("A grant for a GranteeServicePrincipal requires a RetiringPrincipal or RetiringServicePrincipal.")
	}
	for _, op := range in.Operations {
		if !slices.Contains(grantOperationEnum, op) {
			return nil, checkGrantOperations(nil, in.Operations)
		}
	}
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: grantOpCreateGrant, key: k, ref: *in.KeyId, tokens: in.GrantTokens,
		extra: createGrantConditions(in), grantOK: subGrantOK(in)}); err != nil {
		return nil, err
	}
	if err := checkGrantOperations(k, in.Operations); err != nil {
		return nil, err
	}
	constraints, err := checkGrantConstraints(k, in.Operations, in.Constraints)
	if err != nil {
		return nil, err
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	for _, tok := range in.GrantTokens {
		if _, err := s.parseGrantToken(tok); err != nil {
			return nil, err
		}
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}

	var raw [grantIDBytes]byte
	s.mustRead(raw[:])
	now := s.now()
	g := fsm.Grant{
		GrantID:                  hex.EncodeToString(raw[:]),
		KeyID:                    k.KeyID,
		Name:                     deref(in.Name),
		CreatedAt:                now.UnixNano(),
		GranteePrincipal:         deref(in.GranteePrincipal),
		GranteeServicePrincipal:  deref(in.GranteeServicePrincipal),
		RetiringPrincipal:        deref(in.RetiringPrincipal),
		RetiringServicePrincipal: deref(in.RetiringServicePrincipal),
		IssuingAccount:           "arn:aws:iam::" + s.cfg.AccountID + ":root",
		Operations:               slices.Clone(in.Operations),
		Constraints:              constraints,
	}
	err = s.propose(ctx, &fsm.Command{Type: fsm.CmdCreateGrant, Time: now.UnixNano(), CreateGrant: &fsm.CreateGrantCmd{Grant: g}})
	if err != nil {
		return nil, err
	}
	// A named request may have matched an existing grant instead.
	id := g.GrantID
	if _, created := s.fsm.Grant(id); !created {
		if have, ok := s.fsm.NamedGrant(&g); ok {
			id = have.GrantID
		}
	}
	return &CreateGrantOutput{GrantId: id, GrantToken: s.newGrantToken(id)}, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// grantEntry renders a grant as AWS's GrantListEntry.
func (s *Service) grantEntry(g fsm.Grant) GrantListEntry {
	e := GrantListEntry{
		KeyId:                    s.keyARN(g.KeyID),
		GrantId:                  g.GrantID,
		Name:                     g.Name,
		CreationDate:             NewTimestamp(time.Unix(0, g.CreatedAt)),
		GranteePrincipal:         g.GranteePrincipal,
		RetiringPrincipal:        g.RetiringPrincipal,
		IssuingAccount:           g.IssuingAccount,
		Operations:               g.Operations,
		GranteeServicePrincipal:  g.GranteeServicePrincipal,
		RetiringServicePrincipal: g.RetiringServicePrincipal,
	}
	if e.Operations == nil {
		e.Operations = []string{}
	}
	if c := g.Constraints; c != nil {
		e.Constraints = &GrantConstraints{EncryptionContextSubset: c.EncryptionContextSubset, EncryptionContextEquals: c.EncryptionContextEquals}
		if c.SourceArn != "" {
			sa := c.SourceArn
			e.Constraints.SourceArn = &sa
		}
	}
	return e
}

// pageGrants returns the page of grants (in FSM order) after the marker.
func (s *Service) pageGrants(kind string, grants []fsm.Grant, limit *int32, marker *string) (*ListGrantsOutput, error) {
	start := 0
	if marker != nil {
		last, err := decodeMarker(kind, marker)
		if err != nil {
			return nil, err
		}
		ts, id, ok := strings.Cut(last, "/")
		created, perr := strconv.ParseInt(ts, 10, 64)
		if !ok || perr != nil || !validGrantID(id) {
			return nil, newError(ErrInvalidMarker, "Invalid marker: %s", *marker)
		}
		cursor := &fsm.Grant{CreatedAt: created, GrantID: id}
		start, _ = slices.BinarySearchFunc(grants, cursor, func(g fsm.Grant, c *fsm.Grant) int {
			if g.CreatedAt != c.CreatedAt {
				if g.CreatedAt < c.CreatedAt {
					return -1
				}
				return 1
			}
			return strings.Compare(g.GrantID, c.GrantID)
		})
		if start < len(grants) && grants[start].GrantID == id {
			start++
		}
	}
	n := limitOr(limit, defaultListGrantsLimit, maxListGrantsLimit)
	end := min(len(grants), start+n)
	out := &ListGrantsOutput{Grants: make([]GrantListEntry, 0, end-start)}
	for _, g := range grants[start:end] {
		out.Grants = append(out.Grants, s.grantEntry(g))
	}
	if end < len(grants) {
		last := grants[end-1]
		out.Truncated = true
		out.NextMarker = encodeMarker(kind, strconv.FormatInt(last.CreatedAt, 10)+"/"+last.GrantID)
	}
	return out, nil
}

// ListGrants lists a key's grants, oldest first, optionally only one grant
// id or one grantee. It works in every key state.
func (s *Service) ListGrants(ctx context.Context, in *ListGrantsInput) (*ListGrantsOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "ListGrants", *in.KeyId); err != nil {
		return nil, err
	}
	if in.GrantId != nil && !validGrantID(*in.GrantId) {
		return nil, invalidGrantID(*in.GrantId)
	}
	grants := s.fsm.GrantsForKey(k.KeyID, func(g *fsm.Grant) bool {
		return (in.GrantId == nil || g.GrantID == *in.GrantId) &&
			(in.GranteePrincipal == nil || g.GranteePrincipal == *in.GranteePrincipal) &&
			(in.GranteeServicePrincipal == nil || g.GranteeServicePrincipal == *in.GranteeServicePrincipal)
	})
	return s.pageGrants(grantsMarkerKind, grants, in.Limit, in.Marker)
}

// ListRetirableGrants lists the grants of every key in the region whose
// retiring principal is the given one, oldest first.
func (s *Service) ListRetirableGrants(ctx context.Context, in *ListRetirableGrantsInput) (*ListGrantsOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: "ListRetirableGrants"}); err != nil {
		return nil, err
	}
	switch {
	case in.RetiringPrincipal == nil && in.RetiringServicePrincipal == nil:
		return nil, ValidationError("You must specify either RetiringPrincipal or RetiringServicePrincipal.")
	case in.RetiringPrincipal != nil && in.RetiringServicePrincipal != nil:
		return nil, ValidationError("You can specify either RetiringPrincipal or RetiringServicePrincipal, but not both.")
	}
	grants := s.fsm.Grants(func(g *fsm.Grant) bool {
		if in.RetiringPrincipal != nil {
			return g.RetiringPrincipal == *in.RetiringPrincipal
		}
		return g.RetiringServicePrincipal == *in.RetiringServicePrincipal
	})
	return s.pageGrants(retirableMarkerKind, grants, in.Limit, in.Marker)
}

// RetireGrant deletes a grant named by a grant token, or by a key and a
// grant id. It works in every key state.
func (s *Service) RetireGrant(ctx context.Context, in *RetireGrantInput) (*Empty, error) {
	var grantID string
	switch {
	case in.GrantToken != nil:
		id, err := s.parseGrantToken(*in.GrantToken)
		if err != nil {
			return nil, err
		}
		if in.GrantId != nil && *in.GrantId != id {
			return nil, ValidationError("The GrantId %s does not match the grant token.", truncateForMessage(*in.GrantId))
		}
		grantID = id
	case in.KeyId != nil && in.GrantId != nil:
		if !validGrantID(*in.GrantId) {
			return nil, invalidGrantID(*in.GrantId)
		}
		grantID = *in.GrantId
	default:
		return nil, ValidationError("You must specify either a GrantToken, or a KeyId and a GrantId.")
	}
	var keyID string
	if in.KeyId != nil {
		k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
		if err != nil {
			return nil, err
		}
		keyID = k.KeyID
	}
	g, ok := s.fsm.Grant(grantID)
	if !ok {
		if keyID == "" {
			return nil, newError(ErrNotFound, "Grant ID %s not found.", grantID)
		}
		return nil, grantNotFound(grantID, keyID)
	}
	if keyID != "" && g.KeyID != keyID {
		if in.GrantToken != nil {
			return nil, ValidationError("The grant token is for a grant of another key than %s.", s.keyARN(keyID))
		}
		return nil, grantNotFound(grantID, keyID)
	}
	if err := s.authorizeRetire(ctx, &g); err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdRemoveGrant,
		RemoveGrant: &fsm.RemoveGrantCmd{KeyID: g.KeyID, GrantID: grantID}})
}

// RevokeGrant deletes a grant of a key. It works in every key state.
func (s *Service) RevokeGrant(ctx context.Context, in *RevokeGrantInput) (*Empty, error) {
	k, err := s.resolveKey(*in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "RevokeGrant", *in.KeyId); err != nil {
		return nil, err
	}
	if !validGrantID(*in.GrantId) {
		return nil, invalidGrantID(*in.GrantId)
	}
	if g, ok := s.fsm.Grant(*in.GrantId); !ok || g.KeyID != k.KeyID {
		return nil, grantNotFound(*in.GrantId, k.KeyID)
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdRemoveGrant,
		RemoveGrant: &fsm.RemoveGrantCmd{KeyID: k.KeyID, GrantID: *in.GrantId}})
}
