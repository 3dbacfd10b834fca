package service

import "bytes"

// CurrentMaterialForTest returns a copy of the unwrapped material of a key's
// current version, through the same unwrap path and cache the operations
// use. Tests only: it lets a test check kmsd's MACs with crypto/hmac.
func (s *Service) CurrentMaterialForTest(keyID string) ([]byte, error) {
	k, err := s.resolveKey(keyID, anyKeyRef)
	if err != nil {
		return nil, err
	}
	v, ok := k.CurrentVersion()
	if !ok {
		return nil, newError(ErrInternal, "no material")
	}
	m, err := s.material(k, v)
	if err != nil {
		return nil, err
	}
	defer m.Zero()
	return bytes.Clone(m.Bytes()), nil
}

// PurgeKeyCacheForTest empties the cache of unwrapped key versions, so that
// the next operation unwraps again.
func (s *Service) PurgeKeyCacheForTest() { s.materials.Purge() }
