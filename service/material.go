package service

import (
	"context"
	"time"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

// domainKey returns the unwrapped domain key with the given id, unwrapping
// it under the root key on first use.
func (s *Service) domainKey(id string) (*crypto.Secret, error) {
	s.dkMu.Lock()
	defer s.dkMu.Unlock()
	if dk, ok := s.domainKeys[id]; ok {
		return dk, nil
	}
	rec, ok := s.fsm.DomainKey(id)
	if !ok {
		return nil, newError(ErrInternal, "An internal error occurred.")
	}
	dk, err := s.cfg.RootKey.UnwrapDomainKey(rec.ID, rec.Wrapped)
	if err != nil {
		// The root key given to this node does not open the region's domain
		// keys: a configuration fault, never the caller's.
		s.log.Error("cannot unwrap domain key: wrong root key?", "domain_key_id", rec.ID)
		return nil, newError(ErrKeyUnavailable, "The key material is unavailable on this node.")
	}
	s.domainKeys[id] = dk
	return dk, nil
}

// currentDomainKey returns the domain key new material is wrapped under,
// creating the region's first one if there is none yet.
func (s *Service) currentDomainKey(ctx context.Context) (string, *crypto.Secret, error) {
	rec, ok := s.fsm.CurrentDomainKey()
	if !ok {
		if err := s.addDomainKey(ctx); err != nil {
			return "", nil, err
		}
		if rec, ok = s.fsm.CurrentDomainKey(); !ok {
			return "", nil, newError(ErrInternal, "An internal error occurred.")
		}
	}
	dk, err := s.domainKey(rec.ID)
	return rec.ID, dk, err
}

// addDomainKey draws a new domain key, wraps it under the root key and
// proposes it. Its plaintext never leaves this process.
func (s *Service) addDomainKey(ctx context.Context) error {
	raw := make([]byte, crypto.KeySize)
	s.mustRead(raw)
	dk := crypto.NewSecret(raw)
	clear(raw)
	defer dk.Zero()
	id := s.newUUID()
	wrapped, err := s.cfg.RootKey.WrapDomainKey(s.cfg.Rand, id, dk)
	if err != nil {
		return err
	}
	now := s.now()
	return s.propose(ctx, &fsm.Command{Type: fsm.CmdAddDomainKey, RequestID: s.newUUID(), Time: now.UnixNano(),
		AddDomainKey: &fsm.DomainKey{ID: id, Wrapped: wrapped, CreatedAt: now.UnixNano()}})
}

// material returns a copy of the unwrapped material of one key version,
// from the cache when it is there. The caller zeroes the copy when done.
func (s *Service) material(k *fsm.Key, v fsm.KeyVersion) (*crypto.Secret, error) {
	return s.materials.Get(v.VersionID, s.materialLoader(k, v))
}

// symmetricKey returns one version of a symmetric key ready for Seal and
// Open, built once per cached version (the per-message key derivation's
// cipher is cached with it). The caller Releases it when done.
func (s *Service) symmetricKey(k *fsm.Key, rawKeyID [16]byte, v fsm.KeyVersion) (*crypto.SymmetricKey, error) {
	return s.materials.Symmetric(rawKeyID, v.VersionID, s.materialLoader(k, v))
}

// materialLoader unwraps the material of one key version under its domain
// key (on a cache miss).
func (s *Service) materialLoader(k *fsm.Key, v fsm.KeyVersion) func() (*crypto.Secret, error) {
	return func() (*crypto.Secret, error) {
		dk, err := s.domainKey(v.DomainKeyID)
		if err != nil {
			return nil, err
		}
		m, err := crypto.UnwrapKeyMaterial(dk, v.DomainKeyID, k.ARN, v.VersionID, v.WrappedMaterial)
		if err != nil {
			s.log.Error("cannot unwrap key material", "key_id", k.KeyID, "domain_key_id", v.DomainKeyID)
			return nil, newError(ErrKeyUnavailable, "The key material is unavailable on this node.")
		}
		return m, nil
	}
}

// domainKeyDue reports whether the current domain key is older than the
// rotation period (or missing).
func (s *Service) domainKeyDue(now time.Time) bool {
	rec, ok := s.fsm.CurrentDomainKey()
	return !ok || now.Sub(time.Unix(0, rec.CreatedAt)) >= s.cfg.DomainKeyRotation
}
