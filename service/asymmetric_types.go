package service

import "encoding/json"

// Wire shapes of the asymmetric-key operations (see types.go for the tag
// grammar).

// SignInput is SignRequest.
type SignInput struct {
	KeyId            *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	Message          []byte   `json:"Message" kms:"required,min=1,max=4096,sensitive"`
	MessageType      *string  `json:"MessageType" kms:"enum=RAW|DIGEST|EXTERNAL_MU"`
	GrantTokens      []string `json:"GrantTokens" kms:"min=0,max=10"`
	SigningAlgorithm *string  `json:"SigningAlgorithm" kms:"required,enum=RSASSA_PSS_SHA_256|RSASSA_PSS_SHA_384|RSASSA_PSS_SHA_512|RSASSA_PKCS1_V1_5_SHA_256|RSASSA_PKCS1_V1_5_SHA_384|RSASSA_PKCS1_V1_5_SHA_512|ECDSA_SHA_256|ECDSA_SHA_384|ECDSA_SHA_512|SM2DSA|ML_DSA_SHAKE_256|ED25519_SHA_512|ED25519_PH_SHA_512"`
	DryRun           *bool    `json:"DryRun"`
}

// SignOutput is SignResponse.
type SignOutput struct {
	KeyId            string `json:"KeyId"`
	Signature        []byte `json:"Signature"`
	SigningAlgorithm string `json:"SigningAlgorithm"`
}

// VerifyInput is VerifyRequest.
type VerifyInput struct {
	KeyId            *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	Message          []byte   `json:"Message" kms:"required,min=1,max=4096,sensitive"`
	MessageType      *string  `json:"MessageType" kms:"enum=RAW|DIGEST|EXTERNAL_MU"`
	Signature        []byte   `json:"Signature" kms:"required,min=1,max=6144"`
	SigningAlgorithm *string  `json:"SigningAlgorithm" kms:"required,enum=RSASSA_PSS_SHA_256|RSASSA_PSS_SHA_384|RSASSA_PSS_SHA_512|RSASSA_PKCS1_V1_5_SHA_256|RSASSA_PKCS1_V1_5_SHA_384|RSASSA_PKCS1_V1_5_SHA_512|ECDSA_SHA_256|ECDSA_SHA_384|ECDSA_SHA_512|SM2DSA|ML_DSA_SHAKE_256|ED25519_SHA_512|ED25519_PH_SHA_512"`
	GrantTokens      []string `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun           *bool    `json:"DryRun"`
}

// VerifyOutput is VerifyResponse. SignatureValid is always true: a signature
// that does not verify is KMSInvalidSignatureException.
type VerifyOutput struct {
	KeyId            string `json:"KeyId"`
	SignatureValid   bool   `json:"SignatureValid"`
	SigningAlgorithm string `json:"SigningAlgorithm"`
}

// GetPublicKeyInput is GetPublicKeyRequest.
type GetPublicKeyInput struct {
	KeyId       *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	GrantTokens []string `json:"GrantTokens" kms:"min=0,max=10"`
}

// GetPublicKeyOutput is GetPublicKeyResponse.
type GetPublicKeyOutput struct {
	KeyId                 string   `json:"KeyId"`
	PublicKey             []byte   `json:"PublicKey"`
	CustomerMasterKeySpec string   `json:"CustomerMasterKeySpec,omitempty"`
	KeySpec               string   `json:"KeySpec"`
	KeyUsage              string   `json:"KeyUsage"`
	EncryptionAlgorithms  []string `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms     []string `json:"SigningAlgorithms,omitempty"`
}

// GenerateDataKeyPairInput is GenerateDataKeyPairRequest.
type GenerateDataKeyPairInput struct {
	EncryptionContext map[string]string `json:"EncryptionContext"`
	KeyId             *string           `json:"KeyId" kms:"required,min=1,max=2048"`
	KeyPairSpec       *string           `json:"KeyPairSpec" kms:"required,enum=RSA_2048|RSA_3072|RSA_4096|ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521|ECC_SECG_P256K1|SM2|ECC_NIST_EDWARDS25519"`
	GrantTokens       []string          `json:"GrantTokens" kms:"min=0,max=10"`
	// Recipient (a Nitro Enclaves attestation document) is not supported;
	// kept raw so that a request naming one is refused, not silently
	// answered in plaintext.
	Recipient json.RawMessage `json:"Recipient"`
	DryRun    *bool           `json:"DryRun"`
}

// GenerateDataKeyPairWithoutPlaintextInput is
// GenerateDataKeyPairWithoutPlaintextRequest.
type GenerateDataKeyPairWithoutPlaintextInput struct {
	EncryptionContext map[string]string `json:"EncryptionContext"`
	KeyId             *string           `json:"KeyId" kms:"required,min=1,max=2048"`
	KeyPairSpec       *string           `json:"KeyPairSpec" kms:"required,enum=RSA_2048|RSA_3072|RSA_4096|ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521|ECC_SECG_P256K1|SM2|ECC_NIST_EDWARDS25519"`
	GrantTokens       []string          `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun            *bool             `json:"DryRun"`
}

// GenerateDataKeyPairOutput is GenerateDataKeyPairResponse and (without
// PrivateKeyPlaintext) GenerateDataKeyPairWithoutPlaintextResponse.
type GenerateDataKeyPairOutput struct {
	PrivateKeyCiphertextBlob []byte `json:"PrivateKeyCiphertextBlob"`
	PrivateKeyPlaintext      []byte `json:"PrivateKeyPlaintext,omitempty"`
	PublicKey                []byte `json:"PublicKey"`
	KeyId                    string `json:"KeyId"`
	KeyPairSpec              string `json:"KeyPairSpec"`
	KeyMaterialId            string `json:"KeyMaterialId,omitempty"`
}
