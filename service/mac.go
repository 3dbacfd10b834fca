package service

import (
	"context"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

const usageGenerateVerifyMAC = "GENERATE_VERIFY_MAC"

// hmacSpec is what an HMAC key spec means: the one MAC algorithm its keys
// support, as AWS names it, and the algorithm crypto computes.
type hmacSpec struct {
	macAlgorithm string
	alg          crypto.MACAlgorithm
}

// hmacSpecs are AWS KMS's HMAC key specs. A key's material is as long as its
// hash's output (224, 256, 384 or 512 bits), as AWS documents.
var hmacSpecs = map[string]hmacSpec{
	"HMAC_224": {"HMAC_SHA_224", crypto.HMACSHA224},
	"HMAC_256": {"HMAC_SHA_256", crypto.HMACSHA256},
	"HMAC_384": {"HMAC_SHA_384", crypto.HMACSHA384},
	"HMAC_512": {"HMAC_SHA_512", crypto.HMACSHA512},
}

// materialSize is the size in bytes of new key material for a key spec
// CreateKey accepts.
func materialSize(spec string) int {
	if h, ok := hmacSpecs[spec]; ok {
		return h.alg.KeySize()
	}
	return crypto.KeySize
}

// macKey resolves and checks a key for GenerateMac and VerifyMac: it must be
// usable (key-states.md), an HMAC key, and the algorithm its spec supports.
func (s *Service) macKey(ctx context.Context, tokens []string, ref, macAlgorithm, op string) (*fsm.Key, hmacSpec, error) {
	k, err := s.resolveKey(ref, anyKeyRef)
	if err != nil {
		return nil, hmacSpec{}, err
	}
	if err := s.authorize(ctx, authzRequest{action: op, key: k, ref: ref, tokens: tokens}); err != nil {
		return nil, hmacSpec{}, err
	}
	if err := checkUsable(k); err != nil {
		return nil, hmacSpec{}, err
	}
	spec, ok := hmacSpecs[k.KeySpec]
	if !ok || k.KeyUsage != usageGenerateVerifyMAC {
		return nil, hmacSpec{}, newError(ErrInvalidKeyUsage, "%s key usage is %s which is not valid for %s.", k.ARN, k.KeyUsage, op)
	}
	if macAlgorithm != spec.macAlgorithm {
		return nil, hmacSpec{}, newError(ErrInvalidKeyUsage, "Algorithm %s is incompatible with key spec %s.", macAlgorithm, k.KeySpec)
	}
	return k, spec, nil
}

// computeMAC is the HMAC of msg under the key's current material.
func (s *Service) computeMAC(k *fsm.Key, spec hmacSpec, msg []byte) ([]byte, error) {
	v, ok := k.CurrentVersion()
	if !ok {
		return nil, newError(ErrInternal, "An internal error occurred.")
	}
	m, err := s.material(k, v)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	return crypto.GenerateMAC(spec.alg, m, msg)
}

// GenerateMac computes the HMAC (RFC 2104) of a message of 1 to 4096 bytes
// under an HMAC key, with the one MAC algorithm the key's spec supports.
func (s *Service) GenerateMac(ctx context.Context, in *GenerateMacInput) (*GenerateMacOutput, error) {
	k, spec, err := s.macKey(ctx, in.GrantTokens, *in.KeyId, *in.MacAlgorithm, "GenerateMac")
	if err != nil {
		return nil, err
	}
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	mac, err := s.computeMAC(k, spec, in.Message)
	if err != nil {
		return nil, err
	}
	return &GenerateMacOutput{Mac: mac, MacAlgorithm: spec.macAlgorithm, KeyId: k.ARN}, nil
}

// VerifyMac recomputes the HMAC of a message and compares it with the given
// MAC in constant time. As in AWS KMS, a MAC that does not match is
// KMSInvalidMacException, never MacValid false.
func (s *Service) VerifyMac(ctx context.Context, in *VerifyMacInput) (*VerifyMacOutput, error) {
	k, spec, err := s.macKey(ctx, in.GrantTokens, *in.KeyId, *in.MacAlgorithm, "VerifyMac")
	if err != nil {
		return nil, err
	}
	v, ok := k.CurrentVersion()
	if !ok {
		return nil, newError(ErrInternal, "An internal error occurred.")
	}
	m, err := s.material(k, v)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	valid, err := crypto.VerifyMAC(spec.alg, m, in.Message, in.Mac)
	if err != nil {
		return nil, err
	}
	if !valid {
		return nil, newError(ErrInvalidMac, "The MAC is not valid for the message, key and MAC algorithm.")
	}
	// Like Decrypt, which authenticates the ciphertext first, a dry run
	// reports an invalid MAC as the real call would.
	if err := dryRun(in.DryRun); err != nil {
		return nil, err
	}
	return &VerifyMacOutput{KeyId: k.ARN, MacValid: true, MacAlgorithm: spec.macAlgorithm}, nil
}
