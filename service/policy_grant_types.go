package service

// Wire shapes of the key policy and grant operations (see types.go for the
// tag grammar).

// GetKeyPolicyInput is GetKeyPolicyRequest.
type GetKeyPolicyInput struct {
	KeyId      *string `json:"KeyId" kms:"required,min=1,max=2048"`
	PolicyName *string `json:"PolicyName" kms:"min=1,max=128"`
}

// GetKeyPolicyOutput is GetKeyPolicyResponse.
type GetKeyPolicyOutput struct {
	Policy     string `json:"Policy"`
	PolicyName string `json:"PolicyName"`
}

// PutKeyPolicyInput is PutKeyPolicyRequest.
type PutKeyPolicyInput struct {
	KeyId                          *string `json:"KeyId" kms:"required,min=1,max=2048"`
	PolicyName                     *string `json:"PolicyName" kms:"min=1,max=128"`
	Policy                         *string `json:"Policy" kms:"required,min=1,max=131072"`
	BypassPolicyLockoutSafetyCheck *bool   `json:"BypassPolicyLockoutSafetyCheck"`
}

// ListKeyPoliciesInput is ListKeyPoliciesRequest.
type ListKeyPoliciesInput struct {
	KeyId  *string `json:"KeyId" kms:"required,min=1,max=2048"`
	Limit  *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker *string `json:"Marker" kms:"min=1,max=1024"`
}

// ListKeyPoliciesOutput is ListKeyPoliciesResponse.
type ListKeyPoliciesOutput struct {
	PolicyNames []string `json:"PolicyNames"`
	NextMarker  *string  `json:"NextMarker,omitempty"`
	Truncated   bool     `json:"Truncated"`
}

// GrantConstraints is the GrantConstraints structure.
type GrantConstraints struct {
	EncryptionContextSubset map[string]string `json:"EncryptionContextSubset,omitempty"`
	EncryptionContextEquals map[string]string `json:"EncryptionContextEquals,omitempty"`
	SourceArn               *string           `json:"SourceArn,omitempty" kms:"min=20,max=512,pattern=sourceArn"`
}

// CreateGrantInput is CreateGrantRequest.
type CreateGrantInput struct {
	KeyId                    *string           `json:"KeyId" kms:"required,min=1,max=2048"`
	GranteePrincipal         *string           `json:"GranteePrincipal" kms:"min=1,max=256,pattern=principalId"`
	RetiringPrincipal        *string           `json:"RetiringPrincipal" kms:"min=1,max=256,pattern=principalId"`
	Operations               []string          `json:"Operations" kms:"required"`
	Constraints              *GrantConstraints `json:"Constraints"`
	GrantTokens              []string          `json:"GrantTokens" kms:"min=0,max=10"`
	Name                     *string           `json:"Name" kms:"min=1,max=256,pattern=grantName"`
	DryRun                   *bool             `json:"DryRun"`
	GranteeServicePrincipal  *string           `json:"GranteeServicePrincipal" kms:"min=1,max=128,pattern=servicePrincipal"`
	RetiringServicePrincipal *string           `json:"RetiringServicePrincipal" kms:"min=1,max=128,pattern=servicePrincipal"`
}

// CreateGrantOutput is CreateGrantResponse.
type CreateGrantOutput struct {
	GrantToken string `json:"GrantToken"`
	GrantId    string `json:"GrantId"`
}

// GrantListEntry is one entry of ListGrants and ListRetirableGrants.
type GrantListEntry struct {
	KeyId                    string            `json:"KeyId"`
	GrantId                  string            `json:"GrantId"`
	Name                     string            `json:"Name,omitempty"`
	CreationDate             *Timestamp        `json:"CreationDate,omitempty"`
	GranteePrincipal         string            `json:"GranteePrincipal,omitempty"`
	RetiringPrincipal        string            `json:"RetiringPrincipal,omitempty"`
	IssuingAccount           string            `json:"IssuingAccount"`
	Operations               []string          `json:"Operations"`
	Constraints              *GrantConstraints `json:"Constraints,omitempty"`
	GranteeServicePrincipal  string            `json:"GranteeServicePrincipal,omitempty"`
	RetiringServicePrincipal string            `json:"RetiringServicePrincipal,omitempty"`
}

// ListGrantsInput is ListGrantsRequest.
type ListGrantsInput struct {
	Limit                   *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker                  *string `json:"Marker" kms:"min=1,max=1024"`
	KeyId                   *string `json:"KeyId" kms:"required,min=1,max=2048"`
	GrantId                 *string `json:"GrantId" kms:"min=1,max=128"`
	GranteePrincipal        *string `json:"GranteePrincipal" kms:"min=1,max=256,pattern=principalId"`
	GranteeServicePrincipal *string `json:"GranteeServicePrincipal" kms:"min=1,max=128,pattern=servicePrincipal"`
}

// ListRetirableGrantsInput is ListRetirableGrantsRequest.
type ListRetirableGrantsInput struct {
	Limit                    *int32  `json:"Limit" kms:"min=1,max=1000"`
	Marker                   *string `json:"Marker" kms:"min=1,max=1024"`
	RetiringPrincipal        *string `json:"RetiringPrincipal" kms:"min=1,max=256,pattern=principalId"`
	RetiringServicePrincipal *string `json:"RetiringServicePrincipal" kms:"min=1,max=128,pattern=servicePrincipal"`
}

// ListGrantsOutput is ListGrantsResponse (also of ListRetirableGrants).
type ListGrantsOutput struct {
	Grants     []GrantListEntry `json:"Grants"`
	NextMarker *string          `json:"NextMarker,omitempty"`
	Truncated  bool             `json:"Truncated"`
}

// RetireGrantInput is RetireGrantRequest.
type RetireGrantInput struct {
	GrantToken *string `json:"GrantToken" kms:"min=1,max=8192"`
	KeyId      *string `json:"KeyId" kms:"min=1,max=2048"`
	GrantId    *string `json:"GrantId" kms:"min=1,max=128"`
	DryRun     *bool   `json:"DryRun"`
}

// RevokeGrantInput is RevokeGrantRequest.
type RevokeGrantInput struct {
	KeyId   *string `json:"KeyId" kms:"required,min=1,max=2048"`
	GrantId *string `json:"GrantId" kms:"required,min=1,max=128"`
	DryRun  *bool   `json:"DryRun"`
}
