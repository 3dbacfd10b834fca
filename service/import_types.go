package service

// GetParametersForImportInput is GetParametersForImportRequest.
type GetParametersForImportInput struct {
	KeyId             *string `json:"KeyId" kms:"required,min=1,max=2048"`
	WrappingAlgorithm *string `json:"WrappingAlgorithm" kms:"required,enum=RSAES_PKCS1_V1_5|RSAES_OAEP_SHA_1|RSAES_OAEP_SHA_256|RSA_AES_KEY_WRAP_SHA_1|RSA_AES_KEY_WRAP_SHA_256|SM2PKE"`
	WrappingKeySpec   *string `json:"WrappingKeySpec" kms:"required,enum=RSA_2048|RSA_3072|RSA_4096|SM2"`
}

// GetParametersForImportOutput is GetParametersForImportResponse.
type GetParametersForImportOutput struct {
	KeyId             string     `json:"KeyId"`
	ImportToken       []byte     `json:"ImportToken"`
	PublicKey         []byte     `json:"PublicKey"`
	ParametersValidTo *Timestamp `json:"ParametersValidTo,omitempty"`
}

// ImportKeyMaterialInput is ImportKeyMaterialRequest.
type ImportKeyMaterialInput struct {
	KeyId                  *string    `json:"KeyId" kms:"required,min=1,max=2048"`
	ImportToken            []byte     `json:"ImportToken" kms:"required,min=1,max=6144"`
	EncryptedKeyMaterial   []byte     `json:"EncryptedKeyMaterial" kms:"required,min=1,max=6144"`
	ValidTo                *Timestamp `json:"ValidTo"`
	ExpirationModel        *string    `json:"ExpirationModel" kms:"enum=KEY_MATERIAL_EXPIRES|KEY_MATERIAL_DOES_NOT_EXPIRE"`
	ImportType             *string    `json:"ImportType" kms:"enum=NEW_KEY_MATERIAL|EXISTING_KEY_MATERIAL"`
	KeyMaterialDescription *string    `json:"KeyMaterialDescription" kms:"min=0,max=256"`
	KeyMaterialId          *string    `json:"KeyMaterialId" kms:"min=64,max=64"`
}

// ImportKeyMaterialOutput is ImportKeyMaterialResponse.
type ImportKeyMaterialOutput struct {
	KeyId         string `json:"KeyId"`
	KeyMaterialId string `json:"KeyMaterialId,omitempty"`
}

// DeleteImportedKeyMaterialInput is DeleteImportedKeyMaterialRequest.
type DeleteImportedKeyMaterialInput struct {
	KeyId         *string `json:"KeyId" kms:"required,min=1,max=2048"`
	KeyMaterialId *string `json:"KeyMaterialId" kms:"min=64,max=64"`
}

// DeleteImportedKeyMaterialOutput is DeleteImportedKeyMaterialResponse.
type DeleteImportedKeyMaterialOutput struct {
	KeyId         string `json:"KeyId"`
	KeyMaterialId string `json:"KeyMaterialId,omitempty"`
}
