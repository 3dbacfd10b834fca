package service

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

const (
	asymUsageSignVerify   = "SIGN_VERIFY"
	asymUsageKeyAgreement = "KEY_AGREEMENT"

	messageTypeRaw        = "RAW"
	messageTypeDigest     = "DIGEST"
	messageTypeExternalMu = "EXTERNAL_MU"

	specEd25519     = "ECC_NIST_EDWARDS25519"
	algEd25519      = "ED25519_SHA_512"
	algEd25519PH    = "ED25519_PH_SHA_512"
	invalidSigMsg   = "The signature verification failed: the signature was not produced by signing the message with this KMS key and signing algorithm."
	invalidCtMsg    = "The ciphertext is invalid."
	internalErrText = "An internal error occurred."
)

// asymmetricSpec is what an asymmetric key spec means: the key pair crypto
// makes, the KeyUsage values CreateKey accepts for it, and the algorithms a
// key of each usage supports, in the order AWS lists them.
type asymmetricSpec struct {
	pair       crypto.KeyPairSpec
	usages     []string
	signing    []string // of a SIGN_VERIFY key
	encryption []string // of an ENCRYPT_DECRYPT key
}

var (
	rsaSigning    = []string{"RSASSA_PKCS1_V1_5_SHA_256", "RSASSA_PKCS1_V1_5_SHA_384", "RSASSA_PKCS1_V1_5_SHA_512", "RSASSA_PSS_SHA_256", "RSASSA_PSS_SHA_384", "RSASSA_PSS_SHA_512"}
	rsaEncryption = []string{"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"}
	rsaUsages     = []string{usageEncryptDecrypt, asymUsageSignVerify}
	// ECC_NIST_P* keys may also be KEY_AGREEMENT keys in AWS (for
	// DeriveSharedSecret, which kmsd does not serve): see checkAsymmetricUsage.
	// ECC_SECG_P256K1 and ECC_NIST_EDWARDS25519 keys are SIGN_VERIFY only.
	eccUsages = []string{asymUsageSignVerify}
)

// asymmetricSpecs are the asymmetric key specs kmsd supports, for CreateKey
// (KeySpec) and GenerateDataKeyPair (KeyPairSpec). SM2 is missing: kmsd has
// no implementation of it.
var asymmetricSpecs = map[string]asymmetricSpec{
	"RSA_2048":      {crypto.RSA2048, rsaUsages, rsaSigning, rsaEncryption},
	"RSA_3072":      {crypto.RSA3072, rsaUsages, rsaSigning, rsaEncryption},
	"RSA_4096":      {crypto.RSA4096, rsaUsages, rsaSigning, rsaEncryption},
	"ECC_NIST_P256": {crypto.ECCNISTP256, eccUsages, []string{"ECDSA_SHA_256"}, nil},
	"ECC_NIST_P384": {crypto.ECCNISTP384, eccUsages, []string{"ECDSA_SHA_384"}, nil},
	"ECC_NIST_P521": {crypto.ECCNISTP521, eccUsages, []string{"ECDSA_SHA_512"}, nil},
	// secp256k1 signs SHA-256 digests only, like P-256 (AWS KMS key spec
	// reference).
	"ECC_SECG_P256K1": {crypto.Secp256k1, eccUsages, []string{"ECDSA_SHA_256"}, nil},
	specEd25519:       {crypto.Ed25519, eccUsages, []string{algEd25519, algEd25519PH}, nil},
}

var signingAlgorithms = map[string]crypto.SigningAlgorithm{
	"RSASSA_PSS_SHA_256":        crypto.RSASSAPSSSHA256,
	"RSASSA_PSS_SHA_384":        crypto.RSASSAPSSSHA384,
	"RSASSA_PSS_SHA_512":        crypto.RSASSAPSSSHA512,
	"RSASSA_PKCS1_V1_5_SHA_256": crypto.RSASSAPKCS1v15SHA256,
	"RSASSA_PKCS1_V1_5_SHA_384": crypto.RSASSAPKCS1v15SHA384,
	"RSASSA_PKCS1_V1_5_SHA_512": crypto.RSASSAPKCS1v15SHA512,
	"ECDSA_SHA_256":             crypto.ECDSASHA256,
	"ECDSA_SHA_384":             crypto.ECDSASHA384,
	"ECDSA_SHA_512":             crypto.ECDSASHA512,
	algEd25519:                  crypto.Ed25519SHA512,
	algEd25519PH:                crypto.Ed25519PHSHA512,
}

var encryptionAlgorithms = map[string]crypto.EncryptionAlgorithm{
	"RSAES_OAEP_SHA_1":   crypto.RSAESOAEPSHA1,
	"RSAES_OAEP_SHA_256": crypto.RSAESOAEPSHA256,
}

// algorithms returns copies of the encryption and signing algorithm lists
// of a key of this spec and usage.
func (a asymmetricSpec) algorithms(usage string) (enc, sig []string) {
	switch usage {
	case usageEncryptDecrypt:
		return slices.Clone(a.encryption), nil
	case asymUsageSignVerify:
		return nil, slices.Clone(a.signing)
	}
	return nil, nil
}

// customerMasterKeySpec is the deprecated CustomerMasterKeySpec member for
// a key spec: the same name, except for specs added after it was
// deprecated, which its enum does not have.
func customerMasterKeySpec(spec string) string {
	if spec == specEd25519 {
		return ""
	}
	return spec
}

// fillAsymmetricMetadata sets the algorithm lists of an asymmetric key's
// metadata and drops CurrentKeyMaterialId, which AWS reports only for
// symmetric encryption keys (asymmetric keys never rotate); it leaves other
// keys' metadata alone.
func fillAsymmetricMetadata(m *KeyMetadata, k *fsm.Key) {
	a, ok := asymmetricSpecs[k.KeySpec]
	if !ok {
		return
	}
	m.EncryptionAlgorithms, m.SigningAlgorithms = a.algorithms(k.KeyUsage)
	m.CustomerMasterKeySpec = customerMasterKeySpec(k.KeySpec)
	m.CurrentKeyMaterialId = ""
}

// checkAsymmetricUsage applies CreateKey's KeyUsage rules to an asymmetric
// key spec: KeyUsage is required, and must be one the spec supports.
func checkAsymmetricUsage(spec string, usage *string) error {
	a := asymmetricSpecs[spec]
	if usage == nil {
		return ValidationError("You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys. KeySpec %s supports KeyUsage %s.", spec, joinOr(a.usages))
	}
	if slices.Contains(a.usages, *usage) {
		return nil
	}
	if *usage == asymUsageKeyAgreement && a.pair >= crypto.ECCNISTP256 && a.pair <= crypto.ECCNISTP521 {
		return newError(ErrUnsupportedOp, "KeyUsage %s is not supported by this kmsd version.", *usage)
	}
	return ValidationError("KeyUsage %s is not compatible with KeySpec %s.", *usage, spec)
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := s[0]
	for _, e := range s[1 : len(s)-1] {
		out += ", " + e
	}
	return out + " or " + s[len(s)-1]
}

// newKeyVersionFor draws the first material version of a new key of the
// spec: a fresh key pair (its PKCS#8 private key is the material) for an
// asymmetric spec, random bytes otherwise. The material is wrapped under the
// domain key before it leaves this function.
func (s *Service) newKeyVersionFor(dkID string, dk *crypto.Secret, arn string, now time.Time, spec string) (fsm.KeyVersion, error) {
	a, ok := asymmetricSpecs[spec]
	if !ok {
		return s.newKeyVersion(dkID, dk, arn, now, materialSize(spec))
	}
	priv, _, err := crypto.GenerateKeyPair(s.cfg.Rand, a.pair)
	if err != nil {
		return fsm.KeyVersion{}, err
	}
	defer priv.Zero()
	var vid [16]byte
	s.mustRead(vid[:])
	wrapped, err := crypto.WrapKeyMaterial(s.cfg.Rand, dk, dkID, arn, vid, priv)
	if err != nil {
		return fsm.KeyVersion{}, err
	}
	return fsm.KeyVersion{VersionID: vid, DomainKeyID: dkID, WrappedMaterial: wrapped, CreatedAt: now.UnixNano()}, nil
}

// currentMaterial returns a copy of the unwrapped material of the key's
// current version; the caller zeroes it.
func (s *Service) currentMaterial(k *fsm.Key) (*crypto.Secret, error) {
	v, ok := k.CurrentVersion()
	if !ok {
		return nil, newError(ErrInternal, internalErrText)
	}
	return s.material(k, v)
}

// asymmetricKey resolves ref (any key reference) and reports whether it is
// an asymmetric key. A reference that does not resolve is reported as not
// asymmetric, so that the symmetric code path answers with its own error.
func (s *Service) asymmetricKey(ref string) (*fsm.Key, asymmetricSpec, bool) {
	k, err := s.resolveKey(ref, anyKeyRef)
	if err != nil {
		return nil, asymmetricSpec{}, false
	}
	a, ok := asymmetricSpecs[k.KeySpec]
	return k, a, ok
}

// --- Sign, Verify -----------------------------------------------------------

// signingKey resolves and checks a key for Sign and Verify: usable
// (key-states.md), a SIGN_VERIFY asymmetric key, and the algorithm one its
// spec supports.
func (s *Service) signingKey(ctx context.Context, tokens []string, ref, algName, op string) (*fsm.Key, crypto.SigningAlgorithm, error) {
	k, err := s.resolveKey(ref, anyKeyRef)
	if err != nil {
		return nil, 0, err
	}
	if err := s.authorize(ctx, authzRequest{action: op, key: k, ref: ref, tokens: tokens}); err != nil {
		return nil, 0, err
	}
	if err := checkUsable(k); err != nil {
		return nil, 0, err
	}
	a, ok := asymmetricSpecs[k.KeySpec]
	if !ok || k.KeyUsage != asymUsageSignVerify {
		return nil, 0, newError(ErrInvalidKeyUsage, "%s key usage is %s which is not valid for %s.", k.ARN, k.KeyUsage, op)
	}
	alg, known := signingAlgorithms[algName]
	if !known || !slices.Contains(a.signing, algName) {
		return nil, 0, newError(ErrInvalidKeyUsage, "Algorithm %s is incompatible with key spec %s.", algName, k.KeySpec)
	}
	return k, alg, nil
}

// messageIsDigest applies the MessageType rules: RAW (the default) is hashed
// by the algorithm; DIGEST must be as long as the algorithm's hash output;
// Ed25519 takes RAW only, Ed25519ph DIGEST only; EXTERNAL_MU is for ML-DSA,
// which kmsd does not have.
func messageIsDigest(messageType *string, algName string, alg crypto.SigningAlgorithm, msg []byte) (bool, error) {
	mt := messageTypeRaw
	if messageType != nil {
		mt = *messageType
	}
	switch mt {
	case messageTypeDigest:
		if algName == algEd25519 {
			return false, ValidationError("The %s signing algorithm requires MessageType %s.", algName, messageTypeRaw)
		}
		if len(msg) != alg.DigestSize() {
			return false, ValidationError("Digest is invalid length for algorithm %s.", algName)
		}
		return true, nil
	case messageTypeExternalMu:
		return false, ValidationError("MessageType %s is valid only with ML-DSA keys and the ML_DSA_SHAKE_256 signing algorithm.", mt)
	default:
		if algName == algEd25519PH {
			return false, ValidationError("The %s signing algorithm requires MessageType %s.", algName, messageTypeDigest)
		}
		return false, nil
	}
}

// signatureError maps a crypto error of Sign or Verify: inputs the service
// checked beforehand cannot fail, so anything else is internal.
func signatureError(err error) error {
	if errors.Is(err, crypto.ErrSignature) {
		return ValidationError("The message cannot be signed or verified with this key and signing algorithm.")
	}
	return err
}

// Sign signs a message of 1 to 4096 bytes, or a message digest, with the
// private key of an asymmetric SIGN_VERIFY key. ECDSA signatures are DER
// (ASN.1) encoded, as AWS returns them.
func (s *Service) Sign(ctx context.Context, in *SignInput) (*SignOutput, error) {
	k, alg, err := s.signingKey(ctx, in.GrantTokens, *in.KeyId, *in.SigningAlgorithm, "Sign")
	if err != nil {
		return nil, err
	}
	isDigest, err := messageIsDigest(in.MessageType, *in.SigningAlgorithm, alg, in.Message)
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	m, err := s.currentMaterial(k)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	sig, err := crypto.Sign(s.cfg.Rand, m, alg, in.Message, isDigest)
	if err != nil {
		return nil, signatureError(err)
	}
	return &SignOutput{KeyId: k.ARN, Signature: sig, SigningAlgorithm: *in.SigningAlgorithm}, nil
}

// Verify checks a signature made by Sign (or outside kmsd with the public
// key). As in AWS KMS, a signature that does not verify is
// KMSInvalidSignatureException, never SignatureValid false.
func (s *Service) Verify(ctx context.Context, in *VerifyInput) (*VerifyOutput, error) {
	k, alg, err := s.signingKey(ctx, in.GrantTokens, *in.KeyId, *in.SigningAlgorithm, "Verify")
	if err != nil {
		return nil, err
	}
	isDigest, err := messageIsDigest(in.MessageType, *in.SigningAlgorithm, alg, in.Message)
	if err != nil {
		return nil, err
	}
	m, err := s.currentMaterial(k)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	valid, err := crypto.Verify(m, alg, in.Message, isDigest, in.Signature)
	if err != nil {
		return nil, signatureError(err)
	}
	if !valid {
		return nil, newError(ErrInvalidSignature, invalidSigMsg)
	}
	// Like VerifyMac, a dry run reports an invalid signature as the real
	// call would.
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	return &VerifyOutput{KeyId: k.ARN, SignatureValid: true, SigningAlgorithm: *in.SigningAlgorithm}, nil
}

// GetPublicKey returns the public key of an asymmetric key as DER
// SubjectPublicKeyInfo, with what the key may be used for.
func (s *Service) GetPublicKey(ctx context.Context, in *GetPublicKeyInput) (*GetPublicKeyOutput, error) {
	k, err := s.resolveKey(*in.KeyId, anyKeyRef)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(ctx, authzRequest{action: "GetPublicKey", key: k, ref: *in.KeyId, tokens: in.GrantTokens}); err != nil {
		return nil, err
	}
	if err := checkUsable(k); err != nil {
		return nil, err
	}
	a, ok := asymmetricSpecs[k.KeySpec]
	if !ok {
		return nil, newError(ErrUnsupportedOp, "%s key spec is %s: GetPublicKey is valid only for asymmetric KMS keys.", k.ARN, k.KeySpec)
	}
	m, err := s.currentMaterial(k)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	pub, err := crypto.PublicKeyDER(m)
	if err != nil {
		return nil, err
	}
	enc, sig := a.algorithms(k.KeyUsage)
	return &GetPublicKeyOutput{
		KeyId:                 k.ARN,
		PublicKey:             pub,
		CustomerMasterKeySpec: customerMasterKeySpec(k.KeySpec),
		KeySpec:               k.KeySpec,
		KeyUsage:              k.KeyUsage,
		EncryptionAlgorithms:  enc,
		SigningAlgorithms:     sig,
	}, nil
}

// --- RSA Encrypt, Decrypt, ReEncrypt ----------------------------------------

// rsaEncryptionKey checks an asymmetric key and algorithm for RSA encryption
// or decryption: usable, ENCRYPT_DECRYPT, an algorithm the spec supports
// (EncryptionAlgorithm defaults to SYMMETRIC_DEFAULT, which no asymmetric
// key supports), and no encryption context, which RSAES-OAEP cannot bind.
func rsaEncryptionKey(k *fsm.Key, a asymmetricSpec, algName *string, ectx map[string]string, op string) (crypto.EncryptionAlgorithm, string, error) {
	if err := checkUsable(k); err != nil {
		return 0, "", err
	}
	if k.KeyUsage != usageEncryptDecrypt {
		return 0, "", newError(ErrInvalidKeyUsage, "%s key usage is %s which is not valid for %s.", k.ARN, k.KeyUsage, op)
	}
	name := specSymmetricDefault
	if algName != nil {
		name = *algName
	}
	alg, ok := encryptionAlgorithms[name]
	if !ok || !slices.Contains(a.encryption, name) {
		return 0, "", newError(ErrInvalidKeyUsage, "Algorithm %s is incompatible with key spec %s.", name, k.KeySpec)
	}
	if len(ectx) > 0 {
		return 0, "", ValidationError("EncryptionContext is not supported with asymmetric KMS keys: it is valid only for symmetric encryption KMS keys.")
	}
	return alg, name, nil
}

// rsaEncryptCheck applies rsaEncryptionKey and the plaintext limit of
// RSAES-OAEP under the key's spec.
func rsaEncryptCheck(k *fsm.Key, a asymmetricSpec, algName *string, ectx map[string]string, plaintextLen int, op string) (crypto.EncryptionAlgorithm, string, error) {
	alg, name, err := rsaEncryptionKey(k, a, algName, ectx, op)
	if err != nil {
		return 0, "", err
	}
	if limit := crypto.MaxOAEPPlaintext(a.pair, alg); plaintextLen > limit {
		return 0, "", ValidationError("Algorithm %s and key spec %s cannot encrypt data larger than %d bytes.", name, k.KeySpec, limit)
	}
	return alg, name, nil
}

// rsaEncrypt encrypts plaintext under a checked asymmetric key's public key
// with RSAES-OAEP.
func (s *Service) rsaEncrypt(k *fsm.Key, alg crypto.EncryptionAlgorithm, plaintext []byte) ([]byte, error) {
	m, err := s.currentMaterial(k)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	return crypto.EncryptOAEP(s.cfg.Rand, m, alg, plaintext)
}

// rsaDecrypt checks and decrypts a raw RSAES-OAEP ciphertext with an
// asymmetric key's private key.
func (s *Service) rsaDecrypt(k *fsm.Key, a asymmetricSpec, algName *string, ectx map[string]string, ciphertext []byte, op string) ([]byte, string, error) {
	alg, name, err := rsaEncryptionKey(k, a, algName, ectx, op)
	if err != nil {
		return nil, "", err
	}
	m, err := s.currentMaterial(k)
	if err != nil {
		return nil, "", err
	}
	defer m.Zero()
	pt, err := crypto.DecryptOAEP(m, alg, ciphertext)
	if err != nil {
		if errors.Is(err, crypto.ErrInvalidCiphertext) {
			return nil, "", newError(ErrInvalidCiphertext, invalidCtMsg)
		}
		return nil, "", err
	}
	return pt, name, nil
}

// encryptAsymmetric serves Encrypt when KeyId names an asymmetric key
// (handled true); otherwise the symmetric path answers.
func (s *Service) encryptAsymmetric(ctx context.Context, in *EncryptInput) (out *EncryptOutput, handled bool, err error) {
	k, a, ok := s.asymmetricKey(*in.KeyId)
	if !ok {
		return nil, false, nil
	}
	if err := s.authorize(ctx, authzRequest{action: "Encrypt", key: k, ref: *in.KeyId, ec: in.EncryptionContext, hasEC: true, tokens: in.GrantTokens}); err != nil {
		return nil, true, err
	}
	// Checks first, so that a dry run reports what the real call would.
	alg, name, err := rsaEncryptCheck(k, a, in.EncryptionAlgorithm, in.EncryptionContext, len(in.Plaintext), "Encrypt")
	if err != nil {
		return nil, true, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, true, err
	}
	ct, err := s.rsaEncrypt(k, alg, in.Plaintext)
	if err != nil {
		return nil, true, err
	}
	return &EncryptOutput{CiphertextBlob: ct, KeyId: k.ARN, EncryptionAlgorithm: name}, true, nil
}

// decryptAsymmetric serves Decrypt when KeyId names an asymmetric key
// (handled true): the ciphertext is then a raw RSA ciphertext, which names
// no key, so KeyId and EncryptionAlgorithm are required for it.
func (s *Service) decryptAsymmetric(ctx context.Context, in *DecryptInput) (out *DecryptOutput, handled bool, err error) {
	if in.KeyId == nil {
		return nil, false, nil
	}
	k, a, ok := s.asymmetricKey(*in.KeyId)
	if !ok {
		return nil, false, nil
	}
	if err := s.authorize(ctx, authzRequest{action: "Decrypt", key: k, ref: *in.KeyId, ec: in.EncryptionContext, hasEC: true, tokens: in.GrantTokens}); err != nil {
		return nil, true, err
	}
	pt, name, err := s.rsaDecrypt(k, a, in.EncryptionAlgorithm, in.EncryptionContext, in.CiphertextBlob, "Decrypt")
	if err != nil {
		return nil, true, err
	}
	if err := dryRun(in.DryRun); err != nil {
		clear(pt)
		return nil, true, err
	}
	return &DecryptOutput{KeyId: k.ARN, Plaintext: pt, EncryptionAlgorithm: name}, true, nil
}

// reEncryptAsymmetric serves ReEncrypt when the source (named by
// SourceKeyId) or the destination is an asymmetric key (handled true).
func (s *Service) reEncryptAsymmetric(ctx context.Context, in *ReEncryptInput) (out *ReEncryptOutput, handled bool, err error) {
	var srcKey *fsm.Key
	var srcSpec asymmetricSpec
	srcAsym := false
	if in.SourceKeyId != nil {
		srcKey, srcSpec, srcAsym = s.asymmetricKey(*in.SourceKeyId)
	}
	dstKey, dstSpec, dstAsym := s.asymmetricKey(*in.DestinationKeyId)
	if !srcAsym && !dstAsym {
		return nil, false, nil
	}
	out = &ReEncryptOutput{}
	var pt []byte
	if srcAsym {
		if err := s.authorize(ctx, authzRequest{action: "ReEncryptFrom", key: srcKey, ref: *in.SourceKeyId, ec: in.SourceEncryptionContext, hasEC: true, tokens: in.GrantTokens}); err != nil {
			return nil, true, err
		}
		pt, out.SourceEncryptionAlgorithm, err = s.rsaDecrypt(srcKey, srcSpec, in.SourceEncryptionAlgorithm, in.SourceEncryptionContext, in.CiphertextBlob, "ReEncryptFrom")
		if err != nil {
			return nil, true, err
		}
		out.SourceKeyId = srcKey.ARN
	} else {
		var src *fsm.Key
		var sv fsm.KeyVersion
		pt, src, sv, err = s.open(ctx, "ReEncryptFrom", in.GrantTokens, in.CiphertextBlob, in.SourceKeyId, in.SourceEncryptionAlgorithm, in.SourceEncryptionContext)
		if err != nil {
			return nil, true, err
		}
		out.SourceKeyId, out.SourceEncryptionAlgorithm, out.SourceKeyMaterialId = src.ARN, specSymmetricDefault, keyMaterialID(sv)
	}
	defer clear(pt)
	if dstAsym {
		if err := s.authorize(ctx, authzRequest{action: "ReEncryptTo", key: dstKey, ref: *in.DestinationKeyId, ec: in.DestinationEncryptionContext, hasEC: true, tokens: in.GrantTokens}); err != nil {
			return nil, true, err
		}
		alg, name, err := rsaEncryptCheck(dstKey, dstSpec, in.DestinationEncryptionAlgorithm, in.DestinationEncryptionContext, len(pt), "ReEncryptTo")
		if err != nil {
			return nil, true, err
		}
		if err := dryRun(in.DryRun); err != nil {
			return nil, true, err
		}
		out.CiphertextBlob, err = s.rsaEncrypt(dstKey, alg, pt)
		if err != nil {
			return nil, true, err
		}
		out.DestinationEncryptionAlgorithm = name
		out.KeyId = dstKey.ARN
		return out, true, nil
	}
	dst, err := s.encryptionKey(ctx, *in.DestinationKeyId, in.DestinationEncryptionAlgorithm, "ReEncryptTo", in.DestinationEncryptionContext, in.GrantTokens)
	if err != nil {
		return nil, true, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, true, err
	}
	blob, dv, err := s.seal(dst, in.DestinationEncryptionContext, pt)
	if err != nil {
		return nil, true, err
	}
	out.CiphertextBlob, out.KeyId, out.DestinationEncryptionAlgorithm, out.DestinationKeyMaterialId = blob, dst.ARN, specSymmetricDefault, keyMaterialID(dv)
	return out, true, nil
}

// --- GenerateDataKeyPair ----------------------------------------------------

func (s *Service) generateDataKeyPair(ctx context.Context, tokens []string, keyRef, spec string, ectx map[string]string, dry *bool, withPlaintext bool) (*GenerateDataKeyPairOutput, error) {
	action := "GenerateDataKeyPairWithoutPlaintext"
	if withPlaintext {
		action = "GenerateDataKeyPair"
	}
	k, err := s.encryptionKey(ctx, keyRef, nil, action, ectx, tokens)
	if err != nil {
		return nil, err
	}
	a, ok := asymmetricSpecs[spec]
	if !ok {
		return nil, newError(ErrUnsupportedOp, "KeyPairSpec %s is not supported by this kmsd version.", spec)
	}
	if err := dryRun(dry); err != nil {
		return nil, err
	}
	priv, pub, err := crypto.GenerateKeyPair(s.cfg.Rand, a.pair)
	if err != nil {
		return nil, err
	}
	defer priv.Zero()
	blob, v, err := s.seal(k, ectx, priv.Bytes())
	if err != nil {
		return nil, err
	}
	out := &GenerateDataKeyPairOutput{
		PrivateKeyCiphertextBlob: blob,
		PublicKey:                pub,
		KeyId:                    k.ARN,
		KeyPairSpec:              spec,
		KeyMaterialId:            s.materialIDs.get(v),
	}
	if withPlaintext {
		out.PrivateKeyPlaintext = bytes.Clone(priv.Bytes())
	}
	return out, nil
}

// GenerateDataKeyPair returns a fresh key pair for use outside kmsd: the
// private key as PKCS#8 in plaintext and encrypted under a symmetric
// encryption key (exactly as Encrypt would, so Decrypt returns it), and the
// public key as SubjectPublicKeyInfo.
func (s *Service) GenerateDataKeyPair(ctx context.Context, in *GenerateDataKeyPairInput) (*GenerateDataKeyPairOutput, error) {
	if r := bytes.TrimSpace(in.Recipient); len(r) > 0 && !bytes.Equal(r, []byte("null")) {
		return nil, newError(ErrUnsupportedOp, "Recipient (attested Nitro Enclaves) is not supported by this kmsd version.")
	}
	return s.generateDataKeyPair(ctx, in.GrantTokens, *in.KeyId, *in.KeyPairSpec, in.EncryptionContext, in.DryRun, true)
}

// GenerateDataKeyPairWithoutPlaintext is GenerateDataKeyPair without the
// plaintext private key.
func (s *Service) GenerateDataKeyPairWithoutPlaintext(ctx context.Context, in *GenerateDataKeyPairWithoutPlaintextInput) (*GenerateDataKeyPairOutput, error) {
	return s.generateDataKeyPair(ctx, in.GrantTokens, *in.KeyId, *in.KeyPairSpec, in.EncryptionContext, in.DryRun, false)
}
