package service

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

const (
	specSymmetricDefault = "SYMMETRIC_DEFAULT"
	usageEncryptDecrypt  = "ENCRYPT_DECRYPT"
	originAWSKMS         = "AWS_KMS"
	keyManagerCustomer   = "CUSTOMER"

	defaultListKeysLimit       = 100
	defaultPendingWindowInDays = 30
	minPendingWindowInDays     = 7
	maxPendingWindowInDays     = 30
	maxPolicyBytes             = 32 * 1024
)

// defaultKeyPolicy is AWS's default key policy: the account root (and so IAM
// policies in the account) may do everything with the key.
func (s *Service) defaultKeyPolicy() string {
	return `{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::` + s.cfg.AccountID + `:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}`
}

// CreateKey creates a symmetric encryption key (SYMMETRIC_DEFAULT,
// ENCRYPT_DECRYPT), an HMAC key (HMAC_224 to HMAC_512,
// GENERATE_VERIFY_MAC) or an asymmetric key (asymmetric.go) with fresh
// material.
func (s *Service) CreateKey(ctx context.Context, in *CreateKeyInput) (*CreateKeyOutput, error) {
	if err := s.authorize(ctx, authzRequest{action: "CreateKey", extra: createKeyConditions(in)}); err != nil {
		return nil, err
	}
	spec := specSymmetricDefault
	switch {
	case in.KeySpec != nil && in.CustomerMasterKeySpec != nil:
		return nil, ValidationError("You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec is deprecated.")
	case in.KeySpec != nil:
		spec = *in.KeySpec
	case in.CustomerMasterKeySpec != nil:
		spec = *in.CustomerMasterKeySpec
	}
	usage := usageEncryptDecrypt
	if in.KeyUsage != nil {
		usage = *in.KeyUsage
	}
	origin := originAWSKMS
	if in.Origin != nil {
		origin = *in.Origin
	}
	if in.CustomKeyStoreId != nil {
		return nil, newError(ErrCustomKeyStore, "Custom key store '%s' does not exist.", *in.CustomKeyStoreId)
	}
	_, isHMAC := hmacSpecs[spec]
	_, isAsymmetric := asymmetricSpecs[spec]
	if spec != specSymmetricDefault && !isHMAC && !isAsymmetric {
		return nil, newError(ErrUnsupportedOp, "KeySpec %s is not supported by this kmsd version.", spec)
	}
	switch {
	case isAsymmetric:
		if err := checkAsymmetricUsage(spec, in.KeyUsage); err != nil {
			return nil, err
		}
	case isHMAC && in.KeyUsage == nil:
		// KeyUsage defaults to ENCRYPT_DECRYPT: AWS requires it for every
		// key but a symmetric encryption key.
		return nil, ValidationError("You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys. KeySpec %s requires KeyUsage %s.", spec, usageGenerateVerifyMAC)
	case isHMAC && usage != usageGenerateVerifyMAC, !isHMAC && usage != usageEncryptDecrypt:
		return nil, ValidationError("KeyUsage %s is not compatible with KeySpec %s.", usage, spec)
	}
	switch {
	case origin == fsm.OriginExternal && spec != specSymmetricDefault:
		return nil, newError(ErrUnsupportedOp, "Origin %s is supported only for KeySpec %s by this kmsd version.", origin, specSymmetricDefault)
	case origin != originAWSKMS && origin != fsm.OriginExternal:
		return nil, newError(ErrUnsupportedOp, "Origin %s is not supported by this kmsd version.", origin)
	}
	if in.MultiRegion != nil && *in.MultiRegion {
		return nil, newError(ErrUnsupportedOp, "Multi-Region keys are not supported by this kmsd version.")
	}
	policy := s.defaultKeyPolicy()
	if in.Policy != nil {
		if err := checkPolicyDocument(*in.Policy); err != nil {
			return nil, err
		}
		policy = *in.Policy
	}
	tags, err := checkTags(in.Tags)
	if err != nil {
		return nil, err
	}

	dkID, dk, err := s.currentDomainKey(ctx)
	if err != nil {
		return nil, err
	}
	id := s.newUUID()
	arn := s.keyARN(id)
	if in.Policy != nil {
		if err := s.checkLockout(ctx, policy, arn, in.BypassPolicyLockoutSafetyCheck); err != nil {
			return nil, err
		}
	}
	now := s.now()
	state := fsm.StateEnabled
	var versions []fsm.KeyVersion
	if origin == fsm.OriginExternal {
		state = fsm.StatePendingImport // material comes with ImportKeyMaterial
	} else {
		version, err := s.newKeyVersionFor(dkID, dk, arn, now, spec)
		if err != nil {
			return nil, err
		}
		versions = []fsm.KeyVersion{version}
	}
	key := fsm.Key{
		KeyID:      id,
		ARN:        arn,
		AccountID:  s.cfg.AccountID,
		CreatedAt:  now.UnixNano(),
		KeyUsage:   usage,
		KeySpec:    spec,
		Origin:     origin,
		KeyManager: keyManagerCustomer,
		State:      state,
		Policy:     policy,
		Tags:       tags,
		Versions:   versions,
	}
	if in.Description != nil {
		key.Description = *in.Description
	}
	cmd := &fsm.Command{Type: fsm.CmdCreateKey, Time: now.UnixNano(), CreateKey: &fsm.CreateKeyCmd{Key: key}}
	if err := s.propose(ctx, cmd); err != nil {
		return nil, err
	}
	return &CreateKeyOutput{KeyMetadata: s.metadata(&key)}, nil
}

// newKeyVersion draws size bytes of fresh material and wraps them under the
// domain key.
func (s *Service) newKeyVersion(dkID string, dk *crypto.Secret, arn string, now time.Time, size int) (fsm.KeyVersion, error) {
	var vid [16]byte
	s.mustRead(vid[:])
	raw := make([]byte, size)
	s.mustRead(raw)
	material := crypto.NewSecret(raw)
	clear(raw)
	defer material.Zero()
	wrapped, err := crypto.WrapKeyMaterial(s.cfg.Rand, dk, dkID, arn, vid, material)
	if err != nil {
		return fsm.KeyVersion{}, err
	}
	return fsm.KeyVersion{VersionID: vid, DomainKeyID: dkID, WrappedMaterial: wrapped, CreatedAt: now.UnixNano()}, nil
}

// checkPolicyDocument accepts a key policy that is a JSON object within
// the size limit and follows the policy grammar (checkPolicyGrammar in
// policy.go). Enforcement is another layer's job.
func checkPolicyDocument(p string) error {
	if len(p) > maxPolicyBytes {
		return newError(ErrLimitExceeded, "The key policy exceeds the maximum size of %d bytes.", maxPolicyBytes)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(p), &doc); err != nil {
		return newError(ErrMalformedPolicy, "The new key policy is not a valid JSON document.")
	}
	return checkPolicyGrammar(doc)
}

// checkTags validates tags and returns them as a map.
func checkTags(tags []Tag) (map[string]string, error) {
	if len(tags) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(tags))
	for _, t := range tags {
		if t.TagKey == nil || t.TagValue == nil {
			return nil, ValidationError("Tags must have a TagKey and a TagValue.")
		}
		if strings.HasPrefix(strings.ToLower(*t.TagKey), "aws:") {
			return nil, newError(ErrTag, "Tag keys beginning with 'aws:' are reserved.")
		}
		if _, dup := out[*t.TagKey]; dup {
			return nil, newError(ErrTag, "Duplicate tag key '%s'.", *t.TagKey)
		}
		out[*t.TagKey] = *t.TagValue
	}
	if len(out) > fsm.MaxTagsPerKey {
		return nil, newError(ErrLimitExceeded, "A key may have at most %d tags.", fsm.MaxTagsPerKey)
	}
	return out, nil
}

// keyMaterialID is the public id of a key version: 64 hex digits.
func keyMaterialID(v fsm.KeyVersion) string {
	sum := sha256.Sum256(append([]byte("kmsd key material id\x00"), v.VersionID[:]...))
	return hex.EncodeToString(sum[:])
}

// maxMaterialIDs bounds materialIDCache; it is emptied when full, which
// only costs recomputing ids.
const maxMaterialIDs = 1 << 16

// materialIDCache remembers keyMaterialID per version id for the crypto
// operations, which answer it on every call (a hash and a 64-byte string
// each time otherwise).
type materialIDCache struct {
	mu  sync.RWMutex
	ids map[[16]byte]string
}

// get returns keyMaterialID(v), cached.
func (c *materialIDCache) get(v fsm.KeyVersion) string {
	c.mu.RLock()
	id, ok := c.ids[v.VersionID]
	c.mu.RUnlock()
	if ok {
		return id
	}
	id = keyMaterialID(v)
	c.mu.Lock()
	if c.ids == nil || len(c.ids) >= maxMaterialIDs {
		c.ids = make(map[[16]byte]string)
	}
	c.ids[v.VersionID] = id
	c.mu.Unlock()
	return id
}

// metadata renders a key as AWS's KeyMetadata.
func (s *Service) metadata(k *fsm.Key) *KeyMetadata {
	m := &KeyMetadata{
		AWSAccountId:          k.AccountID,
		KeyId:                 k.KeyID,
		Arn:                   k.ARN,
		CreationDate:          NewTimestamp(time.Unix(0, k.CreatedAt)),
		Enabled:               k.State == fsm.StateEnabled,
		Description:           k.Description,
		KeyUsage:              k.KeyUsage,
		KeyState:              k.State,
		Origin:                k.Origin,
		KeyManager:            k.KeyManager,
		CustomerMasterKeySpec: k.KeySpec,
		KeySpec:               k.KeySpec,
		MultiRegion:           k.MultiRegion,
	}
	if k.KeySpec == specSymmetricDefault {
		m.EncryptionAlgorithms = []string{specSymmetricDefault}
	}
	if h, ok := hmacSpecs[k.KeySpec]; ok {
		m.MacAlgorithms = []string{h.macAlgorithm}
	}
	if k.State == fsm.StatePendingDeletion {
		m.DeletionDate = NewTimestamp(time.Unix(0, k.DeletionDate))
		w := k.PendingWindowDays
		m.PendingDeletionWindowInDays = &w
	}
	if v, ok := k.CurrentVersion(); ok && k.HasMaterial() {
		m.CurrentKeyMaterialId = keyMaterialID(v)
	}
	if k.Origin == fsm.OriginExternal && k.HasMaterial() {
		m.ExpirationModel = k.ExpirationModel
		if k.ExpirationModel == fsm.ExpirationKeyMaterialExpires {
			m.ValidTo = NewTimestamp(time.Unix(0, k.ValidTo))
		}
	}
	fillAsymmetricMetadata(m, k)
	return m
}

// DescribeKey returns a key's metadata.
func (s *Service) DescribeKey(ctx context.Context, in *DescribeKeyInput) (*DescribeKeyOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.resolveKey(*in.KeyId, anyKeyRef)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: "DescribeKey", key: k, ref: *in.KeyId, tokens: in.GrantTokens}); err != nil {
		return nil, err
	}
	return &DescribeKeyOutput{KeyMetadata: s.metadata(k)}, nil
}

// Pagination markers are opaque to clients; a prefix per listing lets a
// marker from another listing, or garbage, be rejected.
func encodeMarker(kind, last string) *string {
	m := base64.RawURLEncoding.EncodeToString([]byte(kind + ":" + last))
	return &m
}

func decodeMarker(kind string, m *string) (string, error) {
	if m == nil {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(*m)
	if err != nil || !strings.HasPrefix(string(b), kind+":") {
		return "", newError(ErrInvalidMarker, "Invalid marker: %s", *m)
	}
	return strings.TrimPrefix(string(b), kind+":"), nil
}

func limitOr(l *int32, def, max int) int {
	if l == nil {
		return def
	}
	return min(int(*l), max)
}

// ListKeys lists keys in key id order.
func (s *Service) ListKeys(ctx context.Context, in *ListKeysInput) (*ListKeysOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: "ListKeys"}); err != nil {
		return nil, err
	}
	after, err := decodeMarker("keys", in.Marker)
	if err != nil {
		return nil, err
	}
	keys, more := s.fsm.ListKeys(after, limitOr(in.Limit, defaultListKeysLimit, 1000))
	out := &ListKeysOutput{Keys: make([]KeyListEntry, 0, len(keys)), Truncated: more}
	for _, k := range keys {
		out.Keys = append(out.Keys, KeyListEntry{KeyId: k.KeyID, KeyArn: k.ARN})
	}
	if more {
		out.NextMarker = encodeMarker("keys", keys[len(keys)-1].KeyID)
	}
	return out, nil
}

// UpdateKeyDescription sets a key's description.
func (s *Service) UpdateKeyDescription(ctx context.Context, in *UpdateKeyDescriptionInput) (*Empty, error) {
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "UpdateKeyDescription", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdUpdateKeyDescription,
		UpdateKeyDescription: &fsm.UpdateKeyDescriptionCmd{KeyID: k.KeyID, Description: *in.Description}})
}

// EnableKey sets a key's state to Enabled.
func (s *Service) EnableKey(ctx context.Context, in *KeyIDInput) (*Empty, error) {
	return s.setEnabled(ctx, in, true)
}

// DisableKey sets a key's state to Disabled.
func (s *Service) DisableKey(ctx context.Context, in *KeyIDInput) (*Empty, error) {
	return s.setEnabled(ctx, in, false)
}

func (s *Service) setEnabled(ctx context.Context, in *KeyIDInput, enabled bool) (*Empty, error) {
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	action := "DisableKey"
	if enabled {
		action = "EnableKey"
	}
	if err := s.authorizeKey(ctx, k, action, *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdSetKeyEnabled,
		SetKeyEnabled: &fsm.SetKeyEnabledCmd{KeyID: k.KeyID, Enabled: enabled}})
}

// ScheduleKeyDeletion puts a key in PendingDeletion for 7 to 30 days.
func (s *Service) ScheduleKeyDeletion(ctx context.Context, in *ScheduleKeyDeletionInput) (*ScheduleKeyDeletionOutput, error) {
	days := int32(defaultPendingWindowInDays)
	if in.PendingWindowInDays != nil {
		days = *in.PendingWindowInDays
	}
	if days < minPendingWindowInDays || days > maxPendingWindowInDays {
		return nil, ValidationError("1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value between %d and %d", days, minPendingWindowInDays, maxPendingWindowInDays)
	}
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "ScheduleKeyDeletion", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	now := s.now()
	deletion := now.Add(time.Duration(days) * 24 * time.Hour)
	err = s.propose(ctx, &fsm.Command{Type: fsm.CmdScheduleKeyDeletion, Time: now.UnixNano(),
		ScheduleKeyDeletion: &fsm.ScheduleKeyDeletionCmd{KeyID: k.KeyID, DeletionDate: deletion.UnixNano(), WindowDays: days}})
	if err != nil {
		return nil, err
	}
	return &ScheduleKeyDeletionOutput{
		KeyId:               k.ARN,
		DeletionDate:        NewTimestamp(deletion),
		KeyState:            fsm.StatePendingDeletion,
		PendingWindowInDays: days,
	}, nil
}

// CancelKeyDeletion takes a key out of PendingDeletion; it becomes Disabled.
func (s *Service) CancelKeyDeletion(ctx context.Context, in *KeyIDInput) (*CancelKeyDeletionOutput, error) {
	k, err := s.resolveKeyFresh(ctx, *in.KeyId, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, "CancelKeyDeletion", *in.KeyId); err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	if err := s.propose(ctx, &fsm.Command{Type: fsm.CmdCancelKeyDeletion, KeyRef: &fsm.KeyRefCmd{KeyID: k.KeyID}}); err != nil {
		return nil, err
	}
	return &CancelKeyDeletionOutput{KeyId: k.ARN}, nil
}
