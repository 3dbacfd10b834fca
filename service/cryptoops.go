package service

import (
	"context"
	"errors"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

const (
	maxRandomBytes  = 1024
	dataKeyAES128   = "AES_128"
	dataKeyAES256   = "AES_256"
	dryRunSucceeded = "The request would have succeeded, but the DryRun option is set."
)

// checkUsable applies the key-state rules of cryptographic operations and
// CreateGrant (reference/key-states.md): only Enabled keys may be used.
func checkUsable(k *fsm.Key) error {
	switch k.State {
	case fsm.StateEnabled:
		return nil
	case fsm.StateDisabled:
		return newError(ErrDisabled, "%s is disabled.", k.ARN)
	case fsm.StatePendingDeletion:
		return newError(ErrInvalidState, "%s is pending deletion.", k.ARN)
	case fsm.StatePendingImport:
		return newError(ErrInvalidState, "%s is pending import.", k.ARN)
	default:
		return newError(ErrInvalidState, "%s is in state %s.", k.ARN, k.State)
	}
}

// checkSymmetricAlgorithm rejects an algorithm other than SYMMETRIC_DEFAULT
// for a symmetric encryption key.
func checkSymmetricAlgorithm(k *fsm.Key, alg *string) error {
	if k.KeyUsage != usageEncryptDecrypt || k.KeySpec != specSymmetricDefault {
		return newError(ErrInvalidKeyUsage, "%s key usage is %s, key spec %s: not valid for this operation.", k.ARN, k.KeyUsage, k.KeySpec)
	}
	if alg != nil && *alg != specSymmetricDefault {
		return newError(ErrInvalidKeyUsage, "The encryption algorithm %s is not valid for %s.", *alg, k.ARN)
	}
	return nil
}

// encryptionKey resolves and checks a key for encryption-side operations.
func (s *Service) encryptionKey(ctx context.Context, ref string, alg *string, action string, ec map[string]string, tokens []string) (*fsm.Key, error) {
	k, err := s.resolveOrCreateManaged(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: action, key: k, ref: ref, ec: ec, hasEC: true, tokens: tokens}); err != nil {
		return nil, err
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	if err := checkSymmetricAlgorithm(k, alg); err != nil {
		return nil, err
	}
	return k, nil
}

// seal encrypts plaintext under the key's current version.
func (s *Service) seal(k *fsm.Key, ctx map[string]string, plaintext []byte) ([]byte, fsm.KeyVersion, error) {
	v, ok := k.CurrentVersion()
	if !ok {
		return nil, v, newError(ErrInternal, "An internal error occurred.")
	}
	raw, mrk, err := crypto.ParseKeyID(k.KeyID)
	if err != nil {
		return nil, v, newError(ErrInternal, "An internal error occurred.")
	}
	sk, err := s.symmetricKey(k, raw, v)
	if err != nil {
		return nil, v, err
	}
	defer sk.Release()
	blob, err := sk.AppendSeal(nil, s.cfg.Rand, crypto.Header{Version: s.cfg.CiphertextFormat, MultiRegion: mrk}, ctx, plaintext)
	if err != nil {
		return nil, v, err
	}
	return blob, v, nil
}

// open decrypts a ciphertext blob: it finds the key and version the blob
// names, checks the caller's KeyId (if any) names the same key, applies the
// key-state rules, and authenticates the blob with the encryption context.
func (s *Service) open(reqCtx context.Context, action string, tokens []string, blobBytes []byte, keyRef *string, alg *string, ctx map[string]string) ([]byte, *fsm.Key, fsm.KeyVersion, error) {
	var v fsm.KeyVersion
	blob, err := crypto.ParseBlob(blobBytes)
	if err != nil {
		return nil, nil, v, newError(ErrInvalidCiphertext, "The ciphertext is invalid.")
	}
	keyID := crypto.FormatKeyID(blob.KeyID, blob.MultiRegion)
	if keyRef != nil {
		named, err := s.resolveKey(*keyRef, anyKeyRef)
		if err != nil {
			return nil, nil, v, err
		}
		if named.KeyID != keyID {
			return nil, nil, v, newError(ErrIncorrectKey, "The key ID in the request does not identify a KMS key that can perform this operation.")
		}
	}
	k, ok := s.fsm.Key(keyID)
	if !ok {
		// AWS answers a ciphertext under an unknown key as it would a key the
		// caller may not use, revealing nothing about which keys exist.
		return nil, nil, v, newError(ErrAccessDenied, "The ciphertext refers to a KMS key that does not exist or that you do not have access to.")
	}
	if err := s.authorize(reqCtx, authzRequest{action: action, key: k, ref: deref(keyRef), ec: ctx, hasEC: true, tokens: tokens}); err != nil {
		return nil, nil, v, err
	}
	if err := checkUsable(k); err != nil {
		return nil, nil, v, err
	}
	if err := checkSymmetricAlgorithm(k, alg); err != nil {
		return nil, nil, v, err
	}
	v, ok = k.Version(blob.VersionID)
	if !ok {
		return nil, nil, v, newError(ErrInvalidCiphertext, "The ciphertext is invalid.")
	}
	sk, err := s.symmetricKey(k, blob.KeyID, v)
	if err != nil {
		return nil, nil, v, err
	}
	defer sk.Release()
	pt, err := sk.Open(blob, ctx)
	if err != nil {
		if errors.Is(err, crypto.ErrInvalidCiphertext) {
			return nil, nil, v, newError(ErrInvalidCiphertext, "The ciphertext is invalid.")
		}
		return nil, nil, v, err
	}
	return pt, k, v, nil
}

func dryRun(flag *bool) error {
	if flag != nil && *flag {
		return newError(ErrDryRun, dryRunSucceeded)
	}
	return nil
}

// Encrypt encrypts up to 4096 bytes under a symmetric key.
func (s *Service) Encrypt(ctx context.Context, in *EncryptInput) (*EncryptOutput, error) {
	if out, handled, err := s.encryptAsymmetric(ctx, in); handled {
		return out, err
	}
	k, err := s.encryptionKey(ctx, *in.KeyId, in.EncryptionAlgorithm, "Encrypt", in.EncryptionContext, in.GrantTokens)
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	blob, _, err := s.seal(k, in.EncryptionContext, in.Plaintext)
	if err != nil {
		return nil, err
	}
	return &EncryptOutput{CiphertextBlob: blob, KeyId: k.ARN, EncryptionAlgorithm: specSymmetricDefault}, nil
}

// Decrypt decrypts a ciphertext made by Encrypt, GenerateDataKey or ReEncrypt.
func (s *Service) Decrypt(ctx context.Context, in *DecryptInput) (*DecryptOutput, error) {
	if out, handled, err := s.decryptAsymmetric(ctx, in); handled {
		return out, err
	}
	pt, k, v, err := s.open(ctx, "Decrypt", in.GrantTokens, in.CiphertextBlob, in.KeyId, in.EncryptionAlgorithm, in.EncryptionContext)
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	return &DecryptOutput{KeyId: k.ARN, Plaintext: pt, EncryptionAlgorithm: specSymmetricDefault, KeyMaterialId: s.materialIDs.get(v)}, nil
}

// ReEncrypt decrypts a ciphertext and encrypts the plaintext under another
// key (or the same key's current version) without revealing it.
func (s *Service) ReEncrypt(ctx context.Context, in *ReEncryptInput) (*ReEncryptOutput, error) {
	if out, handled, err := s.reEncryptAsymmetric(ctx, in); handled {
		return out, err
	}
	pt, src, sv, err := s.open(ctx, "ReEncryptFrom", in.GrantTokens, in.CiphertextBlob, in.SourceKeyId, in.SourceEncryptionAlgorithm, in.SourceEncryptionContext)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	dst, err := s.encryptionKey(ctx, *in.DestinationKeyId, in.DestinationEncryptionAlgorithm, "ReEncryptTo", in.DestinationEncryptionContext, in.GrantTokens)
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	blob, dv, err := s.seal(dst, in.DestinationEncryptionContext, pt)
	if err != nil {
		return nil, err
	}
	return &ReEncryptOutput{
		CiphertextBlob:                 blob,
		SourceKeyId:                    src.ARN,
		KeyId:                          dst.ARN,
		SourceEncryptionAlgorithm:      specSymmetricDefault,
		DestinationEncryptionAlgorithm: specSymmetricDefault,
		SourceKeyMaterialId:            s.materialIDs.get(sv),
		DestinationKeyMaterialId:       s.materialIDs.get(dv),
	}, nil
}

// dataKeyLength applies GenerateDataKey's "exactly one of KeySpec and
// NumberOfBytes" rule.
func dataKeyLength(in *GenerateDataKeyInput) (int, error) {
	switch {
	case in.KeySpec != nil && in.NumberOfBytes != nil:
		return 0, ValidationError("Please specify either number of bytes or key spec, not both.")
	case in.KeySpec != nil && *in.KeySpec == dataKeyAES128:
		return 16, nil
	case in.KeySpec != nil && *in.KeySpec == dataKeyAES256:
		return 32, nil
	case in.KeySpec != nil:
		return 0, ValidationError("1 validation error detected: Value '%s' at 'keySpec' failed to satisfy constraint: Member must satisfy enum value set: [AES_256, AES_128]", *in.KeySpec)
	case in.NumberOfBytes != nil:
		return int(*in.NumberOfBytes), nil
	default:
		return 0, ValidationError("Please specify either number of bytes or key spec.")
	}
}

func (s *Service) generateDataKey(ctx context.Context, in *GenerateDataKeyInput, withPlaintext bool) (*GenerateDataKeyOutput, error) {
	n, err := dataKeyLength(in)
	if err != nil {
		return nil, err
	}
	action := "GenerateDataKeyWithoutPlaintext"
	if withPlaintext {
		action = "GenerateDataKey"
	}
	k, err := s.encryptionKey(ctx, *in.KeyId, nil, action, in.EncryptionContext, in.GrantTokens)
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	pt := make([]byte, n)
	s.mustRead(pt)
	blob, v, err := s.seal(k, in.EncryptionContext, pt)
	if err != nil {
		return nil, err
	}
	out := &GenerateDataKeyOutput{CiphertextBlob: blob, KeyId: k.ARN, KeyMaterialId: s.materialIDs.get(v)}
	if withPlaintext {
		out.Plaintext = pt
	} else {
		clear(pt)
	}
	return out, nil
}

// GenerateDataKey returns a fresh data key in plaintext and encrypted.
func (s *Service) GenerateDataKey(ctx context.Context, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, in, true)
}

// GenerateDataKeyWithoutPlaintext returns a fresh data key, encrypted only.
func (s *Service) GenerateDataKeyWithoutPlaintext(ctx context.Context, in *GenerateDataKeyInput) (*GenerateDataKeyOutput, error) {
	return s.generateDataKey(ctx, in, false)
}

// GenerateRandom returns 1 to 1024 random bytes.
func (s *Service) GenerateRandom(ctx context.Context, in *GenerateRandomInput) (*GenerateRandomOutput, error) {
	if err := s.authorize(ctx, authzRequest{action: "GenerateRandom"}); err != nil {
		return nil, err
	}
	if in.NumberOfBytes == nil {
		return nil, ValidationError("1 validation error detected: Value null at 'numberOfBytes' failed to satisfy constraint: Member must not be null")
	}
	if in.CustomKeyStoreId != nil {
		return nil, newError(ErrCustomKeyStore, "Custom key store '%s' does not exist.", *in.CustomKeyStoreId)
	}
	n := int(*in.NumberOfBytes)
	if n < 1 || n > maxRandomBytes {
		return nil, ValidationError("1 validation error detected: Value '%d' at 'numberOfBytes' failed to satisfy constraint: Member must have value between 1 and %d", n, maxRandomBytes)
	}
	b := make([]byte, n)
	s.mustRead(b)
	return &GenerateRandomOutput{Plaintext: b}, nil
}
