package service

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

const (
	defaultRotationPeriodInDays = 365
	defaultListRotationsLimit   = 100

	includeAllKeyMaterial = "ALL_KEY_MATERIAL"
	includeRotationsOnly  = "ROTATIONS_ONLY"

	materialCurrent    = "CURRENT"
	materialNonCurrent = "NON_CURRENT"
)

// rotationKey resolves a rotation operation's KeyId (a key id or key ARN)
// and rejects keys whose material cannot rotate: only symmetric encryption
// keys with AWS_KMS origin can (imported material, asymmetric and HMAC keys
// cannot).
func (s *Service) rotationKey(ctx context.Context, ref, action string) (*fsm.Key, error) {
	k, err := s.resolveKeyFresh(ctx, ref, keyIDOrARN)
	if err != nil {
		return nil, err
	}
	if err := s.authorizeKey(ctx, k, action, ref); err != nil {
		return nil, err
	}
	if k.Origin != originAWSKMS {
		return nil, newError(ErrUnsupportedOp, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
	}
	if k.KeySpec != specSymmetricDefault || k.KeyUsage != usageEncryptDecrypt {
		return nil, newError(ErrUnsupportedOp, "%s key spec is %s: rotation is supported only for symmetric encryption keys.", k.ARN, k.KeySpec)
	}
	return k, nil
}

// checkRotationState applies the key-state rules of EnableKeyRotation,
// DisableKeyRotation and RotateKeyOnDemand (reference/key-states.md).
func checkRotationState(k *fsm.Key) error {
	switch k.State {
	case fsm.StateEnabled:
		return nil
	case fsm.StateDisabled:
		return newError(ErrDisabled, "%s is disabled.", k.ARN)
	case fsm.StatePendingDeletion:
		return newError(ErrInvalidState, "%s is pending deletion.", k.ARN)
	case fsm.StatePendingImport:
		return newError(ErrUnsupportedOp, "%s origin is %s which is not valid for this operation.", k.ARN, k.Origin)
	default:
		return newError(ErrInvalidState, "%s is in state %s.", k.ARN, k.State)
	}
}

// EnableKeyRotation turns on automatic rotation (default every 365 days), or
// changes the period of a key that already rotates.
func (s *Service) EnableKeyRotation(ctx context.Context, in *EnableKeyRotationInput) (*Empty, error) {
	days := int32(defaultRotationPeriodInDays)
	if in.RotationPeriodInDays != nil {
		days = *in.RotationPeriodInDays
	}
	if days < fsm.MinRotationPeriodDays || days > fsm.MaxRotationPeriodDays {
		return nil, ValidationError("1 validation error detected: Value '%d' at 'rotationPeriodInDays' failed to satisfy constraint: Member must have value between %d and %d", days, fsm.MinRotationPeriodDays, fsm.MaxRotationPeriodDays)
	}
	return s.setKeyRotation(ctx, *in.KeyId, true, days, "EnableKeyRotation")
}

// DisableKeyRotation turns off automatic rotation.
func (s *Service) DisableKeyRotation(ctx context.Context, in *KeyIDInput) (*Empty, error) {
	return s.setKeyRotation(ctx, *in.KeyId, false, 0, "DisableKeyRotation")
}

func (s *Service) setKeyRotation(ctx context.Context, ref string, enabled bool, days int32, action string) (*Empty, error) {
	k, err := s.rotationKey(ctx, ref, action)
	if err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	if err := checkRotationState(k); err != nil {
		return nil, err
	}
	return &Empty{}, s.propose(ctx, &fsm.Command{Type: fsm.CmdSetKeyRotation,
		SetKeyRotation: &fsm.SetKeyRotationCmd{KeyID: k.KeyID, Enabled: enabled, PeriodDays: days}})
}

// GetKeyRotationStatus reports whether automatic rotation is on, its period
// and the next rotation date. A key pending deletion reports false (its
// settings come back if the deletion is cancelled); a disabled key keeps its
// status but is not rotated until it is enabled again.
func (s *Service) GetKeyRotationStatus(ctx context.Context, in *KeyIDInput) (*GetKeyRotationStatusOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.rotationKey(ctx, *in.KeyId, "GetKeyRotationStatus")
	if err != nil {
		return nil, err
	}
	if k.State == fsm.StatePendingImport {
		return nil, checkRotationState(k)
	}
	out := &GetKeyRotationStatusOutput{KeyId: k.KeyID}
	if k.RotationEnabled && k.State != fsm.StatePendingDeletion {
		out.KeyRotationEnabled = true
		days := k.RotationPeriodDays
		out.RotationPeriodInDays = &days
		out.NextRotationDate = NewTimestamp(time.Unix(0, k.NextRotation))
	}
	// On-demand rotations complete before RotateKeyOnDemand answers, so
	// none is ever in progress: OnDemandRotationStartDate stays absent.
	return out, nil
}

// RotateKeyOnDemand adds a new material version now (at most 25 times per
// key). It does not change the automatic rotation schedule.
func (s *Service) RotateKeyOnDemand(ctx context.Context, in *KeyIDInput) (*RotateKeyOnDemandOutput, error) {
	k, err := s.rotationKey(ctx, *in.KeyId, "RotateKeyOnDemand")
	if err != nil {
		return nil, err
	}
	if err := checkCustomerManaged(k); err != nil {
		return nil, err
	}
	if err := checkRotationState(k); err != nil {
		return nil, err
	}
	if k.OnDemandRotations() >= fsm.MaxOnDemandRotations {
		return nil, newError(ErrLimitExceeded, "%s has reached the limit of %d on-demand rotations.", k.ARN, fsm.MaxOnDemandRotations)
	}
	if err := s.rotate(ctx, k, fsm.RotationOnDemand, s.now(), ""); err != nil {
		return nil, err
	}
	return &RotateKeyOnDemandOutput{KeyId: k.KeyID}, nil
}

// rotate draws and wraps new material for k under the current domain key and
// proposes it as the key's new current version. requestID "" means the
// caller's request id.
func (s *Service) rotate(ctx context.Context, k *fsm.Key, rotationType string, now time.Time, requestID string) error {
	dkID, dk, err := s.currentDomainKey(ctx)
	if err != nil {
		return err
	}
	v, err := s.newKeyVersion(dkID, dk, k.ARN, now, materialSize(k.KeySpec))
	if err != nil {
		return err
	}
	v.RotationType = rotationType
	return s.propose(ctx, &fsm.Command{Type: fsm.CmdRotateKeyMaterial, RequestID: requestID, Time: now.UnixNano(),
		RotateKeyMaterial: &fsm.RotateKeyMaterialCmd{KeyID: k.KeyID, Version: v}})
}

// ListKeyRotations lists a key's completed rotations, oldest first; with
// IncludeKeyMaterial ALL_KEY_MATERIAL the first material leads the list.
func (s *Service) ListKeyRotations(ctx context.Context, in *ListKeyRotationsInput) (*ListKeyRotationsOutput, error) {
	if err := s.readBarrier(ctx); err != nil {
		return nil, err
	}
	k, err := s.rotationKey(ctx, *in.KeyId, "ListKeyRotations")
	if err != nil {
		return nil, err
	}
	if k.State == fsm.StatePendingImport {
		return nil, checkRotationState(k)
	}
	include := includeRotationsOnly
	if in.IncludeKeyMaterial != nil {
		include = *in.IncludeKeyMaterial
	}
	first := 0 // index in k.Versions of the first listed version
	if include == includeRotationsOnly {
		first = 1
	}
	if in.Marker != nil {
		last, err := decodeRotationsMarker(k.KeyID, in.Marker)
		if err != nil {
			return nil, err
		}
		first = max(first, last+1)
	}
	limit := limitOr(in.Limit, defaultListRotationsLimit, 1000)
	end := min(len(k.Versions), first+limit)
	out := &ListKeyRotationsOutput{Rotations: []RotationsListEntry{}}
	for i := first; i < end; i++ {
		v := k.Versions[i]
		e := RotationsListEntry{KeyId: k.KeyID, KeyMaterialId: keyMaterialID(v), KeyMaterialState: materialNonCurrent}
		if i == len(k.Versions)-1 {
			e.KeyMaterialState = materialCurrent
		}
		if v.RotationType != "" {
			e.RotationDate = NewTimestamp(time.Unix(0, v.CreatedAt))
			e.RotationType = v.RotationType
		}
		out.Rotations = append(out.Rotations, e)
	}
	if end < len(k.Versions) {
		out.Truncated = true
		out.NextMarker = encodeMarker("rotations", k.KeyID+"/"+strconv.Itoa(end-1))
	}
	return out, nil
}

// decodeRotationsMarker returns the index of the last version a previous
// page listed; the marker must come from a listing of the same key.
func decodeRotationsMarker(keyID string, m *string) (int, error) {
	s, err := decodeMarker("rotations", m)
	if err != nil {
		return 0, err
	}
	id, idx, ok := strings.Cut(s, "/")
	n, perr := strconv.Atoi(idx)
	if !ok || id != keyID || perr != nil || n < 0 || strconv.Itoa(n) != idx {
		return 0, newError(ErrInvalidMarker, "Invalid marker: %s", *m)
	}
	return n, nil
}

// rotateDueKeys proposes an automatic rotation of every enabled key whose
// next rotation date has come. The command carries now: Apply rotates only
// if the key is still due then, so a repeated or raced proposal is harmless.
func (s *Service) rotateDueKeys(ctx context.Context, now time.Time) []error {
	var errs []error
	for _, id := range s.fsm.KeysDueForRotation(now.UnixNano()) {
		k, ok := s.fsm.Key(id)
		if !ok {
			continue
		}
		err := s.rotate(ctx, k, fsm.RotationAutomatic, now, s.newUUID())
		if err == nil {
			s.log.Info("rotated key material automatically", "key_id", id)
		}
		errs = append(errs, err)
	}
	return errs
}
