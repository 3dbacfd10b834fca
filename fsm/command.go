package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
)

// commandFormat is the first byte of every encoded command; a different
// byte means a command this build cannot decode.
const commandFormat byte = 1

// Command types.
const (
	CmdCreateKey            = "CreateKey"
	CmdUpdateKeyDescription = "UpdateKeyDescription"
	CmdSetKeyEnabled        = "SetKeyEnabled"
	CmdScheduleKeyDeletion  = "ScheduleKeyDeletion"
	CmdCancelKeyDeletion    = "CancelKeyDeletion"
	CmdDeleteKey            = "DeleteKey"
	CmdCreateAlias          = "CreateAlias"
	CmdUpdateAlias          = "UpdateAlias"
	CmdDeleteAlias          = "DeleteAlias"
	CmdTagResource          = "TagResource"
	CmdUntagResource        = "UntagResource"
	CmdAddDomainKey         = "AddDomainKey"
	CmdSetKeyRotation       = "SetKeyRotation"
	CmdRotateKeyMaterial    = "RotateKeyMaterial"
)

// Command is one replicated state change. Time is the proposer's clock
// (unix nanoseconds): Apply uses it, never its own clock.
type Command struct {
	Type      string `json:"type"`
	RequestID string `json:"request_id"`
	Time      int64  `json:"time"`

	// Exactly one of the following, matching Type.
	CreateKey            *CreateKeyCmd            `json:"create_key,omitempty"`
	UpdateKeyDescription *UpdateKeyDescriptionCmd `json:"update_key_description,omitempty"`
	SetKeyEnabled        *SetKeyEnabledCmd        `json:"set_key_enabled,omitempty"`
	ScheduleKeyDeletion  *ScheduleKeyDeletionCmd  `json:"schedule_key_deletion,omitempty"`
	KeyRef               *KeyRefCmd               `json:"key_ref,omitempty"` // CancelKeyDeletion, DeleteKey
	Alias                *AliasCmd                `json:"alias,omitempty"`   // CreateAlias, UpdateAlias, DeleteAlias
	TagResource          *TagResourceCmd          `json:"tag_resource,omitempty"`
	UntagResource        *UntagResourceCmd        `json:"untag_resource,omitempty"`
	AddDomainKey         *DomainKey               `json:"add_domain_key,omitempty"`
	SetKeyRotation       *SetKeyRotationCmd       `json:"set_key_rotation,omitempty"`
	RotateKeyMaterial    *RotateKeyMaterialCmd    `json:"rotate_key_material,omitempty"`
	PutKeyPolicy         *PutKeyPolicyCmd         `json:"put_key_policy,omitempty"`
	CreateGrant          *CreateGrantCmd          `json:"create_grant,omitempty"`
	RemoveGrant          *RemoveGrantCmd          `json:"remove_grant,omitempty"` // RetireGrant, RevokeGrant
	// Imported key material (imports.go).
	PutImportParams           *PutImportParamsCmd           `json:"put_import_params,omitempty"`
	ImportKeyMaterial         *ImportKeyMaterialCmd         `json:"import_key_material,omitempty"`
	DeleteImportedKeyMaterial *DeleteImportedKeyMaterialCmd `json:"delete_imported_key_material,omitempty"`
}

// SetKeyRotationCmd enables automatic rotation with a period (or changes the
// period of a key that has it), or disables it. The first rotation date is
// the command's Time plus the period; a new period on a key that already
// rotates moves its next date by the difference.
type SetKeyRotationCmd struct {
	KeyID      string `json:"key_id"`
	Enabled    bool   `json:"enabled"`
	PeriodDays int32  `json:"period_days,omitempty"`
}

// RotateKeyMaterialCmd adds a material version drawn and wrapped by the
// leader; it becomes the current version. Version.RotationType says which
// rotation it is. An automatic rotation applies only when the key is due at
// the command's Time, and moves the next date to Time plus the period.
type RotateKeyMaterialCmd struct {
	KeyID   string     `json:"key_id"`
	Version KeyVersion `json:"version"`
}

// CreateKeyCmd creates a key with its first material version.
type CreateKeyCmd struct {
	Key Key `json:"key"`
}

// UpdateKeyDescriptionCmd sets a key's description.
type UpdateKeyDescriptionCmd struct {
	KeyID       string `json:"key_id"`
	Description string `json:"description"`
}

// SetKeyEnabledCmd enables or disables a key.
type SetKeyEnabledCmd struct {
	KeyID   string `json:"key_id"`
	Enabled bool   `json:"enabled"`
}

// ScheduleKeyDeletionCmd puts a key in PendingDeletion.
type ScheduleKeyDeletionCmd struct {
	KeyID        string `json:"key_id"`
	DeletionDate int64  `json:"deletion_date"`
	WindowDays   int32  `json:"window_days"`
}

// KeyRefCmd names a key.
type KeyRefCmd struct {
	KeyID string `json:"key_id"`
}

// AliasCmd creates, retargets or deletes an alias.
type AliasCmd struct {
	Name        string `json:"name"`
	TargetKeyID string `json:"target_key_id,omitempty"`
}

// TagResourceCmd adds or replaces tags.
type TagResourceCmd struct {
	KeyID string            `json:"key_id"`
	Tags  map[string]string `json:"tags"`
}

// UntagResourceCmd removes tags.
type UntagResourceCmd struct {
	KeyID   string   `json:"key_id"`
	TagKeys []string `json:"tag_keys"`
}

// Encode serialises a command for the Raft log.
func Encode(c *Command) ([]byte, error) {
	if err := c.checkPayload(); err != nil {
		return nil, err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("fsm: encode command: %w", err)
	}
	return append([]byte{commandFormat}, body...), nil
}

// Decode parses an encoded command.
func Decode(b []byte) (*Command, error) {
	if len(b) == 0 || b[0] != commandFormat {
		return nil, errors.New("fsm: unknown command format")
	}
	var c Command
	if err := json.Unmarshal(b[1:], &c); err != nil {
		return nil, fmt.Errorf("fsm: decode command: %w", err)
	}
	if err := c.checkPayload(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkPayload reports a command whose payload does not match its type.
func (c *Command) checkPayload() error {
	var ok bool
	switch c.Type {
	case CmdCreateKey:
		ok = c.CreateKey != nil
	case CmdUpdateKeyDescription:
		ok = c.UpdateKeyDescription != nil
	case CmdSetKeyEnabled:
		ok = c.SetKeyEnabled != nil
	case CmdScheduleKeyDeletion:
		ok = c.ScheduleKeyDeletion != nil
	case CmdCancelKeyDeletion, CmdDeleteKey:
		ok = c.KeyRef != nil
	case CmdCreateAlias, CmdUpdateAlias, CmdDeleteAlias:
		ok = c.Alias != nil
	case CmdTagResource:
		ok = c.TagResource != nil
	case CmdUntagResource:
		ok = c.UntagResource != nil
	case CmdAddDomainKey:
		ok = c.AddDomainKey != nil
	case CmdSetKeyRotation:
		ok = c.SetKeyRotation != nil
	case CmdRotateKeyMaterial:
		ok = c.RotateKeyMaterial != nil
	case CmdPutKeyPolicy:
		ok = c.PutKeyPolicy != nil
	case CmdCreateGrant:
		ok = c.CreateGrant != nil
	case CmdRemoveGrant:
		ok = c.RemoveGrant != nil
	case CmdPutImportParams:
		ok = c.PutImportParams != nil
	case CmdImportKeyMaterial:
		ok = c.ImportKeyMaterial != nil
	case CmdDeleteImportedKeyMaterial:
		ok = c.DeleteImportedKeyMaterial != nil
	default:
		return fmt.Errorf("fsm: unknown command type %q", c.Type)
	}
	if !ok {
		return fmt.Errorf("fsm: %s command without its payload", c.Type)
	}
	if c.RequestID == "" {
		return errors.New("fsm: command without request id")
	}
	return nil
}
