package service

import (
	"context"
	"errors"
	"strings"

	"github.com/kmsd/kmsd/crypto"
	"github.com/kmsd/kmsd/fsm"
)

const aliasPrefix = "alias/"

// keyARN is the ARN of a key id in this region and account.
func (s *Service) keyARN(id string) string {
	return "arn:aws:kms:" + s.cfg.Region + ":" + s.cfg.AccountID + ":key/" + id
}

// aliasARN is the ARN of an alias name (alias/...).
func (s *Service) aliasARN(name string) string {
	return "arn:aws:kms:" + s.cfg.Region + ":" + s.cfg.AccountID + ":" + name
}

// keyRef says which forms of key reference an operation accepts.
type keyRef int

const (
	keyIDOrARN keyRef = iota // key id or key ARN (management operations)
	anyKeyRef                // also alias name or alias ARN (crypto operations, DescribeKey)
)

// resolveKey finds the key a KeyId parameter names: a key id, a key ARN,
// and where allowed an alias name or alias ARN.
func (s *Service) resolveKey(ref string, accept keyRef) (*fsm.Key, error) {
	resource := ref
	if strings.HasPrefix(ref, "arn:") {
		parts := strings.SplitN(ref, ":", 6)
		if len(parts) != 6 || parts[1] != "aws" || parts[2] != "kms" {
			return nil, newError(ErrNotFound, "Invalid arn %s", ref)
		}
		if parts[3] != s.cfg.Region || parts[4] != s.cfg.AccountID {
			return nil, newError(ErrNotFound, "Key '%s' does not exist", ref)
		}
		resource = parts[5]
		switch {
		case strings.HasPrefix(resource, "key/"):
			resource = strings.TrimPrefix(resource, "key/")
		case strings.HasPrefix(resource, aliasPrefix):
		default:
			return nil, newError(ErrNotFound, "Invalid arn %s", ref)
		}
	}
	if strings.HasPrefix(resource, aliasPrefix) {
		if accept != anyKeyRef {
			return nil, newError(ErrNotFound, "Invalid keyId %s", ref)
		}
		a, ok := s.fsm.Alias(resource)
		if !ok {
			return nil, newError(ErrNotFound, "Alias %s is not found.", s.aliasARN(resource))
		}
		k, ok := s.fsm.Key(a.TargetKeyID)
		if !ok {
			return nil, newError(ErrNotFound, "Alias %s is not found.", s.aliasARN(resource))
		}
		return k, nil
	}
	if !validKeyID(resource) {
		return nil, newError(ErrNotFound, "Invalid keyId %s", ref)
	}
	k, ok := s.fsm.Key(resource)
	if !ok {
		return nil, newError(ErrNotFound, "Key '%s' does not exist", s.keyARN(resource))
	}
	return k, nil
}

// resolveKeyFresh is resolveKey for mutations: a follower that does not
// find the key may simply not have applied its creation yet (it was
// acknowledged through another node a moment ago), so it catches up with
// the leader and looks again before answering NotFoundException. Mutations
// are linearizable; without this, a DisableKey sent to a follower right
// after the CreateKey was acknowledged could fail.
func (s *Service) resolveKeyFresh(ctx context.Context, ref string, accept keyRef) (*fsm.Key, error) {
	k, err := s.resolveKey(ref, accept)
	if err != nil {
		retry, cerr := s.catchUpAfterMiss(ctx, err)
		if cerr != nil {
			return nil, cerr
		}
		if retry {
			k, err = s.resolveKey(ref, accept)
		}
	}
	return k, err
}

// catchUpAfterMiss reports whether a lookup that failed with err is worth
// repeating: err is NotFound, this node is a follower, and a read barrier
// through the leader succeeded (so every write acknowledged before now is
// applied here). The leader never needs to: it applies a write before
// acknowledging it. Only misses pay for the barrier. If the barrier fails
// (no leader during a failover), the miss proves nothing: the caller gets
// DependencyTimeoutException (503, retried by the SDKs), not NotFound.
func (s *Service) catchUpAfterMiss(ctx context.Context, err error) (retry bool, _ error) {
	if !errors.Is(err, ErrNotFound) || s.proposer.IsLeader() {
		return false, nil
	}
	if berr := s.proposer.ReadBarrier(ctx); berr != nil {
		s.log.Debug("catching up after a lookup miss failed", "err", berr)
		return false, newError(ErrDependencyTimeout, "The request could not be checked against the current state in time; retry it.")
	}
	return true, nil
}

// validKeyID reports whether id has the form of a key id: a UUID, or
// mrk- followed by 32 hex digits for multi-region keys.
func validKeyID(id string) bool {
	_, _, err := crypto.ParseKeyID(id)
	return err == nil
}
