package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"regexp"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

// Imported key material (BYOK): GetParametersForImport, ImportKeyMaterial,
// DeleteImportedKeyMaterial, and the leader's expiry of material whose
// ValidTo has passed.
//
// The wrapping key pair of GetParametersForImport is drawn here and its
// private half is replicated wrapped under the current domain key (AAD:
// key ARN and token id), so ImportKeyMaterial may reach any node. The
// ImportToken is opaque: version | token id | valid-to | HMAC-SHA256 under a
// secret derived from the root key, over those and the key id. A token so
// names its parameters, cannot be forged or moved to another key, and
// reports its expiry even after the FSM has forgotten the parameters.
//
// Imported material is identified by a fingerprint (HMAC-SHA256 under
// another root-derived secret, over the key ARN and the material) from
// which the version id is derived too: reimporting the same material gives
// the same version, so ciphertexts made before a deletion decrypt again.

const (
	importParamsValidity = 24 * time.Hour
	// ValidTo of ImportKeyMaterial must be 10 minutes to 365 days ahead.
	minImportValidTo = 10 * time.Minute
	maxImportValidTo = 365 * 24 * time.Hour

	importTokenVersion  byte = 1
	importTokenBody          = 1 + 16 + 8
	importTokenLen           = importTokenBody + sha256.Size
	importTokenLabel         = "import-token"
	importTokenMACLabel      = "kmsd import token v1\x00"
	materialFPLabel          = "imported-material-fingerprint"
	materialFPMACLabel       = "kmsd imported material v1\x00"

	importTypeNew      = "NEW_KEY_MATERIAL"
	importTypeExisting = "EXISTING_KEY_MATERIAL"
)

var (
	wrappingKeySpecs = map[string]crypto.KeyPairSpec{
		"RSA_2048": crypto.RSA2048,
		"RSA_3072": crypto.RSA3072,
		"RSA_4096": crypto.RSA4096,
	}
	wrappingAlgorithms = map[string]crypto.ImportWrapping{
		"RSAES_OAEP_SHA_1":         crypto.ImportRSAESOAEPSHA1,
		"RSAES_OAEP_SHA_256":       crypto.ImportRSAESOAEPSHA256,
		"RSA_AES_KEY_WRAP_SHA_1":   crypto.ImportRSAAESKeyWrapSHA1,
		"RSA_AES_KEY_WRAP_SHA_256": crypto.ImportRSAAESKeyWrapSHA256,
	}
	materialIDPattern   = regexp.MustCompile(`^[a-f0-9]{64}$`)
	materialDescPattern = regexp.MustCompile(`^[a-zA-Z0-9:/_\s.-]+$`)
)

// importKey resolves the KeyId of an import operation (key id or key ARN)
// and rejects keys that cannot have imported material.
func (s *Service) importKey(ctx context.Context, ref, action string) (*fsm.Key, error) {
	k, err := s.resolveKeyFresh(ctx, ref, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, action, ref); err != nil {
		return nil, err
	}
	if k.Origin != fsm.OriginExternal {
		return nil, newError(ErrUnsupportedOp, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
	}
	return k, nil
}

// importTokenMAC authenticates a token body for one key.
func (s *Service) importTokenMAC(body []byte, keyID string) []byte {
	secret := s.cfg.RootKey.DeriveSecret(importTokenLabel)
	defer secret.Zero()
	m := hmac.New(sha256.New, secret.Bytes())
	m.Write([]byte(importTokenMACLabel))
	m.Write(body)
	m.Write([]byte(keyID))
	return m.Sum(nil)
}

func (s *Service) newImportToken(tokenID [16]byte, validTo time.Time, keyID string) []byte {
	b := make([]byte, 0, importTokenLen)
	b = append(b, importTokenVersion)
	b = append(b, tokenID[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(validTo.UnixNano()))
	return append(b, s.importTokenMAC(b, keyID)...)
}

// parseImportToken checks a token for key k at now and returns its token id.
func (s *Service) parseImportToken(tok []byte, k *fsm.Key, now time.Time) (string, error) {
	if len(tok) != importTokenLen || tok[0] != importTokenVersion ||
		!hmac.Equal(tok[importTokenBody:], s.importTokenMAC(tok[:importTokenBody], k.KeyID)) {
		return "", newError(ErrInvalidImportToken, "The import token is invalid for %s.", k.ARN)
	}
	validTo := int64(binary.BigEndian.Uint64(tok[17:importTokenBody]))
	if now.UnixNano() > validTo {
		return "", newError(ErrExpiredImportToken, "The import token expired at %s.", time.Unix(0, validTo).UTC().Format(time.RFC3339))
	}
	return hex.EncodeToString(tok[1:17]), nil
}

// materialFingerprint identifies imported material of a key, and derives
// the material's version id from it.
func (s *Service) materialFingerprint(arn string, material *crypto.Secret) ([]byte, [16]byte) {
	secret := s.cfg.RootKey.DeriveSecret(materialFPLabel)
	defer secret.Zero()
	m := hmac.New(sha256.New, secret.Bytes())
	m.Write([]byte(materialFPMACLabel))
	m.Write(binary.BigEndian.AppendUint32(nil, uint32(len(arn))))
	m.Write([]byte(arn))
	m.Write(material.Bytes())
	fp := m.Sum(nil)
	vidSum := sha256.Sum256(append([]byte("kmsd imported material version id\x00"), fp...))
	var vid [16]byte
	copy(vid[:], vidSum[:16])
	return fp, vid
}

// GetParametersForImport returns a fresh RSA wrapping public key and an
// import token for a key with Origin EXTERNAL, both valid for 24 hours.
func (s *Service) GetParametersForImport(ctx context.Context, in *GetParametersForImportInput) (*GetParametersForImportOutput, error) {
	spec, ok := wrappingKeySpecs[*in.WrappingKeySpec]
	if !ok {
		return nil, newError(ErrUnsupportedOp, "WrappingKeySpec %s is not supported by this kmsd version.", *in.WrappingKeySpec)
	}
	if _, ok := wrappingAlgorithms[*in.WrappingAlgorithm]; !ok {
		return nil, newError(ErrUnsupportedOp, "WrappingAlgorithm %s is not supported.", *in.WrappingAlgorithm)
	}
	k, err := s.importKey(ctx, *in.KeyId, "GetParametersForImport")
	if err != nil {
		return nil, err
	}
	if k.State == fsm.StatePendingDeletion {
		return nil, newError(ErrInvalidState, "%s is pending deletion.", k.ARN)
	}
	dkID, dk, err := s.currentDomainKey(ctx)
	if err != nil {
		return nil, err
	}
	priv, pub, err := crypto.GenerateKeyPair(s.cfg.Rand, spec)
	if err != nil {
		return nil, err
	}
	defer priv.Zero()
	var tokenID [16]byte
	s.mustRead(tokenID[:])
	wrapped, err := crypto.WrapImportKey(s.cfg.Rand, dk, dkID, k.ARN, tokenID, priv)
	if err != nil {
		return nil, err
	}
	now := s.now()
	validTo := now.Add(importParamsValidity)
	err = s.propose(ctx, &fsm.Command{Type: fsm.CmdPutImportParams, Time: now.UnixNano(),
		PutImportParams: &fsm.PutImportParamsCmd{Params: fsm.ImportParams{
			TokenID:           hex.EncodeToString(tokenID[:]),
			KeyID:             k.KeyID,
			WrappingKeySpec:   *in.WrappingKeySpec,
			WrappingAlgorithm: *in.WrappingAlgorithm,
			DomainKeyID:       dkID,
			WrappedPrivateKey: wrapped,
			CreatedAt:         now.UnixNano(),
			ValidTo:           validTo.UnixNano(),
		}}})
	if err != nil {
		return nil, err
	}
	return &GetParametersForImportOutput{
		KeyId:             k.ARN,
		ImportToken:       s.newImportToken(tokenID, validTo, k.KeyID),
		PublicKey:         pub,
		ParametersValidTo: NewTimestamp(validTo),
	}, nil
}

// expiration applies ImportKeyMaterial's ExpirationModel and ValidTo rules
// and returns the model and ValidTo (unix nanoseconds, 0 for none).
func (s *Service) expiration(in *ImportKeyMaterialInput, now time.Time) (string, int64, error) {
	model := fsm.ExpirationKeyMaterialExpires // AWS's default
	if in.ExpirationModel != nil {
		model = *in.ExpirationModel
	}
	if model == fsm.ExpirationKeyMaterialDoesNotExpire {
		if in.ValidTo != nil {
			return "", 0, ValidationError("ValidTo must not be set when ExpirationModel is %s.", model)
		}
		return model, 0, nil
	}
	if in.ValidTo == nil {
		return "", 0, ValidationError("ValidTo is required when ExpirationModel is %s.", model)
	}
	d := in.ValidTo.Sub(now)
	if d < minImportValidTo || d > maxImportValidTo {
		return "", 0, ValidationError("ValidTo must be between 10 minutes and 365 days in the future.")
	}
	return model, in.ValidTo.UnixNano(), nil
}

// ImportKeyMaterial unwraps key material a client wrapped with the public
// key of GetParametersForImport and installs it: the key becomes Enabled.
// A key that had material before accepts only the same material.
func (s *Service) ImportKeyMaterial(ctx context.Context, in *ImportKeyMaterialInput) (*ImportKeyMaterialOutput, error) {
	k, err := s.importKey(ctx, *in.KeyId, "ImportKeyMaterial")
	if err != nil {
		return nil, err
	}
	now := s.now()
	model, validTo, err := s.expiration(in, now)
	if err != nil {
		return nil, err
	}
	if in.KeyMaterialDescription != nil && *in.KeyMaterialDescription != "" && !materialDescPattern.MatchString(*in.KeyMaterialDescription) {
		return nil, ValidationError("1 validation error detected: Value at 'keyMaterialDescription' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_\\s.-]+$")
	}
	if in.KeyMaterialId != nil && !materialIDPattern.MatchString(*in.KeyMaterialId) {
		return nil, ValidationError("1 validation error detected: Value '%s' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$", truncateForMessage(*in.KeyMaterialId))
	}
	hadMaterial := len(k.MaterialFingerprint) > 0
	if in.ImportType != nil {
		switch {
		case *in.ImportType == importTypeNew && hadMaterial:
			return nil, newError(ErrUnsupportedOp, "Importing new key material into %s, which already has key material, is not supported by this kmsd version.", k.ARN)
		case *in.ImportType == importTypeExisting && !hadMaterial:
			return nil, ValidationError("%s has no existing key material to reimport.", k.ARN)
		}
	}
	if k.State == fsm.StatePendingDeletion {
		return nil, newError(ErrInvalidState, "%s is pending deletion.", k.ARN)
	}
	tokenID, err := s.parseImportToken(in.ImportToken, k, now)
	if err != nil {
		return nil, err
	}
	params, ok := s.fsm.ImportParams(tokenID)
	if !ok || params.KeyID != k.KeyID {
		return nil, newError(ErrInvalidImportToken, "The import token is invalid for %s.", k.ARN)
	}
	material, err := s.unwrapImported(k, params, in.EncryptedKeyMaterial)
	if err != nil {
		return nil, err
	}
	defer material.Zero()
	if material.Len() != crypto.KeySize {
		return nil, newError(ErrIncorrectKeyMaterial, "The key material of a %s key must be 256 bits (32 bytes).", k.KeySpec)
	}
	fp, vid := s.materialFingerprint(k.ARN, material)
	if hadMaterial && !hmac.Equal(fp, k.MaterialFingerprint) {
		return nil, newError(ErrIncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", k.ARN)
	}
	v := fsm.KeyVersion{VersionID: vid}
	if in.KeyMaterialId != nil && hadMaterial && *in.KeyMaterialId != keyMaterialID(v) {
		return nil, newError(ErrIncorrectKeyMaterial, "KeyMaterialId %s does not identify the key material of %s.", *in.KeyMaterialId, k.ARN)
	}
	dkID, dk, err := s.currentDomainKey(ctx)
	if err != nil {
		return nil, err
	}
	wrapped, err := crypto.WrapKeyMaterial(s.cfg.Rand, dk, dkID, k.ARN, vid, material)
	if err != nil {
		return nil, err
	}
	v.DomainKeyID, v.WrappedMaterial, v.CreatedAt = dkID, wrapped, now.UnixNano()
	err = s.propose(ctx, &fsm.Command{Type: fsm.CmdImportKeyMaterial, Time: now.UnixNano(),
		ImportKeyMaterial: &fsm.ImportKeyMaterialCmd{KeyID: k.KeyID, TokenID: tokenID, Version: v,
			Fingerprint: fp, ExpirationModel: model, ValidTo: validTo}})
	if err != nil {
		return nil, err
	}
	return &ImportKeyMaterialOutput{KeyId: k.ARN, KeyMaterialId: keyMaterialID(v)}, nil
}

// unwrapImported decrypts EncryptedKeyMaterial with the wrapping key of
// params.
func (s *Service) unwrapImported(k *fsm.Key, params fsm.ImportParams, encrypted []byte) (*crypto.Secret, error) {
	alg, ok := wrappingAlgorithms[params.WrappingAlgorithm]
	tid, err := hex.DecodeString(params.TokenID)
	if !ok || err != nil || len(tid) != 16 {
		return nil, newError(ErrInternal, "An internal error occurred.")
	}
	dk, err := s.domainKey(params.DomainKeyID)
	if err != nil {
		return nil, err
	}
	priv, err := crypto.UnwrapImportKey(dk, params.DomainKeyID, k.ARN, [16]byte(tid), params.WrappedPrivateKey)
	if err != nil {
		s.log.Error("cannot unwrap import wrapping key", "key_id", k.KeyID, "domain_key_id", params.DomainKeyID)
		return nil, newError(ErrKeyUnavailable, "The key material is unavailable on this node.")
	}
	defer priv.Zero()
	material, err := crypto.UnwrapImportedMaterial(priv, alg, encrypted)
	if err != nil {
		if errors.Is(err, crypto.ErrInvalidCiphertext) {
			return nil, newError(ErrInvalidCiphertext, "The EncryptedKeyMaterial could not be decrypted with the wrapping key and algorithm (%s) of the import token.", params.WrappingAlgorithm)
		}
		return nil, err
	}
	return material, nil
}

// DeleteImportedKeyMaterial deletes a key's imported material; the key
// becomes PendingImport (a key pending deletion stays so). Deleting from a
// key without material has no effect.
func (s *Service) DeleteImportedKeyMaterial(ctx context.Context, in *DeleteImportedKeyMaterialInput) (*DeleteImportedKeyMaterialOutput, error) {
	k, err := s.importKey(ctx, *in.KeyId, "DeleteImportedKeyMaterial")
	if err != nil {
		return nil, err
	}
	out := &DeleteImportedKeyMaterialOutput{KeyId: k.ARN}
	v, hasVersion := k.CurrentVersion()
	if hasVersion {
		out.KeyMaterialId = keyMaterialID(v)
	}
	if in.KeyMaterialId != nil {
		if !materialIDPattern.MatchString(*in.KeyMaterialId) {
			return nil, ValidationError("1 validation error detected: Value '%s' at 'keyMaterialId' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-f0-9]+$", truncateForMessage(*in.KeyMaterialId))
		}
		if !hasVersion || *in.KeyMaterialId != out.KeyMaterialId {
			return nil, newError(ErrNotFound, "Key material %s of %s does not exist.", *in.KeyMaterialId, k.ARN)
		}
	}
	if err := s.propose(ctx, &fsm.Command{Type: fsm.CmdDeleteImportedKeyMaterial,
		DeleteImportedKeyMaterial: &fsm.DeleteImportedKeyMaterialCmd{KeyID: k.KeyID}}); err != nil {
		return nil, err
	}
	if hasVersion {
		s.materials.Remove(v.VersionID) // other nodes' copies go unused: the key is not usable
	}
	return out, nil
}

// expireImportedMaterial proposes the deletion of imported material whose
// ValidTo has passed. Apply deletes only if it is still due at the
// command's time, so a repeated or raced proposal is harmless.
func (s *Service) expireImportedMaterial(ctx context.Context, now time.Time) []error {
	var errs []error
	for _, id := range s.fsm.KeysWithExpiredMaterial(now.UnixNano()) {
		err := s.propose(ctx, &fsm.Command{Type: fsm.CmdDeleteImportedKeyMaterial, RequestID: s.newUUID(), Time: now.UnixNano(),
			DeleteImportedKeyMaterial: &fsm.DeleteImportedKeyMaterialCmd{KeyID: id, Expired: true}})
		if err == nil {
			s.log.Info("deleted expired imported key material", "key_id", id)
		}
		errs = append(errs, err)
	}
	return errs
}
