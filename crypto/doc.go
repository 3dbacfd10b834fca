// Package crypto is the cryptographic core of kmsd.
//
// It owns the key hierarchy (region root key -> domain keys -> per-version
// customer key material), the wrapping formats that protect each level under
// the one above, the symmetric ciphertext blob returned to clients, the
// canonical encoding of encryption contexts, AES-256-GCM under a per-message
// derived key (SymmetricKey: a key version prepared once, with its
// derivation cipher), data key generation, and a bounded cache of unwrapped
// key material and prepared key versions.
//
// The package knows nothing about key states, authorization, Raft, or HTTP:
// callers decide whether an operation is allowed and hand in the material.
// It never logs. Secret bytes live in *Secret values, whose only raw accessor
// is Secret.Bytes, and which print as "crypto.Secret(REDACTED)".
//
// Formats (all integers big-endian):
//
//	wrapped domain key / wrapped material:
//	  wrap format version (1) | 12-byte GCM nonce | AES-256-GCM(secret) || 16-byte tag
//
//	ciphertext blob (see Header):
//	  offset  0  'K' 'D'            magic
//	  offset  2  0x01 or 0x02       format version: how the message key is derived
//	                                (1: HKDF-SHA256 of the material; 2: AES-CMAC
//	                                under a derivation key, see SymmetricKey)
//	  offset  3  flags              bit0 = multi-region key id; other bits must be 0
//	  offset  4  key id             16 raw bytes
//	  offset 20  key version id     16 raw bytes
//	  offset 36  salt               16 random bytes (salt of the per-message key)
//	  offset 52  nonce              12 random bytes (AES-GCM nonce)
//	  offset 64  ciphertext || tag  len(plaintext) + 16 bytes
//
//	encryption context:
//	  uint32 count | count x (uint32 len(key) | key | uint32 len(value) | value),
//	  pairs sorted by key, bytewise ascending, keys unique.
package crypto

import "errors"

// Sentinel errors. Functions wrap them (test with errors.Is); error messages
// never contain secret bytes, plaintext, or encryption context values.
var (
	// ErrInvalidCiphertext reports any parse or authentication failure of a
	// ciphertext blob: bad magic, version, flags or length, tampering, the
	// wrong key material, or the wrong encryption context.
	ErrInvalidCiphertext = errors.New("crypto: invalid ciphertext")
	// ErrUnwrap reports that wrapped key material or a wrapped domain key
	// failed to parse or authenticate (wrong wrapping key, wrong identifiers,
	// tampering).
	ErrUnwrap = errors.New("crypto: unwrap failed")
	// ErrInvalidKey reports a key of the wrong length or form: a root key file
	// that is not base64 of KeySize bytes, a domain key or material of the
	// wrong size, a data key size out of range.
	ErrInvalidKey = errors.New("crypto: invalid key")
)

// KeySize is the size in bytes of every root key, domain key and symmetric
// customer key material (AES-256).
const KeySize = 32

// Domain-separation labels. Each use of a key derivation or AEAD carries
// exactly one of these, so that output of one purpose can never be accepted
// by another. Changing any of them breaks every stored key and ciphertext.
const (
	// labelRootWrapKey is the HKDF info deriving, from the root key, the
	// AES-256 key that wraps domain keys. The root key itself never keys an
	// AEAD directly.
	labelRootWrapKey = "kmsd/v1/root-wrap-key"
	// labelDeriveSecret prefixes the caller's label in RootKey.DeriveSecret.
	labelDeriveSecret = "kmsd/v1/derived-secret/"
	// labelDomainKeyWrap starts the AAD of a wrapped domain key.
	labelDomainKeyWrap = "kmsd/v1/domain-key-wrap"
	// labelMaterialWrap starts the AAD of wrapped customer key material.
	labelMaterialWrap = "kmsd/v1/material-wrap"
	// labelMessageKey starts the HKDF info of a per-message key of a
	// format-1 blob.
	labelMessageKey = "kmsd/v1/message-key"
	// labelMessageDerivation starts the HKDF info of a key version's
	// format-2 derivation key (followed by the key id and version id).
	labelMessageDerivation = "kmsd/v2/message-derivation-key"
	// labelMessageKeyV2 fills the first CMAC block of a format-2 message
	// key after the counter byte: exactly 15 bytes.
	labelMessageKeyV2 = "kmsd/v2/msg-key"
	// labelImportKeyWrap starts the AAD of a wrapped import wrapping key
	// (the RSA private key of GetParametersForImport).
	labelImportKeyWrap = "kmsd/v1/import-key-wrap"
)
