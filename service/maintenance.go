package service

import (
	"context"
	"errors"
	"time"

	"github.com/kmsd/kmsd/fsm"
)

// RunMaintenance performs time-driven work while this node leads: it adds
// the first domain key, rotates domain keys, rotates the material of keys
// whose automatic rotation is due, deletes keys whose deletion date has
// passed, and deletes imported key material whose ValidTo has passed. Each change is an ordinary Raft command carrying the
// leader's clock. It returns when ctx is done.
func (s *Service) RunMaintenance(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if s.proposer.IsLeader() {
			if err := s.MaintenanceTick(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("maintenance", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// MaintenanceTick runs one pass of the leader's time-driven work.
func (s *Service) MaintenanceTick(ctx context.Context) error {
	now := s.now()
	var errs []error
	if s.domainKeyDue(now) {
		errs = append(errs, s.addDomainKey(ctx))
	}
	for _, id := range s.fsm.KeysDueForDeletion(now.UnixNano()) {
		err := s.propose(ctx, &fsm.Command{Type: fsm.CmdDeleteKey, RequestID: s.newUUID(), Time: now.UnixNano(),
			KeyRef: &fsm.KeyRefCmd{KeyID: id}})
		if err == nil {
			s.log.Info("deleted key after its waiting period", "key_id", id)
		}
		errs = append(errs, err)
	}
	errs = append(errs, s.rotateDueKeys(ctx, now)...)
	errs = append(errs, s.expireImportedMaterial(ctx, now)...)
	return errors.Join(errs...)
}
