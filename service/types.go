package service

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
)

// The structs below are the AWS KMS operation shapes (field names as in the AWS
// service model). They double as the wire types: the api package decodes JSON
// straight into them and checks the `kms` tags before calling the service, so
// the shape constraints live next to the fields they constrain.
//
// Tag grammar (comma separated): required; min=N and max=N (string length in
// characters, blob length in bytes, list length, or integer value); enum=A|B;
// pattern=NAME (a named pattern in the api package); sensitive (the value is
// never echoed in a validation message).

// Timestamp is an instant encoded as epoch seconds (a JSON number with
// millisecond precision), as the AWS JSON 1.1 protocol does.
type Timestamp struct{ time.Time }

// NewTimestamp returns a pointer suitable for optional timestamp fields.
func NewTimestamp(t time.Time) *Timestamp { return &Timestamp{t} }

// MarshalJSON encodes the instant as fractional epoch seconds.
func (t Timestamp) MarshalJSON() ([]byte, error) {
	ms := t.UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

// UnmarshalJSON accepts epoch seconds as a JSON number.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("timestamp must be epoch seconds: %w", err)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1e11 {
		return fmt.Errorf("timestamp out of range")
	}
	sec, frac := math.Modf(f)
	t.Time = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}

// Tag is a key tag.
type Tag struct {
	TagKey   *string `json:"TagKey" kms:"required,min=1,max=128"`
	TagValue *string `json:"TagValue" kms:"required,min=0,max=256"`
}

// KeyMetadata describes a KMS key.
type KeyMetadata struct {
	AWSAccountId                string     `json:"AWSAccountId"`
	KeyId                       string     `json:"KeyId"`
	Arn                         string     `json:"Arn"`
	CreationDate                *Timestamp `json:"CreationDate,omitempty"`
	Enabled                     bool       `json:"Enabled"`
	Description                 string     `json:"Description"`
	KeyUsage                    string     `json:"KeyUsage,omitempty"`
	KeyState                    string     `json:"KeyState,omitempty"`
	DeletionDate                *Timestamp `json:"DeletionDate,omitempty"`
	ValidTo                     *Timestamp `json:"ValidTo,omitempty"`
	Origin                      string     `json:"Origin,omitempty"`
	ExpirationModel             string     `json:"ExpirationModel,omitempty"`
	KeyManager                  string     `json:"KeyManager,omitempty"`
	CustomerMasterKeySpec       string     `json:"CustomerMasterKeySpec,omitempty"`
	KeySpec                     string     `json:"KeySpec,omitempty"`
	EncryptionAlgorithms        []string   `json:"EncryptionAlgorithms,omitempty"`
	SigningAlgorithms           []string   `json:"SigningAlgorithms,omitempty"`
	MacAlgorithms               []string   `json:"MacAlgorithms,omitempty"`
	MultiRegion                 bool       `json:"MultiRegion"`
	PendingDeletionWindowInDays *int32     `json:"PendingDeletionWindowInDays,omitempty"`
	CurrentKeyMaterialId        string     `json:"CurrentKeyMaterialId,omitempty"`
}

// KeyListEntry is one entry of ListKeys.
type KeyListEntry struct {
	KeyId  string `json:"KeyId"`
	KeyArn string `json:"KeyArn"`
}

// AliasListEntry is one entry of ListAliases.
type AliasListEntry struct {
	AliasName       string     `json:"AliasName"`
	AliasArn        string     `json:"AliasArn"`
	TargetKeyId     string     `json:"TargetKeyId,omitempty"`
	CreationDate    *Timestamp `json:"CreationDate,omitempty"`
	LastUpdatedDate *Timestamp `json:"LastUpdatedDate,omitempty"`
}

// Empty is the output of operations that return no fields ({}).
type Empty struct{}

// CreateKeyInput is CreateKeyRequest.
type CreateKeyInput struct {
	Policy                         *string `json:"Policy" kms:"min=1,max=131072"`
	Description                    *string `json:"Description" kms:"min=0,max=8192"`
	KeyUsage                       *string `json:"KeyUsage" kms:"enum=SIGN_VERIFY|ENCRYPT_DECRYPT|GENERATE_VERIFY_MAC|KEY_AGREEMENT"`
	CustomerMasterKeySpec          *string `json:"CustomerMasterKeySpec" kms:"enum=RSA_2048|RSA_3072|RSA_4096|ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521|ECC_SECG_P256K1|SYMMETRIC_DEFAULT|HMAC_224|HMAC_256|HMAC_384|HMAC_512|SM2"`
	KeySpec                        *string `json:"KeySpec" kms:"enum=RSA_2048|RSA_3072|RSA_4096|ECC_NIST_P256|ECC_NIST_P384|ECC_NIST_P521|ECC_SECG_P256K1|SYMMETRIC_DEFAULT|HMAC_224|HMAC_256|HMAC_384|HMAC_512|SM2|ML_DSA_44|ML_DSA_65|ML_DSA_87|ECC_NIST_EDWARDS25519"`
	Origin                         *string `json:"Origin" kms:"enum=AWS_KMS|EXTERNAL|AWS_CLOUDHSM|EXTERNAL_KEY_STORE"`
	CustomKeyStoreId               *string `json:"CustomKeyStoreId" kms:"min=1,max=64"`
	BypassPolicyLockoutSafetyCheck *bool   `json:"BypassPolicyLockoutSafetyCheck"`
	Tags                           []Tag   `json:"Tags"`
	MultiRegion                    *bool   `json:"MultiRegion"`
	XksKeyId                       *string `json:"XksKeyId" kms:"min=1,max=128"`
}

// CreateKeyOutput is CreateKeyResponse.
type CreateKeyOutput struct {
	KeyMetadata *KeyMetadata `json:"KeyMetadata"`
}

// KeyIDInput is the input of operations that take only a KeyId:
// EnableKey, DisableKey, CancelKeyDeletion.
type KeyIDInput struct {
	KeyId *string `json:"KeyId" kms:"required,min=1,max=2048"`
}

// DescribeKeyInput is DescribeKeyRequest.
type DescribeKeyInput struct {
	KeyId       *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	GrantTokens []string `json:"GrantTokens" kms:"min=0,max=10"`
}

// DescribeKeyOutput is DescribeKeyResponse.
type DescribeKeyOutput struct {
	KeyMetadata *KeyMetadata `json:"KeyMetadata"`
}

// ListKeysInput is ListKeysRequest.
type ListKeysInput struct {
	Limit  *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker *string `json:"Marker" kms:"min=1,max=1024"`
}

// ListKeysOutput is ListKeysResponse.
type ListKeysOutput struct {
	Keys       []KeyListEntry `json:"Keys"`
	NextMarker *string        `json:"NextMarker,omitempty"`
	Truncated  bool           `json:"Truncated"`
}

// UpdateKeyDescriptionInput is UpdateKeyDescriptionRequest.
type UpdateKeyDescriptionInput struct {
	KeyId       *string `json:"KeyId" kms:"required,min=1,max=2048"`
	Description *string `json:"Description" kms:"required,min=0,max=8192"`
}

// ScheduleKeyDeletionInput is ScheduleKeyDeletionRequest.
type ScheduleKeyDeletionInput struct {
	KeyId               *string `json:"KeyId" kms:"required,min=1,max=2048"`
	PendingWindowInDays *int32  `json:"PendingWindowInDays" kms:"min=1,max=365"`
}

// ScheduleKeyDeletionOutput is ScheduleKeyDeletionResponse.
type ScheduleKeyDeletionOutput struct {
	KeyId               string     `json:"KeyId"`
	DeletionDate        *Timestamp `json:"DeletionDate,omitempty"`
	KeyState            string     `json:"KeyState"`
	PendingWindowInDays int32      `json:"PendingWindowInDays"`
}

// CancelKeyDeletionOutput is CancelKeyDeletionResponse.
type CancelKeyDeletionOutput struct {
	KeyId string `json:"KeyId"`
}

// EncryptInput is EncryptRequest.
type EncryptInput struct {
	KeyId               *string           `json:"KeyId" kms:"required,min=1,max=2048"`
	Plaintext           []byte            `json:"Plaintext" kms:"required,min=1,max=4096,sensitive"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens" kms:"min=0,max=10"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm" kms:"enum=SYMMETRIC_DEFAULT|RSAES_OAEP_SHA_1|RSAES_OAEP_SHA_256|SM2PKE"`
	DryRun              *bool             `json:"DryRun"`
}

// EncryptOutput is EncryptResponse.
type EncryptOutput struct {
	CiphertextBlob      []byte `json:"CiphertextBlob"`
	KeyId               string `json:"KeyId"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
}

// DecryptInput is DecryptRequest.
type DecryptInput struct {
	CiphertextBlob      []byte            `json:"CiphertextBlob" kms:"required,min=1,max=6144"`
	EncryptionContext   map[string]string `json:"EncryptionContext"`
	GrantTokens         []string          `json:"GrantTokens" kms:"min=0,max=10"`
	KeyId               *string           `json:"KeyId" kms:"min=1,max=2048"`
	EncryptionAlgorithm *string           `json:"EncryptionAlgorithm" kms:"enum=SYMMETRIC_DEFAULT|RSAES_OAEP_SHA_1|RSAES_OAEP_SHA_256|SM2PKE"`
	DryRun              *bool             `json:"DryRun"`
}

// DecryptOutput is DecryptResponse.
type DecryptOutput struct {
	KeyId               string `json:"KeyId"`
	Plaintext           []byte `json:"Plaintext"`
	EncryptionAlgorithm string `json:"EncryptionAlgorithm"`
	KeyMaterialId       string `json:"KeyMaterialId,omitempty"`
}

// ReEncryptInput is ReEncryptRequest.
type ReEncryptInput struct {
	CiphertextBlob                 []byte            `json:"CiphertextBlob" kms:"required,min=1,max=6144"`
	SourceEncryptionContext        map[string]string `json:"SourceEncryptionContext"`
	SourceKeyId                    *string           `json:"SourceKeyId" kms:"min=1,max=2048"`
	DestinationKeyId               *string           `json:"DestinationKeyId" kms:"required,min=1,max=2048"`
	DestinationEncryptionContext   map[string]string `json:"DestinationEncryptionContext"`
	SourceEncryptionAlgorithm      *string           `json:"SourceEncryptionAlgorithm" kms:"enum=SYMMETRIC_DEFAULT|RSAES_OAEP_SHA_1|RSAES_OAEP_SHA_256|SM2PKE"`
	DestinationEncryptionAlgorithm *string           `json:"DestinationEncryptionAlgorithm" kms:"enum=SYMMETRIC_DEFAULT|RSAES_OAEP_SHA_1|RSAES_OAEP_SHA_256|SM2PKE"`
	GrantTokens                    []string          `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun                         *bool             `json:"DryRun"`
}

// ReEncryptOutput is ReEncryptResponse.
type ReEncryptOutput struct {
	CiphertextBlob                 []byte `json:"CiphertextBlob"`
	SourceKeyId                    string `json:"SourceKeyId"`
	KeyId                          string `json:"KeyId"`
	SourceEncryptionAlgorithm      string `json:"SourceEncryptionAlgorithm"`
	DestinationEncryptionAlgorithm string `json:"DestinationEncryptionAlgorithm"`
	SourceKeyMaterialId            string `json:"SourceKeyMaterialId,omitempty"`
	DestinationKeyMaterialId       string `json:"DestinationKeyMaterialId,omitempty"`
}

// GenerateDataKeyInput is GenerateDataKeyRequest and
// GenerateDataKeyWithoutPlaintextRequest.
type GenerateDataKeyInput struct {
	KeyId             *string           `json:"KeyId" kms:"required,min=1,max=2048"`
	EncryptionContext map[string]string `json:"EncryptionContext"`
	NumberOfBytes     *int32            `json:"NumberOfBytes" kms:"min=1,max=1024"`
	KeySpec           *string           `json:"KeySpec" kms:"enum=AES_256|AES_128"`
	GrantTokens       []string          `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun            *bool             `json:"DryRun"`
}

// GenerateDataKeyOutput is GenerateDataKeyResponse; Plaintext is omitted by
// GenerateDataKeyWithoutPlaintext.
type GenerateDataKeyOutput struct {
	CiphertextBlob []byte `json:"CiphertextBlob"`
	Plaintext      []byte `json:"Plaintext,omitempty"`
	KeyId          string `json:"KeyId"`
	KeyMaterialId  string `json:"KeyMaterialId,omitempty"`
}

// GenerateRandomInput is GenerateRandomRequest.
type GenerateRandomInput struct {
	NumberOfBytes    *int32  `json:"NumberOfBytes" kms:"min=1,max=1024"`
	CustomKeyStoreId *string `json:"CustomKeyStoreId" kms:"min=1,max=64"`
}

// GenerateRandomOutput is GenerateRandomResponse.
type GenerateRandomOutput struct {
	Plaintext []byte `json:"Plaintext"`
}

// AliasInput is CreateAliasRequest and UpdateAliasRequest.
type AliasInput struct {
	AliasName   *string `json:"AliasName" kms:"required,min=1,max=256,pattern=aliasName"`
	TargetKeyId *string `json:"TargetKeyId" kms:"required,min=1,max=2048"`
}

// DeleteAliasInput is DeleteAliasRequest.
type DeleteAliasInput struct {
	AliasName *string `json:"AliasName" kms:"required,min=1,max=256,pattern=aliasName"`
}

// ListAliasesInput is ListAliasesRequest.
type ListAliasesInput struct {
	KeyId  *string `json:"KeyId" kms:"min=1,max=2048"`
	Limit  *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker *string `json:"Marker" kms:"min=1,max=1024"`
}

// ListAliasesOutput is ListAliasesResponse.
type ListAliasesOutput struct {
	Aliases    []AliasListEntry `json:"Aliases"`
	NextMarker *string          `json:"NextMarker,omitempty"`
	Truncated  bool             `json:"Truncated"`
}

// TagResourceInput is TagResourceRequest.
type TagResourceInput struct {
	KeyId *string `json:"KeyId" kms:"required,min=1,max=2048"`
	Tags  []Tag   `json:"Tags" kms:"required"`
}

// UntagResourceInput is UntagResourceRequest.
type UntagResourceInput struct {
	KeyId   *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	TagKeys []string `json:"TagKeys" kms:"required"`
}

// ListResourceTagsInput is ListResourceTagsRequest.
type ListResourceTagsInput struct {
	KeyId  *string `json:"KeyId" kms:"required,min=1,max=2048"`
	Limit  *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker *string `json:"Marker" kms:"min=1,max=1024"`
}

// ListResourceTagsOutput is ListResourceTagsResponse.
type ListResourceTagsOutput struct {
	Tags       []Tag   `json:"Tags"`
	NextMarker *string `json:"NextMarker,omitempty"`
	Truncated  bool    `json:"Truncated"`
}

// EnableKeyRotationInput is EnableKeyRotationRequest.
type EnableKeyRotationInput struct {
	KeyId                *string `json:"KeyId" kms:"required,min=1,max=2048"`
	RotationPeriodInDays *int32  `json:"RotationPeriodInDays" kms:"min=90,max=2560"`
}

// GetKeyRotationStatusOutput is GetKeyRotationStatusResponse.
type GetKeyRotationStatusOutput struct {
	KeyRotationEnabled        bool       `json:"KeyRotationEnabled"`
	KeyId                     string     `json:"KeyId"`
	RotationPeriodInDays      *int32     `json:"RotationPeriodInDays,omitempty"`
	NextRotationDate          *Timestamp `json:"NextRotationDate,omitempty"`
	OnDemandRotationStartDate *Timestamp `json:"OnDemandRotationStartDate,omitempty"`
}

// RotateKeyOnDemandOutput is RotateKeyOnDemandResponse.
type RotateKeyOnDemandOutput struct {
	KeyId string `json:"KeyId"`
}

// ListKeyRotationsInput is ListKeyRotationsRequest.
type ListKeyRotationsInput struct {
	KeyId              *string `json:"KeyId" kms:"required,min=1,max=2048"`
	IncludeKeyMaterial *string `json:"IncludeKeyMaterial" kms:"enum=ALL_KEY_MATERIAL|ROTATIONS_ONLY"`
	Limit              *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker             *string `json:"Marker" kms:"min=1,max=1024"`
}

// RotationsListEntry is one entry of ListKeyRotations. The import-related
// members (ImportState, ExpirationModel, ValidTo, KeyMaterialDescription)
// apply only to keys with imported material, which kmsd does not have.
type RotationsListEntry struct {
	KeyId            string     `json:"KeyId"`
	KeyMaterialId    string     `json:"KeyMaterialId,omitempty"`
	KeyMaterialState string     `json:"KeyMaterialState,omitempty"`
	RotationDate     *Timestamp `json:"RotationDate,omitempty"`
	RotationType     string     `json:"RotationType,omitempty"`
}

// ListKeyRotationsOutput is ListKeyRotationsResponse.
type ListKeyRotationsOutput struct {
	Rotations  []RotationsListEntry `json:"Rotations"`
	NextMarker *string              `json:"NextMarker,omitempty"`
	Truncated  bool                 `json:"Truncated"`
}

// GenerateMacInput is GenerateMacRequest.
type GenerateMacInput struct {
	Message      []byte   `json:"Message" kms:"required,min=1,max=4096,sensitive"`
	KeyId        *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	MacAlgorithm *string  `json:"MacAlgorithm" kms:"required,enum=HMAC_SHA_224|HMAC_SHA_256|HMAC_SHA_384|HMAC_SHA_512"`
	GrantTokens  []string `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun       *bool    `json:"DryRun"`
}

// GenerateMacOutput is GenerateMacResponse.
type GenerateMacOutput struct {
	Mac          []byte `json:"Mac"`
	MacAlgorithm string `json:"MacAlgorithm"`
	KeyId        string `json:"KeyId"`
}

// VerifyMacInput is VerifyMacRequest.
type VerifyMacInput struct {
	Message      []byte   `json:"Message" kms:"required,min=1,max=4096,sensitive"`
	KeyId        *string  `json:"KeyId" kms:"required,min=1,max=2048"`
	MacAlgorithm *string  `json:"MacAlgorithm" kms:"required,enum=HMAC_SHA_224|HMAC_SHA_256|HMAC_SHA_384|HMAC_SHA_512"`
	Mac          []byte   `json:"Mac" kms:"required,min=1,max=6144"`
	GrantTokens  []string `json:"GrantTokens" kms:"min=0,max=10"`
	DryRun       *bool    `json:"DryRun"`
}

// VerifyMacOutput is VerifyMacResponse. MacValid is always true: a MAC that
// does not verify is KMSInvalidMacException.
type VerifyMacOutput struct {
	KeyId        string `json:"KeyId"`
	MacValid     bool   `json:"MacValid"`
	MacAlgorithm string `json:"MacAlgorithm"`
}
