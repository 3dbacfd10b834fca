package fsm

import (
	"bytes"
	"slices"
	"sort"
	"strings"
)

// Imported key material (BYOK) commands.
const (
	// CmdPutImportParams stores the wrapping key pair and token id of a
	// GetParametersForImport for a key with Origin EXTERNAL.
	CmdPutImportParams = "PutImportParams"
	// CmdImportKeyMaterial installs imported material on a key: the first
	// import, or a reimport of the same material.
	CmdImportKeyMaterial = "ImportKeyMaterial"
	// CmdDeleteImportedKeyMaterial deletes a key's imported material (the
	// caller's DeleteImportedKeyMaterial, or the leader's expiry).
	CmdDeleteImportedKeyMaterial = "DeleteImportedKeyMaterial"
)

// Origins and expiration models, as AWS names them.
const (
	OriginAWSKMS   = "AWS_KMS"
	OriginExternal = "EXTERNAL"

	ExpirationKeyMaterialExpires       = "KEY_MATERIAL_EXPIRES"
	ExpirationKeyMaterialDoesNotExpire = "KEY_MATERIAL_DOES_NOT_EXPIRE"
)

// MaxImportParamsPerKey bounds the live import parameters of one key: a new
// GetParametersForImport beyond it drops the oldest (whose token is then
// rejected as invalid).
const MaxImportParamsPerKey = 20

// ImportParams is one GetParametersForImport: the wrapping key pair's
// private half wrapped under a domain key (AAD binds the key's ARN and the
// token id), valid until ValidTo. Values reachable from the FSM are
// immutable.
type ImportParams struct {
	TokenID           string `json:"token_id"` // 32 hex digits
	KeyID             string `json:"key_id"`
	WrappingKeySpec   string `json:"wrapping_key_spec"`
	WrappingAlgorithm string `json:"wrapping_algorithm"`
	DomainKeyID       string `json:"domain_key_id"`
	WrappedPrivateKey []byte `json:"wrapped_private_key"`
	CreatedAt         int64  `json:"created_at"` // unix nanoseconds
	ValidTo           int64  `json:"valid_to"`   // unix nanoseconds, inclusive
}

// PutImportParamsCmd stores Params (drawn by the leader; CreatedAt equals
// the command's Time). Applying it also forgets every expired parameter set.
type PutImportParamsCmd struct {
	Params ImportParams `json:"params"`
}

// ImportKeyMaterialCmd installs Version, the imported material wrapped by
// the leader, on key KeyID with the token TokenID. Fingerprint identifies
// the material (a keyed digest the service computes); a key that ever had
// material accepts only material with the same fingerprint and version id.
// ValidTo (unix nanoseconds) is set only with KEY_MATERIAL_EXPIRES.
type ImportKeyMaterialCmd struct {
	KeyID           string     `json:"key_id"`
	TokenID         string     `json:"token_id"`
	Version         KeyVersion `json:"version"`
	Fingerprint     []byte     `json:"fingerprint"`
	ExpirationModel string     `json:"expiration_model"`
	ValidTo         int64      `json:"valid_to,omitempty"`
}

// DeleteImportedKeyMaterialCmd deletes a key's imported material. Expired
// marks the leader's expiry: it applies only when the material expires at
// or before the command's Time.
type DeleteImportedKeyMaterialCmd struct {
	KeyID   string `json:"key_id"`
	Expired bool   `json:"expired,omitempty"`
}

// HasMaterial reports whether the key has usable (wrapped) material: always
// for AWS_KMS keys, only between import and deletion for EXTERNAL ones.
func (k *Key) HasMaterial() bool {
	v, ok := k.CurrentVersion()
	return ok && len(v.WrappedMaterial) > 0
}

func (f *FSM) putImportParams(c *Command) *Error {
	p := c.PutImportParams.Params
	k, ok := f.st.Keys[p.KeyID]
	if !ok {
		return fail(ErrNotFound, "Key '%s' does not exist", p.KeyID)
	}
	if k.Origin != OriginExternal {
		return fail(ErrPrecondition, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
	}
	if k.State == StatePendingDeletion {
		return pendingDeletion(k)
	}
	if _, dup := f.st.ImportParams[p.TokenID]; dup {
		return fail(ErrAlreadyExists, "Import token %s already exists.", p.TokenID)
	}
	f.pruneImportParams(c.Time)
	if f.st.ImportParams == nil {
		f.st.ImportParams = map[string]*ImportParams{}
	}
	stored := p
	stored.WrappedPrivateKey = slices.Clone(p.WrappedPrivateKey)
	f.st.ImportParams[p.TokenID] = &stored
	var mine []*ImportParams
	for _, have := range f.st.ImportParams {
		if have.KeyID == p.KeyID {
			mine = append(mine, have)
		}
	}
	if over := len(mine) - MaxImportParamsPerKey; over > 0 {
		sort.Slice(mine, func(i, j int) bool {
			if mine[i].CreatedAt != mine[j].CreatedAt {
				return mine[i].CreatedAt < mine[j].CreatedAt
			}
			return mine[i].TokenID < mine[j].TokenID
		})
		for _, old := range mine[:over] {
			delete(f.st.ImportParams, old.TokenID)
		}
	}
	return nil
}

// pruneImportParams forgets parameter sets whose validity ended before now.
func (f *FSM) pruneImportParams(now int64) {
	for id, p := range f.st.ImportParams {
		if p.ValidTo < now {
			delete(f.st.ImportParams, id)
		}
	}
	if len(f.st.ImportParams) == 0 {
		f.st.ImportParams = nil
	}
}

// dropImportParamsOf forgets the parameter sets of a deleted key.
func (f *FSM) dropImportParamsOf(keyID string) {
	for id, p := range f.st.ImportParams {
		if p.KeyID == keyID {
			delete(f.st.ImportParams, id)
		}
	}
	if len(f.st.ImportParams) == 0 {
		f.st.ImportParams = nil
	}
}

func (f *FSM) importKeyMaterial(c *Command) *Error {
	ic := c.ImportKeyMaterial
	if ic.ExpirationModel != ExpirationKeyMaterialExpires && ic.ExpirationModel != ExpirationKeyMaterialDoesNotExpire {
		return fail(ErrPrecondition, "unknown expiration model %q", ic.ExpirationModel)
	}
	if (ic.ExpirationModel == ExpirationKeyMaterialExpires) != (ic.ValidTo != 0) {
		return fail(ErrPrecondition, "ValidTo must be given exactly with %s.", ExpirationKeyMaterialExpires)
	}
	if len(ic.Version.WrappedMaterial) == 0 || len(ic.Fingerprint) == 0 {
		return fail(ErrPrecondition, "imported material without wrapped material or fingerprint")
	}
	err := f.mutateKey(ic.KeyID, func(k *Key) *Error {
		if k.Origin != OriginExternal {
			return fail(ErrPrecondition, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
		}
		if k.State == StatePendingDeletion {
			return pendingDeletion(k)
		}
		p, ok := f.st.ImportParams[ic.TokenID]
		if !ok || p.KeyID != k.KeyID {
			return fail(ErrInvalidImportToken, "The import token is invalid for %s.", k.ARN)
		}
		if p.ValidTo < c.Time {
			return fail(ErrExpiredImportToken, "The import token has expired.")
		}
		v := ic.Version
		v.WrappedMaterial = slices.Clone(v.WrappedMaterial)
		if len(k.MaterialFingerprint) > 0 {
			old := k.Versions[0]
			if !bytes.Equal(k.MaterialFingerprint, ic.Fingerprint) || old.VersionID != v.VersionID {
				return fail(ErrIncorrectKeyMaterial, "The key material is not the key material previously imported into %s.", k.ARN)
			}
			v.CreatedAt = old.CreatedAt // the same material version
			k.Versions = []KeyVersion{v}
		} else {
			v.RotationType = ""
			k.Versions = []KeyVersion{v}
			k.MaterialFingerprint = slices.Clone(ic.Fingerprint)
		}
		k.ExpirationModel, k.ValidTo = ic.ExpirationModel, ic.ValidTo
		if k.State == StatePendingImport {
			k.State = StateEnabled
		}
		return nil
	})
	if err == nil {
		f.pruneImportParams(c.Time)
	}
	return err
}

func (f *FSM) deleteImportedKeyMaterial(c *Command) *Error {
	dc := c.DeleteImportedKeyMaterial
	err := f.mutateKey(dc.KeyID, func(k *Key) *Error {
		if k.Origin != OriginExternal {
			return fail(ErrPrecondition, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
		}
		if dc.Expired && (!k.HasMaterial() || k.ExpirationModel != ExpirationKeyMaterialExpires || k.ValidTo > c.Time) {
			return fail(ErrPrecondition, "%s has no key material due to expire.", k.ARN)
		}
		if !k.HasMaterial() {
			return nil // nothing to delete (PendingImport): no effect
		}
		v := k.Versions[0]
		v.WrappedMaterial, v.DomainKeyID = nil, ""
		k.Versions = []KeyVersion{v}
		k.ExpirationModel, k.ValidTo = "", 0
		if k.State != StatePendingDeletion {
			k.State = StatePendingImport
		}
		return nil
	})
	if err == nil {
		f.pruneImportParams(c.Time)
	}
	return err
}

// ImportParams returns the parameter set of an import token id.
func (f *FSM) ImportParams(tokenID string) (ImportParams, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.ImportParams[tokenID]
	if !ok {
		return ImportParams{}, false
	}
	return *p, true
}

// ImportParamsCount returns the number of stored parameter sets.
func (f *FSM) ImportParamsCount() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.ImportParams)
}

// KeysWithExpiredMaterial returns the ids of keys whose imported material
// expires (KEY_MATERIAL_EXPIRES) at or before now (unix nanoseconds), in id
// order.
func (f *FSM) KeysWithExpiredMaterial(now int64) []string {
	f.mu.RLock()
	var ids []string
	for id, k := range f.st.Keys {
		if k.Origin == OriginExternal && k.ExpirationModel == ExpirationKeyMaterialExpires && k.ValidTo <= now && k.HasMaterial() {
			ids = append(ids, id)
		}
	}
	f.mu.RUnlock()
	slices.SortFunc(ids, strings.Compare)
	return ids
}
